// com.microsoft GELU variants, as ONNX Runtime defines them:
//   Gelu(X)           = X * 0.5 * (1 + erf(X / sqrt(2)))
//   FastGelu(X, bias) = 0.5 * v * (1 + tanh(0.7978845608 * (v + 0.044715 * v^3))), v = X + bias
//   BiasGelu(A, B)    = Gelu(A + B)
// The bias inputs are 1-D over the last dimension of the data input. Computed in double, rounded once.
#include <cmath>
#include <vector>

#include "kernels/reference/contrib_common.h"

namespace kiln::ops::contrib {
namespace {

double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x * M_SQRT1_2)); }

double gelu_tanh(double x) {
  constexpr double kSqrt2OverPi = 0.7978845608028654;
  return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
}

// Checks a bias input's type and, when shapes are known, that it is 1-D of the data's last dim.
void infer_with_bias(InferenceContext& ctx, size_t bias_input, const char* bias_name) {
  require_float32_input(ctx, 0, "input 0");
  require_float32_input(ctx, bias_input, bias_name);
  const ir::Type& x = ctx.input_type(0);
  if (auto b = input_shape(ctx, bias_input); b && x.shape) {
    if (x.shape->rank() == 0) ctx.fail("input 0 must have rank >= 1 when ", bias_name, " is given");
    const ir::Dim& last = (*x.shape)[x.shape->rank() - 1];
    if (b->rank() != 1 || (last.is_static() && (*b)[0].is_static() && (*b)[0].value != last.value))
      ctx.fail(bias_name, " of shape ", ir::to_string(*b), " must be 1-D with the last dimension of input 0 ",
               ir::to_string(*x.shape));
  }
  ctx.set_output_type(0, x);
}

void infer_gelu(InferenceContext& ctx) {
  require_float32_input(ctx, 0, "input X");
  ctx.set_output_type(0, ctx.input_type(0));
}

void infer_fast_gelu(InferenceContext& ctx) { infer_with_bias(ctx, 1, "bias"); }
void infer_bias_gelu(InferenceContext& ctx) { infer_with_bias(ctx, 1, "bias B"); }

// Y = f(X + bias) elementwise; `bias` (may be null) is 1-D over X's last dimension.
template <class F>
void run_unary(KernelContext& ctx, const ir::Tensor* bias, const char* bias_name, F&& f) {
  const ir::Tensor& x = ctx.input(0);
  require_float32(ctx, x.dtype(), "input 0");
  int64_t inner = 1;
  if (bias) {
    require_float32(ctx, bias->dtype(), bias_name);
    if (x.rank() == 0) ctx.fail("input 0 must have rank >= 1 when ", bias_name, " is given");
    inner = x.dim(x.rank() - 1);
    require_vector(ctx, *bias, inner, bias_name);
  }
  ir::Tensor y = ctx.make_tensor(x.dtype(), x.shape());
  const float* in = x.data<float>();
  const float* b = bias ? bias->data<float>() : nullptr;
  float* out = y.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    // ONNX Runtime adds the bias in float before the activation.
    float v = b ? in[i] + b[i % inner] : in[i];
    out[i] = static_cast<float>(f(static_cast<double>(v)));
  }
  ctx.set_output(0, std::move(y));
}

void gelu_kernel(KernelContext& ctx) { run_unary(ctx, nullptr, "", gelu_erf); }

void fast_gelu_kernel(KernelContext& ctx) {
  run_unary(ctx, ctx.has_input(1) ? &ctx.input(1) : nullptr, "bias", gelu_tanh);
}

void bias_gelu_kernel(KernelContext& ctx) { run_unary(ctx, &ctx.input(1), "bias B", gelu_erf); }

}  // namespace

void register_activation_ops(OpRegistry& r) {
  r.add(OpDef{kMsDomain, "Gelu", kMsMinOpset, kMsMaxOpset, infer_gelu, gelu_kernel});
  r.add(OpDef{kMsDomain, "FastGelu", kMsMinOpset, kMsMaxOpset, infer_fast_gelu, fast_gelu_kernel});
  r.add(OpDef{kMsDomain, "BiasGelu", kMsMinOpset, kMsMaxOpset, infer_bias_gelu, bias_gelu_kernel});
}

}  // namespace kiln::ops::contrib

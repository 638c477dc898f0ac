// FusedConv in two domains, one implementation:
//   Y = activation(Conv(X, W, B) + Z)
// with Conv's attributes (auto_pad, dilations, group, kernel_shape, pads, strides), an optional Z of the
// output's shape added before the activation, and `activation` one of
//   Relu, Tanh, Sigmoid                  (no parameters)
//   LeakyRelu   activation_params = [alpha]          x >= 0 ? x : alpha * x
//   Clip        activation_params = [min, max]       min(max(x, min), max)
//   HardSigmoid activation_params = [alpha, beta]    min(max(alpha * x + beta, 0), 1)
// (no activation attribute: identity). The convolution itself is kiln's Conv reference kernel.
// - com.microsoft.FusedConv is ONNX Runtime's op, with exactly its semantics: only those six activations.
// - ai.kiln.FusedConv is kiln's own (version 1), which the optimizer writes only for target kiln; it also
//   takes, without parameters,
//     HardSwish   x * max(0, min(1, x / 6 + 0.5))
//     Silu        x * sigmoid(x)
//   ONNX Runtime cannot load it, so a model holding it runs in kiln only. And with `channels_last` = 1
//   (default 0) X, Z and Y are channels-last, [N, spatial..., C], W staying [M, C / group, k...]: what the
//   optimizer's conversion to channels-last writes (passes/conv_channels_last.cc), so that consecutive
//   convolutions need no layout change between them. Channels-last, it takes a fifth input S, [N, 1...,
//   C] (X's rank): X is scaled per image and channel before the convolution,
//     Y = activation(Conv(X * S, W, B) + Z)
//   a squeeze-and-excitation block's gate, which passes/channel_scale_fusion.cc moves into the
//   convolution after it so that the scaled X is never written out.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/reference/contrib_common.h"
#include "kernels/reference/fused_activation.h"
#include "kernels/reference/tensor_util.h"

namespace kiln::ops::contrib {
namespace {

using Activation = FusedActivationKind;

struct FusedActivation {
  Activation kind = Activation::kIdentity;
  std::vector<float> params;
};

FusedActivation read_activation(const NodeView& node) {
  FusedActivation a;
  if (!node.has_attr("activation")) return a;
  std::string name = node.attr_string("activation");
  const bool kiln_domain = node.node().domain == kKilnDomain;
  const std::optional<FusedActivationName> found = fused_activation_by_name(name, kiln_domain);
  if (!found && kiln_domain) {
    node.fail("unsupported activation \"", name,
              "\" (expected Relu, Tanh, Sigmoid, LeakyRelu, Clip, HardSigmoid, HardSwish or Silu)");
  } else if (!found) {
    node.fail("unsupported activation \"", name, "\" (expected Relu, Tanh, Sigmoid, LeakyRelu, Clip or HardSigmoid)");
  }
  a.kind = found->kind;
  const size_t nparams = found->params;
  if (nparams > 0) {
    if (!node.has_attr("activation_params"))
      node.fail("activation ", name, " needs attribute activation_params with ", nparams, " values");
    a.params = node.attr_floats("activation_params");
    if (a.params.size() != nparams)
      node.fail("activation ", name, " needs ", nparams, " activation_params, got ", a.params.size());
  }
  return a;
}

float activate(const FusedActivation& a, float x) {
  switch (a.kind) {
    case Activation::kIdentity:
      return x;
    case Activation::kRelu:
      return std::max(x, 0.0f);
    case Activation::kTanh:
      return std::tanh(x);
    case Activation::kSigmoid:
      return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(x))));
    case Activation::kLeakyRelu:
      return x >= 0 ? x : a.params[0] * x;
    case Activation::kClip:
      return std::min(std::max(x, a.params[0]), a.params[1]);
    case Activation::kHardSigmoid:
      return std::min(std::max(a.params[0] * x + a.params[1], 0.0f), 1.0f);
    case Activation::kHardSwish:
      return x * std::min(std::max(x / 6.0f + 0.5f, 0.0f), 1.0f);
    case Activation::kSilu:
      return static_cast<float>(x / (1.0 + std::exp(-static_cast<double>(x))));
  }
  return x;
}

// kiln's Conv declaration: FusedConv shares its attributes and first three inputs.
const OpDef& conv_def() {
  const OpDef* def = OpRegistry::instance().find("", "Conv", 11);
  KILN_CHECK(def && def->infer && def->kernel, "internal: Conv is not registered");
  return *def;
}

void infer_fused_conv(InferenceContext& ctx) {
  require_float32_input(ctx, 0, "input X");
  require_float32_input(ctx, 1, "weights W");
  require_float32_input(ctx, 2, "bias B");
  require_float32_input(ctx, 3, "input Z");
  require_float32_input(ctx, 4, "input S");
  read_activation(ctx);
  if (ctx.has_input(4) && !channels_last(ctx)) ctx.fail("input S needs channels_last = 1");
  if (channels_last(ctx)) {
    // Conv's inference on the channels-first view of X, its output turned channels-last.
    std::vector<ir::Type> first(ctx.num_inputs());
    std::vector<const ir::Type*> types(ctx.num_inputs(), nullptr);
    std::vector<const ir::Tensor*> values(ctx.num_inputs(), nullptr);
    for (size_t i = 0; i < ctx.num_inputs() && i < 3; ++i) {
      if (!ctx.has_input(i)) continue;
      first[i] = ctx.input_type(i);
      if (i == 0 && first[i].shape && first[i].shape->rank() >= 3)
        first[i].shape = permuted(*first[i].shape, channel_perm(first[i].shape->rank(), false));
      types[i] = &first[i];
      values[i] = i == 0 ? nullptr : ctx.input_value(i);
    }
    InferenceContext inner(ctx.node(), ctx.opset(), std::move(types), std::move(values));
    conv_def().infer(inner);
    ir::Type out = inner.output_types().empty() ? ir::Type() : inner.output_types()[0];
    if (out.shape && out.shape->rank() >= 3) out.shape = permuted(*out.shape, channel_perm(out.shape->rank(), true));
    ctx.set_output_type(0, out);
  } else {
    conv_def().infer(ctx);
  }
  const std::vector<ir::Type>& outs = ctx.output_types();
  auto z = input_shape(ctx, 3);
  if (z && !outs.empty() && outs[0].shape) {
    const ir::Shape& y = *outs[0].shape;
    bool ok = z->rank() == y.rank();
    for (size_t i = 0; ok && i < y.rank(); ++i)
      ok = !(*z)[i].is_static() || !y[i].is_static() || (*z)[i].value == y[i].value;
    if (!ok) ctx.fail("Z of shape ", ir::to_string(*z), " must have the output's shape ", ir::to_string(y));
  }
  auto scale = input_shape(ctx, 4), x = input_shape(ctx, 0);
  if (scale && x) {
    bool ok = scale->rank() == x->rank() && x->rank() >= 3;
    for (size_t i = 0; ok && i < x->rank(); ++i) {
      const bool spatial = i > 0 && i + 1 < x->rank();
      const ir::Dim& d = (*scale)[i];
      ok =
          spatial ? !d.is_static() || d.value == 1 : !d.is_static() || !(*x)[i].is_static() || d.value == (*x)[i].value;
    }
    if (!ok) ctx.fail("S of shape ", ir::to_string(*scale), " must be [N, 1..., C] for X of shape ", ir::to_string(*x));
  }
}

// X * S, S [N, 1..., C] scaling channels-last X per image and channel.
ir::Tensor scaled_input(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const ir::Tensor& s = ctx.input(4);
  require_channel_scale(ctx, x, s);
  ir::Tensor scaled = ctx.make_tensor(ir::DType::kFloat32, x.shape());
  const int64_t n = x.dim(0), c = x.dim(x.rank() - 1), plane = n == 0 || c == 0 ? 0 : x.numel() / (n * c);
  const float* xp = x.data<float>();
  const float* sp = s.data<float>();
  float* out = scaled.data<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < plane; ++p)
      for (int64_t k = 0; k < c; ++k) {
        const int64_t at = (i * plane + p) * c + k;
        out[at] = xp[at] * sp[i * c + k];
      }
  return scaled;
}

// Conv's reference kernel on X (channels-first), W and B.
ir::Tensor convolve(KernelContext& ctx, bool last) {
  if (!last) {
    if (ctx.has_input(4)) ctx.fail("input S needs channels_last = 1");
    conv_def().kernel(ctx);
    return ctx.outputs()[0].tensor;
  }
  const ir::Tensor scaled = ctx.has_input(4) ? scaled_input(ctx) : ir::Tensor();
  const ir::Tensor& x = ctx.has_input(4) ? scaled : ctx.input(0);
  if (x.rank() < 3) ctx.fail("input X must have rank >= 3 (N, spatial..., C), got ", ir::to_string(x.shape()));
  ir::Datum first(tensor_detail::permute(ctx, x, x.shape(), channel_perm(x.rank(), false)));
  std::vector<const ir::Datum*> inputs = {&first};
  for (size_t i = 1; i < 3; ++i) inputs.push_back(ctx.has_input(i) ? &ctx.input_datum(i) : nullptr);
  KernelContext inner(ctx.node(), ctx.opset(), std::move(inputs), ctx.limits(), nullptr);
  conv_def().kernel(inner);
  const ir::Tensor& y = inner.outputs()[0].tensor;
  return tensor_detail::permute(ctx, y, y.shape(), channel_perm(y.rank(), true));
}

void fused_conv_kernel(KernelContext& ctx) {
  require_float32(ctx, ctx.input(0).dtype(), "input X");
  FusedActivation act = read_activation(ctx);
  ir::Tensor y = convolve(ctx, channels_last(ctx));
  float* out = y.data<float>();
  if (ctx.has_input(3)) {
    const ir::Tensor& z = ctx.input(3);
    require_float32(ctx, z.dtype(), "input Z");
    if (z.shape() != y.shape())
      ctx.fail("Z of shape ", ir::to_string(z.shape()), " must have the output's shape ", ir::to_string(y.shape()));
    const float* zp = z.data<float>();
    for (int64_t i = 0; i < y.numel(); ++i) out[i] += zp[i];
  }
  for (int64_t i = 0; i < y.numel(); ++i) out[i] = activate(act, out[i]);
  ctx.set_output(0, std::move(y));
}

}  // namespace

void require_channel_scale(const NodeView& node, const ir::Tensor& x, const ir::Tensor& s) {
  require_float32(node, s.dtype(), "input S");
  const size_t rank = x.rank();
  bool ok = s.rank() == rank && rank >= 3 && s.dim(0) == x.dim(0) && s.dim(rank - 1) == x.dim(rank - 1);
  for (size_t i = 1; ok && i + 1 < rank; ++i) ok = s.dim(i) == 1;
  if (!ok)
    node.fail("S of shape ", ir::to_string(s.shape()), " must be [N, 1..., C] for X of shape ",
              ir::to_string(x.shape()));
}

void register_fused_conv_ops(OpRegistry& r) {
  r.add(OpDef{kMsDomain, "FusedConv", kMsMinOpset, kMsMaxOpset, infer_fused_conv, fused_conv_kernel});
  // Version 1 of ai.kiln, valid in later versions like the com.microsoft ops.
  r.add(OpDef{kKilnDomain, "FusedConv", 1, kMsMaxOpset, infer_fused_conv, fused_conv_kernel});
}

}  // namespace kiln::ops::contrib

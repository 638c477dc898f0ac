// The fast kernels of int8 dynamic quantization: DynamicQuantizeLinear of a float32 tensor (before a
// QAttention), DequantizeLinear of an int8 embedding's gathered rows, and com.microsoft.DynamicQuantizeMatMul (the form kiln folds ONNX Runtime's
// quantize_dynamic MatMuls into): int8 weights B [K,N] with zero point 0, b_scale per tensor or per
// column, an optional bias, all constants.
//
// Per call, A [..., K] is quantized to uint8 as DynamicQuantizeLinear does (activation_quantization.h),
// then multiplied by Int8MatMul (int8_matmul.h: oneDNN's u8 x s8 matmul where int8 is fast, float32 on
// the dequantized values elsewhere).
// A uint8 B, or a nonzero b_zero_point, is left to the reference kernel.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/activation_quantization.h"
#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/int8_matmul.h"
#include "kernels/reference/dynamic_quantization.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

class DynamicQuantizeMatMulKernel : public FastKernel {
 public:
  DynamicQuantizeMatMulKernel(int64_t k, int64_t n, const int8_t* b, const std::vector<float>& b_scale,
                              const float* bias, size_t inputs)
      : product_(k, n, b, b_scale, bias), inputs_(inputs) {}

  bool run(ops::KernelContext& ctx) const override {
    const ir::Tensor& a = ctx.input(0);
    if (a.dtype() != ir::DType::kFloat32) ctx.fail("A must be float32, got ", ir::dtype_name(a.dtype()));
    const ir::Dims& s = a.shape();
    const int64_t k = product_.k(), n = product_.n();
    if (s.empty()) ctx.fail("matmul operands must have rank >= 1, got scalars");
    if (s.back() != k) ctx.fail("cannot multiply A ", ir::to_string(s), " by B [", k, ",", n, "]: inner dimensions differ");
    ir::Dims out_shape = s;
    if (s.size() == 1)
      out_shape = {n};
    else
      out_shape.back() = n;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    const int64_t m = s.size() == 1 ? 1 : rows_of(s);
    ir::Tensor qa = ctx.make_tensor(ir::DType::kUInt8, {m, k});
    const ops::DynamicQuantization q = quantize_activations_u8(a.data<float>(), m * k, qa.data<uint8_t>());
    product_.run(m, qa.data<uint8_t>(), q.scale, q.zero_point, y.data<float>());
    ctx.set_output(0, std::move(y));
    return true;
  }

  std::vector<size_t> absorbed_inputs() const override {
    std::vector<size_t> v;
    for (size_t i = 1; i < inputs_; ++i) v.push_back(i);
    return v;
  }
  std::string implementation() const override { return product_.implementation(); }

 private:
  Int8MatMul product_;
  size_t inputs_;
};

// DynamicQuantizeLinear of float32: y, y_scale, y_zero_point (kernels/cpu/activation_quantization.h).
class DynamicQuantizeLinearKernel : public FastKernel {
 public:
  bool run(ops::KernelContext& ctx) const override {
    const ir::Tensor& x = ctx.input(0);
    if (x.dtype() != ir::DType::kFloat32) return false;
    ir::Tensor y = ctx.make_tensor(ir::DType::kUInt8, x.shape());
    const ops::DynamicQuantization q = quantize_activations_u8(x.data<float>(), x.numel(), y.data<uint8_t>());
    ctx.set_output(0, std::move(y));
    if (ctx.has_output(1)) ctx.set_output(1, ir::Tensor::scalar<float>(q.scale));
    if (ctx.has_output(2)) ctx.set_output(2, ir::Tensor::scalar<uint8_t>(q.zero_point));
    return true;
  }
};

// DequantizeLinear of int8 or uint8 with one scale (float32) and zero point: y = (x - zero point) * scale
// in float32, as the reference rounds it. Per-axis and blocked forms are the reference's.
class DequantizeLinearKernel : public FastKernel {
 public:
  bool run(ops::KernelContext& ctx) const override {
    const ir::Tensor& x = ctx.input(0);
    const ir::Tensor& scale = ctx.input(1);
    const ir::Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    if (scale.dtype() != ir::DType::kFloat32 || scale.numel() != 1 || (zp && (zp->numel() != 1 || zp->dtype() != x.dtype())))
      return false;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, x.shape());
    const float s = scale.data<float>()[0];
    float* out = y.data<float>();
    if (x.dtype() == ir::DType::kInt8) {
      dequantize(x.data<int8_t>(), x.numel(), zp ? zp->data<int8_t>()[0] : 0, s, out);
    } else if (x.dtype() == ir::DType::kUInt8) {
      dequantize(x.data<uint8_t>(), x.numel(), zp ? zp->data<uint8_t>()[0] : 0, s, out);
    } else {
      return false;
    }
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  template <class Q>
  static void dequantize(const Q* x, int64_t count, int zero_point, float scale, float* y) {
    const float z = zero_point;
    for (int64_t i = 0; i < count; ++i) y[i] = (static_cast<float>(x[i]) - z) * scale;
  }
};

std::unique_ptr<FastKernel> make_dequantize_linear(const ir::Node& n, const ir::Graph&, int64_t opset) {
  ops::NodeView v(n, opset);
  // Blocked scales (opset 21) and an output type other than float32 (opset 23) are the reference's.
  if (v.attr_int("block_size", 0) != 0) return nullptr;
  if (v.attr_int("output_dtype", 0) != 0 && v.attr_int("output_dtype", 0) != static_cast<int64_t>(ir::DType::kFloat32))
    return nullptr;
  return std::make_unique<DequantizeLinearKernel>();
}

std::unique_ptr<FastKernel> make_dynamic_quantize_linear(const ir::Node&, const ir::Graph&, int64_t) {
  return std::make_unique<DynamicQuantizeLinearKernel>();
}

std::unique_ptr<FastKernel> make_dynamic_quantize_matmul(const ir::Node& n, const ir::Graph& g, int64_t) {
  auto constant = [&](size_t i) -> const ir::Tensor* {
    return i < n.inputs.size() && !n.inputs[i].empty() ? g.find_initializer(n.inputs[i]) : nullptr;
  };
  const ir::Tensor* b = constant(1);
  const ir::Tensor* scale = constant(2);
  if (!b || b->dtype() != ir::DType::kInt8 || b->shape().size() != 2 || b->numel() == 0) return nullptr;
  const int64_t k = b->shape()[0], cols = b->shape()[1];
  if (!scale || scale->dtype() != ir::DType::kFloat32 || (scale->numel() != 1 && scale->shape() != ir::Dims{cols}))
    return nullptr;
  if (n.inputs.size() > 3 && !n.inputs[3].empty()) {
    const ir::Tensor* zp = constant(3);
    if (!zp || zp->dtype() != ir::DType::kInt8 || (zp->numel() != 1 && zp->shape() != ir::Dims{cols})) return nullptr;
    for (int64_t i = 0; i < zp->numel(); ++i)
      if (zp->data<int8_t>()[i] != 0) return nullptr;
  }
  const ir::Tensor* bias = nullptr;
  if (n.inputs.size() > 4 && !n.inputs[4].empty()) {
    bias = float_constant(g, n, 4);
    if (!bias || bias->shape() != ir::Dims{cols}) return nullptr;
  }
  std::vector<float> scales(scale->data<float>(), scale->data<float>() + scale->numel());
  return std::make_unique<DynamicQuantizeMatMulKernel>(k, cols, b->data<int8_t>(), scales,
                                                       bias ? bias->data<float>() : nullptr, n.inputs.size());
}

}  // namespace

std::span<const FastKernelEntry> dynamic_quantization_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"", "DynamicQuantizeLinear", 11, kLatestOpset, dtype_set({ir::DType::kFloat32}), make_dynamic_quantize_linear},
      {"", "DequantizeLinear", 10, kLatestOpset, dtype_set({ir::DType::kInt8, ir::DType::kUInt8}), make_dequantize_linear},
      {"com.microsoft", "DynamicQuantizeMatMul", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       make_dynamic_quantize_matmul},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

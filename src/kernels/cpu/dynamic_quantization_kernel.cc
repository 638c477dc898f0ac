// The fast kernels of int8 quantization: DynamicQuantizeLinear of a float32 tensor (before a QAttention),
// DequantizeLinear of an int8 embedding's gathered rows, and com.microsoft.DynamicQuantizeMatMul (the form
// kiln folds ONNX Runtime's quantize_dynamic MatMuls into): int8 weights B [K,N] with zero point 0, b_scale
// per tensor or per column, an optional bias, all constants. Per call, A [..., K] is quantized to uint8 as
// DynamicQuantizeLinear does (activation_quantization.h), then multiplied by Int8MatMul (int8_matmul.h:
// oneDNN's u8 x s8 matmul where int8 is fast, float32 on the dequantized values elsewhere).
// A uint8 B, or a nonzero b_zero_point, is left to the reference kernel.
//
// And static quantization's (quantize_static's QDQ products, which kiln folds into QuantizeLinear ->
// com.microsoft.MatMulIntegerToFloat, passes/qdq_matmul_fusion.cc): QuantizeLinear of float32 with one
// scale and zero point, and MatMulIntegerToFloat of a quantized A whose scale and zero point are constants
// (static: calibrated once) by int8 weights as above, through the same Int8MatMul.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/activation_quantization.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/int8_matmul.h"
#include "kernels/reference/dynamic_quantization.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// The output shape of A [..., K] x B [K, N] as MatMul broadcasts it ([K] x [K, N] -> [N]), or the
// reference's message for an A that does not fit.
ir::Dims product_output_shape(ops::KernelContext& ctx, const ir::Dims& s, int64_t k, int64_t n) {
  if (s.empty()) ctx.fail("matmul operands must have rank >= 1, got scalars");
  if (s.back() != k) ctx.fail("cannot multiply A ", ir::to_string(s), " by B [", k, ",", n, "]: inner dimensions differ");
  ir::Dims out_shape = s;
  if (s.size() == 1)
    out_shape = {n};
  else
    out_shape.back() = n;
  return out_shape;
}

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
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, product_output_shape(ctx, s, k, n));
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

// QuantizeLinear of float32 with one float32 scale and one uint8 or int8 zero point:
// saturate(round_half_even(x / scale) + zero point), the division in float32, NaN to 0, as the reference
// rounds it. One loop, compiled again for AVX-512 (where GCC vectorizes its rounding into vrndscaleps).
template <class Q>
inline void quantize_static_values(const float* x, int64_t count, float scale, float zero_point, Q* y) {
  constexpr float lo = std::numeric_limits<Q>::min(), hi = std::numeric_limits<Q>::max();
  for (int64_t i = 0; i < count; ++i) {
    float v = std::nearbyint(x[i] / scale) + zero_point;
    v = v == v ? v : 0.0f;
    v = v > lo ? v : lo;
    v = v < hi ? v : hi;
    y[i] = static_cast<Q>(static_cast<int>(v));
  }
}

template <class Q>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void quantize_static_values_avx512(
    const float* x, int64_t count, float scale, float zero_point, Q* y) {
  quantize_static_values(x, count, scale, zero_point, y);
}

class QuantizeLinearKernel : public FastKernel {
 public:
  bool run(ops::KernelContext& ctx) const override {
    const ir::Tensor& x = ctx.input(0);
    const ir::Tensor& scale = ctx.input(1);
    const ir::Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    if (x.dtype() != ir::DType::kFloat32 || scale.dtype() != ir::DType::kFloat32 || scale.numel() != 1 || !zp ||
        zp->numel() != 1 || (zp->dtype() != ir::DType::kUInt8 && zp->dtype() != ir::DType::kInt8))
      return false;
    ir::Tensor y = ctx.make_tensor(zp->dtype(), x.shape());
    const float s = scale.data<float>()[0];
    const bool simd = selected_isa() == Isa::kAvx512;
    // Pieces of 16 Ki values, split across threads from 4 pieces on (as activation_quantization.cc does).
    constexpr int64_t kPiece = 16 * 1024;
    const int64_t count = x.numel(), pieces = (count + kPiece - 1) / kPiece;
    auto quantize = [&]<class Q>(Q* out, float z) {
      parallel_for_ranges(worth_threads(count, 4 * kPiece), pieces, [&](int64_t begin, int64_t end) {
        const int64_t first = begin * kPiece, n = std::min(count, end * kPiece) - first;
        if (simd)
          quantize_static_values_avx512(x.data<float>() + first, n, s, z, out + first);
        else
          quantize_static_values(x.data<float>() + first, n, s, z, out + first);
      });
    };
    if (zp->dtype() == ir::DType::kUInt8)
      quantize(y.data<uint8_t>(), static_cast<float>(zp->data<uint8_t>()[0]));
    else
      quantize(y.data<int8_t>(), static_cast<float>(zp->data<int8_t>()[0]));
    ctx.set_output(0, std::move(y));
    return true;
  }
};

std::unique_ptr<FastKernel> make_quantize_linear(const ir::Node& n, const ir::Graph&, int64_t opset) {
  ops::NodeView v(n, opset);
  // Blocked scales and an output type named apart from the zero point (opset 21) are the reference's.
  if (v.attr_int("block_size", 0) != 0 || v.attr_int("output_dtype", 0) != 0) return nullptr;
  if (opset >= 23 && v.attr_int("precision", 0) != 0) return nullptr;
  return std::make_unique<QuantizeLinearKernel>();
}

// com.microsoft.MatMulIntegerToFloat with constant int8 B [K,N] (zero point 0), b_scale per tensor or per
// column, constant a_scale and a_zero_point (one each) and an optional constant bias: Int8MatMul with the
// activation's static scale. An int8 A is taken as uint8 with its top bit flipped (A + 128, zero point +
// 128: the same differences), so that one uint8 kernel serves both.
class MatMulIntegerToFloatKernel : public FastKernel {
 public:
  MatMulIntegerToFloatKernel(int64_t k, int64_t n, const int8_t* b, const std::vector<float>& b_scale,
                             const float* bias, float a_scale, int a_zero_point, size_t inputs)
      : product_(k, n, b, b_scale, bias), a_scale_(a_scale), a_zero_point_(a_zero_point), inputs_(inputs) {}

  bool run(ops::KernelContext& ctx) const override {
    const ir::Tensor& a = ctx.input(0);
    if (a.dtype() != ir::DType::kUInt8 && a.dtype() != ir::DType::kInt8)
      ctx.fail("A must be uint8 or int8, got ", ir::dtype_name(a.dtype()));
    const ir::Dims& s = a.shape();
    const int64_t k = product_.k(), n = product_.n();
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, product_output_shape(ctx, s, k, n));
    const int64_t m = s.size() == 1 ? 1 : rows_of(s);
    if (a.dtype() == ir::DType::kUInt8) {
      product_.run(m, a.data<uint8_t>(), a_scale_, static_cast<uint8_t>(a_zero_point_), y.data<float>());
    } else {
      ir::Tensor flipped = ctx.make_tensor(ir::DType::kUInt8, {m, k});
      const int8_t* in = a.data<int8_t>();
      uint8_t* out = flipped.data<uint8_t>();
      for (int64_t i = 0; i < m * k; ++i) out[i] = static_cast<uint8_t>(in[i] + 128);
      product_.run(m, out, a_scale_, static_cast<uint8_t>(a_zero_point_ + 128), y.data<float>());
    }
    ctx.set_output(0, std::move(y));
    return true;
  }

  // B, b_scale, b_zero_point and bias; the scale and zero point of A may be QuantizeLinear's too.
  std::vector<size_t> absorbed_inputs() const override {
    std::vector<size_t> v = {1, 3};
    for (size_t i : {size_t{5}, size_t{6}})
      if (i < inputs_) v.push_back(i);
    return v;
  }
  std::string implementation() const override { return product_.implementation(); }

 private:
  Int8MatMul product_;
  float a_scale_;
  int a_zero_point_;
  size_t inputs_;
};

std::unique_ptr<FastKernel> make_matmul_integer_to_float(const ir::Node& n, const ir::Graph& g, int64_t) {
  auto constant = [&](size_t i) -> const ir::Tensor* {
    return i < n.inputs.size() && !n.inputs[i].empty() ? g.find_initializer(n.inputs[i]) : nullptr;
  };
  auto present = [&](size_t i) { return i < n.inputs.size() && !n.inputs[i].empty(); };
  const ir::Tensor* b = constant(1);
  if (!b || b->dtype() != ir::DType::kInt8 || b->shape().size() != 2 || b->numel() == 0) return nullptr;
  const int64_t k = b->shape()[0], cols = b->shape()[1];
  const ir::Tensor* a_scale = constant(2);
  const ir::Tensor* b_scale = constant(3);
  if (!a_scale || a_scale->dtype() != ir::DType::kFloat32 || a_scale->numel() != 1) return nullptr;
  if (!b_scale || b_scale->dtype() != ir::DType::kFloat32 ||
      (b_scale->numel() != 1 && b_scale->shape() != ir::Dims{cols}))
    return nullptr;
  int a_zero_point = 0;
  if (present(4)) {
    const ir::Tensor* zp = constant(4);
    if (!zp || zp->numel() != 1) return nullptr;
    if (zp->dtype() == ir::DType::kUInt8)
      a_zero_point = zp->data<uint8_t>()[0];
    else if (zp->dtype() == ir::DType::kInt8)
      a_zero_point = zp->data<int8_t>()[0];
    else
      return nullptr;
  }
  if (present(5)) {
    const ir::Tensor* zp = constant(5);
    if (!zp || zp->dtype() != ir::DType::kInt8 || (zp->numel() != 1 && zp->shape() != ir::Dims{cols})) return nullptr;
    for (int64_t i = 0; i < zp->numel(); ++i)
      if (zp->data<int8_t>()[i] != 0) return nullptr;
  }
  const ir::Tensor* bias = nullptr;
  if (present(6)) {
    bias = float_constant(g, n, 6);
    if (!bias || bias->shape() != ir::Dims{cols}) return nullptr;
  }
  std::vector<float> scales(b_scale->data<float>(), b_scale->data<float>() + b_scale->numel());
  return std::make_unique<MatMulIntegerToFloatKernel>(k, cols, b->data<int8_t>(), scales,
                                                      bias ? bias->data<float>() : nullptr, a_scale->data<float>()[0],
                                                      a_zero_point, n.inputs.size());
}

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
      {"", "DequantizeLinear", 10, kLatestOpset, dtype_set({ir::DType::kInt8, ir::DType::kUInt8}),
       make_dequantize_linear},
      {"com.microsoft", "DynamicQuantizeMatMul", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       make_dynamic_quantize_matmul},
      {"", "QuantizeLinear", 10, kLatestOpset, dtype_set({ir::DType::kFloat32}), make_quantize_linear},
      {"com.microsoft", "MatMulIntegerToFloat", 1, kLatestOpset, dtype_set({ir::DType::kInt8, ir::DType::kUInt8}),
       make_matmul_integer_to_float},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

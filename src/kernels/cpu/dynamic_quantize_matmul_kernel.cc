// The fast kernel for com.microsoft.DynamicQuantizeMatMul (the form kiln folds ONNX Runtime's
// quantize_dynamic MatMuls into): int8 weights B [K,N] with zero point 0, b_scale per tensor or per
// column, an optional bias, all constants.
//
// Per call, A [..., K] is quantized to uint8 as DynamicQuantizeLinear does (kernels/reference/
// dynamic_quantization.h: its range, then round(x / scale) + zero point), then multiplied:
// - where int8 is fast (VNNI or AMX: int8_matmul_is_fast()), by oneDNN's u8 x s8 matmul on the weights
//   packed once (onednn_int8_matmul.h);
// - elsewhere in float32, by PackedMatMul on the weights dequantized once (b_scale * B) and A's quantized
//   values dequantized ((q - zero point) * a_scale): the same products of the same quantized values, so
//   the model's results (its quantization error included) are the same on every CPU, at float32 speed.
// A uint8 B, or a nonzero b_zero_point, is left to the reference kernel.
// As in simd_avx512.h: GCC 12 warns inside its own AVX-512 headers when their intrinsics are inlined into a
// target-attributed function; this is the file's first inclusion of immintrin.h.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/onednn_int8_matmul.h"
#include "kernels/cpu/onednn_matmul.h"
#include "kernels/reference/dynamic_quantization.h"
#include "ops/node_view.h"

#define KILN_AVX512_QUANTIZE __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

namespace kiln::kernels::cpu {

namespace {

// The range of x (NaN skipped), as DynamicQuantizeLinear takes it.
void range_scalar(const float* x, int64_t count, float& lo, float& hi) {
  for (int64_t i = 0; i < count; ++i) {
    if (x[i] > hi) hi = x[i];
    if (x[i] < lo) lo = x[i];
  }
}

KILN_AVX512_QUANTIZE void range_avx512(const float* x, int64_t count, float& lo, float& hi) {
  __m512 mn = _mm512_set1_ps(lo), mx = _mm512_set1_ps(hi);
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    mn = _mm512_min_ps(v, mn);  // a NaN in v keeps the second operand
    mx = _mm512_max_ps(v, mx);
  }
  // Lane by lane (GCC 12's _mm512_reduce_* warn where inlined into a target-attributed function).
  alignas(64) float lanes_lo[16], lanes_hi[16];
  _mm512_store_ps(lanes_lo, mn);
  _mm512_store_ps(lanes_hi, mx);
  range_scalar(lanes_lo, 16, lo, hi);
  range_scalar(lanes_hi, 16, lo, hi);
  range_scalar(x + i, count - i, lo, hi);
}

// y = quantize_u8(x) for `count` values: round half to even (the default rounding mode) of x / scale.
KILN_AVX512_QUANTIZE void quantize_avx512(const float* x, int64_t count, ops::DynamicQuantization q, uint8_t* y) {
  const __m512 scale = _mm512_set1_ps(q.scale), zp = _mm512_set1_ps(q.zero_point);
  const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps(255.0f);
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    __m512 v = _mm512_roundscale_ps(_mm512_div_ps(_mm512_loadu_ps(x + i), scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, zp), zero), top);  // NaN: max gives 0
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
  }
  for (; i < count; ++i) y[i] = ops::quantize_u8(x[i], q);
}

class DynamicQuantizeMatMulKernel : public FastKernel {
 public:
  DynamicQuantizeMatMulKernel(int64_t k, int64_t n, const int8_t* b, std::vector<float> b_scale, const float* bias,
                              size_t inputs)
      : k_(k), n_(n), inputs_(inputs) {
    const bool per_column = b_scale.size() > 1;
    if (int8_matmul_is_fast()) {
      int8_ = std::make_unique<PackedInt8MatMul>(k, n, b, b_scale.data(), per_column, bias);
      return;
    }
    std::vector<float> w(static_cast<size_t>(k * n));
    for (int64_t r = 0; r < k; ++r)
      for (int64_t c = 0; c < n; ++c)
        w[static_cast<size_t>(r * n + c)] = static_cast<float>(b[r * n + c]) * b_scale[per_column ? static_cast<size_t>(c) : 0];
    MatMulSpec spec;
    spec.k = k;
    spec.n = n;
    spec.has_bias = bias != nullptr;
    f32_ = std::make_unique<PackedMatMul>(spec, w.data(), bias);
  }

  bool run(ops::KernelContext& ctx) const override {
    const ir::Tensor& a = ctx.input(0);
    if (a.dtype() != ir::DType::kFloat32) ctx.fail("A must be float32, got ", ir::dtype_name(a.dtype()));
    const ir::Dims& s = a.shape();
    if (s.empty()) ctx.fail("matmul operands must have rank >= 1, got scalars");
    if (s.back() != k_) ctx.fail("cannot multiply A ", ir::to_string(s), " by B [", k_, ",", n_, "]: inner dimensions differ");
    ir::Dims out_shape = s;
    if (s.size() == 1)
      out_shape = {n_};
    else
      out_shape.back() = n_;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    const int64_t m = s.size() == 1 ? 1 : rows_of(s), count = m * k_;
    const float* x = a.data<float>();
    const bool simd = selected_isa() == Isa::kAvx512;
    float lo = 0.0f, hi = 0.0f;
    if (simd)
      range_avx512(x, count, lo, hi);
    else
      range_scalar(x, count, lo, hi);
    const ops::DynamicQuantization q = ops::dynamic_quantization(lo, hi);
    if (int8_) {
      ir::Tensor qa = ctx.make_tensor(ir::DType::kUInt8, {m, k_});
      quantize_avx512(x, count, q, qa.data<uint8_t>());
      int8_->run(m, qa.data<uint8_t>(), k_, q.scale, q.zero_point, y.data<float>(), n_);
    } else {
      // The quantized values, dequantized: exact small integers times a_scale.
      ir::Tensor dq = ctx.make_tensor(ir::DType::kFloat32, {m, k_});
      float* d = dq.data<float>();
      const float zp = q.zero_point;
      for (int64_t i = 0; i < count; ++i) d[i] = (static_cast<float>(ops::quantize_u8(x[i], q)) - zp) * q.scale;
      f32_->run(m, d, k_, y.data<float>(), n_);
    }
    ctx.set_output(0, std::move(y));
    return true;
  }

  std::vector<size_t> absorbed_inputs() const override {
    std::vector<size_t> v;
    for (size_t i = 1; i < inputs_; ++i) v.push_back(i);
    return v;
  }
  std::string implementation() const override {
    return int8_ ? "onednn int8" : gemm_engine_implementation(f32_->engine()) + " float32 (int8 is not faster here)";
  }

 private:
  int64_t k_, n_;
  size_t inputs_;
  std::unique_ptr<PackedInt8MatMul> int8_;
  std::unique_ptr<PackedMatMul> f32_;
};

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
  return std::make_unique<DynamicQuantizeMatMulKernel>(k, cols, b->data<int8_t>(), std::move(scales),
                                                       bias ? bias->data<float>() : nullptr, n.inputs.size());
}

}  // namespace

std::span<const FastKernelEntry> dynamic_quantize_matmul_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"com.microsoft", "DynamicQuantizeMatMul", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       make_dynamic_quantize_matmul},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

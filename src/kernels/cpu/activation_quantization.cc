#include "kernels/cpu/activation_quantization.h"

// As in simd_avx512.h: GCC 12 warns inside its own AVX-512 headers when their intrinsics are inlined into a
// target-attributed function; this is the file's first inclusion of immintrin.h.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <omp.h>

#include <algorithm>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fast_kernel_util.h"

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

// round_half_even(x / scale) (the default rounding mode) + zero point, clamped to [0, 255]; NaN gives 0.
KILN_AVX512_QUANTIZE void quantize_avx512(const float* x, int64_t count, ops::DynamicQuantization q, uint8_t* y) {
  const __m512 scale = _mm512_set1_ps(q.scale), zp = _mm512_set1_ps(q.zero_point);
  const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps(255.0f);
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    __m512 v = _mm512_roundscale_ps(_mm512_div_ps(_mm512_loadu_ps(x + i), scale),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, zp), zero), top);  // NaN: max gives 0
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
  }
  for (; i < count; ++i) y[i] = ops::quantize_u8(x[i], q);
}

// Values per piece of work when the range or the quantization is split across threads, from four
// pieces on (64 Ki values): BERT-base's [128, 768] inputs are 6 pieces, its FFN output [128, 3072] 24.
constexpr int64_t kPiece = 16 * 1024;
constexpr int kMaxThreads = 64;

ops::DynamicQuantization parameters(const float* x, int64_t count, bool simd) {
  auto range = [&](const float* p, int64_t n, float& lo, float& hi) {
    if (simd)
      range_avx512(p, n, lo, hi);
    else
      range_scalar(p, n, lo, hi);
  };
  float lo = 0.0f, hi = 0.0f;
  const int64_t pieces = (count + kPiece - 1) / kPiece;
  if (!worth_threads(count, 4 * kPiece) || omp_get_max_threads() > kMaxThreads) {
    range(x, count, lo, hi);
    return ops::dynamic_quantization(lo, hi);
  }
  // Each thread's range in its own slot (a cache line apart), then combined: min and max do not depend on
  // the order, so the result is the serial one's.
  struct alignas(64) Slot {
    float lo = 0.0f, hi = 0.0f;
  };
  Slot slots[kMaxThreads];
  parallel_for_ranges(true, pieces, [&](int64_t begin, int64_t end) {
    Slot& s = slots[omp_get_thread_num()];
    range(x + begin * kPiece, std::min(count, end * kPiece) - begin * kPiece, s.lo, s.hi);
  });
  for (const Slot& s : slots) {
    lo = std::min(lo, s.lo);
    hi = std::max(hi, s.hi);
  }
  return ops::dynamic_quantization(lo, hi);
}

}  // namespace

ops::DynamicQuantization quantize_activations_u8(const float* x, int64_t count, uint8_t* y) {
  const bool simd = selected_isa() == Isa::kAvx512;
  const ops::DynamicQuantization q = parameters(x, count, simd);
  const int64_t pieces = (count + kPiece - 1) / kPiece;
  parallel_for_ranges(worth_threads(count, 4 * kPiece), pieces, [&](int64_t begin, int64_t end) {
    const int64_t first = begin * kPiece, n = std::min(count, end * kPiece) - first;
    if (simd) {
      quantize_avx512(x + first, n, q, y + first);
    } else {
      for (int64_t i = first; i < first + n; ++i) y[i] = ops::quantize_u8(x[i], q);
    }
  });
  return q;
}

}  // namespace kiln::kernels::cpu

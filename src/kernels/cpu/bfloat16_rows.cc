#include "kernels/cpu/bfloat16_rows.h"

#include "kernels/cpu/simd_avx512.h"  // first: it includes immintrin.h under a diagnostic pragma

#include <omp.h>

#include <algorithm>

#include "common/half.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/vector_kernels.h"

namespace kiln::kernels::cpu {
namespace {

void round_row_scalar(const float* x, int64_t n, uint16_t* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = float_to_bfloat16_bits(x[i]);
}

// half.h's rounding on 16 lanes: add 0x7fff plus the lowest kept bit, keep the top half; a NaN keeps its
// top half with the quiet bit set (adding could carry it into infinity).
KILN_TARGET_AVX512 inline __m256i round16(__m512i bits) {
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet));
}

KILN_TARGET_AVX512 void round_row_avx512(const float* x, int64_t n, uint16_t* y) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), round16(_mm512_loadu_si512(x + i)));
  if (i < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm256_mask_storeu_epi16(y + i, tail, round16(_mm512_maskz_loadu_epi32(tail, x + i)));
  }
}

}  // namespace

void round_rows_to_bfloat16(int64_t rows, int64_t cols, const float* x, int64_t ldx, uint16_t* y) {
  static const auto round_row = selected_isa() == Isa::kAvx512 ? round_row_avx512 : round_row_scalar;
  auto part = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) round_row(x + r * ldx, cols, y + r * cols);
  };
  if (rows * cols <= kParallelMinElements || rows < 2 || omp_in_parallel() || omp_get_max_threads() < 2) {
    part(0, rows);
    return;
  }
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    part(rows * t / threads, rows * (t + 1) / threads);
  }
}

}  // namespace kiln::kernels::cpu

#include "kernels/cpu/attention_tile.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "kernels/cpu/bfloat16_rows.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/onednn_matmul.h"
#include "kernels/cpu/thread_buffer.h"
#include "kernels/cpu/vector_kernels.h"

// The AVX2 and AVX-512 functions carry the attribute: the file is built for baseline x86-64 and runs them
// only when the CPU has AVX2 and FMA (AVX-512 F).
#define KILN_AVX2 __attribute__((target("avx2,fma")))
#define KILN_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define KILN_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16,avx2,fma")))

namespace kiln::kernels::cpu {
// Named, so that in a unity build these helpers do not meet panel_gemm.cc's of the same names.
namespace attention_tile_impl {
namespace {

constexpr int64_t kRows = 6;    // rows per micro-kernel
constexpr int64_t kWidth = 16;  // columns per micro-kernel

// c[R, 16] = alpha * a[R, kc] x b[kc, 16] (accumulate: c += ...); a and b by rows, lda / ldb apart.
template <int R>
KILN_AVX2 void micro_avx2(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                          float alpha, bool accumulate) {
  __m256 acc[R][2];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b + k * ldb), b1 = _mm256_loadu_ps(b + k * ldb + 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * lda + k);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  const __m256 al = _mm256_set1_ps(alpha);
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    __m256 y0 = _mm256_mul_ps(acc[r][0], al), y1 = _mm256_mul_ps(acc[r][1], al);
    if (accumulate) {
      y0 = _mm256_add_ps(y0, _mm256_loadu_ps(cr));
      y1 = _mm256_add_ps(y1, _mm256_loadu_ps(cr + 8));
    }
    _mm256_storeu_ps(cr, y0);
    _mm256_storeu_ps(cr + 8, y1);
  }
}

// The AVX-512 micro-kernel: c[R, 32] in 2R zmm accumulators, up to 12 rows (24 accumulators, 2 for B's row
// and one broadcast), twice the columns per FMA of the AVX2 one. Head sizes (32, 64) and padded key blocks
// are multiples of 16: a 16-column tail goes to the AVX2 kernel.
constexpr int64_t kRows512 = 12;
constexpr int64_t kWidth512 = 32;

// c[r, 0:32] = alpha * acc[r] (+ c when accumulating), for R rows: the AVX-512 and bf16 kernels' epilogue.
template <int R>
KILN_AVX512 inline void store_rows512(const __m512 (&acc)[R][2], float* c, int64_t ldc, float alpha, bool accumulate) {
  const __m512 al = _mm512_set1_ps(alpha);
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    __m512 y0 = _mm512_mul_ps(acc[r][0], al), y1 = _mm512_mul_ps(acc[r][1], al);
    if (accumulate) {
      y0 = _mm512_add_ps(y0, _mm512_loadu_ps(cr));
      y1 = _mm512_add_ps(y1, _mm512_loadu_ps(cr + 16));
    }
    _mm512_storeu_ps(cr, y0);
    _mm512_storeu_ps(cr + 16, y1);
  }
}

template <int R>
KILN_AVX512 void micro_avx512(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                              int64_t ldc, float alpha, bool accumulate) {
  __m512 acc[R][2];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b + k * ldb), b1 = _mm512_loadu_ps(b + k * ldb + 16);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + k]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  store_rows512<R>(acc, c, ldc, alpha, accumulate);
}

using MicroKernel = void (*)(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                             int64_t ldc, float alpha, bool accumulate);

// The AVX-512 kernel for 1..12 rows.
MicroKernel micro_avx512_rows(int64_t rows) {
  static constexpr MicroKernel kByRows[kRows512] = {
      micro_avx512<1>, micro_avx512<2>, micro_avx512<3>, micro_avx512<4>,  micro_avx512<5>,  micro_avx512<6>,
      micro_avx512<7>, micro_avx512<8>, micro_avx512<9>, micro_avx512<10>, micro_avx512<11>, micro_avx512<12>};
  return kByRows[rows - 1];
}

// c[R, 32] = alpha * a x b over `pairs` pairs of bfloat16: a's row r holds pair p in its 32-bit word
// a[r * lda + p], b's pair row p holds 32 columns' pairs in b[p * ldb + j] (lda, ldb in words).
template <int R>
KILN_AVX512_BF16 void micro_bf16(int64_t pairs, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb,
                                 float* c, int64_t ldc, float alpha, bool accumulate) {
  __m512 acc[R][2];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * ldb);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + p * ldb + 16);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r * lda + p]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  store_rows512<R>(acc, c, ldc, alpha, accumulate);
}

using MicroKernelBf16 = void (*)(int64_t pairs, const uint32_t* a, int64_t lda, const uint32_t* b, int64_t ldb,
                                 float* c, int64_t ldc, float alpha, bool accumulate);

// c[rows, cols] = alpha * a x b (+ c) in bfloat16 pairs, cols a multiple of 32.
void product_bf16(int64_t rows, int64_t cols, int64_t pairs, const uint32_t* a, int64_t lda, const uint32_t* b,
                  int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  static constexpr MicroKernelBf16 kByRows[kRows512] = {
      micro_bf16<1>, micro_bf16<2>, micro_bf16<3>, micro_bf16<4>,  micro_bf16<5>,  micro_bf16<6>,
      micro_bf16<7>, micro_bf16<8>, micro_bf16<9>, micro_bf16<10>, micro_bf16<11>, micro_bf16<12>};
  for (int64_t r0 = 0; r0 < rows; r0 += kRows512) {
    const MicroKernelBf16 micro = kByRows[std::min(kRows512, rows - r0) - 1];
    for (int64_t j = 0; j < cols; j += kWidth512)
      micro(pairs, a + r0 * lda, lda, b + j, ldb, c + r0 * ldc + j, ldc, alpha, accumulate);
  }
}

// V's key block [kn, hs] (bfloat16, dense) as pairs of keys: out[p * hs + c] = (v[2p][c], v[2p + 1][c]),
// the low half the even key; a missing odd key (kn odd) pairs with 0.
KILN_AVX512_BF16 void pair_rows(const uint16_t* v, int64_t kn, int64_t hs, uint32_t* out) {
  for (int64_t p = 0; p < kn / 2; ++p) {
    const uint16_t* even = v + 2 * p * hs;
    const uint16_t* odd = even + hs;
    for (int64_t c = 0; c < hs; ++c) out[p * hs + c] = even[c] | static_cast<uint32_t>(odd[c]) << 16;
  }
  if (kn % 2 != 0)
    for (int64_t c = 0; c < hs; ++c) out[kn / 2 * hs + c] = v[(kn - 1) * hs + c];
}

// The same product over any rows and columns, portable: below AVX2, and for column tails.
void product_scalar(int64_t rows, int64_t cols, int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float* c, int64_t ldc, float alpha, bool accumulate) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      float s = 0.0f;
      for (int64_t k = 0; k < kc; ++k) s += a[r * lda + k] * b[k * ldb + j];
      c[r * ldc + j] = alpha * s + (accumulate ? c[r * ldc + j] : 0.0f);
    }
}

// c[rows, cols] = alpha * a[rows, kc] x b[kc, cols] (+ c when accumulating): 16 columns at a time with
// AVX2, the rest portable.
void product_avx2(bool avx2, int64_t rows, int64_t cols, int64_t kc, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  const int64_t full_cols = avx2 ? cols / kWidth * kWidth : 0;
  for (int64_t r0 = 0; r0 < rows && full_cols > 0; r0 += kRows) {
    const int64_t rn = std::min(kRows, rows - r0);
    for (int64_t j = 0; j < full_cols; j += kWidth) {
      const float* ar = a + r0 * lda;
      const float* bj = b + j;
      float* cr = c + r0 * ldc + j;
      switch (rn) {
        case 6: micro_avx2<6>(kc, ar, lda, bj, ldb, cr, ldc, alpha, accumulate); break;
        case 5: micro_avx2<5>(kc, ar, lda, bj, ldb, cr, ldc, alpha, accumulate); break;
        case 4: micro_avx2<4>(kc, ar, lda, bj, ldb, cr, ldc, alpha, accumulate); break;
        case 3: micro_avx2<3>(kc, ar, lda, bj, ldb, cr, ldc, alpha, accumulate); break;
        case 2: micro_avx2<2>(kc, ar, lda, bj, ldb, cr, ldc, alpha, accumulate); break;
        default: micro_avx2<1>(kc, ar, lda, bj, ldb, cr, ldc, alpha, accumulate); break;
      }
    }
  }
  if (full_cols < cols)
    product_scalar(rows, cols - full_cols, kc, a, lda, b + full_cols, ldb, c + full_cols, ldc, alpha, accumulate);
}

// The same at `isa`: with AVX-512, 32 columns at a time, and the AVX2 kernels for what is left.
void product(Isa isa, int64_t rows, int64_t cols, int64_t kc, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc, float alpha, bool accumulate) {
  int64_t done = 0;
  if (isa == Isa::kAvx512) {
    done = cols / kWidth512 * kWidth512;
    for (int64_t r0 = 0; r0 < rows && done > 0; r0 += kRows512) {
      const MicroKernel micro = micro_avx512_rows(std::min(kRows512, rows - r0));
      for (int64_t j = 0; j < done; j += kWidth512)
        micro(kc, a + r0 * lda, lda, b + j, ldb, c + r0 * ldc + j, ldc, alpha, accumulate);
    }
  }
  if (done < cols)
    product_avx2(isa != Isa::kScalar, rows, cols - done, kc, a, lda, b + done, ldb, c + done, ldc, alpha, accumulate);
}

// Row maximum (NaN entries ignored: they make NaN later, through exp) and row sum, 8 lanes at a time.
KILN_AVX2 float max_avx2(const float* x, int64_t n) {
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + j), m);  // NaN in x: keeps m
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float r = lanes[0];
  for (int i = 1; i < 8; ++i) r = lanes[i] > r ? lanes[i] : r;
  for (; j < n; ++j) r = x[j] > r ? x[j] : r;
  return r;
}

KILN_AVX2 float sum_avx2(const float* x, int64_t n) {
  __m256 s = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + j));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float r = 0.0f;
  for (float v : lanes) r += v;
  for (; j < n; ++j) r += x[j];
  return r;
}

float max_scalar(const float* x, int64_t n) {
  float r = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) r = x[j] > r ? x[j] : r;
  return r;
}

float sum_scalar(const float* x, int64_t n) {
  float r = 0.0f;
  for (int64_t j = 0; j < n; ++j) r += x[j];
  return r;
}

struct Scratch {};      // names this file's thread_buffer
struct ScratchBf16 {};  // and the bfloat16 path's

}  // namespace
}  // namespace attention_tile_impl

bool attention_head_runs_bf16(int64_t head_size, Isa isa) {
  return isa == Isa::kAvx512 && head_size % attention_tile_impl::kWidth512 == 0 && bf16_matmul_is_fast();
}

void attention_head(const AttentionHeadArgs& x, Isa isa) {
  using namespace attention_tile_impl;  // NOLINT: this file's helpers
  const VectorKernelTable* table = vector_kernels_for(isa);
  KILN_CHECK(table, "attention_head: this CPU cannot run ", isa_name(isa));
  const VectorKernelTable& vk = *table;
  const bool avx2 = isa != Isa::kScalar;
  const int64_t hs = x.head_size;
  // K's block transposed ([hs, kKeyBlock], zero past the block's keys so that full 16-column products stay
  // inside it), the scores tile, the output accumulator, and per query row its running maximum and sum.
  const int64_t kt_floats = hs * kAttentionKeyBlock, s_floats = kAttentionQueryBlock * kAttentionKeyBlock;
  const int64_t o_floats = kAttentionQueryBlock * hs;
  float* kt = reinterpret_cast<float*>(
      worker_thread_buffer<Scratch>(sizeof(float) * static_cast<size_t>(kt_floats + s_floats + o_floats + 2 * kAttentionQueryBlock)));
  float* s = kt + kt_floats;
  float* o = s + s_floats;
  float* row_max = o + o_floats;
  float* row_sum = row_max + kAttentionQueryBlock;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  // The bfloat16 path's operands: Q's block and P rounded (pairs along their rows), one key block of K or V
  // rounded, V's block paired by keys; K^T's pairs go where the float32 path puts K^T (kt).
  const bool bf16 = x.bf16 && attention_head_runs_bf16(hs, isa);
  const int64_t width = bf16 ? kWidth512 : kWidth;
  const int64_t pairs = hs / 2;
  uint16_t *q16 = nullptr, *block16 = nullptr, *p16 = nullptr;
  uint32_t* v_pairs = nullptr;
  if (bf16) {
    const int64_t q_words = kAttentionQueryBlock * pairs, block_words = kAttentionKeyBlock * pairs;
    const int64_t p_words = kAttentionQueryBlock * kAttentionKeyBlock / 2, v_words = kAttentionKeyBlock / 2 * hs;
    auto* words = reinterpret_cast<uint32_t*>(worker_thread_buffer<ScratchBf16>(
        sizeof(uint32_t) * static_cast<size_t>(q_words + block_words + p_words + v_words)));
    q16 = reinterpret_cast<uint16_t*>(words);
    block16 = reinterpret_cast<uint16_t*>(words + q_words);
    p16 = reinterpret_cast<uint16_t*>(words + q_words + block_words);
    v_pairs = words + q_words + block_words + p_words;
  }

  for (int64_t q0 = 0; q0 < x.queries; q0 += kAttentionQueryBlock) {
    const int64_t qn = std::min(kAttentionQueryBlock, x.queries - q0);
    std::fill(o, o + qn * hs, 0.0f);
    std::fill(row_max, row_max + qn, kNegInf);
    std::fill(row_sum, row_sum + qn, 0.0f);
    if (bf16) round_rows_to_bfloat16(qn, hs, x.q + q0 * x.ldq, x.ldq, q16);
    for (int64_t k0 = 0; k0 < x.keys; k0 += kAttentionKeyBlock) {
      const int64_t kn = std::min(kAttentionKeyBlock, x.keys - k0);
      const int64_t ld_s = (kn + width - 1) / width * width;  // the block's keys, padded to full products
      // scores = scale * Q K^T (+ mask), then the online softmax's update per row.
      if (bf16) {
        round_rows_to_bfloat16(kn, hs, x.k + k0 * x.ldk, x.ldk, block16);
        const auto* k_words = reinterpret_cast<const uint32_t*>(block16);
        auto* kt_pairs = reinterpret_cast<uint32_t*>(kt);  // [pairs, ld_s]
        for (int64_t j = 0; j < kn; ++j)
          for (int64_t t = 0; t < pairs; ++t) kt_pairs[t * ld_s + j] = k_words[j * pairs + t];
        for (int64_t t = 0; t < pairs && kn < ld_s; ++t) std::fill(kt_pairs + t * ld_s + kn, kt_pairs + (t + 1) * ld_s, 0u);
        product_bf16(qn, ld_s, pairs, reinterpret_cast<const uint32_t*>(q16), pairs, kt_pairs, ld_s, s, ld_s, x.scale,
                     false);
      } else {
        for (int64_t j = 0; j < kn; ++j) {  // K's rows are read in order; kt (<= 64 KiB) takes the scatter
          const float* kr = x.k + (k0 + j) * x.ldk;
          for (int64_t t = 0; t < hs; ++t) kt[t * ld_s + j] = kr[t];
        }
        for (int64_t t = 0; t < hs && kn < ld_s; ++t) std::fill(kt + t * ld_s + kn, kt + (t + 1) * ld_s, 0.0f);
        product(isa, qn, ld_s, hs, x.q + q0 * x.ldq, x.ldq, kt, ld_s, s, ld_s, x.scale, false);
      }
      for (int64_t r = 0; r < qn; ++r) {
        float* sr = s + r * ld_s;
        if (x.mask) {
          const float* m = x.mask + (q0 + r) * x.mask_stride + k0;
          for (int64_t j = 0; j < kn; ++j) sr[j] += m[j];
        }
        const float block_max = avx2 ? max_avx2(sr, kn) : max_scalar(sr, kn);
        const float new_max = std::max(row_max[r], block_max);
        if (new_max == kNegInf) {  // nothing here nor before is attended: this block adds nothing,
          for (int64_t j = 0; j < kn; ++j)  // unless it holds a NaN (ignored by the maximum): then the row is NaN
            if (std::isnan(sr[j])) row_sum[r] = std::numeric_limits<float>::quiet_NaN();
          std::fill(sr, sr + ld_s, 0.0f);
          continue;
        }
        const float rescale = row_max[r] == kNegInf ? 0.0f : std::exp(row_max[r] - new_max);
        for (int64_t j = 0; j < kn; ++j) sr[j] -= new_max;
        vk.exp(sr, sr, kn);  // NaN and +inf scores make NaN here, and NaN in the row's output
        std::fill(sr + kn, sr + ld_s, 0.0f);
        const float block_sum = avx2 ? sum_avx2(sr, kn) : sum_scalar(sr, kn);
        // Until now the row attended nothing (its sum and output are 0), or its maximum did not move.
        if (row_max[r] != kNegInf && rescale != 1.0f)
          for (int64_t c = 0; c < hs; ++c) o[r * hs + c] *= rescale;
        row_sum[r] = row_sum[r] * rescale + block_sum;
        row_max[r] = new_max;
      }
      // out += P V over this block's keys (P is 0 past them, and so is V's odd last pair's second key).
      if (bf16) {
        round_rows_to_bfloat16(qn, ld_s, s, ld_s, p16);
        round_rows_to_bfloat16(kn, hs, x.v + k0 * x.ldv, x.ldv, block16);
        pair_rows(block16, kn, hs, v_pairs);
        product_bf16(qn, hs, (kn + 1) / 2, reinterpret_cast<const uint32_t*>(p16), ld_s / 2, v_pairs, hs, o, hs, 1.0f,
                     true);
      } else {
        product(isa, qn, hs, kn, s, ld_s, x.v + k0 * x.ldv, x.ldv, o, hs, 1.0f, true);
      }
    }
    for (int64_t r = 0; r < qn; ++r) {
      const float inv = 1.0f / row_sum[r];  // 0 (all masked with -inf) gives NaN, as the reference does
      float* out = x.out + (q0 + r) * x.ldo;
      for (int64_t c = 0; c < hs; ++c) out[c] = row_sum[r] == 0.0f ? std::numeric_limits<float>::quiet_NaN() : o[r * hs + c] * inv;
    }
  }
}

}  // namespace kiln::kernels::cpu

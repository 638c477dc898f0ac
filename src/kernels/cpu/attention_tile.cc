#include "kernels/cpu/attention_tile.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/thread_buffer.h"
#include "kernels/cpu/vector_kernels.h"

// The AVX2 functions carry the attribute: the file is built for baseline x86-64 and runs them only when
// the CPU has AVX2 and FMA.
#define KILN_AVX2 __attribute__((target("avx2,fma")))

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

// c[rows, cols] = alpha * a[rows, kc] x b[kc, cols] (+ c when accumulating).
void product(bool avx2, int64_t rows, int64_t cols, int64_t kc, const float* a, int64_t lda, const float* b,
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

struct Scratch {};  // names this file's thread_buffer

}  // namespace
}  // namespace attention_tile_impl

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

  for (int64_t q0 = 0; q0 < x.queries; q0 += kAttentionQueryBlock) {
    const int64_t qn = std::min(kAttentionQueryBlock, x.queries - q0);
    std::fill(o, o + qn * hs, 0.0f);
    std::fill(row_max, row_max + qn, kNegInf);
    std::fill(row_sum, row_sum + qn, 0.0f);
    for (int64_t k0 = 0; k0 < x.keys; k0 += kAttentionKeyBlock) {
      const int64_t kn = std::min(kAttentionKeyBlock, x.keys - k0);
      const int64_t ld_s = (kn + kWidth - 1) / kWidth * kWidth;  // the block's keys, padded to full products
      for (int64_t j = 0; j < kn; ++j) {  // K's rows are read in order; kt (<= 64 KiB) takes the scatter
        const float* kr = x.k + (k0 + j) * x.ldk;
        for (int64_t t = 0; t < hs; ++t) kt[t * ld_s + j] = kr[t];
      }
      for (int64_t t = 0; t < hs && kn < ld_s; ++t) std::fill(kt + t * ld_s + kn, kt + (t + 1) * ld_s, 0.0f);
      // scores = scale * Q K^T (+ mask), then the online softmax's update per row.
      product(avx2, qn, ld_s, hs, x.q + q0 * x.ldq, x.ldq, kt, ld_s, s, ld_s, x.scale, false);
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
      // out += P V over this block's keys.
      product(avx2, qn, hs, kn, s, ld_s, x.v + k0 * x.ldv, x.ldv, o, hs, 1.0f, true);
    }
    for (int64_t r = 0; r < qn; ++r) {
      const float inv = 1.0f / row_sum[r];  // 0 (all masked with -inf) gives NaN, as the reference does
      float* out = x.out + (q0 + r) * x.ldo;
      for (int64_t c = 0; c < hs; ++c) out[c] = row_sum[r] == 0.0f ? std::numeric_limits<float>::quiet_NaN() : o[r * hs + c] * inv;
    }
  }
}

}  // namespace kiln::kernels::cpu

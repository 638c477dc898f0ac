// The AVX2 + FMA build of vector_kernels.h: 8 floats a vector, row tails with maskload / maskstore. The
// same algorithms and constants as vector_kernels_avx512.cc (see there for the math); every function carries
// the target attribute, for the reason given there.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/vector_kernels.h"

#define KILN_AVX2 __attribute__((target("avx2,fma")))

namespace kiln::kernels::cpu {
namespace {

constexpr int64_t kLanes = 8;

// All ones in the first `count` lanes (count < 8).
KILN_AVX2 inline __m256i first_lanes(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

KILN_AVX2 inline __m256 load(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
KILN_AVX2 inline void store(float* p, __m256i m, __m256 v) { _mm256_maskstore_ps(p, m, v); }
// v in the lanes of m, 0 elsewhere.
KILN_AVX2 inline __m256 keep(__m256i m, __m256 v) { return _mm256_and_ps(_mm256_castsi256_ps(m), v); }

KILN_AVX2 inline float reduce_add(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

KILN_AVX2 inline float reduce_max(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// ---- math --------------------------------------------------------------------------------------------

KILN_AVX2 inline __m256 abs_ps(__m256 x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
KILN_AVX2 inline __m256 sign_of(__m256 x) { return _mm256_and_ps(_mm256_set1_ps(-0.0f), x); }

// e^r for r = x - k ln 2, k = round(x / ln 2), returned with k.
KILN_AVX2 inline __m256 exp_reduced(__m256 x, __m256& k) {
  k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693147182464599609375f), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-1.904654291e-9f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
  return _mm256_add_ps(p, _mm256_set1_ps(1.0f));
}

// 2^k for integral k in [-126, 127].
KILN_AVX2 inline __m256 pow2(__m256i k) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

KILN_AVX2 inline __m256 exp_ps(__m256 x) {
  // max/min return their second operand when either is NaN: written this way round, a NaN passes.
  x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
  x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);
  __m256 k;
  __m256 p = exp_reduced(x, k);
  // k in [-150, 128]: 2^k = 2^k1 * 2^k2 with both halves normal floats, so that denormal results round once.
  __m256i ki = _mm256_cvtps_epi32(k);
  __m256i k1 = _mm256_srai_epi32(ki, 1);
  return _mm256_mul_ps(_mm256_mul_ps(p, pow2(k1)), pow2(_mm256_sub_epi32(ki, k1)));
}

// erf on [0, 4) in 8 pieces of width 1/2, a degree-7 polynomial each in t = 2|x| - i (see the AVX-512
// file; 8 lanes hold 8 pieces).
// kErf8: erf(0.5 (i + t)) = sum_k c[k][i] t^k, t in [0, 1), i = interval
alignas(64) constexpr float kErf8[8][8] = {
    {0.000000000e+00f, 5.204998774e-01f, 8.427007936e-01f, 9.661051464e-01f, 9.953222649e-01f, 9.995930480e-01f,
     9.999779095e-01f, 9.999992569e-01f},
    {5.641895873e-01f, 4.393913400e-01f, 2.075536609e-01f, 5.946515104e-02f, 1.033350927e-02f, 1.089141203e-03f,
     6.962517582e-05f, 2.699511798e-06f},
    {-3.681189791e-07f, -1.098489084e-01f, -1.037750274e-01f, -4.459898633e-02f, -1.033384331e-02f, -1.361409147e-03f,
     -1.044112704e-04f, -4.720216080e-06f},
    {-4.700998248e-02f, -1.829890033e-02f, 1.728133533e-02f, 1.734491248e-02f, 6.030709325e-03f, 1.043623705e-03f,
     9.840686287e-05f, 5.251908680e-06f},
    {-3.400281219e-05f, 1.140435452e-02f, 4.382408729e-03f, -2.790265004e-03f, -2.164180005e-03f, -5.384300365e-04f,
     -6.435164846e-05f, -4.089537857e-06f},
    {3.618713674e-03f, 3.188917628e-04f, -2.286965144e-03f, -4.612470293e-04f, 4.340353454e-04f, 1.904369949e-04f,
     2.973854715e-05f, 2.242276368e-06f},
    {-1.229049222e-04f, -9.060640768e-04f, 2.197829041e-04f, 3.040146737e-04f, -2.385443698e-05f, -4.347752290e-05f,
     -9.013390517e-06f, -7.894433821e-07f},
    {-1.411693104e-04f, 1.402019208e-04f, 2.915821155e-05f, -4.646133698e-05f, -5.593202606e-06f, 4.976328146e-06f,
     1.353120665e-06f, 1.331812149e-07f},
};

KILN_AVX2 inline __m256 erf_ps(__m256 x) {
  __m256 ax = abs_ps(x);
  __m256 s = _mm256_mul_ps(ax, _mm256_set1_ps(2.0f));
  // min returns its second operand when either is NaN: a NaN passes (and then picks piece 0).
  __m256 piece = _mm256_min_ps(_mm256_set1_ps(7.0f), _mm256_floor_ps(s));
  __m256 t = _mm256_sub_ps(s, piece);
  __m256i i = _mm256_cvttps_epi32(piece);
  __m256 p = _mm256_permutevar8x32_ps(_mm256_load_ps(kErf8[7]), i);
  p = _mm256_fmadd_ps(p, t, _mm256_permutevar8x32_ps(_mm256_load_ps(kErf8[6]), i));
  p = _mm256_fmadd_ps(p, t, _mm256_permutevar8x32_ps(_mm256_load_ps(kErf8[5]), i));
  p = _mm256_fmadd_ps(p, t, _mm256_permutevar8x32_ps(_mm256_load_ps(kErf8[4]), i));
  p = _mm256_fmadd_ps(p, t, _mm256_permutevar8x32_ps(_mm256_load_ps(kErf8[3]), i));
  p = _mm256_fmadd_ps(p, t, _mm256_permutevar8x32_ps(_mm256_load_ps(kErf8[2]), i));
  p = _mm256_fmadd_ps(p, t, _mm256_permutevar8x32_ps(_mm256_load_ps(kErf8[1]), i));
  p = _mm256_fmadd_ps(p, t, _mm256_permutevar8x32_ps(_mm256_load_ps(kErf8[0]), i));
  // erf rounds to 1 from 3.92 on.
  p = _mm256_blendv_ps(p, _mm256_set1_ps(1.0f), _mm256_cmp_ps(ax, _mm256_set1_ps(4.0f), _CMP_GE_OQ));
  return _mm256_or_ps(p, sign_of(x));
}

KILN_AVX2 inline __m256 tanh_ps(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 ax = abs_ps(x);
  __m256 s = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-3.33332819422e-1f));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), x, x);
  __m256 e = exp_ps(_mm256_add_ps(ax, ax));
  __m256 large = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
  // tanh is odd: the sign of x, -0 included.
  return _mm256_or_ps(_mm256_blendv_ps(large, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ)),
                      sign_of(x));
}

template <__m256 (*F)(__m256)>
KILN_AVX2 void map(const float* x, float* y, int64_t count) {
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) _mm256_storeu_ps(y + i, F(_mm256_loadu_ps(x + i)));
  if (i < count) {
    __m256i m = first_lanes(count - i);
    store(y + i, m, F(load(x + i, m)));
  }
}

KILN_AVX2 void exp_f32(const float* x, float* y, int64_t count) { map<exp_ps>(x, y, count); }
KILN_AVX2 void erf_f32(const float* x, float* y, int64_t count) { map<erf_ps>(x, y, count); }
KILN_AVX2 void tanh_f32(const float* x, float* y, int64_t count) { map<tanh_ps>(x, y, count); }

// ---- GELU --------------------------------------------------------------------------------------------

KILN_AVX2 inline __m256 gelu_erf_ps(__m256 v) {
  __m256 half_v = _mm256_mul_ps(v, _mm256_set1_ps(0.5f));
  return _mm256_fmadd_ps(half_v, erf_ps(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f))), half_v);
}

KILN_AVX2 inline __m256 gelu_tanh_ps(__m256 v) {
  // u = sqrt(2/pi) (v + 0.044715 v^3); 0.5 v (1 + tanh u) = v sigmoid(2u), taken with e = exp(-2|u|) <= 1
  // so that nothing overflows: v / (1 + e) for u >= 0, v e / (1 + e) for u < 0.
  __m256 v2 = _mm256_mul_ps(v, v);
  __m256 u =
      _mm256_mul_ps(v, _mm256_fmadd_ps(v2, _mm256_set1_ps(0.0356774081363001f), _mm256_set1_ps(0.7978845608028654f)));
  __m256 e = exp_ps(_mm256_mul_ps(abs_ps(u), _mm256_set1_ps(-2.0f)));
  __m256 num = _mm256_blendv_ps(v, _mm256_mul_ps(v, e), _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_LT_OQ));
  return _mm256_div_ps(num, _mm256_add_ps(e, _mm256_set1_ps(1.0f)));
}

// y = gelu(x + bias) over `count` elements; bias may be null.
template <__m256 (*F)(__m256)>
KILN_AVX2 void gelu_span(const float* x, const float* bias, float* y, int64_t count) {
  int64_t i = 0;
  if (bias) {
    for (; i + kLanes <= count; i += kLanes)
      _mm256_storeu_ps(y + i, F(_mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(bias + i))));
  } else {
    for (; i + kLanes <= count; i += kLanes) _mm256_storeu_ps(y + i, F(_mm256_loadu_ps(x + i)));
  }
  if (i < count) {
    __m256i m = first_lanes(count - i);
    __m256 v = load(x + i, m);
    if (bias) v = _mm256_add_ps(v, load(bias + i, m));
    store(y + i, m, F(v));
  }
}

template <__m256 (*F)(__m256)>
KILN_AVX2 void gelu_range(const float* x, const float* bias, int64_t n, float* y, int64_t begin, int64_t end) {
  if (!bias) return gelu_span<F>(x + begin, nullptr, y + begin, end - begin);
  for (int64_t i = begin; i < end;) {
    int64_t col = i % n;
    int64_t len = std::min(n - col, end - i);
    gelu_span<F>(x + i, bias + col, y + i, len);
    i += len;
  }
}

KILN_AVX2 void gelu(GeluKind kind, const float* x, const float* bias, int64_t n, float* y, int64_t begin, int64_t end) {
  if (kind == GeluKind::kErf)
    gelu_range<gelu_erf_ps>(x, bias, n, y, begin, end);
  else
    gelu_range<gelu_tanh_ps>(x, bias, n, y, begin, end);
}

// ---- Add, Mul ----------------------------------------------------------------------------------------

template <BinaryOp kOp>
KILN_AVX2 inline __m256 apply(__m256 a, __m256 b) {
  if constexpr (kOp == BinaryOp::kAdd)
    return _mm256_add_ps(a, b);
  else
    return _mm256_mul_ps(a, b);
}

template <BinaryOp kOp>
KILN_AVX2 void binary_span(const float* a, const float* b, float* y, int64_t count) {
  int64_t i = 0;
  for (; i + 4 * kLanes <= count; i += 4 * kLanes) {
    __m256 y0 = apply<kOp>(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    __m256 y1 = apply<kOp>(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    __m256 y2 = apply<kOp>(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
    __m256 y3 = apply<kOp>(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
    _mm256_storeu_ps(y + i, y0);
    _mm256_storeu_ps(y + i + 8, y1);
    _mm256_storeu_ps(y + i + 16, y2);
    _mm256_storeu_ps(y + i + 24, y3);
  }
  for (; i + kLanes <= count; i += kLanes)
    _mm256_storeu_ps(y + i, apply<kOp>(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  if (i < count) {
    __m256i m = first_lanes(count - i);
    store(y + i, m, apply<kOp>(load(a + i, m), load(b + i, m)));
  }
}

template <BinaryOp kOp>
KILN_AVX2 void binary_scalar(const float* a, float b, float* y, int64_t count) {
  __m256 vb = _mm256_set1_ps(b);
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) _mm256_storeu_ps(y + i, apply<kOp>(_mm256_loadu_ps(a + i), vb));
  if (i < count) {
    __m256i m = first_lanes(count - i);
    store(y + i, m, apply<kOp>(load(a + i, m), vb));
  }
}

template <BinaryOp kOp>
KILN_AVX2 void binary_range(const float* a, const float* b, int64_t b_len, float* y, int64_t begin, int64_t end) {
  if (b_len == 1) return binary_scalar<kOp>(a + begin, b[0], y + begin, end - begin);
  for (int64_t i = begin; i < end;) {
    int64_t col = i % b_len;
    int64_t len = std::min(b_len - col, end - i);
    binary_span<kOp>(a + i, b + col, y + i, len);
    i += len;
  }
}

KILN_AVX2 void binary(BinaryOp op, const float* a, const float* b, int64_t b_len, float* y, int64_t begin,
                      int64_t end) {
  if (op == BinaryOp::kAdd)
    binary_range<BinaryOp::kAdd>(a, b, b_len, y, begin, end);
  else
    binary_range<BinaryOp::kMul>(a, b, b_len, y, begin, end);
}

// ---- LayerNorm ---------------------------------------------------------------------------------------

// Sum of (s - pivot) over n floats.
KILN_AVX2 inline float centred_sum(const float* s, int64_t n, __m256 pivot) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    acc0 = _mm256_add_ps(acc0, _mm256_sub_ps(_mm256_loadu_ps(s + i), pivot));
    acc1 = _mm256_add_ps(acc1, _mm256_sub_ps(_mm256_loadu_ps(s + i + 8), pivot));
    acc2 = _mm256_add_ps(acc2, _mm256_sub_ps(_mm256_loadu_ps(s + i + 16), pivot));
    acc3 = _mm256_add_ps(acc3, _mm256_sub_ps(_mm256_loadu_ps(s + i + 24), pivot));
  }
  for (; i + kLanes <= n; i += kLanes) acc0 = _mm256_add_ps(acc0, _mm256_sub_ps(_mm256_loadu_ps(s + i), pivot));
  if (i < n) {
    __m256i m = first_lanes(n - i);
    acc1 = _mm256_add_ps(acc1, keep(m, _mm256_sub_ps(load(s + i, m), pivot)));
  }
  return reduce_add(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

// s = x + skip (+ bias) at i, stored to dst.
KILN_AVX2 inline __m256 skip_sum_at(const float* x, const float* skip, const float* bias, float* dst, int64_t i) {
  __m256 v = _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(skip + i));
  if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + i));
  _mm256_storeu_ps(dst + i, v);
  return v;
}

// s = x + skip (+ bias) written to dst; returns the sum of (s - pivot).
KILN_AVX2 inline float form_skip_sum(const float* x, const float* skip, const float* bias, float* dst, int64_t n,
                                     __m256 pivot) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    acc0 = _mm256_add_ps(acc0, _mm256_sub_ps(skip_sum_at(x, skip, bias, dst, i), pivot));
    acc1 = _mm256_add_ps(acc1, _mm256_sub_ps(skip_sum_at(x, skip, bias, dst, i + kLanes), pivot));
  }
  if (i + kLanes <= n) {
    acc0 = _mm256_add_ps(acc0, _mm256_sub_ps(skip_sum_at(x, skip, bias, dst, i), pivot));
    i += kLanes;
  }
  if (i < n) {
    __m256i m = first_lanes(n - i);
    __m256 v = _mm256_add_ps(load(x + i, m), load(skip + i, m));
    if (bias) v = _mm256_add_ps(v, load(bias + i, m));
    store(dst + i, m, v);
    acc1 = _mm256_add_ps(acc1, keep(m, _mm256_sub_ps(v, pivot)));
  }
  return reduce_add(_mm256_add_ps(acc0, acc1));
}

// Sum of d^2, d = (s - pivot) - mean_shift.
KILN_AVX2 inline float centred_squares(const float* s, int64_t n, __m256 pivot, __m256 shift) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    __m256 d0 = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(s + i), pivot), shift);
    __m256 d1 = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(s + i + 8), pivot), shift);
    __m256 d2 = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(s + i + 16), pivot), shift);
    __m256 d3 = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(s + i + 24), pivot), shift);
    acc0 = _mm256_fmadd_ps(d0, d0, acc0);
    acc1 = _mm256_fmadd_ps(d1, d1, acc1);
    acc2 = _mm256_fmadd_ps(d2, d2, acc2);
    acc3 = _mm256_fmadd_ps(d3, d3, acc3);
  }
  for (; i + kLanes <= n; i += kLanes) {
    __m256 d = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(s + i), pivot), shift);
    acc0 = _mm256_fmadd_ps(d, d, acc0);
  }
  if (i < n) {
    __m256i m = first_lanes(n - i);
    __m256 d = keep(m, _mm256_sub_ps(_mm256_sub_ps(load(s + i, m), pivot), shift));
    acc1 = _mm256_fmadd_ps(d, d, acc1);
  }
  return reduce_add(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

KILN_AVX2 void layer_norm_rows(const LayerNormArgs& a, int64_t begin, int64_t end) {
  const int64_t n = a.n;
  for (int64_t r = begin; r < end; ++r) {
    const float* x = a.x + r * a.x_stride;
    float* y = a.y + r * a.y_stride;
    // Statistics are taken about the row's first element: centred that way, rows with a large common
    // offset keep their precision in float32.
    const float* s = x;
    float pivot_value;
    float shifted_sum;
    if (a.skip) {
      const float* k = a.skip + (r % a.skip_rows) * a.skip_stride;
      float* dst = a.sum ? a.sum + r * a.sum_stride : y;  // y holds s until it is overwritten below
      pivot_value = x[0] + k[0];
      if (a.bias) pivot_value += a.bias[0];
      shifted_sum = form_skip_sum(x, k, a.bias, dst, n, _mm256_set1_ps(pivot_value));
      s = dst;
    } else {
      pivot_value = x[0];
      shifted_sum = centred_sum(x, n, _mm256_set1_ps(pivot_value));
    }
    const __m256 pivot = _mm256_set1_ps(pivot_value);
    float shift_value = shifted_sum / static_cast<float>(n);
    const __m256 shift = _mm256_set1_ps(shift_value);
    float var = centred_squares(s, n, pivot, shift) / static_cast<float>(n);
    float inv_value = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var) + a.epsilon));
    const __m256 inv = _mm256_set1_ps(inv_value);
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(s + i), pivot), shift), inv);
      __m256 g = _mm256_loadu_ps(a.gamma + i);
      _mm256_storeu_ps(y + i, a.beta ? _mm256_fmadd_ps(t, g, _mm256_loadu_ps(a.beta + i)) : _mm256_mul_ps(t, g));
    }
    if (i < n) {
      __m256i m = first_lanes(n - i);
      __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(load(s + i, m), pivot), shift), inv);
      __m256 g = load(a.gamma + i, m);
      store(y + i, m, a.beta ? _mm256_fmadd_ps(t, g, load(a.beta + i, m)) : _mm256_mul_ps(t, g));
    }
    if (a.mean) a.mean[r] = pivot_value + shift_value;
    if (a.inv_std) a.inv_std[r] = inv_value;
  }
}

// ---- softmax -----------------------------------------------------------------------------------------

// scale * x + mask, as the kernel forms it in both passes (bit-identical each time).
struct SoftmaxInput {
  const float* x;
  const float* mask;  // may be null
  __m256 scale;
  bool scaled;
  KILN_AVX2 __m256 load_at(int64_t i) const {
    __m256 v = _mm256_loadu_ps(x + i);
    if (mask) return _mm256_fmadd_ps(v, scale, _mm256_loadu_ps(mask + i));
    return scaled ? _mm256_mul_ps(v, scale) : v;
  }
  KILN_AVX2 __m256 load_at(int64_t i, __m256i m) const {
    __m256 v = load(x + i, m);
    if (mask) return _mm256_fmadd_ps(v, scale, load(mask + i, m));
    return scaled ? _mm256_mul_ps(v, scale) : v;
  }
};

KILN_AVX2 void softmax_rows(const SoftmaxArgs& a, int64_t begin, int64_t end) {
  const int64_t n = a.n;
  const int64_t full = n - n % kLanes;
  const bool has_tail = full < n;
  const __m256i tail = first_lanes(n - full);
  const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
  for (int64_t r = begin; r < end; ++r) {
    SoftmaxInput in{a.x + r * a.x_stride, a.mask ? a.mask + (r / a.mask_group) * a.mask_stride : nullptr,
                    _mm256_set1_ps(a.scale), a.scale != 1.0f};
    float* y = a.y + r * a.y_stride;
    __m256 mx0 = neg_inf, mx1 = neg_inf;
    int64_t i = 0;
    for (; i + 2 * kLanes <= full; i += 2 * kLanes) {
      mx0 = _mm256_max_ps(mx0, in.load_at(i));
      mx1 = _mm256_max_ps(mx1, in.load_at(i + kLanes));
    }
    if (i < full) mx0 = _mm256_max_ps(mx0, in.load_at(i));
    if (has_tail)
      mx1 = _mm256_max_ps(mx1, _mm256_blendv_ps(neg_inf, in.load_at(full, tail), _mm256_castsi256_ps(tail)));
    const __m256 mx = _mm256_set1_ps(reduce_max(_mm256_max_ps(mx0, mx1)));
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    for (i = 0; i + 2 * kLanes <= full; i += 2 * kLanes) {
      __m256 e0 = exp_ps(_mm256_sub_ps(in.load_at(i), mx));
      __m256 e1 = exp_ps(_mm256_sub_ps(in.load_at(i + kLanes), mx));
      _mm256_storeu_ps(y + i, e0);
      _mm256_storeu_ps(y + i + kLanes, e1);
      sum0 = _mm256_add_ps(sum0, e0);
      sum1 = _mm256_add_ps(sum1, e1);
    }
    if (i < full) {
      __m256 e = exp_ps(_mm256_sub_ps(in.load_at(i), mx));
      _mm256_storeu_ps(y + i, e);
      sum0 = _mm256_add_ps(sum0, e);
    }
    if (has_tail) {
      __m256 e = exp_ps(_mm256_sub_ps(in.load_at(full, tail), mx));
      store(y + full, tail, e);
      sum1 = _mm256_add_ps(sum1, keep(tail, e));
    }
    const __m256 inv = _mm256_set1_ps(1.0f / reduce_add(_mm256_add_ps(sum0, sum1)));
    for (i = 0; i < full; i += kLanes) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
    if (has_tail) store(y + full, tail, _mm256_mul_ps(load(y + full, tail), inv));
  }
}

}  // namespace

const VectorKernelTable& avx2_vector_kernels() {
  static constexpr VectorKernelTable kTable{Isa::kAvx2, layer_norm_rows, softmax_rows, gelu,
                                            binary,     exp_f32,         erf_f32,      tanh_f32};
  return kTable;
}

}  // namespace kiln::kernels::cpu

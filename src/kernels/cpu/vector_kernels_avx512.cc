// The AVX-512 (F, BW, DQ, VL) build of vector_kernels.h: 16 floats a vector, row tails with masked loads
// and stores. Every function carries the target attribute rather than the file a #pragma, so that no
// inline function from a header is compiled here for AVX-512 and then picked by the linker for a caller
// on a machine without it; vector_kernels_for() hands this table out only after the CPU check.
//
// The math (exp, erf, tanh) is vectorized here:
//   exp(x) = 2^k * e^r, k = round(x / ln 2), r = x - k ln 2 (two-constant Cody-Waite with FMA), e^r by
//   Cephes' degree-6 polynomial; 2^k applied as two factors so that results down to the smallest
//   denormal round once. About 1 ulp; +inf above 88.72, 0 below -103.97, NaN in, NaN out.
//   erf(x) = sign(x) P_i(4|x| - i) on 16 pieces of [0, 4), P_i of degree 6, picked per lane by a permute;
//   +-1 beyond (erf rounds to +-1 from 3.92). Within 7e-8 absolute, relative near 0.
//   tanh(x) = Cephes' odd polynomial for |x| < 0.625, else sign(x) * (1 - 2 / (exp(2|x|) + 1)).
//   FastGelu uses 0.5 v (1 + tanh(u)) = v sigmoid(2u): one exp and one reciprocal.

// GCC 12 warns of an uninitialized variable inside its own AVX-512 headers when their intrinsics are
// inlined into a target-attributed function (their _mm512_undefined_ps idiom).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/vector_kernels.h"

#define KILN_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))

namespace kiln::kernels::cpu {
namespace {

constexpr int64_t kLanes = 16;

// The first `count` lanes (count < 16).
KILN_AVX512 inline __mmask16 first_lanes(int64_t count) { return static_cast<__mmask16>((1u << count) - 1u); }

// Horizontal sum and maximum. (GCC 12's _mm512_reduce_*_ps trip -Wmaybe-uninitialized inside the header.)
KILN_AVX512 inline __m128 fold_to_128(__m512 v, bool use_max) {
  __m512 halves = _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2));
  v = use_max ? _mm512_max_ps(v, halves) : _mm512_add_ps(v, halves);
  __m512 quarters = _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1));
  v = use_max ? _mm512_max_ps(v, quarters) : _mm512_add_ps(v, quarters);
  return _mm512_castps512_ps128(v);
}

KILN_AVX512 inline float reduce_add(__m512 v) {
  __m128 x = fold_to_128(v, false);
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

KILN_AVX512 inline float reduce_max(__m512 v) {
  __m128 x = fold_to_128(v, true);
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// ---- math --------------------------------------------------------------------------------------------

// e^r for r = x - k ln 2, k = round(x / ln 2), returned with k.
KILN_AVX512 inline __m512 exp_reduced(__m512 x, __m512& k) {
  k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693147182464599609375f), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-1.904654291e-9f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  return _mm512_add_ps(p, _mm512_set1_ps(1.0f));
}

// 2^k for integral k in [-126, 127].
KILN_AVX512 inline __m512 pow2(__m512i k) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k, _mm512_set1_epi32(127)), 23));
}

KILN_AVX512 inline __m512 exp_ps(__m512 x) {
  // max/min return their second operand when either is NaN: written this way round, a NaN passes.
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
  __m512 k;
  __m512 p = exp_reduced(x, k);
  // k in [-150, 128]: 2^k = 2^k1 * 2^k2 with both halves normal floats, so that denormal results round once.
  __m512i ki = _mm512_cvtps_epi32(k);
  __m512i k1 = _mm512_srai_epi32(ki, 1);
  return _mm512_mul_ps(_mm512_mul_ps(p, pow2(k1)), pow2(_mm512_sub_epi32(ki, k1)));
}

// 1 / d to about 1 ulp: the 14-bit estimate and one Newton step (a division is 3-4x slower on Intel's
// AVX-512 cores). For d in [1, 2].
KILN_AVX512 inline __m512 reciprocal_ps(__m512 d) {
  __m512 r = _mm512_rcp14_ps(d);
  return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
}

// erf on [0, 4) in 16 pieces of width 1/4, a degree-6 polynomial each in t = 4|x| - i; Chebyshev fits
// (piece 0 is t * Q(t), exact at 0 and relative near it). The coefficients of one power for all 16
// pieces fill one register, so a permute picks every lane's own.
// kErf16: erf(0.25 (i + t)) = sum_k c[k][i] t^k, t in [0, 1), i = interval
alignas(64) constexpr float kErf16[7][16] = {
    {0.000000000e+00f, 2.763263901e-01f, 5.204998779e-01f, 7.111556338e-01f, 8.427007930e-01f, 9.229001283e-01f,
     9.661051464e-01f, 9.866716712e-01f, 9.953222650e-01f, 9.985372834e-01f, 9.995930480e-01f, 9.998993781e-01f,
     9.999779095e-01f, 9.999956972e-01f, 9.999992569e-01f, 9.999998863e-01f},
    {2.820947925e-01f, 2.650035374e-01f, 2.196956353e-01f, 1.607327537e-01f, 1.037768668e-01f, 5.913028120e-02f,
     2.973257672e-02f, 1.319375270e-02f, 5.166747841e-03f, 1.785579732e-03f, 5.445705688e-04f, 1.465689139e-04f,
     3.481305726e-05f, 7.297175931e-06f, 1.349831477e-06f, 2.203515197e-07f},
    {-5.381642248e-08f, -1.656280280e-02f, -2.746180600e-02f, -3.013717544e-02f, -2.594409674e-02f, -1.847822143e-02f,
     -1.114978512e-02f, -5.772324876e-03f, -2.583397427e-03f, -1.004388337e-03f, -3.403491031e-04f, -1.007600157e-04f,
     -2.610663774e-05f, -5.927724892e-06f, -1.180717631e-06f, -2.064801723e-07f},
    {-5.876345269e-03f, -4.830281207e-03f, -2.289379986e-03f, 4.172627072e-04f, 2.161276448e-03f, 2.617790754e-03f,
     2.168421273e-03f, 1.409068122e-03f, 7.536320375e-04f, 3.394457588e-04f, 1.304234528e-04f, 4.309252264e-05f,
     1.230962533e-05f, 3.051640014e-06f, 6.583832031e-07f, 1.238795837e-07f},
    {-2.700609396e-06f, 4.944540773e-04f, 7.176088382e-04f, 5.923769256e-04f, 2.724248432e-04f, -2.414245163e-05f,
     -1.754080740e-04f, -1.889411067e-04f, -1.349875075e-04f, -7.454981824e-05f, -3.354856379e-05f, -1.261569694e-05f,
     -4.021240827e-06f, -1.096308925e-06f, -2.572080821e-07f, -5.215718398e-08f},
    {1.154508332e-04f, 8.073852972e-05f, 3.746881829e-06f, -5.751542474e-05f, -7.088924673e-05f, -4.607188569e-05f,
     -1.279530674e-05f, 8.027290967e-06f, 1.345894095e-05f, 1.043353233e-05f, 5.782033024e-06f, 2.524932829e-06f,
     9.040802863e-07f, 2.710085194e-07f, 6.886692957e-08f, 1.495780611e-08f},
    {-4.752781576e-06f, -1.215823688e-05f, -1.004941422e-05f, -2.543405377e-06f, 3.753059759e-06f, 5.382054616e-06f,
     3.515338734e-06f, 1.011741792e-06f, -4.354620217e-07f, -7.562999967e-07f, -5.483025130e-07f, -2.792394546e-07f,
     -1.111707639e-07f, -3.611109207e-08f, -9.785256789e-09f, -2.241676587e-09f},
};

KILN_AVX512 inline __m512 erf_ps(__m512 x) {
  __m512 ax = _mm512_abs_ps(x);
  __m512 s = _mm512_mul_ps(ax, _mm512_set1_ps(4.0f));
  // min returns its second operand when either is NaN: a NaN passes (and then picks piece 0).
  __m512 piece =
      _mm512_min_ps(_mm512_set1_ps(15.0f), _mm512_roundscale_ps(s, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
  __m512 t = _mm512_sub_ps(s, piece);
  __m512i i = _mm512_cvttps_epi32(piece);
  __m512 p = _mm512_permutexvar_ps(i, _mm512_load_ps(kErf16[6]));
  p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(i, _mm512_load_ps(kErf16[5])));
  p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(i, _mm512_load_ps(kErf16[4])));
  p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(i, _mm512_load_ps(kErf16[3])));
  p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(i, _mm512_load_ps(kErf16[2])));
  p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(i, _mm512_load_ps(kErf16[1])));
  p = _mm512_fmadd_ps(p, t, _mm512_permutexvar_ps(i, _mm512_load_ps(kErf16[0])));
  // erf rounds to 1 from 3.92 on.
  p = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax, _mm512_set1_ps(4.0f), _CMP_GE_OQ), p, _mm512_set1_ps(1.0f));
  return _mm512_or_ps(p, _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));
}

KILN_AVX512 inline __m512 tanh_ps(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 ax = _mm512_abs_ps(x);
  __m512 s = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(2.06390887954e-2f));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-5.37397155531e-2f));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.33314422036e-1f));
  p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-3.33332819422e-1f));
  __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, s), x, x);
  __m512 e = exp_ps(_mm512_add_ps(ax, ax));
  __m512 large = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
  __mmask16 is_small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
  // tanh is odd: the sign of x, -0 included.
  return _mm512_or_ps(_mm512_mask_blend_ps(is_small, large, small), _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));
}

template <__m512 (*F)(__m512)>
KILN_AVX512 void map(const float* x, float* y, int64_t count) {
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) _mm512_storeu_ps(y + i, F(_mm512_loadu_ps(x + i)));
  if (i < count) {
    __mmask16 m = first_lanes(count - i);
    _mm512_mask_storeu_ps(y + i, m, F(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

KILN_AVX512 void exp_f32(const float* x, float* y, int64_t count) { map<exp_ps>(x, y, count); }
KILN_AVX512 void erf_f32(const float* x, float* y, int64_t count) { map<erf_ps>(x, y, count); }
KILN_AVX512 void tanh_f32(const float* x, float* y, int64_t count) { map<tanh_ps>(x, y, count); }

// ---- GELU --------------------------------------------------------------------------------------------

KILN_AVX512 inline __m512 gelu_erf_ps(__m512 v) {
  __m512 half_v = _mm512_mul_ps(v, _mm512_set1_ps(0.5f));
  return _mm512_fmadd_ps(half_v, erf_ps(_mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f))), half_v);
}

KILN_AVX512 inline __m512 gelu_tanh_ps(__m512 v) {
  // u = sqrt(2/pi) (v + 0.044715 v^3); 0.5 v (1 + tanh u) = v sigmoid(2u), taken with e = exp(-2|u|) <= 1
  // so that nothing overflows: v / (1 + e) for u >= 0, v e / (1 + e) for u < 0.
  __m512 v2 = _mm512_mul_ps(v, v);
  __m512 u =
      _mm512_mul_ps(v, _mm512_fmadd_ps(v2, _mm512_set1_ps(0.0356774081363001f), _mm512_set1_ps(0.7978845608028654f)));
  __m512 e = exp_ps(_mm512_mul_ps(_mm512_abs_ps(u), _mm512_set1_ps(-2.0f)));
  __mmask16 negative = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_LT_OQ);
  __m512 num = _mm512_mask_mul_ps(v, negative, v, e);
  return _mm512_mul_ps(num, reciprocal_ps(_mm512_add_ps(e, _mm512_set1_ps(1.0f))));
}

// y = gelu(x + bias) over `count` elements; bias may be null.
template <__m512 (*F)(__m512)>
KILN_AVX512 void gelu_span(const float* x, const float* bias, float* y, int64_t count) {
  int64_t i = 0;
  if (bias) {
    for (; i + kLanes <= count; i += kLanes)
      _mm512_storeu_ps(y + i, F(_mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(bias + i))));
  } else {
    for (; i + kLanes <= count; i += kLanes) _mm512_storeu_ps(y + i, F(_mm512_loadu_ps(x + i)));
  }
  if (i < count) {
    __mmask16 m = first_lanes(count - i);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + i));
    _mm512_mask_storeu_ps(y + i, m, F(v));
  }
}

template <__m512 (*F)(__m512)>
KILN_AVX512 void gelu_range(const float* x, const float* bias, int64_t n, float* y, int64_t begin, int64_t end) {
  if (!bias) return gelu_span<F>(x + begin, nullptr, y + begin, end - begin);
  for (int64_t i = begin; i < end;) {
    int64_t col = i % n;
    int64_t len = std::min(n - col, end - i);
    gelu_span<F>(x + i, bias + col, y + i, len);
    i += len;
  }
}

KILN_AVX512 void gelu(GeluKind kind, const float* x, const float* bias, int64_t n, float* y, int64_t begin,
                      int64_t end) {
  if (kind == GeluKind::kErf)
    gelu_range<gelu_erf_ps>(x, bias, n, y, begin, end);
  else
    gelu_range<gelu_tanh_ps>(x, bias, n, y, begin, end);
}

// ---- Add, Mul ----------------------------------------------------------------------------------------

template <BinaryOp kOp>
KILN_AVX512 inline __m512 apply(__m512 a, __m512 b) {
  if constexpr (kOp == BinaryOp::kAdd)
    return _mm512_add_ps(a, b);
  else
    return _mm512_mul_ps(a, b);
}

template <BinaryOp kOp>
KILN_AVX512 void binary_span(const float* a, const float* b, float* y, int64_t count) {
  int64_t i = 0;
  for (; i + 4 * kLanes <= count; i += 4 * kLanes) {
    __m512 y0 = apply<kOp>(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    __m512 y1 = apply<kOp>(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    __m512 y2 = apply<kOp>(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
    __m512 y3 = apply<kOp>(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
    _mm512_storeu_ps(y + i, y0);
    _mm512_storeu_ps(y + i + 16, y1);
    _mm512_storeu_ps(y + i + 32, y2);
    _mm512_storeu_ps(y + i + 48, y3);
  }
  for (; i + kLanes <= count; i += kLanes)
    _mm512_storeu_ps(y + i, apply<kOp>(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
  if (i < count) {
    __mmask16 m = first_lanes(count - i);
    _mm512_mask_storeu_ps(y + i, m, apply<kOp>(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)));
  }
}

template <BinaryOp kOp>
KILN_AVX512 void binary_scalar(const float* a, float b, float* y, int64_t count) {
  __m512 vb = _mm512_set1_ps(b);
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) _mm512_storeu_ps(y + i, apply<kOp>(_mm512_loadu_ps(a + i), vb));
  if (i < count) {
    __mmask16 m = first_lanes(count - i);
    _mm512_mask_storeu_ps(y + i, m, apply<kOp>(_mm512_maskz_loadu_ps(m, a + i), vb));
  }
}

template <BinaryOp kOp>
KILN_AVX512 void binary_range(const float* a, const float* b, int64_t b_len, float* y, int64_t begin, int64_t end) {
  if (b_len == 1) return binary_scalar<kOp>(a + begin, b[0], y + begin, end - begin);
  for (int64_t i = begin; i < end;) {
    int64_t col = i % b_len;
    int64_t len = std::min(b_len - col, end - i);
    binary_span<kOp>(a + i, b + col, y + i, len);
    i += len;
  }
}

KILN_AVX512 void binary(BinaryOp op, const float* a, const float* b, int64_t b_len, float* y, int64_t begin,
                        int64_t end) {
  if (op == BinaryOp::kAdd)
    binary_range<BinaryOp::kAdd>(a, b, b_len, y, begin, end);
  else
    binary_range<BinaryOp::kMul>(a, b, b_len, y, begin, end);
}

// ---- LayerNorm ---------------------------------------------------------------------------------------

// Sum of (s - pivot) over n floats.
KILN_AVX512 inline float centred_sum(const float* s, int64_t n, __m512 pivot) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    acc0 = _mm512_add_ps(acc0, _mm512_sub_ps(_mm512_loadu_ps(s + i), pivot));
    acc1 = _mm512_add_ps(acc1, _mm512_sub_ps(_mm512_loadu_ps(s + i + 16), pivot));
    acc2 = _mm512_add_ps(acc2, _mm512_sub_ps(_mm512_loadu_ps(s + i + 32), pivot));
    acc3 = _mm512_add_ps(acc3, _mm512_sub_ps(_mm512_loadu_ps(s + i + 48), pivot));
  }
  for (; i + kLanes <= n; i += kLanes) acc0 = _mm512_add_ps(acc0, _mm512_sub_ps(_mm512_loadu_ps(s + i), pivot));
  if (i < n) {
    __mmask16 m = first_lanes(n - i);
    acc1 = _mm512_add_ps(acc1, _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, s + i), pivot));
  }
  return reduce_add(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

// s = x + skip (+ bias) at i, stored to dst.
KILN_AVX512 inline __m512 skip_sum_at(const float* x, const float* skip, const float* bias, float* dst, int64_t i) {
  __m512 v = _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(skip + i));
  if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + i));
  _mm512_storeu_ps(dst + i, v);
  return v;
}

// s = x + skip (+ bias) written to dst; returns the sum of (s - pivot).
KILN_AVX512 inline float form_skip_sum(const float* x, const float* skip, const float* bias, float* dst, int64_t n,
                                       __m512 pivot) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    acc0 = _mm512_add_ps(acc0, _mm512_sub_ps(skip_sum_at(x, skip, bias, dst, i), pivot));
    acc1 = _mm512_add_ps(acc1, _mm512_sub_ps(skip_sum_at(x, skip, bias, dst, i + kLanes), pivot));
  }
  if (i + kLanes <= n) {
    acc0 = _mm512_add_ps(acc0, _mm512_sub_ps(skip_sum_at(x, skip, bias, dst, i), pivot));
    i += kLanes;
  }
  if (i < n) {
    __mmask16 m = first_lanes(n - i);
    __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, skip + i));
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + i));
    _mm512_mask_storeu_ps(dst + i, m, v);
    acc1 = _mm512_add_ps(acc1, _mm512_maskz_sub_ps(m, v, pivot));
  }
  return reduce_add(_mm512_add_ps(acc0, acc1));
}

// Sum of d^2, d = (s - pivot) - mean_shift.
KILN_AVX512 inline float centred_squares(const float* s, int64_t n, __m512 pivot, __m512 shift) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    __m512 d0 = _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(s + i), pivot), shift);
    __m512 d1 = _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(s + i + 16), pivot), shift);
    __m512 d2 = _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(s + i + 32), pivot), shift);
    __m512 d3 = _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(s + i + 48), pivot), shift);
    acc0 = _mm512_fmadd_ps(d0, d0, acc0);
    acc1 = _mm512_fmadd_ps(d1, d1, acc1);
    acc2 = _mm512_fmadd_ps(d2, d2, acc2);
    acc3 = _mm512_fmadd_ps(d3, d3, acc3);
  }
  for (; i + kLanes <= n; i += kLanes) {
    __m512 d = _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(s + i), pivot), shift);
    acc0 = _mm512_fmadd_ps(d, d, acc0);
  }
  if (i < n) {
    __mmask16 m = first_lanes(n - i);
    __m512 d = _mm512_maskz_sub_ps(m, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + i), pivot), shift);
    acc1 = _mm512_fmadd_ps(d, d, acc1);
  }
  return reduce_add(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

KILN_AVX512 void layer_norm_rows(const LayerNormArgs& a, int64_t begin, int64_t end) {
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
      shifted_sum = form_skip_sum(x, k, a.bias, dst, n, _mm512_set1_ps(pivot_value));
      s = dst;
    } else {
      pivot_value = x[0];
      shifted_sum = centred_sum(x, n, _mm512_set1_ps(pivot_value));
    }
    const __m512 pivot = _mm512_set1_ps(pivot_value);
    float shift_value = shifted_sum / static_cast<float>(n);
    const __m512 shift = _mm512_set1_ps(shift_value);
    float var = centred_squares(s, n, pivot, shift) / static_cast<float>(n);
    float inv_value = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var) + a.epsilon));
    const __m512 inv = _mm512_set1_ps(inv_value);
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(s + i), pivot), shift), inv);
      __m512 g = _mm512_loadu_ps(a.gamma + i);
      _mm512_storeu_ps(y + i, a.beta ? _mm512_fmadd_ps(t, g, _mm512_loadu_ps(a.beta + i)) : _mm512_mul_ps(t, g));
    }
    if (i < n) {
      __mmask16 m = first_lanes(n - i);
      __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + i), pivot), shift), inv);
      __m512 g = _mm512_maskz_loadu_ps(m, a.gamma + i);
      _mm512_mask_storeu_ps(y + i, m,
                            a.beta ? _mm512_fmadd_ps(t, g, _mm512_maskz_loadu_ps(m, a.beta + i)) : _mm512_mul_ps(t, g));
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
  __m512 scale;
  bool scaled;
  KILN_AVX512 __m512 load(int64_t i) const {
    __m512 v = _mm512_loadu_ps(x + i);
    if (mask) return _mm512_fmadd_ps(v, scale, _mm512_loadu_ps(mask + i));
    return scaled ? _mm512_mul_ps(v, scale) : v;
  }
  KILN_AVX512 __m512 load(int64_t i, __mmask16 m) const {
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    if (mask) return _mm512_fmadd_ps(v, scale, _mm512_maskz_loadu_ps(m, mask + i));
    return scaled ? _mm512_mul_ps(v, scale) : v;
  }
};

KILN_AVX512 void softmax_rows(const SoftmaxArgs& a, int64_t begin, int64_t end) {
  const int64_t n = a.n;
  const int64_t full = n - n % kLanes;
  const __mmask16 tail = first_lanes(n - full);
  for (int64_t r = begin; r < end; ++r) {
    SoftmaxInput in{a.x + r * a.x_stride, a.mask ? a.mask + (r / a.mask_group) * a.mask_stride : nullptr,
                    _mm512_set1_ps(a.scale), a.scale != 1.0f};
    float* y = a.y + r * a.y_stride;
    __m512 mx0 = _mm512_set1_ps(-INFINITY), mx1 = mx0;
    int64_t i = 0;
    for (; i + 2 * kLanes <= full; i += 2 * kLanes) {
      mx0 = _mm512_max_ps(mx0, in.load(i));
      mx1 = _mm512_max_ps(mx1, in.load(i + kLanes));
    }
    if (i < full) mx0 = _mm512_max_ps(mx0, in.load(i));
    if (tail) mx1 = _mm512_mask_max_ps(mx1, tail, mx1, in.load(full, tail));
    const __m512 mx = _mm512_set1_ps(reduce_max(_mm512_max_ps(mx0, mx1)));
    __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
    for (i = 0; i + 2 * kLanes <= full; i += 2 * kLanes) {
      __m512 e0 = exp_ps(_mm512_sub_ps(in.load(i), mx));
      __m512 e1 = exp_ps(_mm512_sub_ps(in.load(i + kLanes), mx));
      _mm512_storeu_ps(y + i, e0);
      _mm512_storeu_ps(y + i + kLanes, e1);
      sum0 = _mm512_add_ps(sum0, e0);
      sum1 = _mm512_add_ps(sum1, e1);
    }
    if (i < full) {
      __m512 e = exp_ps(_mm512_sub_ps(in.load(i), mx));
      _mm512_storeu_ps(y + i, e);
      sum0 = _mm512_add_ps(sum0, e);
    }
    if (tail) {
      __m512 e = exp_ps(_mm512_sub_ps(in.load(full, tail), mx));
      _mm512_mask_storeu_ps(y + full, tail, e);
      sum1 = _mm512_mask_add_ps(sum1, tail, sum1, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / reduce_add(_mm512_add_ps(sum0, sum1)));
    for (i = 0; i < full; i += kLanes) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
    if (tail) _mm512_mask_storeu_ps(y + full, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + full), inv));
  }
}

}  // namespace

const VectorKernelTable& avx512_vector_kernels() {
  static constexpr VectorKernelTable kTable{Isa::kAvx512, layer_norm_rows, softmax_rows, gelu,
                                            binary,       exp_f32,         erf_f32,      tanh_f32};
  return kTable;
}

}  // namespace kiln::kernels::cpu

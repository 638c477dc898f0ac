// The SIMD algorithms of vector_kernels.h, written once over a vector type V of V::kLanes floats
// (avx2::F32x8 in simd_avx2.h, avx512::F32x16 in simd_avx512.h, which state what V provides) and
// instantiated per ISA by vector_kernels_avx2.cc and vector_kernels_avx512.cc.
//
// Include it only from such an ISA file, after the ISA's vector type header and after defining
// KILN_SIMD_TARGET as that ISA's target attribute: every function here carries it, so that GCC inlines the
// vector type's intrinsics into them, and all of it has internal linkage, so that no instantiation compiled
// for one ISA is shared with a caller built for another.
//
// The math:
//   exp(x) = 2^k * e^r, k = round(x / ln 2), r = x - k ln 2 (two-constant Cody-Waite with FMA), e^r by
//   Cephes' degree-6 polynomial; 2^k applied so that results down to the smallest denormal round once
//   (V::pow2). About 1 ulp; +inf above 88.72, 0 below -103.97, NaN in, NaN out.
//   erf(x) = sign(x) P_i(s - i), s = |x| * pieces / 4, on as many pieces of [0, 4) as V has lanes, P_i a
//   Chebyshev fit picked per lane by a table lookup (the coefficients of one power for all pieces fill one
//   register); +-1 beyond (erf rounds to +-1 from 3.92). 16 pieces of degree 6 or 8 of degree 7 (the width
//   of a register sets the pieces; the degree is what the wider piece needs): within 7e-8 absolute,
//   relative near 0.
//   tanh(x) = Cephes' odd polynomial for |x| < 0.625, else sign(x) * (1 - 2 / (exp(2|x|) + 1)).
//   FastGelu uses 0.5 v (1 + tanh(u)) = v sigmoid(2u): one exp and one division.
//   sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) below, e = exp(-|x|): nothing overflows.
//   log(x) = e ln 2 + log(m), x = m 2^e with m in [sqrt(1/2), sqrt(2)) (denormals scaled up first), log(m)
//   by Cephes' polynomial in f = m - 1 (ln 2 in two parts): about 1 ulp. log1p(u) = log(w) u / (w - 1),
//   w = 1 + u rounded (Goldberg's correction). expm1(x) is exp's polynomial where |x| <= ln 2 / 2 (relative
//   near 0), exp(x) - 1 beyond.
#pragma once

#ifndef KILN_SIMD_TARGET
#error "vector_kernels_simd.h: define KILN_SIMD_TARGET and include the ISA's simd_*.h first"
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cpu/vector_kernels.h"

namespace kiln::kernels::cpu {
namespace {
namespace simd {

// ---- math --------------------------------------------------------------------------------------------

// e^r - 1 for |r| <= ln 2 / 2, to within an ulp relative to it: Cephes' polynomial, r + r^2 P(r).
template <class V>
KILN_SIMD_TARGET inline V expm1_reduced(V r) {
  V p(1.9875691500e-4f);
  p = fma(p, r, V(1.3981999507e-3f));
  p = fma(p, r, V(8.3334519073e-3f));
  p = fma(p, r, V(4.1665795894e-2f));
  p = fma(p, r, V(1.6666665459e-1f));
  p = fma(p, r, V(5.0000001201e-1f));
  return fma(p, r * r, r);
}

template <class V>
KILN_SIMD_TARGET inline V exp_ps(V x) {
  // max/min return their second operand when either is NaN: written this way round, a NaN passes.
  x = max(V(-104.0f), x);
  x = min(V(89.0f), x);
  // k in [-150, 128], r = x - k ln 2 in [-ln 2 / 2, ln 2 / 2].
  V k = round_nearest(x * V(1.44269504088896341f));
  const typename V::Pow2 scale = V::pow2(k);
  V r = fnma(k, V(0.693147182464599609375f), x);
  r = fnma(k, V(-1.904654291e-9f), r);
  return scale.times(expm1_reduced(r) + V(1.0f));
}

// erf on [0, 4) in kPieces pieces: erf((i + t) * 4 / kPieces) = sum_d kC[d][i] t^d, t in [0, 1), i the
// piece. Piece 0 is t * Q(t), exact at 0 and relative near it.
template <int kPieces>
struct ErfPieces;

template <>
struct ErfPieces<16> {
  static constexpr int kDegree = 6;
  alignas(64) static constexpr float kC[kDegree + 1][16] = {
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
};

template <>
struct ErfPieces<8> {
  static constexpr int kDegree = 7;
  alignas(64) static constexpr float kC[kDegree + 1][8] = {
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
};

template <class V>
KILN_SIMD_TARGET inline V erf_ps(V x) {
  using Pieces = ErfPieces<V::kLanes>;
  V ax = abs(x);
  V s = ax * V(V::kLanes / 4.0f);
  // min returns its second operand when either is NaN: a NaN passes (and then reads piece 0).
  V piece = min(V(V::kLanes - 1.0f), floor(s));
  V t = s - piece;
  const typename V::Index i = V::index(piece);
  V p = V::lookup(Pieces::kC[Pieces::kDegree], i);
#pragma GCC unroll 8
  for (int d = Pieces::kDegree - 1; d >= 0; --d) p = fma(p, t, V::lookup(Pieces::kC[d], i));
  // erf rounds to 1 from 3.92 on.
  p = select(ax >= V(4.0f), V(1.0f), p);
  return with_sign_of(p, x);
}

template <class V>
KILN_SIMD_TARGET inline V tanh_ps(V x) {
  const V one(1.0f);
  V ax = abs(x);
  V s = x * x;
  V p(-5.70498872745e-3f);
  p = fma(p, s, V(2.06390887954e-2f));
  p = fma(p, s, V(-5.37397155531e-2f));
  p = fma(p, s, V(1.33314422036e-1f));
  p = fma(p, s, V(-3.33332819422e-1f));
  V small = fma(p * s, x, x);
  V e = exp_ps(ax + ax);
  V large = one - V(2.0f) / (e + one);
  // tanh is odd: the sign of x, -0 included.
  return with_sign_of(select(ax < V(0.625f), small, large), x);
}

// y = f(x) over count floats, the tail under a mask.
template <class V, V (*F)(V)>
KILN_SIMD_TARGET void map(const float* x, float* y, int64_t count) {
  int64_t i = 0;
  for (; i + V::kLanes <= count; i += V::kLanes) F(V::load(x + i)).store(y + i);
  if (i < count) {
    const typename V::Mask m = V::first(count - i);
    F(V::load(x + i, m)).store(y + i, m);
  }
}

template <class V>
KILN_SIMD_TARGET void exp_f32(const float* x, float* y, int64_t count) {
  map<V, exp_ps<V>>(x, y, count);
}
template <class V>
KILN_SIMD_TARGET void erf_f32(const float* x, float* y, int64_t count) {
  map<V, erf_ps<V>>(x, y, count);
}
template <class V>
KILN_SIMD_TARGET void tanh_f32(const float* x, float* y, int64_t count) {
  map<V, tanh_ps<V>>(x, y, count);
}

// ---- GELU --------------------------------------------------------------------------------------------

template <class V>
KILN_SIMD_TARGET inline V gelu_erf_ps(V v) {
  V half_v = v * V(0.5f);
  return fma(half_v, erf_ps(v * V(0.70710678118654752f)), half_v);
}

template <class V>
KILN_SIMD_TARGET inline V gelu_tanh_ps(V v) {
  // u = sqrt(2/pi) (v + 0.044715 v^3); 0.5 v (1 + tanh u) = v sigmoid(2u), taken with e = exp(-2|u|) <= 1
  // so that nothing overflows: v / (1 + e) for u >= 0, v e / (1 + e) for u < 0.
  V u = v * fma(v * v, V(0.0356774081363001f), V(0.7978845608028654f));
  V e = exp_ps(abs(u) * V(-2.0f));
  V num = select(u < V::zero(), v * e, v);
  return fast_divide(num, e + V(1.0f));
}

// y = gelu(x + bias) over `count` elements; bias may be null. Always inlined: with a short bias (n of a
// few vectors) a call per span costs as much as the span (GCC 12 keeps it out of line for AVX-512).
template <class V, V (*F)(V)>
[[gnu::always_inline]] KILN_SIMD_TARGET inline void gelu_span(const float* x, const float* bias, float* y,
                                                              int64_t count) {
  int64_t i = 0;
  if (bias) {
    for (; i + V::kLanes <= count; i += V::kLanes) F(V::load(x + i) + V::load(bias + i)).store(y + i);
  } else {
    for (; i + V::kLanes <= count; i += V::kLanes) F(V::load(x + i)).store(y + i);
  }
  if (i < count) {
    const typename V::Mask m = V::first(count - i);
    V v = V::load(x + i, m);
    if (bias) v = v + V::load(bias + i, m);
    F(v).store(y + i, m);
  }
}

template <class V, V (*F)(V)>
KILN_SIMD_TARGET void gelu_range(const float* x, const float* bias, int64_t n, float* y, int64_t begin, int64_t end) {
  if (!bias) return gelu_span<V, F>(x + begin, nullptr, y + begin, end - begin);
  for (int64_t i = begin; i < end;) {
    int64_t col = i % n;
    int64_t len = std::min(n - col, end - i);
    gelu_span<V, F>(x + i, bias + col, y + i, len);
    i += len;
  }
}

template <class V>
KILN_SIMD_TARGET void gelu(GeluKind kind, const float* x, const float* bias, int64_t n, float* y, int64_t begin,
                           int64_t end) {
  if (kind == GeluKind::kErf)
    gelu_range<V, gelu_erf_ps<V>>(x, bias, n, y, begin, end);
  else
    gelu_range<V, gelu_tanh_ps<V>>(x, bias, n, y, begin, end);
}

// ---- Add, Mul ----------------------------------------------------------------------------------------

template <BinaryOp kOp, class V>
KILN_SIMD_TARGET inline V apply(V a, V b) {
  if constexpr (kOp == BinaryOp::kAdd)
    return a + b;
  else
    return a * b;
}

// y = a op b over count elements of both.
template <class V, BinaryOp kOp>
KILN_SIMD_TARGET void binary_span(const float* a, const float* b, float* y, int64_t count) {
  constexpr int64_t kLanes = V::kLanes;
  int64_t i = 0;
  for (; i + 4 * kLanes <= count; i += 4 * kLanes) {
    V y0 = apply<kOp>(V::load(a + i), V::load(b + i));
    V y1 = apply<kOp>(V::load(a + i + kLanes), V::load(b + i + kLanes));
    V y2 = apply<kOp>(V::load(a + i + 2 * kLanes), V::load(b + i + 2 * kLanes));
    V y3 = apply<kOp>(V::load(a + i + 3 * kLanes), V::load(b + i + 3 * kLanes));
    y0.store(y + i);
    y1.store(y + i + kLanes);
    y2.store(y + i + 2 * kLanes);
    y3.store(y + i + 3 * kLanes);
  }
  for (; i + kLanes <= count; i += kLanes) apply<kOp>(V::load(a + i), V::load(b + i)).store(y + i);
  if (i < count) {
    const typename V::Mask m = V::first(count - i);
    apply<kOp>(V::load(a + i, m), V::load(b + i, m)).store(y + i, m);
  }
}

// y = a op b over count elements of a, b one value.
template <class V, BinaryOp kOp>
KILN_SIMD_TARGET void binary_scalar(const float* a, float b, float* y, int64_t count) {
  const V vb(b);
  int64_t i = 0;
  for (; i + V::kLanes <= count; i += V::kLanes) apply<kOp>(V::load(a + i), vb).store(y + i);
  if (i < count) {
    const typename V::Mask m = V::first(count - i);
    apply<kOp>(V::load(a + i, m), vb).store(y + i, m);
  }
}

// Whole rows [begin, end) of y = a op b, b one row of b_len <= 4 vectors (a channels-last squeeze-and-excitation
// gate: 32 to 144 channels), held in registers for every row.
template <class V, BinaryOp kOp, int kVectors>
KILN_SIMD_TARGET void binary_short_rows(const float* a, const float* b, int64_t b_len, float* y, int64_t begin,
                                        int64_t end) {
  constexpr int64_t kLanes = V::kLanes;
  const typename V::Mask tail = V::first(b_len - (kVectors - 1) * kLanes);
  V bv[kVectors];
  for (int j = 0; j + 1 < kVectors; ++j) bv[j] = V::load(b + j * kLanes);
  bv[kVectors - 1] = V::load(b + (kVectors - 1) * kLanes, tail);
  for (int64_t i = begin; i < end; i += b_len) {
    for (int j = 0; j + 1 < kVectors; ++j) apply<kOp>(V::load(a + i + j * kLanes), bv[j]).store(y + i + j * kLanes);
    const int64_t last = i + (kVectors - 1) * kLanes;
    apply<kOp>(V::load(a + last, tail), bv[kVectors - 1]).store(y + last, tail);
  }
}

template <class V, BinaryOp kOp>
KILN_SIMD_TARGET void binary_range(const float* a, const float* b, int64_t b_len, float* y, int64_t begin,
                                   int64_t end) {
  if (b_len == 1) return binary_scalar<V, kOp>(a + begin, b[0], y + begin, end - begin);
  // A partial first row, whole rows, a partial last row; one division in all (one per row cost as much as
  // the row's work on short rows).
  int64_t i = begin;
  const int64_t col = i % b_len;
  if (col != 0) {
    const int64_t len = std::min(b_len - col, end - i);
    binary_span<V, kOp>(a + i, b + col, y + i, len);
    i += len;
  }
  const int64_t whole_end = i + (end - i) / b_len * b_len;
  const int64_t vectors = (b_len + V::kLanes - 1) / V::kLanes;
  if (vectors <= 4 && whole_end > i) {
    switch (vectors) {
      case 1:
        binary_short_rows<V, kOp, 1>(a, b, b_len, y, i, whole_end);
        break;
      case 2:
        binary_short_rows<V, kOp, 2>(a, b, b_len, y, i, whole_end);
        break;
      case 3:
        binary_short_rows<V, kOp, 3>(a, b, b_len, y, i, whole_end);
        break;
      default:
        binary_short_rows<V, kOp, 4>(a, b, b_len, y, i, whole_end);
        break;
    }
    i = whole_end;
  }
  for (; i < end; i += b_len) binary_span<V, kOp>(a + i, b, y + i, std::min(b_len, end - i));
}

template <class V>
KILN_SIMD_TARGET void binary(BinaryOp op, const float* a, const float* b, int64_t b_len, float* y, int64_t begin,
                             int64_t end) {
  if (op == BinaryOp::kAdd)
    binary_range<V, BinaryOp::kAdd>(a, b, b_len, y, begin, end);
  else
    binary_range<V, BinaryOp::kMul>(a, b, b_len, y, begin, end);
}

// ---- column sums (a global pool over channels-last rows) ----------------------------------------------

// y[j] += sum over k in [k0, k1) of x[k * stride + j], for `width` (at most 4 vectors) columns from x and y.
template <class V>
KILN_SIMD_TARGET inline void column_sums_block(const float* x, int64_t k0, int64_t k1, int64_t stride, int64_t width,
                                               float* y) {
  constexpr int64_t kLanes = V::kLanes;
  const int64_t full = width / kLanes;  // whole vectors; the tail, if any, is one more masked one
  const typename V::Mask tail = V::first(width - full * kLanes);
  V part[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
  for (int64_t k = k0; k < k1; ++k) {
    const float* row = x + k * stride;
    for (int64_t v = 0; v < full; ++v) part[v] = part[v] + V::load(row + v * kLanes);
    if (full < 4 && full * kLanes < width) part[full] = part[full] + V::load(row + full * kLanes, tail);
  }
  for (int64_t v = 0; v < full; ++v) (V::load(y + v * kLanes) + part[v]).store(y + v * kLanes);
  if (full < 4 && full * kLanes < width) (V::load(y + full * kLanes, tail) + part[full]).store(y + full * kLanes, tail);
}

// One pass over the rows: each block of kColumnSumBlock rows summed for every column (4 vectors at a time)
// and added to y, so that a row's cache lines are read once (a pass per 4 vectors of columns re-read them).
template <class V>
KILN_SIMD_TARGET void column_sums(const float* x, int64_t rows, int64_t stride, int64_t n, float* y) {
  constexpr int64_t kBlock = 4 * V::kLanes;
  std::fill_n(y, n, 0.0f);
  for (int64_t k0 = 0; k0 < rows; k0 += kColumnSumBlock) {
    const int64_t k1 = std::min(rows, k0 + kColumnSumBlock);
    for (int64_t j = 0; j < n; j += kBlock) column_sums_block<V>(x + j, k0, k1, stride, std::min(kBlock, n - j), y + j);
  }
}

// ---- dot products of rows (a matrix times one vector) --------------------------------------------------

// y[i] = sum over j < k of w[i * k + j] * x[j], for i < rows: four rows at a time, each on its own
// accumulator, x loaded once for the four.
template <class V>
KILN_SIMD_TARGET void dot_rows(const float* w, int64_t k, const float* x, int64_t rows, float* y) {
  constexpr int64_t kLanes = V::kLanes;
  const int64_t full = k / kLanes * kLanes;
  const typename V::Mask tail = V::first(k - full);
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) {
    const float* r0 = w + i * k;
    const float *r1 = r0 + k, *r2 = r1 + k, *r3 = r2 + k;
    V a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
    for (int64_t j = 0; j < full; j += kLanes) {
      const V xv = V::load(x + j);
      a0 = fma(V::load(r0 + j), xv, a0);
      a1 = fma(V::load(r1 + j), xv, a1);
      a2 = fma(V::load(r2 + j), xv, a2);
      a3 = fma(V::load(r3 + j), xv, a3);
    }
    if (full < k) {
      const V xv = V::load(x + full, tail);
      a0 = fma(V::load(r0 + full, tail), xv, a0);
      a1 = fma(V::load(r1 + full, tail), xv, a1);
      a2 = fma(V::load(r2 + full, tail), xv, a2);
      a3 = fma(V::load(r3 + full, tail), xv, a3);
    }
    y[i] = reduce_add(a0);
    y[i + 1] = reduce_add(a1);
    y[i + 2] = reduce_add(a2);
    y[i + 3] = reduce_add(a3);
  }
  for (; i < rows; ++i) {
    const float* r = w + i * k;
    V a = V::zero();
    for (int64_t j = 0; j < full; j += kLanes) a = fma(V::load(r + j), V::load(x + j), a);
    if (full < k) a = fma(V::load(r + full, tail), V::load(x + full, tail), a);
    y[i] = reduce_add(a);
  }
}

// ---- LayerNorm ---------------------------------------------------------------------------------------

// Sum of (s - pivot) over n floats.
template <class V>
KILN_SIMD_TARGET inline float centred_sum(const float* s, int64_t n, V pivot) {
  constexpr int64_t kLanes = V::kLanes;
  V acc0 = V::zero(), acc1 = V::zero(), acc2 = V::zero(), acc3 = V::zero();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    acc0 = acc0 + (V::load(s + i) - pivot);
    acc1 = acc1 + (V::load(s + i + kLanes) - pivot);
    acc2 = acc2 + (V::load(s + i + 2 * kLanes) - pivot);
    acc3 = acc3 + (V::load(s + i + 3 * kLanes) - pivot);
  }
  for (; i + kLanes <= n; i += kLanes) acc0 = acc0 + (V::load(s + i) - pivot);
  if (i < n) {
    const typename V::Mask m = V::first(n - i);
    acc1 = acc1 + keep(m, V::load(s + i, m) - pivot);
  }
  return reduce_add((acc0 + acc1) + (acc2 + acc3));
}

// s = x + skip (+ bias) at i, stored to dst.
template <class V>
KILN_SIMD_TARGET inline V skip_sum_at(const float* x, const float* skip, const float* bias, float* dst, int64_t i) {
  V v = V::load(x + i) + V::load(skip + i);
  if (bias) v = v + V::load(bias + i);
  v.store(dst + i);
  return v;
}

// s = x + skip (+ bias) written to dst; returns the sum of (s - pivot).
template <class V>
KILN_SIMD_TARGET inline float form_skip_sum(const float* x, const float* skip, const float* bias, float* dst, int64_t n,
                                            V pivot) {
  constexpr int64_t kLanes = V::kLanes;
  V acc0 = V::zero(), acc1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    acc0 = acc0 + (skip_sum_at<V>(x, skip, bias, dst, i) - pivot);
    acc1 = acc1 + (skip_sum_at<V>(x, skip, bias, dst, i + kLanes) - pivot);
  }
  if (i + kLanes <= n) {
    acc0 = acc0 + (skip_sum_at<V>(x, skip, bias, dst, i) - pivot);
    i += kLanes;
  }
  if (i < n) {
    const typename V::Mask m = V::first(n - i);
    V v = V::load(x + i, m) + V::load(skip + i, m);
    if (bias) v = v + V::load(bias + i, m);
    v.store(dst + i, m);
    acc1 = acc1 + keep(m, v - pivot);
  }
  return reduce_add(acc0 + acc1);
}

// Sum of d^2, d = (s - pivot) - shift.
template <class V>
KILN_SIMD_TARGET inline float centred_squares(const float* s, int64_t n, V pivot, V shift) {
  constexpr int64_t kLanes = V::kLanes;
  V acc0 = V::zero(), acc1 = V::zero(), acc2 = V::zero(), acc3 = V::zero();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    V d0 = (V::load(s + i) - pivot) - shift;
    V d1 = (V::load(s + i + kLanes) - pivot) - shift;
    V d2 = (V::load(s + i + 2 * kLanes) - pivot) - shift;
    V d3 = (V::load(s + i + 3 * kLanes) - pivot) - shift;
    acc0 = fma(d0, d0, acc0);
    acc1 = fma(d1, d1, acc1);
    acc2 = fma(d2, d2, acc2);
    acc3 = fma(d3, d3, acc3);
  }
  for (; i + kLanes <= n; i += kLanes) {
    V d = (V::load(s + i) - pivot) - shift;
    acc0 = fma(d, d, acc0);
  }
  if (i < n) {
    const typename V::Mask m = V::first(n - i);
    V d = keep(m, (V::load(s + i, m) - pivot) - shift);
    acc1 = fma(d, d, acc1);
  }
  return reduce_add((acc0 + acc1) + (acc2 + acc3));
}

template <class V>
KILN_SIMD_TARGET void layer_norm_rows(const LayerNormArgs& a, int64_t begin, int64_t end) {
  constexpr int64_t kLanes = V::kLanes;
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
      shifted_sum = form_skip_sum(x, k, a.bias, dst, n, V(pivot_value));
      s = dst;
    } else {
      pivot_value = x[0];
      shifted_sum = centred_sum(x, n, V(pivot_value));
    }
    const V pivot(pivot_value);
    const float shift_value = shifted_sum / static_cast<float>(n);
    const V shift(shift_value);
    const float var = centred_squares(s, n, pivot, shift) / static_cast<float>(n);
    const float inv_value = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var) + a.epsilon));
    const V inv(inv_value);
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      V t = ((V::load(s + i) - pivot) - shift) * inv;
      V g = V::load(a.gamma + i);
      (a.beta ? fma(t, g, V::load(a.beta + i)) : t * g).store(y + i);
    }
    if (i < n) {
      const typename V::Mask m = V::first(n - i);
      V t = ((V::load(s + i, m) - pivot) - shift) * inv;
      V g = V::load(a.gamma + i, m);
      (a.beta ? fma(t, g, V::load(a.beta + i, m)) : t * g).store(y + i, m);
    }
    if (a.mean) a.mean[r] = pivot_value + shift_value;
    if (a.inv_std) a.inv_std[r] = inv_value;
  }
}

// ---- softmax -----------------------------------------------------------------------------------------

// scale * x + mask, as the kernel forms it in both passes (bit-identical each time).
template <class V>
struct SoftmaxInput {
  const float* x;
  const float* mask;  // may be null
  V scale;
  bool scaled;
  KILN_SIMD_TARGET V at(int64_t i) const {
    V v = V::load(x + i);
    if (mask) return fma(v, scale, V::load(mask + i));
    return scaled ? v * scale : v;
  }
  KILN_SIMD_TARGET V at(int64_t i, typename V::Mask m) const {
    V v = V::load(x + i, m);
    if (mask) return fma(v, scale, V::load(mask + i, m));
    return scaled ? v * scale : v;
  }
};

template <class V>
KILN_SIMD_TARGET void softmax_rows(const SoftmaxArgs& a, int64_t begin, int64_t end) {
  constexpr int64_t kLanes = V::kLanes;
  const int64_t n = a.n;
  const int64_t full = n - n % kLanes;
  const bool has_tail = full < n;
  const typename V::Mask tail = V::first(n - full);
  const V neg_inf(-INFINITY);
  for (int64_t r = begin; r < end; ++r) {
    const SoftmaxInput<V> in{a.x + r * a.x_stride, a.mask ? a.mask + (r / a.mask_group) * a.mask_stride : nullptr,
                             V(a.scale), a.scale != 1.0f};
    float* y = a.y + r * a.y_stride;
    V mx0 = neg_inf, mx1 = neg_inf;
    int64_t i = 0;
    for (; i + 2 * kLanes <= full; i += 2 * kLanes) {
      mx0 = max(mx0, in.at(i));
      mx1 = max(mx1, in.at(i + kLanes));
    }
    if (i < full) mx0 = max(mx0, in.at(i));
    if (has_tail) mx1 = select(tail, max(mx1, in.at(full, tail)), mx1);
    const V mx(reduce_max(max(mx0, mx1)));
    V sum0 = V::zero(), sum1 = V::zero();
    for (i = 0; i + 2 * kLanes <= full; i += 2 * kLanes) {
      V e0 = exp_ps(in.at(i) - mx);
      V e1 = exp_ps(in.at(i + kLanes) - mx);
      e0.store(y + i);
      e1.store(y + i + kLanes);
      sum0 = sum0 + e0;
      sum1 = sum1 + e1;
    }
    if (i < full) {
      V e = exp_ps(in.at(i) - mx);
      e.store(y + i);
      sum0 = sum0 + e;
    }
    if (has_tail) {
      V e = exp_ps(in.at(full, tail) - mx);
      e.store(y + full, tail);
      sum1 = select(tail, sum1 + e, sum1);
    }
    const V inv(1.0f / reduce_add(sum0 + sum1));
    for (i = 0; i < full; i += kLanes) (V::load(y + i) * inv).store(y + i);
    if (has_tail) (V::load(y + full, tail) * inv).store(y + full, tail);
  }
}

// ---- recurrent cells ---------------------------------------------------------------------------------

// 1 / (1 + exp(-x)) from e = exp(-|x|) <= 1, so that nothing overflows: 1 / (1 + e) for x >= 0,
// e / (1 + e) below.
template <class V>
KILN_SIMD_TARGET inline V sigmoid_ps(V x) {
  V e = exp_ps(V::zero() - abs(x));
  return fast_divide(select(x < V::zero(), e, V(1.0f)), e + V(1.0f));
}

template <class V>
KILN_SIMD_TARGET void sigmoid_f32(const float* x, float* y, int64_t count) {
  map<V, sigmoid_ps<V>>(x, y, count);
}

// The first n (<= kLanes) floats at p, the rest 0; and the store of as many.
template <class V>
KILN_SIMD_TARGET inline V load_first(const float* p, int64_t n) {
  return n >= V::kLanes ? V::load(p) : V::load(p, V::first(n));
}
template <class V>
KILN_SIMD_TARGET inline void store_first(V v, float* p, int64_t n) {
  if (n >= V::kLanes)
    v.store(p);
  else
    v.store(p, V::first(n));
}

// The shape of the recurrent product for a cell with kGates gates: kVectors accumulators per row (a block's
// 16 units of each gate), rows taken kRows at a time so that one pass over a block's weights serves them
// all (within 16 accumulators on AVX-512, 8 of AVX2's 16 registers), and, when few accumulators remain,
// the k sum split kSplit ways so that enough independent FMAs are in flight.
template <class V, int64_t kGates>
struct RecurrentShape {
  static constexpr int kWidth = static_cast<int>(kGates * kRecurrentBlock);
  static constexpr int kVectors = kWidth / static_cast<int>(V::kLanes);
  static constexpr int kMaxRows = std::clamp((V::kLanes == 16 ? 16 : 8) / kVectors, 1, 4);
  static constexpr int split(int rows) { return std::clamp(8 / (rows * kVectors), 1, 4); }
};

// acc[r * kWidth + i] = sum_k in[r][k] w[k * kWidth + i] for kRows rows: one block's h x R^T.
template <class V, int64_t kGates, int kRows>
KILN_SIMD_TARGET inline void recurrent_product(const float* w, int64_t k_count, const float* const* in, float* acc) {
  using Shape = RecurrentShape<V, kGates>;
  constexpr int kWidth = Shape::kWidth, kVectors = Shape::kVectors, kSplit = Shape::split(kRows);
  V a[kSplit][kRows][kVectors];
#pragma GCC unroll 4
  for (int s = 0; s < kSplit; ++s)
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < kVectors; ++v) a[s][r][v] = V::zero();
  int64_t k = 0;
  for (; k + kSplit <= k_count; k += kSplit) {
#pragma GCC unroll 4
    for (int s = 0; s < kSplit; ++s) {
      const float* wk = w + (k + s) * kWidth;
      V x[kRows];
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) x[r] = V(in[r][k + s]);
#pragma GCC unroll 8
      for (int v = 0; v < kVectors; ++v) {
        const V wv = V::load(wk + v * V::kLanes);
#pragma GCC unroll 4
        for (int r = 0; r < kRows; ++r) a[s][r][v] = fma(x[r], wv, a[s][r][v]);
      }
    }
  }
  for (; k < k_count; ++k) {
    const float* wk = w + k * kWidth;
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) {
      const V wv = V::load(wk + v * V::kLanes);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) a[0][r][v] = fma(V(in[r][k]), wv, a[0][r][v]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) {
      V sum = a[0][r][v];
#pragma GCC unroll 4
      for (int s = 1; s < kSplit; ++s) sum = sum + a[s][r][v];
      sum.store(acc + r * kWidth + v * V::kLanes);
    }
}

// The product for `rows` (1 to kMaxRows) rows.
template <class V, int64_t kGates, int kRows = 1>
KILN_SIMD_TARGET inline void recurrent_product_rows(int rows, const float* w, int64_t k_count, const float* const* in,
                                                    float* acc) {
  if constexpr (kRows < RecurrentShape<V, kGates>::kMaxRows) {
    if (rows > kRows) return recurrent_product_rows<V, kGates, kRows + 1>(rows, w, k_count, in, acc);
  }
  recurrent_product<V, kGates, kRows>(w, k_count, in, acc);
}

template <class V>
KILN_SIMD_TARGET inline V clip_pre(const RecurrentStepArgs& a, V x) {
  if (!a.has_clip) return x;
  // max and min return their second operand when either is NaN: written this way round, a NaN passes.
  return min(V(a.clip), max(V(-a.clip), x));
}

// The cell's update of units [u0, u0 + n) of one row, n <= 16, from acc: the block's h x R^T, gate after gate.
template <class V, RecurrentCell kCell>
KILN_SIMD_TARGET inline void recurrent_cell(const RecurrentStepArgs& a, const RecurrentRow& row, const float* acc,
                                            int64_t u0, int64_t n) {
  const int64_t hidden = a.hidden;
  const int64_t s = row.state * hidden;
  const V one(1.0f);
  for (int64_t i = 0; i < n; i += V::kLanes) {
    const int64_t m = std::min<int64_t>(V::kLanes, n - i), u = u0 + i;
    const float* xw = row.xw + u;  // gate g's at xw + g * hidden
    const float* hr = acc + i;     // gate g's at hr + g * 16
    if constexpr (kCell == RecurrentCell::kLstm) {
      const V c = load_first<V>(a.c + s + u, m);
      V i_pre = load_first<V>(xw, m) + V::load(hr);
      V o_pre = load_first<V>(xw + hidden, m) + V::load(hr + kRecurrentBlock);
      V f_pre = load_first<V>(xw + 2 * hidden, m) + V::load(hr + 2 * kRecurrentBlock);
      const V c_pre = load_first<V>(xw + 3 * hidden, m) + V::load(hr + 3 * kRecurrentBlock);
      const float* p = a.peepholes;
      if (p) {
        i_pre = fma(load_first<V>(p + u, m), c, i_pre);
        f_pre = fma(load_first<V>(p + 2 * hidden + u, m), c, f_pre);
      }
      const V ig = sigmoid_ps(clip_pre(a, i_pre));
      const V fg = a.input_forget ? one - ig : sigmoid_ps(clip_pre(a, f_pre));
      const V cn = fma(fg, c, ig * tanh_ps(clip_pre(a, c_pre)));
      if (p) o_pre = fma(load_first<V>(p + hidden + u, m), cn, o_pre);
      const V hn = sigmoid_ps(clip_pre(a, o_pre)) * tanh_ps(cn);
      store_first(cn, a.c + s + u, m);
      store_first(hn, a.h_out + s + u, m);
      if (row.y) store_first(hn, row.y + u, m);
    } else if constexpr (kCell == RecurrentCell::kGruGates) {
      const V z = sigmoid_ps(clip_pre(a, load_first<V>(xw, m) + V::load(hr)));
      const V r = sigmoid_ps(clip_pre(a, load_first<V>(xw + hidden, m) + V::load(hr + kRecurrentBlock)));
      store_first(z, a.z + s + u, m);
      store_first(r * load_first<V>(a.h + s + u, m), a.reset_h + s + u, m);
    } else {
      V z, candidate;
      if constexpr (kCell == RecurrentCell::kGruLinearBeforeReset) {
        z = sigmoid_ps(clip_pre(a, load_first<V>(xw, m) + V::load(hr)));
        const V r = sigmoid_ps(clip_pre(a, load_first<V>(xw + hidden, m) + V::load(hr + kRecurrentBlock)));
        const V h_gate = V::load(hr + 2 * kRecurrentBlock) + load_first<V>(a.h_bias + u, m);
        candidate = tanh_ps(clip_pre(a, fma(r, h_gate, load_first<V>(xw + 2 * hidden, m))));
      } else {
        z = load_first<V>(a.z + s + u, m);
        candidate = tanh_ps(clip_pre(a, load_first<V>(xw + 2 * hidden, m) + V::load(hr)));
      }
      const V hn = fma(z, load_first<V>(a.h + s + u, m), (one - z) * candidate);
      store_first(hn, a.h_out + s + u, m);
      if (row.y) store_first(hn, row.y + u, m);
    }
  }
}

template <class V, RecurrentCell kCell>
KILN_SIMD_TARGET void recurrent_blocks(const RecurrentStepArgs& a, int64_t block_begin, int64_t block_end) {
  constexpr int64_t kGates = recurrent_cell_gates(kCell);
  using Shape = RecurrentShape<V, kGates>;
  alignas(64) float acc[Shape::kMaxRows * Shape::kWidth];
  const float* in[Shape::kMaxRows];
  // kGruCandidate multiplies r * h by R_h^T; the others h.
  const float* product_of = kCell == RecurrentCell::kGruCandidate ? a.reset_h : a.h;
  const int64_t hidden = a.hidden;
  for (int64_t step = 0; step < block_end - block_begin; ++step) {
    const int64_t j = a.reverse_blocks ? block_end - 1 - step : block_begin + step;
    const float* w = a.weights + j * hidden * Shape::kWidth;
    const int64_t u0 = j * kRecurrentBlock, n = std::min(kRecurrentBlock, hidden - u0);
    for (int64_t r0 = 0; r0 < a.row_count; r0 += Shape::kMaxRows) {
      const int rows = static_cast<int>(std::min<int64_t>(Shape::kMaxRows, a.row_count - r0));
      for (int r = 0; r < rows; ++r) in[r] = product_of + a.rows[r0 + r].state * hidden;
      recurrent_product_rows<V, kGates>(rows, w, hidden, in, acc);
      for (int r = 0; r < rows; ++r) recurrent_cell<V, kCell>(a, a.rows[r0 + r], acc + r * Shape::kWidth, u0, n);
    }
  }
}

template <class V>
KILN_SIMD_TARGET void recurrent_step(const RecurrentStepArgs& a, int64_t block_begin, int64_t block_end) {
  switch (a.cell) {
    case RecurrentCell::kLstm:
      return recurrent_blocks<V, RecurrentCell::kLstm>(a, block_begin, block_end);
    case RecurrentCell::kGruLinearBeforeReset:
      return recurrent_blocks<V, RecurrentCell::kGruLinearBeforeReset>(a, block_begin, block_end);
    case RecurrentCell::kGruGates:
      return recurrent_blocks<V, RecurrentCell::kGruGates>(a, block_begin, block_end);
    case RecurrentCell::kGruCandidate:
      return recurrent_blocks<V, RecurrentCell::kGruCandidate>(a, block_begin, block_end);
  }
}

// ---- unary elementwise steps (vector_kernels.h's unary; kernels/reference/elementwise_step.h) ---------

template <class V>
KILN_SIMD_TARGET inline V log_ps(V x) {
  // Denormals scaled into the normal range by 2^23 first.
  const typename V::Mask tiny = x < V(1.17549435e-38f);
  const V xs = select(tiny, x * V(8388608.0f), x);
  V e = exponent_of(xs) - keep(tiny, V(23.0f));
  V m = mantissa_of(xs);  // [1, 2)
  const typename V::Mask high = m >= V(1.41421356f);
  m = select(high, m * V(0.5f), m);
  e = e + keep(high, V(1.0f));
  const V f = m - V(1.0f);  // exact
  const V z = f * f;
  V p(7.0376836292e-2f);
  p = fma(p, f, V(-1.1514610310e-1f));
  p = fma(p, f, V(1.1676998740e-1f));
  p = fma(p, f, V(-1.2420140846e-1f));
  p = fma(p, f, V(1.4249322787e-1f));
  p = fma(p, f, V(-1.6668057665e-1f));
  p = fma(p, f, V(2.0000714765e-1f));
  p = fma(p, f, V(-2.4999993993e-1f));
  p = fma(p, f, V(3.3333331174e-1f));
  V y = p * f * z;
  y = fma(e, V(-2.12194440e-4f), y);
  y = fnma(z, V(0.5f), y);
  V r = fma(e, V(0.693359375f), f + y);
  // log(+inf) = +inf, log(+-0) = -inf, log of a negative or of NaN = NaN.
  r = select(x >= V(std::numeric_limits<float>::infinity()), x, r);
  r = select(x < V(std::numeric_limits<float>::denorm_min()), V(-std::numeric_limits<float>::infinity()), r);
  return select(x >= V::zero(), r, V(std::numeric_limits<float>::quiet_NaN()));
}

// log(1 + u) for u >= 0 (or NaN).
template <class V>
KILN_SIMD_TARGET inline V log1p_ps(V u) {
  const V w = u + V(1.0f);
  const V d = w - V(1.0f);  // exact: what w added to 1
  // While 1 + u rounds to 1, log1p(u) = u to float precision (and a NaN u fails the comparison).
  return select(d >= V(1e-30f), log_ps(w) * (u / d), u);
}

template <class V>
KILN_SIMD_TARGET inline V expm1_ps(V x) {
  return select(abs(x) < V(0.346573590f), expm1_reduced(x), exp_ps(x) - V(1.0f));
}

// One step on a vector, with its params broadcast (p0, p1). The NaN rule of max and min (the second
// operand when either is NaN) lets a NaN x through each clamp, and a NaN bound leave x alone, as the
// reference's comparisons do; with equal operands they return the second, so -0 stays -0 where the
// reference keeps it.
template <class V, ops::chain::StepKind kKind>
KILN_SIMD_TARGET inline V step_ps(V x, V p0, V p1) {
  using K = ops::chain::StepKind;
  const V zero = V::zero(), one(1.0f);
  if constexpr (kKind == K::kRelu) return select(x < zero, zero, x);
  if constexpr (kKind == K::kSigmoid) return sigmoid_ps(x);
  if constexpr (kKind == K::kTanh) return tanh_ps(x);
  if constexpr (kKind == K::kSqrt) return sqrt(x);
  if constexpr (kKind == K::kExp) return exp_ps(x);
  if constexpr (kKind == K::kErf) return erf_ps(x);
  if constexpr (kKind == K::kNeg) return x * V(-1.0f);  // exact, and -0 for 0
  if constexpr (kKind == K::kAbs) return abs(x);
  if constexpr (kKind == K::kReciprocal) return one / x;
  if constexpr (kKind == K::kClip) return min(p1, max(p0, x));
  if constexpr (kKind == K::kLeakyRelu) return select(x < zero, p0 * x, x);
  if constexpr (kKind == K::kHardSigmoid) return min(one, max(zero, p0 * x + p1));
  if constexpr (kKind == K::kLog) return log_ps(x);
  if constexpr (kKind == K::kFloor) return floor(x);
  if constexpr (kKind == K::kCeil) return ceil(x);
  if constexpr (kKind == K::kRound) return round_nearest(x);
  if constexpr (kKind == K::kSoftplus) {  // max(x, 0) + log1p(e^-|x|): nothing overflows
    const V l = log1p_ps(exp_ps(zero - abs(x)));
    return select(zero < x, x + l, l);
  }
  if constexpr (kKind == K::kHardSwish) return x * min(one, max(zero, x / V(6.0f) + V(0.5f)));
  if constexpr (kKind == K::kElu) return select(x < zero, p0 * expm1_ps(x), x);
  return x;
}

// Pow by the exponents whose vector form gives std::pow's double result rounded to float exactly: a
// square's double product is exact, and a double quotient or square root rounded to float is the float
// one (53 >= 2 * 24 + 2 bits).
enum class PowForm { kSquare, kSqrt, kReciprocal };

template <class V, PowForm kForm>
KILN_SIMD_TARGET inline V pow_ps(V x) {
  if constexpr (kForm == PowForm::kSquare) return x * x;
  if constexpr (kForm == PowForm::kReciprocal) return V(1.0f) / x;
  // x^0.5: +0 for -0 (the + 0) and +inf for -inf, where sqrt gives -0 and NaN.
  const V r = sqrt(x) + V::zero();
  return select(x < V(-std::numeric_limits<float>::max()), V(std::numeric_limits<float>::infinity()), r);
}

// y = F(x) over count floats, four vectors an iteration (the cheap steps are bound by memory), the
// tail under a mask.
template <class V, class F>
[[gnu::always_inline]] KILN_SIMD_TARGET inline void map_fn(const F& f, const float* x, float* y, int64_t count) {
  constexpr int64_t kLanes = V::kLanes;
  int64_t i = 0;
  for (; i + 4 * kLanes <= count; i += 4 * kLanes) {
    V y0 = f(V::load(x + i)), y1 = f(V::load(x + i + kLanes));
    V y2 = f(V::load(x + i + 2 * kLanes)), y3 = f(V::load(x + i + 3 * kLanes));
    y0.store(y + i);
    y1.store(y + i + kLanes);
    y2.store(y + i + 2 * kLanes);
    y3.store(y + i + 3 * kLanes);
  }
  for (; i + kLanes <= count; i += kLanes) f(V::load(x + i)).store(y + i);
  if (i < count) {
    const typename V::Mask m = V::first(count - i);
    f(V::load(x + i, m)).store(y + i, m);
  }
}

template <class V, ops::chain::StepKind kKind>
KILN_SIMD_TARGET void step_map(const ops::chain::Step& s, const float* x, float* y, int64_t count) {
  const V p0(s.p0), p1(s.p1);
  map_fn<V>([p0, p1](V v) KILN_SIMD_TARGET { return step_ps<V, kKind>(v, p0, p1); }, x, y, count);
}

template <class V, PowForm kForm>
KILN_SIMD_TARGET void pow_map(const float* x, float* y, int64_t count) {
  map_fn<V>([](V v) KILN_SIMD_TARGET { return pow_ps<V, kForm>(v); }, x, y, count);
}

template <class V>
KILN_SIMD_TARGET void unary(const ops::chain::Step& s, const float* x, float* y, int64_t count) {
  using K = ops::chain::StepKind;
  switch (s.kind) {
    case K::kRelu:
      return step_map<V, K::kRelu>(s, x, y, count);
    case K::kSigmoid:
      return step_map<V, K::kSigmoid>(s, x, y, count);
    case K::kTanh:
      return step_map<V, K::kTanh>(s, x, y, count);
    case K::kSqrt:
      return step_map<V, K::kSqrt>(s, x, y, count);
    case K::kExp:
      return step_map<V, K::kExp>(s, x, y, count);
    case K::kErf:
      return step_map<V, K::kErf>(s, x, y, count);
    case K::kNeg:
      return step_map<V, K::kNeg>(s, x, y, count);
    case K::kAbs:
      return step_map<V, K::kAbs>(s, x, y, count);
    case K::kReciprocal:
      return step_map<V, K::kReciprocal>(s, x, y, count);
    case K::kClip:
      return step_map<V, K::kClip>(s, x, y, count);
    case K::kLeakyRelu:
      return step_map<V, K::kLeakyRelu>(s, x, y, count);
    case K::kHardSigmoid:
      return step_map<V, K::kHardSigmoid>(s, x, y, count);
    case K::kLog:
      return step_map<V, K::kLog>(s, x, y, count);
    case K::kFloor:
      return step_map<V, K::kFloor>(s, x, y, count);
    case K::kCeil:
      return step_map<V, K::kCeil>(s, x, y, count);
    case K::kRound:
      return step_map<V, K::kRound>(s, x, y, count);
    case K::kSoftplus:
      return step_map<V, K::kSoftplus>(s, x, y, count);
    case K::kHardSwish:
      return step_map<V, K::kHardSwish>(s, x, y, count);
    case K::kElu:
      return step_map<V, K::kElu>(s, x, y, count);
    case K::kPow:
      if (s.p0 == 2.0f) return pow_map<V, PowForm::kSquare>(x, y, count);
      if (s.p0 == 0.5f) return pow_map<V, PowForm::kSqrt>(x, y, count);
      if (s.p0 == -1.0f) return pow_map<V, PowForm::kReciprocal>(x, y, count);
      break;
    default:
      break;
  }
  // Pow by other exponents (and, defensively, anything else): the reference's float function.
  for (int64_t i = 0; i < count; ++i) y[i] = ops::chain::apply_unary(s, x[i]);
}

// ---- the table ---------------------------------------------------------------------------------------

template <class V>
constexpr VectorKernelTable vector_kernel_table(Isa isa) {
  return {isa,        layer_norm_rows<V>, softmax_rows<V>, gelu<V>,        binary<V>,
          exp_f32<V>, erf_f32<V>,         tanh_f32<V>,     sigmoid_f32<V>, unary<V>,
          recurrent_step<V>, column_sums<V>, dot_rows<V>};
}

}  // namespace simd
}  // namespace
}  // namespace kiln::kernels::cpu

// avx512::F32x16, sixteen floats in one AVX-512 register: the 16-lane twin of avx2::F32x8 (simd_avx2.h,
// which states the contract both keep), for CPUs with AVX-512 F, BW, DQ and VL. Masks are the mask
// registers, so a row's tail is one masked load or store and a select is one blend.
//
// Compile model as in simd_avx2.h: everything carries KILN_TARGET_AVX512 and has internal linkage.
#pragma once

// GCC 12 warns of an uninitialized variable inside its own AVX-512 headers when their intrinsics are
// inlined into a target-attributed function (their _mm512_undefined_ps idiom). This must be the
// translation unit's first inclusion of immintrin.h for the pragma to cover it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>

#define KILN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))

namespace kiln::kernels::cpu {
namespace {
namespace avx512 {

struct F32x16 {
  static constexpr int64_t kLanes = 16;

  struct Mask {
    __mmask16 bits;
  };
  // Per-lane indices into a 16-entry table (lookup).
  using Index = __m512i;

  __m512 v;

  F32x16() = default;
  KILN_TARGET_AVX512 explicit F32x16(__m512 x) : v(x) {}
  KILN_TARGET_AVX512 explicit F32x16(float x) : v(_mm512_set1_ps(x)) {}

  KILN_TARGET_AVX512 static F32x16 zero() { return F32x16(_mm512_setzero_ps()); }
  KILN_TARGET_AVX512 static F32x16 load(const float* p) { return F32x16(_mm512_loadu_ps(p)); }
  // The lanes of m from p, 0 in the others, which are not read.
  KILN_TARGET_AVX512 static F32x16 load(const float* p, Mask m) { return F32x16(_mm512_maskz_loadu_ps(m.bits, p)); }
  KILN_TARGET_AVX512 void store(float* p) const { _mm512_storeu_ps(p, v); }
  KILN_TARGET_AVX512 void store(float* p, Mask m) const { _mm512_mask_storeu_ps(p, m.bits, v); }

  // The first `count` lanes, 0 <= count <= 16.
  KILN_TARGET_AVX512 static Mask first(int64_t count) {
    return {static_cast<__mmask16>((1u << static_cast<unsigned>(count)) - 1u)};
  }

  // 2^k for integral k as a factor: pow2(k).times(p) is p * 2^k rounded once, denormal results included,
  // in one vscalefps. (simd_avx2.h says why it is made apart from its use.)
  struct Pow2 {
    __m512 k;
    KILN_TARGET_AVX512 F32x16 times(F32x16 p) const { return F32x16(_mm512_scalef_ps(p.v, k)); }
  };
  KILN_TARGET_AVX512 static Pow2 pow2(F32x16 k) { return {k.v}; }

  // x holds integers in [0, 16) (a NaN lane reads entry 0); lookup(table, index(x)) gives table[x] per lane.
  KILN_TARGET_AVX512 static Index index(F32x16 x) { return _mm512_cvttps_epi32(x.v); }
  // table: 16 floats, 64-byte aligned.
  KILN_TARGET_AVX512 static F32x16 lookup(const float* table, Index i) {
    return F32x16(_mm512_permutexvar_ps(i, _mm512_load_ps(table)));
  }
};

using Mask = F32x16::Mask;

KILN_TARGET_AVX512 inline F32x16 operator+(F32x16 a, F32x16 b) { return F32x16(_mm512_add_ps(a.v, b.v)); }
KILN_TARGET_AVX512 inline F32x16 operator-(F32x16 a, F32x16 b) { return F32x16(_mm512_sub_ps(a.v, b.v)); }
KILN_TARGET_AVX512 inline F32x16 operator*(F32x16 a, F32x16 b) { return F32x16(_mm512_mul_ps(a.v, b.v)); }
KILN_TARGET_AVX512 inline F32x16 operator/(F32x16 a, F32x16 b) { return F32x16(_mm512_div_ps(a.v, b.v)); }
KILN_TARGET_AVX512 inline F32x16 fma(F32x16 a, F32x16 b, F32x16 c) { return F32x16(_mm512_fmadd_ps(a.v, b.v, c.v)); }
KILN_TARGET_AVX512 inline F32x16 fnma(F32x16 a, F32x16 b, F32x16 c) { return F32x16(_mm512_fnmadd_ps(a.v, b.v, c.v)); }
// n / d to within an ulp: the 14-bit reciprocal estimate and one Newton step, then the product. A 512-bit
// division is 3-4x slower on Intel's AVX-512 cores.
KILN_TARGET_AVX512 inline F32x16 fast_divide(F32x16 n, F32x16 d) {
  __m512 r = _mm512_rcp14_ps(d.v);
  r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d.v, r, _mm512_set1_ps(1.0f)), r);
  return F32x16(_mm512_mul_ps(n.v, r));
}

KILN_TARGET_AVX512 inline F32x16 min(F32x16 a, F32x16 b) { return F32x16(_mm512_min_ps(a.v, b.v)); }
KILN_TARGET_AVX512 inline F32x16 max(F32x16 a, F32x16 b) { return F32x16(_mm512_max_ps(a.v, b.v)); }
KILN_TARGET_AVX512 inline F32x16 abs(F32x16 a) { return F32x16(_mm512_abs_ps(a.v)); }
KILN_TARGET_AVX512 inline F32x16 with_sign_of(F32x16 magnitude, F32x16 x) {
  return F32x16(_mm512_or_ps(magnitude.v, _mm512_and_ps(x.v, _mm512_set1_ps(-0.0f))));
}

KILN_TARGET_AVX512 inline F32x16 sqrt(F32x16 a) { return F32x16(_mm512_sqrt_ps(a.v)); }
KILN_TARGET_AVX512 inline F32x16 ceil(F32x16 a) {
  return F32x16(_mm512_roundscale_ps(a.v, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC));
}
// vgetexpps and vgetmantps: e = floor(log2 |a|) and m = |a| / 2^e in [1, 2).
KILN_TARGET_AVX512 inline F32x16 exponent_of(F32x16 a) { return F32x16(_mm512_getexp_ps(a.v)); }
KILN_TARGET_AVX512 inline F32x16 mantissa_of(F32x16 a) {
  return F32x16(_mm512_getmant_ps(a.v, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero));
}
KILN_TARGET_AVX512 inline F32x16 floor(F32x16 a) {
  return F32x16(_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
}
KILN_TARGET_AVX512 inline F32x16 round_nearest(F32x16 a) {
  return F32x16(_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

KILN_TARGET_AVX512 inline Mask operator<(F32x16 a, F32x16 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ)}; }
KILN_TARGET_AVX512 inline Mask operator>=(F32x16 a, F32x16 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GE_OQ)}; }
KILN_TARGET_AVX512 inline F32x16 select(Mask m, F32x16 a, F32x16 b) {
  return F32x16(_mm512_mask_blend_ps(m.bits, b.v, a.v));
}
KILN_TARGET_AVX512 inline F32x16 keep(Mask m, F32x16 a) { return F32x16(_mm512_maskz_mov_ps(m.bits, a.v)); }

// Horizontal sum and maximum. (GCC 12's _mm512_reduce_*_ps trip -Wmaybe-uninitialized inside the header.)
KILN_TARGET_AVX512 inline __m128 fold_to_128(__m512 v, bool use_max) {
  __m512 halves = _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2));
  v = use_max ? _mm512_max_ps(v, halves) : _mm512_add_ps(v, halves);
  __m512 quarters = _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1));
  v = use_max ? _mm512_max_ps(v, quarters) : _mm512_add_ps(v, quarters);
  return _mm512_castps512_ps128(v);
}

KILN_TARGET_AVX512 inline float reduce_add(F32x16 a) {
  __m128 x = fold_to_128(a.v, false);
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

KILN_TARGET_AVX512 inline float reduce_max(F32x16 a) {
  __m128 x = fold_to_128(a.v, true);
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

}  // namespace avx512
}  // namespace
}  // namespace kiln::kernels::cpu

// avx2::F32x8, eight floats in one AVX2 register: the vocabulary kiln's SIMD algorithms
// (vector_kernels_simd.h) are written in, for AVX2 + FMA CPUs. simd_avx512.h is its 16-lane twin with the
// same members and functions; an algorithm written over one compiles over the other. (ggml's
// simd-mappings.h idea, as a type so that the algorithms read as arithmetic.)
//
// What a vector type V provides: V::kLanes; V(float) broadcasts; V::zero, V::load and V::store, whole or
// under a V::Mask (V::first(count) lanes, for a row's tail); + - * /, fma, fnma, fast_divide; min, max,
// abs, with_sign_of; sqrt, floor, ceil, round_nearest; exponent_of and mantissa_of (log's split of a
// normal float); < and >= giving a Mask, select and keep by one; reduce_add and
// reduce_max across lanes; V::pow2(k).times(p) for exp's scaling; V::index and V::lookup, a per-lane read
// of a table of kLanes floats.
//
// Compile model: kiln has no -march flag. Everything here carries KILN_TARGET_AVX2 and has internal
// linkage (an anonymous namespace), so that nothing compiled for AVX2 can be picked by the linker for a
// caller on a lesser CPU; callers run it only after the CPU check in cpu_features.h. The algorithms that
// use it must carry the same attribute, or GCC refuses to inline the intrinsics into them.
//
// NaN: min and max return their second operand when either is NaN (the x86 instructions' rule; the
// algorithms rely on it to let a NaN through a clamp); comparisons are ordered (false for NaN).
#pragma once

#include <immintrin.h>

#include <cstdint>

#define KILN_TARGET_AVX2 __attribute__((target("avx2,fma")))

namespace kiln::kernels::cpu {
namespace {
namespace avx2 {

struct F32x8 {
  static constexpr int64_t kLanes = 8;

  // A lane predicate: a comparison's result, or the first lanes of a row's tail. All ones or all zeros
  // per lane, in float form because blendv and maskload read it so.
  struct Mask {
    __m256 bits;
  };
  // Per-lane indices into an 8-entry table (lookup).
  using Index = __m256i;

  __m256 v;

  F32x8() = default;
  KILN_TARGET_AVX2 explicit F32x8(__m256 x) : v(x) {}
  KILN_TARGET_AVX2 explicit F32x8(float x) : v(_mm256_set1_ps(x)) {}

  KILN_TARGET_AVX2 static F32x8 zero() { return F32x8(_mm256_setzero_ps()); }
  KILN_TARGET_AVX2 static F32x8 load(const float* p) { return F32x8(_mm256_loadu_ps(p)); }
  // The lanes of m from p, 0 in the others, which are not read (a row's tail may end at a page end).
  KILN_TARGET_AVX2 static F32x8 load(const float* p, Mask m) {
    return F32x8(_mm256_maskload_ps(p, _mm256_castps_si256(m.bits)));
  }
  KILN_TARGET_AVX2 void store(float* p) const { _mm256_storeu_ps(p, v); }
  KILN_TARGET_AVX2 void store(float* p, Mask m) const { _mm256_maskstore_ps(p, _mm256_castps_si256(m.bits), v); }

  // The first `count` lanes, 0 <= count <= 8.
  KILN_TARGET_AVX2 static Mask first(int64_t count) {
    __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return {_mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), lanes))};
  }

  // 2^k for integral k in [-150, 128] (exp's range), as a factor: pow2(k).times(p) is p * 2^k rounded once,
  // denormal results included, for p in [0.5, 2]. 2^k is held as two normal floats 2^k1 * 2^(k - k1),
  // built from their exponent bits, so that p * 2^k1 is exact and only the second product rounds. Made
  // apart from its use so that an algorithm can form it as soon as k is known: GCC schedules little on
  // x86 before it allocates registers, and the integer work placed early keeps the polynomial that
  // follows from spilling.
  struct Pow2 {
    __m256 f1, f2;
    KILN_TARGET_AVX2 F32x8 times(F32x8 p) const { return F32x8(_mm256_mul_ps(_mm256_mul_ps(p.v, f1), f2)); }
  };
  KILN_TARGET_AVX2 static Pow2 pow2(F32x8 k) {
    const __m256i bias = _mm256_set1_epi32(127);
    __m256i ki = _mm256_cvtps_epi32(k.v);
    __m256i k1 = _mm256_srai_epi32(ki, 1);
    return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23)),
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ki, k1), bias), 23))};
  }

  // x holds integers in [0, 8) (a NaN lane reads entry 0); lookup(table, index(x)) gives table[x] per lane.
  KILN_TARGET_AVX2 static Index index(F32x8 x) { return _mm256_cvttps_epi32(x.v); }
  // table: 8 floats, 32-byte aligned.
  KILN_TARGET_AVX2 static F32x8 lookup(const float* table, Index i) {
    return F32x8(_mm256_permutevar8x32_ps(_mm256_load_ps(table), i));
  }
};

using Mask = F32x8::Mask;

KILN_TARGET_AVX2 inline F32x8 operator+(F32x8 a, F32x8 b) { return F32x8(_mm256_add_ps(a.v, b.v)); }
KILN_TARGET_AVX2 inline F32x8 operator-(F32x8 a, F32x8 b) { return F32x8(_mm256_sub_ps(a.v, b.v)); }
KILN_TARGET_AVX2 inline F32x8 operator*(F32x8 a, F32x8 b) { return F32x8(_mm256_mul_ps(a.v, b.v)); }
KILN_TARGET_AVX2 inline F32x8 operator/(F32x8 a, F32x8 b) { return F32x8(_mm256_div_ps(a.v, b.v)); }
// a * b + c, and c - a * b, rounded once.
KILN_TARGET_AVX2 inline F32x8 fma(F32x8 a, F32x8 b, F32x8 c) { return F32x8(_mm256_fmadd_ps(a.v, b.v, c.v)); }
KILN_TARGET_AVX2 inline F32x8 fnma(F32x8 a, F32x8 b, F32x8 c) { return F32x8(_mm256_fnmadd_ps(a.v, b.v, c.v)); }
// n / d to within an ulp, by whichever way is quicker here: on AVX2 cores the division itself.
KILN_TARGET_AVX2 inline F32x8 fast_divide(F32x8 n, F32x8 d) { return n / d; }

KILN_TARGET_AVX2 inline F32x8 min(F32x8 a, F32x8 b) { return F32x8(_mm256_min_ps(a.v, b.v)); }
KILN_TARGET_AVX2 inline F32x8 max(F32x8 a, F32x8 b) { return F32x8(_mm256_max_ps(a.v, b.v)); }
KILN_TARGET_AVX2 inline F32x8 abs(F32x8 a) { return F32x8(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)); }
// magnitude (sign bit clear) with the sign bit of x, -0 included.
KILN_TARGET_AVX2 inline F32x8 with_sign_of(F32x8 magnitude, F32x8 x) {
  return F32x8(_mm256_or_ps(magnitude.v, _mm256_and_ps(x.v, _mm256_set1_ps(-0.0f))));
}

// Correctly rounded, as std::sqrt: -0 gives -0, a negative NaN.
KILN_TARGET_AVX2 inline F32x8 sqrt(F32x8 a) { return F32x8(_mm256_sqrt_ps(a.v)); }
KILN_TARGET_AVX2 inline F32x8 floor(F32x8 a) { return F32x8(_mm256_floor_ps(a.v)); }
KILN_TARGET_AVX2 inline F32x8 ceil(F32x8 a) { return F32x8(_mm256_ceil_ps(a.v)); }
// To the nearest integer, ties to even.
KILN_TARGET_AVX2 inline F32x8 round_nearest(F32x8 a) {
  return F32x8(_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// For a positive normal float a = m 2^e with m in [1, 2): e (as a float) and m. Other inputs (0,
// denormals, infinity, NaN, negatives) give unspecified values: the caller scales denormals up first and
// patches the rest.
KILN_TARGET_AVX2 inline F32x8 exponent_of(F32x8 a) {
  __m256i e = _mm256_srli_epi32(_mm256_castps_si256(a.v), 23);
  e = _mm256_sub_epi32(_mm256_and_si256(e, _mm256_set1_epi32(0xff)), _mm256_set1_epi32(127));
  return F32x8(_mm256_cvtepi32_ps(e));
}
KILN_TARGET_AVX2 inline F32x8 mantissa_of(F32x8 a) {
  __m256i m = _mm256_and_si256(_mm256_castps_si256(a.v), _mm256_set1_epi32(0x007fffff));
  return F32x8(_mm256_castsi256_ps(_mm256_or_si256(m, _mm256_set1_epi32(0x3f800000))));
}

KILN_TARGET_AVX2 inline Mask operator<(F32x8 a, F32x8 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ)}; }
KILN_TARGET_AVX2 inline Mask operator>=(F32x8 a, F32x8 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GE_OQ)}; }
// a in the lanes of m, b in the others.
KILN_TARGET_AVX2 inline F32x8 select(Mask m, F32x8 a, F32x8 b) { return F32x8(_mm256_blendv_ps(b.v, a.v, m.bits)); }
// a in the lanes of m, 0 in the others.
KILN_TARGET_AVX2 inline F32x8 keep(Mask m, F32x8 a) { return F32x8(_mm256_and_ps(m.bits, a.v)); }

KILN_TARGET_AVX2 inline float reduce_add(F32x8 a) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

KILN_TARGET_AVX2 inline float reduce_max(F32x8 a) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

}  // namespace avx2
}  // namespace
}  // namespace kiln::kernels::cpu

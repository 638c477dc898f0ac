// PackedInt8MatMul: a uint8 x int8 matrix product with constant int8 weights, through oneDNN's matmul
// primitive (its VNNI / AMX brgemm kernels), the weights reordered once into the layout it prefers:
//
//     y[M,N] = a_scale * b_scale[n] * sum_k (A[m,k] - a_zero_point) * B[k,n] + bias[n]
//
// with a_scale and a_zero_point given per call (dynamic quantization of the activations) and b_scale
// per tensor or per column, fixed. Why it is built this way, measured with oneDNN 2.6 on an AMD EPYC
// Zen 4 (avx512_core_vnni), 2 threads, M=128 K=768 N=3072:
// - run-time output scales or a run-time source zero point make oneDNN leave brgemm for gemm:jit:
//   0.76 ms with the scales, 1.86 ms with the zero point, against 0.68 ms for the plain product;
// - so the per-column scale b_scale is a fixed output scale, and what changes per call goes into two
//   binary post-ops with run-time data: a multiply by a_scale (a [1,1] tensor), then an add of
//   corr[n] = bias[n] - a_scale * b_scale[n] * a_zero_point * colsum(B)[n], which removes the zero point
//   (sum_k (A - z) B = sum_k A B - z colsum(B)): 0.74 ms, brg:avx512_core_vnni.
// The zero point's removal is exact in integers but done here in float32: for a typical BERT layer the
// two terms are ~1e2 and cancel to ~1, so y carries an absolute error of ~1e-5 beyond the reference's.
//
// One primitive per (M, lda, ldy), kept in a 16-entry LRU cache as PackedMatMul keeps its own; each
// primitive's memory objects are made once per call running at once (IdlePool), its scratchpad and the
// post-ops' per-call data live in per-thread buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace kiln::kernels::cpu {

// Whether oneDNN runs int8 products with VNNI or AMX on this machine (and kiln's kernels run at the
// AVX-512 level): where int8 is faster than float32. Elsewhere callers compute in float32.
bool int8_matmul_is_fast();

class PackedInt8MatMul {
 public:
  static constexpr size_t kMaxCachedPrimitives = 16;

  // b: [K,N] row-major int8 (zero point 0); b_scale: N values when per_column, else 1; bias: N values or
  // null. Nothing is kept of the pointers. Throws kiln::Error when oneDNN has no such product.
  PackedInt8MatMul(int64_t k, int64_t n, const int8_t* b, const float* b_scale, bool per_column, const float* bias);
  ~PackedInt8MatMul();
  PackedInt8MatMul(const PackedInt8MatMul&) = delete;
  PackedInt8MatMul& operator=(const PackedInt8MatMul&) = delete;

  // y = ... for M = m rows of A (lda >= K apart) into y (ldy >= N apart). Thread-safe.
  void run(int64_t m, const uint8_t* a, int64_t lda, float a_scale, uint8_t a_zero_point, float* y,
           int64_t ldy) const;


 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::kernels::cpu

// kiln's own float32 GEMM for constant weights on AVX2 + FMA CPUs, where oneDNN 2.6 has no pre-packed
// path: its gemm:jit repacks the weights on every call (~25 % of the multiply's time on BERT's shapes).
//
//     y[M,N] = post(A[M,K] x B[K,N] + bias[N]) (+ residual[M,N])
//
// B is packed once, at construction, into panels of kPanelWidth columns: panel p holds columns
// [16p, 16p + 16) of every row of B, K rows of 16 floats one after another (zero past N). A micro-kernel
// keeps a 6 x 16 block of y in 12 ymm registers and, for each k, loads one panel row and broadcasts 6
// values of A: 12 FMAs for 8 loads, the classic Haswell-era shape that keeps both FMA pipes busy.
// A is copied once per call into the order the micro-kernel reads it (one stream, where A's own rows,
// kept apart by a leading dimension that is often a multiple of 4 KiB, would compete for L1 sets).
//
// Work: the call is cut into tiles of y (48 rows x 4 panels, over all of K) that the threads take as they
// finish their last one (OpenMP dynamic schedule): on a shared machine, a thread slowed by another
// process holds up one tile, not half the product. Within a tile, K runs in blocks of at most 768 so that
// the tile's rows of A and its panels stay in L2; the first K block starts from the bias, later ones add
// to y. The first micro-kernel on a panel prefetches the next panel into L2 (a model's weights are far
// larger than the caches and come from DRAM on every call). The activation and the residual run over each
// finished tile while it is in cache.
//
// Measured (one core of this project's AMD EPYC, AVX2): the micro-kernel reaches ~85 of the core's ~96
// GFLOP/s FMA peak on cached data; on BERT's shapes, 2 threads, 5-15 % faster than oneDNN 2.6's gemm:jit.
//
// Results differ from oneDNN's and from the reference's in the last bits only (the K sum runs in
// another order); the tests hold it to the same error bound as oneDNN (tests/onednn_matmul_test.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace kiln::kernels::cpu {

enum class PostOp;

class PanelPackedB {
 public:
  static constexpr int64_t kPanelWidth = 16;

  // Packs alpha * b, where b is [K,N] row-major, or [N,K] row-major when trans_b.
  PanelPackedB(int64_t k, int64_t n, const float* b, bool trans_b, float alpha);

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  int64_t panels() const { return (n_ + kPanelWidth - 1) / kPanelWidth; }
  // Panel p: k() rows of kPanelWidth floats, 64-byte aligned (a panel row is one cache line).
  const float* panel(int64_t p) const { return data_.get() + p * k_ * kPanelWidth; }
  size_t bytes() const { return static_cast<size_t>(panels() * k_ * kPanelWidth) * sizeof(float); }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  int64_t k_, n_;
  std::unique_ptr<float, Free> data_;
};

struct PanelGemmArgs {
  int64_t m = 0;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* bias = nullptr;  // [N], optional
  PostOp post{};
  const float* residual = nullptr;  // optional, must not overlap y
  int64_t ld_residual = 0;
  float* y = nullptr;
  int64_t ldy = 0;
};

// Whether this CPU runs panel_gemm (AVX2 and FMA).
bool panel_gemm_supported();

// y = ... as above, split across the OpenMP threads when the product is large enough to gain from it.
// The caller has checked the arguments (PackedMatMul does).
void panel_gemm(const PanelPackedB& b, const PanelGemmArgs& args);

}  // namespace kiln::kernels::cpu

// PackedMatMul: a float32 matrix product with constant weights, run through oneDNN's matmul primitive,
// the weights reordered once into the layout the primitive prefers, or, on AVX2 machines, through kiln's
// panel GEMM with the weights packed once into its panels (GemmEngine below; what follows is oneDNN's).
//
//     y[M,N] = post(alpha * A[M,K] x B[K,N] + bias[N])  (+ residual[M,N] when spec.add_residual)
//
// This covers ONNX MatMul and Gemm with an initializer B (transB via trans_b, Gemm's alpha, Gemm's C as
// a row bias), with the bias, an activation and a residual add fused in; a 3-D A [B,S,K] is M = B*S
// rows. Choices, and why:
// - Weights are reordered into oneDNN's preferred layout (format_tag::any, asked for M = 128) once, in
//   the constructor; alpha is folded into them there too (alpha * (A x B) == A x (alpha * B)), so no
//   output scale runs per call. If a later M's primitive prefers another layout, its own copy is made
//   once (reordered from the first) unless oneDNN runs the same kernel on the first layout. Where that
//   layout is plain row-major (oneDNN's gemm:jit, the path on CPUs without AVX-512) and a row is a
//   multiple of 4 KiB, rows are padded by 64 bytes: ~1.9x on BERT's [768, 3072] (see the .cc).
// - One primitive per (M, lda, ldy, ld_residual), created on the first call for that geometry (or
//   ahead of it, by prepare()) and kept in a 16-entry LRU cache, never created in steady state. A
//   primitive with a run-time M (DNNL_RUNTIME_DIM_VAL) measured no faster and cannot be specialized
//   per M by oneDNN, so per-M it is.
// - The residual is a binary-add post-op appended after the activation, which gives "activation, then
//   add" in one pass. oneDNN's sum post-op (accumulate into y) only fuses when it comes before the
//   activation (eltwise-then-sum falls back to oneDNN's slow reference matmul), so in-place residual
//   (residual == y) is not offered: residual must not overlap y.
// - The scratchpad is user-managed: one buffer per calling thread, grown on first need, so concurrent
//   calls never share it and steady-state calls allocate no scratch.
// - The memory objects a call binds (A, y, residual, scratchpad) and its argument list are made once per
//   primitive, by prepare() or the first call, and rebound to each call's pointers with set_data_handle;
//   one such set per call running at once, so concurrent calls stay safe. The call goes through oneDNN's
//   C API with that fixed argument array (the C++ execute() copies a map into a new vector each time).
//   So kiln allocates nothing per call, but oneDNN 2.6 still does, and no public entry point avoids it:
//   dnnl_primitive_execute converts every argument list into an std::unordered_map (a bucket array and
//   a node per argument) before it runs, and the brgemm kernels add one or two small blocks (a binary
//   post-op's argument vector, a parallel loop's closure): 7 to 10 allocations per call, measured on
//   AVX-512 and AMX (kiln's per-call memory objects and maps added ~18 more before they were made
//   once). Its other GEMM entry points allocate too (dnnl_sgemm and the packed sgemm_compute malloc
//   their packing and thread buffers per call, 3 and 5 measured), and its gemm:jit path (CPUs without
//   AVX-512) mallocs packing buffers inside each call. Only the panel GEMM keeps the steady state free
//   of the heap; the allocation tests count oneDNN's own apart and hold them to a budget per call
//   (tests/allocation/). oneDNN 2.6's brgemm kernels, exported but undocumented, would be the way to
//   a oneDNN GEMM without them; the ukernel API of oneDNN 3.5 and later (experimental), the clean one.
// - Threads: oneDNN runs on OpenMP (omp_set_num_threads), the process's one pool; nothing here starts
//   a thread.
//
// - bf16 (spec.bf16): oneDNN 2.6 has no float32 x bfloat16 matmul, and its fpmath_mode::bf16 on float32
//   inputs does not engage the bf16 kernels (measured: still brg:avx512_core), so the weights are
//   packed as bf16 once and A is rounded into a per-thread buffer on each call (a pass over M x K floats,
//   small beside the M x K x N product): brg:avx512_core_bf16 ran [128,768] x [768,3072] at 436 GFLOP/s
//   against 224 in float32 (AMD EPYC Zen 4, avx512, 2 threads).
//
// This header keeps oneDNN out of its includes (the runtime includes it; only kernels/cpu/ knows oneDNN).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace kiln::kernels::cpu {

enum class PostOp {
  kNone,
  kRelu,
  kGeluErf,   // 0.5 x (1 + erf(x / sqrt(2)))
  kGeluTanh,  // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
};

// Which GEMM runs the product. kAuto: kiln's panel GEMM (panel_gemm.h) where the kernels run at the AVX2
// level (selected_isa(); oneDNN 2.6 has no pre-packed path there and repacks the weights on every
// call), oneDNN elsewhere (its brgemm on pre-packed weights on AVX-512; its reference paths below AVX2).
// KILN_GEMM=onednn|panel overrides kAuto, to compare the two on one machine.
enum class GemmEngine { kAuto, kOneDnn, kPanel };

struct MatMulSpec {
  int64_t k = 0, n = 0;  // both >= 1
  bool has_bias = false;
  PostOp post = PostOp::kNone;
  bool add_residual = false;
  bool trans_b = false;  // B is stored [N,K] row-major (Gemm's transB = 1)
  float alpha = 1.0f;
  GemmEngine engine = GemmEngine::kAuto;
  // Multiply in bfloat16 where bf16_matmul_is_fast(): the weights packed as bfloat16, A rounded to
  // bfloat16 per call (bfloat16_rows.h), products summed and written in float32, bias, activation and
  // residual applied in float32. Elsewhere the product stays float32 (spec() then says bf16 = false): a
  // CPU without bf16 arithmetic would only lose accuracy and gain no speed.
  bool bf16 = false;
};

// Whether bfloat16 products run faster than float32 here: oneDNN's avx512_core_bf16 (vdpbf16ps) or AMX
// kernels, with kiln's kernels at the AVX-512 level (KILN_CPU_ISA=avx2 turns it off, to test float32).
bool bf16_matmul_is_fast();

// Whether a session that asks for bf16 gets it: bf16_matmul_is_fast() and the products on oneDNN (the
// panel GEMM, KILN_GEMM=panel, is float32 only). Session, kiln quantize --mode auto and the tests share it.
bool bf16_products_run();

// The engine kAuto stands for on this machine (KILN_GEMM, read once, then the ISA). Throws kiln::Error
// when KILN_GEMM holds an unknown name, or names panel on a CPU without AVX2.
GemmEngine auto_gemm_engine();

// "auto", "onednn", "panel": KILN_GEMM's names.
const char* gemm_engine_name(GemmEngine engine);

// For profiles: "onednn", or "panel avx2" / "panel avx512" (the panel GEMM at kiln's selected ISA).
std::string gemm_engine_implementation(GemmEngine engine);

class PackedMatMul {
 public:
  static constexpr size_t kMaxCachedPrimitives = 16;

  // Packs `b` ([K,N] row-major, or [N,K] when spec.trans_b) scaled by alpha, and copies `bias` ([N];
  // read only when spec.has_bias). Neither pointer is kept. Throws kiln::Error on a bad spec.
  PackedMatMul(const MatMulSpec& spec, const float* b, const float* bias);
  ~PackedMatMul();
  PackedMatMul(const PackedMatMul&) = delete;
  PackedMatMul& operator=(const PackedMatMul&) = delete;

  // y = ... for M = m rows. A is row-major with leading dimension lda >= K, y with ldy >= N, residual
  // (required iff spec.add_residual, must not overlap y) with ld_residual >= N (0 means N). m == 0 does
  // nothing. Thread-safe: concurrent calls on one PackedMatMul with different y buffers are fine.
  void run(int64_t m, const float* a, int64_t lda, float* y, int64_t ldy, const float* residual = nullptr,
           int64_t ld_residual = 0) const;

  // Creates (or finds) the primitive for this geometry now, so that run() on it only executes; call it
  // when a plan is built. Returns the name of the implementation: oneDNN's, e.g. "gemm:jit" or
  // "brg:avx512_core", or "kiln:panel_avx2" for the panel GEMM (which has no primitives).
  std::string prepare(int64_t m, int64_t lda, int64_t ldy, int64_t ld_residual = 0) const;

  const MatMulSpec& spec() const;
  // The engine that runs it (never kAuto).
  GemmEngine engine() const;
  // Bytes held for weights (every packed layout) and bias.
  size_t packed_bytes() const;
  // Primitives in the cache now (at most kMaxCachedPrimitives).
  size_t cached_primitives() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::kernels::cpu

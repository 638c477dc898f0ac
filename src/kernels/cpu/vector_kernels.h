// kiln's own vectorized float32 kernels for the work of a transformer encoder besides its matmuls:
// LayerNormalization and com.microsoft.SkipLayerNormalization, the GELUs (erf, tanh, with a bias),
// softmax along the last dim (with an optional scale and additive mask, for attention), and Add / Mul in
// their two common shapes (same shape; a row vector or a scalar broadcast over rows); the time step
// of an LSTM or GRU (the recurrent product h x R^T fused with the cell's gates); and the single unary
// elementwise ops (Relu, Sigmoid, Log, Clip, Pow by a constant, ...) as elementwise steps; and the column
// sums of a channels-last global pool; a matrix times one vector (a 1x1 convolution on a 1x1 plane).
//
// Each kernel has three builds: AVX-512 (vector_kernels_avx512.cc), AVX2 + FMA (vector_kernels_avx2.cc)
// and portable C++ (vector_kernels_scalar.cc, which also holds the drivers below). The two SIMD builds are
// one set of algorithms (vector_kernels_simd.h) instantiated over each ISA's vector type (simd_avx512.h,
// simd_avx2.h); the portable build is their plain twin, written apart with the C library's math. The ISA
// files are compiled with per-function target attributes, so nothing in them runs unless the CPU check in
// cpu_features.h chose them. The drivers split rows (or elements) across OpenMP threads once the work
// exceeds kParallelMinElements, and run serially below that or when called inside a parallel region.
//
// Numerics match kiln's reference kernels (kernels/reference/contrib_normalization.cc,
// contrib_activation.cc, reduction_softmax.cc) to about 1e-5 relative for the norms and 1e-6 absolute for
// GELU and softmax: statistics and sums are float32 here, where the reference computes in double.
// NaN and infinity propagate as in the reference: a row holding either normalizes or softmaxes to NaN.
// The recurrent step sums h x R^T in float32 (in k order, or in up to 4 interleaved partial sums where
// few accumulators would leave the FMA units waiting) and takes sigmoid and tanh to a few ulp: within
// about 1e-6 of the reference (kernels/reference/recurrent.cc) per step.
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_features.h"
#include "kernels/reference/elementwise_step.h"

namespace kiln::kernels::cpu {

// Below this many elements a call runs on the calling thread: a fork/join costs more than it saves.
constexpr int64_t kParallelMinElements = 16 * 1024;

// y = (s - mean(s)) / sqrt(var(s) + epsilon) * gamma (+ beta) over each row of n, where s is x, or with
// `skip` s = x + skip (+ bias) formed in float32 in that order, as SkipLayerNormalization does. Strides
// count floats between row starts; 0 means n (dense). y may be x.
struct LayerNormArgs {
  int64_t rows = 0;
  int64_t n = 0;
  const float* x = nullptr;
  int64_t x_stride = 0;
  // Optional: row r adds skip row (r % skip_rows); skip_rows 0 means rows (a skip of the input's shape).
  // A 3-D input with a (sequence, hidden) skip has skip_rows = sequence.
  const float* skip = nullptr;
  int64_t skip_stride = 0;
  int64_t skip_rows = 0;
  const float* bias = nullptr;   // [n], optional, added after skip
  const float* gamma = nullptr;  // [n]
  const float* beta = nullptr;   // [n], optional
  float epsilon = 1e-5f;
  float* y = nullptr;
  int64_t y_stride = 0;
  float* sum = nullptr;  // optional: s, the input_skip_bias_sum output
  int64_t sum_stride = 0;
  float* mean = nullptr;     // optional, one per row
  float* inv_std = nullptr;  // optional, one per row: 1 / sqrt(var + epsilon)
};

// y = softmax(scale * x + mask) along each row of n, the row maximum subtracted first. A row whose
// maximum is +inf or -inf (everything masked with -inf) or that holds a NaN comes out NaN, as the
// reference Softmax gives it. y may be x.
struct SoftmaxArgs {
  int64_t rows = 0;
  int64_t n = 0;
  const float* x = nullptr;
  int64_t x_stride = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
  float scale = 1.0f;
  // Optional additive mask: row r adds mask row (r / mask_group), mask rows mask_stride floats apart
  // (0: n). For attention scores [batch, heads, q, k] with a [batch, k] mask, mask_group = heads * q.
  const float* mask = nullptr;
  int64_t mask_stride = 0;
  int64_t mask_group = 1;
};

enum class GeluKind {
  kErf,   // com.microsoft.Gelu / BiasGelu: x * 0.5 * (1 + erf(x / sqrt(2)))
  kTanh,  // com.microsoft.FastGelu: 0.5 * x * (1 + tanh(0.7978845608 * (x + 0.044715 * x^3)))
};

enum class BinaryOp { kAdd, kMul };

// ---- recurrent cells (LSTM, GRU; kernels/cpu/recurrent_kernel.cc) ------------------------------------

// Hidden units per block of packed recurrent weights. A time step runs block by block: h x R^T for the
// block's units of every gate, then the cell's update of those units, while the products are in L1.
constexpr int64_t kRecurrentBlock = 16;

// What one call of recurrent_step computes, and the gates (of the op's, in the spec's order) its packed
// weights hold side by side.
enum class RecurrentCell {
  kLstm,                  // i, o, f, c: the whole step
  kGruLinearBeforeReset,  // z, r, h with linear_before_reset = 1: the whole step
  kGruGates,              // z, r with linear_before_reset = 0: writes z and r * h (the step's first half)
  kGruCandidate,          // h: from (r * h) x R_h^T and z, the new state (its second half, once every unit's
                          // r * h is written)
};

constexpr int64_t recurrent_cell_gates(RecurrentCell cell) {
  switch (cell) {
    case RecurrentCell::kLstm:
      return 4;
    case RecurrentCell::kGruLinearBeforeReset:
      return 3;
    case RecurrentCell::kGruGates:
      return 2;
    case RecurrentCell::kGruCandidate:
      return 1;
  }
  return 0;
}

// One batch row of a time step (each row has its own time step when a reverse pass meets sequence_lens).
struct RecurrentRow {
  const float* xw = nullptr;  // X W^T + biases at the row's time step, gate-major: gate g's units at g * hidden
  float* y = nullptr;         // where the new h goes in Y, or null
  int64_t state = 0;          // the row's index into the state buffers: its h at h + state * hidden, ...
};

// A time step over the given rows, for hidden units [16 * block_begin, min(16 * block_end, hidden)).
// Weights: for each block j of kRecurrentBlock units, at weights + j * hidden * gates * 16, `hidden` rows k
// of gates * 16 floats: gate after gate, R[gate * hidden + 16 j + u][k] for u in [0, 16), 0 past hidden.
// The gate functions are the default ones (sigmoid, tanh, tanh); `clip` bounds every pre-activation. The
// formulas, per unit (xw_g the row's projection of gate g, hr_g = (h x R^T)_g):
//   LSTM: i = s(xw_i + hr_i + P_i c), f = s(xw_f + hr_f + P_f c) or 1 - i (input_forget),
//         c' = f c + i tanh(xw_c + hr_c), o = s(xw_o + hr_o + P_o c'), h' = o tanh(c')
//   GRU:  z = s(xw_z + hr_z), r = s(xw_r + hr_r), h' = (1 - z) n + z h where
//         n = tanh(xw_h + r (hr_h + Rb_h)) (linear_before_reset) or tanh(xw_h + (r h) x R_h^T)
//   (the kernel has folded Rb into xw where it is added, every gate but linear_before_reset's h).
// Every state buffer is [states, hidden]; a call writes only its units of them and of Y.
struct RecurrentStepArgs {
  RecurrentCell cell = RecurrentCell::kLstm;
  int64_t hidden = 0;
  const float* weights = nullptr;
  const RecurrentRow* rows = nullptr;
  int64_t row_count = 0;
  const float* h = nullptr;          // the state before the step
  float* h_out = nullptr;            // after it (not written by kGruGates)
  float* c = nullptr;                // LSTM: the cell state, updated in place
  float* z = nullptr;                // GRU kGruGates -> kGruCandidate: the update gate
  float* reset_h = nullptr;          // and r * h
  const float* peepholes = nullptr;  // LSTM, optional: [3 * hidden], P_i, P_o, P_f
  const float* h_bias = nullptr;     // kGruLinearBeforeReset: Rb_h, [hidden]
  bool input_forget = false;
  bool has_clip = false;
  float clip = 0;
  // Walk the blocks from the last to the first. Alternated from step to step, each pass starts on the
  // weights the one before ended on, still in cache: a direction's R is often about the size of L2 (4 MiB
  // for LSTM's 512 units), and a scan in one order over a cache it overflows would miss on every line.
  bool reverse_blocks = false;
};

// One ISA's kernels, each over a part of the work; the drivers below pick the part each thread runs.
struct VectorKernelTable {
  Isa isa;
  // Rows [begin, end) of a layer norm / softmax; the drivers have already resolved 0 strides and counts.
  void (*layer_norm_rows)(const LayerNormArgs& args, int64_t begin, int64_t end);
  void (*softmax_rows)(const SoftmaxArgs& args, int64_t begin, int64_t end);
  // Elements [begin, end) of dense y = gelu(x + bias), bias ([n], may be null) repeating every n elements.
  void (*gelu)(GeluKind kind, const float* x, const float* bias, int64_t n, float* y, int64_t begin, int64_t end);
  // Elements [begin, end) of dense y = a op b, b repeating every b_len elements (1: a scalar; n: a row
  // vector; the whole size: the same shape).
  void (*binary)(BinaryOp op, const float* a, const float* b, int64_t b_len, float* y, int64_t begin, int64_t end);
  // y[i] = f(x[i]) for the vectorized math the kernels are built on; here for tests and for other kernels.
  void (*exp)(const float* x, float* y, int64_t count);
  void (*erf)(const float* x, float* y, int64_t count);
  void (*tanh)(const float* x, float* y, int64_t count);
  void (*sigmoid)(const float* x, float* y, int64_t count);  // 1 / (1 + exp(-x))
  // y[i] = step(x[i]) for a unary elementwise step (kernels/reference/elementwise_step.h); y may be x.
  void (*unary)(const ops::chain::Step& step, const float* x, float* y, int64_t count);
  // One recurrent time step over blocks [block_begin, block_end) of hidden units (see RecurrentStepArgs).
  void (*recurrent_step)(const RecurrentStepArgs& args, int64_t block_begin, int64_t block_end);
  // y[j] = sum over k < rows of x[k * stride + j], j < n (see column_sums_f32).
  void (*column_sums)(const float* x, int64_t rows, int64_t stride, int64_t n, float* y);
  // y[i] = dot(w + i * k, x) over k floats, i < rows (see dot_rows_f32).
  void (*dot_rows)(const float* w, int64_t k, const float* x, int64_t rows, float* y);
};

// The table for the level selected_isa() gives (chosen once, at first use).
const VectorKernelTable& vector_kernels();
// The table for `isa`, or nullptr when this machine cannot run it.
const VectorKernelTable* vector_kernels_for(Isa isa);

// The kernels, split across threads. Each uses vector_kernels() unless given a table.
void layer_norm_f32(const LayerNormArgs& args, const VectorKernelTable& table = vector_kernels());
void softmax_f32(const SoftmaxArgs& args, const VectorKernelTable& table = vector_kernels());
// Dense [rows, n]: y = gelu(x + bias), bias [n] or null.
void gelu_f32(GeluKind kind, const float* x, const float* bias, float* y, int64_t rows, int64_t n,
              const VectorKernelTable& table = vector_kernels());
// Dense, count elements: y = a op b, b holding b_len elements that repeat (b_len divides count: 1, the
// last dim, or count). y may be a.
void binary_f32(BinaryOp op, const float* a, const float* b, int64_t b_len, float* y, int64_t count,
                const VectorKernelTable& table = vector_kernels());

// Dense, count elements: y = step(x) for a unary step (not a binary one). y may be x. The SIMD builds
// give the exact results where the op is exact (Relu, Neg, Abs, Sqrt, Reciprocal, Floor, Ceil, Round,
// Clip, LeakyRelu, Pow by 2, 0.5, -1, 1 or 0; HardSigmoid and HardSwish but for an FMA's single rounding)
// and the others to a few ulp (exp, sigmoid, tanh, erf, log, softplus, elu: within about 1e-6 relative);
// Pow by any other exponent is the reference's per element (std::pow in double).
void unary_f32(const ops::chain::Step& step, const float* x, float* y, int64_t count,
               const VectorKernelTable& table = vector_kernels());

// Rows of a column sum are added in float32 in blocks of this many, and the block sums then added up, so
// that the rounding error grows with kColumnSumBlock + rows / kColumnSumBlock rather than with rows.
constexpr int64_t kColumnSumBlock = 64;

// y[j] = sum over k < rows of x[k * stride + j] for j < n: the sums of a channels-last global pool
// ([rows = H * W, n = C]), in float32 (see kColumnSumBlock; the reference sums in double), split across
// threads by columns, in whole cache lines, once the work is large enough.
void column_sums_f32(const float* x, int64_t rows, int64_t stride, int64_t n, float* y,
                     const VectorKernelTable& table = vector_kernels());

// y[i] = sum over j < k of w[i * k + j] * x[j] for i < rows: a row-major [rows, k] matrix times one vector,
// in float32 with fused multiply-adds (the SIMD builds sum each row in kLanes interleaved partial sums),
// split across threads by rows once the matrix is large enough.
void dot_rows_f32(const float* w, int64_t k, const float* x, int64_t rows, float* y,
                  const VectorKernelTable& table = vector_kernels());

// The per-ISA tables, defined in their files; use vector_kernels_for(), which checks the CPU first.
const VectorKernelTable& avx512_vector_kernels();
const VectorKernelTable& avx2_vector_kernels();
const VectorKernelTable& scalar_vector_kernels();

}  // namespace kiln::kernels::cpu

// The portable build of vector_kernels.h (plain loops, the C library's exp / erf / tanh, statistics in
// double), the choice of table, and the drivers that split the work across OpenMP threads. The kernels
// here stay written apart from the SIMD algorithms (vector_kernels_simd.h) rather than instantiated over a
// one-lane vector type: they are the plain twin the SIMD builds are tested against, and a one-lane erf
// would have no register of pieces to look its polynomial up in.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/thread_buffer.h"
#include "kernels/cpu/vector_kernels.h"

namespace kiln::kernels::cpu {
namespace {

// ---- kernels -----------------------------------------------------------------------------------------

void layer_norm_rows(const LayerNormArgs& a, int64_t begin, int64_t end) {
  const int64_t n = a.n;
  for (int64_t r = begin; r < end; ++r) {
    const float* x = a.x + r * a.x_stride;
    float* y = a.y + r * a.y_stride;
    const float* s = x;
    if (a.skip) {
      const float* k = a.skip + (r % a.skip_rows) * a.skip_stride;
      float* dst = a.sum ? a.sum + r * a.sum_stride : y;  // y holds s until it is overwritten below
      for (int64_t i = 0; i < n; ++i) {
        float v = x[i] + k[i];
        if (a.bias) v += a.bias[i];
        dst[i] = v;
      }
      s = dst;
    }
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += s[i];
    double mean = sum / static_cast<double>(n);
    double sq = 0;
    for (int64_t i = 0; i < n; ++i) sq += (s[i] - mean) * (s[i] - mean);
    double inv = 1.0 / std::sqrt(sq / static_cast<double>(n) + a.epsilon);
    for (int64_t i = 0; i < n; ++i) {
      double v = (s[i] - mean) * inv * a.gamma[i];
      if (a.beta) v += a.beta[i];
      y[i] = static_cast<float>(v);
    }
    if (a.mean) a.mean[r] = static_cast<float>(mean);
    if (a.inv_std) a.inv_std[r] = static_cast<float>(inv);
  }
}

void softmax_rows(const SoftmaxArgs& a, int64_t begin, int64_t end) {
  const int64_t n = a.n;
  for (int64_t r = begin; r < end; ++r) {
    const float* x = a.x + r * a.x_stride;
    const float* m = a.mask ? a.mask + (r / a.mask_group) * a.mask_stride : nullptr;
    float* y = a.y + r * a.y_stride;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) {
      y[i] = m ? x[i] * a.scale + m[i] : x[i] * a.scale;
      mx = std::max(mx, y[i]);
    }
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      y[i] = std::exp(y[i] - mx);
      sum += y[i];
    }
    float inv = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

// 1 + erf(z) as erfc(-z): for very negative v, where 1 + erf cancels to a few bits, erfc keeps them.
float gelu_erf(float v) { return 0.5f * v * std::erfc(v * -0.70710678118654752f); }

float gelu_tanh(float v) {
  float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
  return 0.5f * v * (1.0f + std::tanh(u));
}

template <float (*F)(float)>
void gelu_range(const float* x, const float* bias, int64_t n, float* y, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) y[i] = F(bias ? x[i] + bias[i % n] : x[i]);
}

void gelu(GeluKind kind, const float* x, const float* bias, int64_t n, float* y, int64_t begin, int64_t end) {
  if (kind == GeluKind::kErf)
    gelu_range<gelu_erf>(x, bias, n, y, begin, end);
  else
    gelu_range<gelu_tanh>(x, bias, n, y, begin, end);
}

template <BinaryOp kOp>
void binary_range(const float* a, const float* b, int64_t b_len, float* y, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end;) {
    int64_t col = b_len == 1 ? 0 : i % b_len;
    int64_t len = b_len == 1 ? end - i : std::min(b_len - col, end - i);
    const float* bb = b_len == 1 ? nullptr : b + col;
    for (int64_t j = 0; j < len; ++j) {
      float bv = bb ? bb[j] : b[0];
      y[i + j] = kOp == BinaryOp::kAdd ? a[i + j] + bv : a[i + j] * bv;
    }
    i += len;
  }
}

void binary(BinaryOp op, const float* a, const float* b, int64_t b_len, float* y, int64_t begin, int64_t end) {
  if (op == BinaryOp::kAdd)
    binary_range<BinaryOp::kAdd>(a, b, b_len, y, begin, end);
  else
    binary_range<BinaryOp::kMul>(a, b, b_len, y, begin, end);
}

void exp_f32(const float* x, float* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] = std::exp(x[i]);
}
void erf_f32(const float* x, float* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] = std::erf(x[i]);
}
void tanh_f32(const float* x, float* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] = std::tanh(x[i]);
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void sigmoid_f32(const float* x, float* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] = sigmoid(x[i]);
}

// The reference's own float function per element: the portable build is exact.
void unary(const ops::chain::Step& step, const float* x, float* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] = ops::chain::apply_unary(step, x[i]);
}

// One recurrent time step (vector_kernels.h): per block and row, h x R^T for the block's units of every
// gate summed over k in order, then the cell, as the reference computes it (kernels/reference/recurrent.cc).
void recurrent_step(const RecurrentStepArgs& a, int64_t block_begin, int64_t block_end) {
  const int64_t hidden = a.hidden, gates = recurrent_cell_gates(a.cell), width = gates * kRecurrentBlock;
  const float* product_of = a.cell == RecurrentCell::kGruCandidate ? a.reset_h : a.h;
  auto clipped = [&](float v) { return a.has_clip ? std::clamp(v, -a.clip, a.clip) : v; };
  float hr[4 * kRecurrentBlock];
  for (int64_t step = 0; step < block_end - block_begin; ++step) {
    const int64_t j = a.reverse_blocks ? block_end - 1 - step : block_begin + step;
    const float* w = a.weights + j * hidden * width;
    const int64_t u0 = j * kRecurrentBlock, n = std::min(kRecurrentBlock, hidden - u0);
    for (int64_t r = 0; r < a.row_count; ++r) {
      const RecurrentRow& row = a.rows[r];
      const float* in = product_of + row.state * hidden;
      std::fill(hr, hr + width, 0.0f);
      for (int64_t k = 0; k < hidden; ++k)
        for (int64_t i = 0; i < width; ++i) hr[i] += in[k] * w[k * width + i];
      const int64_t s = row.state * hidden;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t u = u0 + i;
        const float* xw = row.xw + u;  // gate g's at xw + g * hidden
        float h_new;
        if (a.cell == RecurrentCell::kLstm) {
          const float* p = a.peepholes;
          const float c = a.c[s + u];
          const float ig = sigmoid(clipped(xw[0] + hr[i] + (p ? p[u] * c : 0.0f)));
          const float fg =
              a.input_forget
                  ? 1.0f - ig
                  : sigmoid(clipped(xw[2 * hidden] + hr[2 * kRecurrentBlock + i] + (p ? p[2 * hidden + u] * c : 0.0f)));
          const float cg = std::tanh(clipped(xw[3 * hidden] + hr[3 * kRecurrentBlock + i]));
          const float cn = fg * c + ig * cg;
          const float og = sigmoid(clipped(xw[hidden] + hr[kRecurrentBlock + i] + (p ? p[hidden + u] * cn : 0.0f)));
          a.c[s + u] = cn;
          h_new = og * std::tanh(cn);
        } else if (a.cell == RecurrentCell::kGruGates) {
          a.z[s + u] = sigmoid(clipped(xw[0] + hr[i]));
          a.reset_h[s + u] = sigmoid(clipped(xw[hidden] + hr[kRecurrentBlock + i])) * a.h[s + u];
          continue;
        } else {
          float z, candidate;
          if (a.cell == RecurrentCell::kGruLinearBeforeReset) {
            z = sigmoid(clipped(xw[0] + hr[i]));
            const float rg = sigmoid(clipped(xw[hidden] + hr[kRecurrentBlock + i]));
            candidate = std::tanh(clipped(xw[2 * hidden] + rg * (hr[2 * kRecurrentBlock + i] + a.h_bias[u])));
          } else {
            z = a.z[s + u];
            candidate = std::tanh(clipped(xw[2 * hidden] + hr[i]));
          }
          h_new = (1.0f - z) * candidate + z * a.h[s + u];
        }
        a.h_out[s + u] = h_new;
        if (row.y) row.y[u] = h_new;
      }
    }
  }
}

// ---- column sums ----------------------------------------------------------------------------------------

void column_sums(const float* x, int64_t rows, int64_t stride, int64_t n, float* y) {
  constexpr int64_t kBlock = 64;  // columns at a time: their partial sums stay in L1
  float total[kBlock], part[kBlock];
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    const int64_t width = std::min(kBlock, n - j0);
    std::fill_n(total, width, 0.0f);
    for (int64_t k0 = 0; k0 < rows; k0 += kColumnSumBlock) {
      std::fill_n(part, width, 0.0f);
      for (int64_t k = k0; k < std::min(rows, k0 + kColumnSumBlock); ++k)
        for (int64_t j = 0; j < width; ++j) part[j] += x[k * stride + j0 + j];
      for (int64_t j = 0; j < width; ++j) total[j] += part[j];
    }
    std::copy_n(total, width, y + j0);
  }
}

// ---- dot products of rows --------------------------------------------------------------------------

void dot_rows(const float* w, int64_t k, const float* x, int64_t rows, float* y) {
  for (int64_t i = 0; i < rows; ++i) {
    float acc = 0.0f;
    for (int64_t j = 0; j < k; ++j) acc = std::fma(w[i * k + j], x[j], acc);
    y[i] = acc;
  }
}

// ---- drivers -----------------------------------------------------------------------------------------

// Calls part(begin, end) over [0, count), one contiguous part per thread, each part a multiple of `grain`
// items except the last; serial when the work (count * elements_per_item) is small or when already inside
// a parallel region.
template <class Part>
void split(int64_t count, int64_t elements_per_item, int64_t grain, const Part& part) {
  if (count <= 0) return;
  if (count * elements_per_item <= kParallelMinElements || count <= grain || omp_in_parallel() ||
      omp_get_max_threads() < 2) {
    part(0, count);
    return;
  }
  int64_t chunks = (count + grain - 1) / grain;
#pragma omp parallel
  {
    int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t begin = std::min(count, chunks * t / threads * grain);
    int64_t end = std::min(count, chunks * (t + 1) / threads * grain);
    if (begin < end) part(begin, end);
  }
}

// Rounds element ranges to whole cache lines, so that threads never write the same line.
constexpr int64_t kElementGrain = 16;

// Column sums of at most this many columns split their rows between threads (see column_sums_f32).
constexpr int64_t kRowSplitColumns = 256;
// The calling thread's buffer of the threads' partial column sums.
struct ColumnSumPartials;

}  // namespace

const VectorKernelTable& scalar_vector_kernels() {
  static constexpr VectorKernelTable kTable{Isa::kScalar, layer_norm_rows, softmax_rows, gelu,        binary,
                                            exp_f32,      erf_f32,         tanh_f32,     sigmoid_f32, unary,
                                            recurrent_step, column_sums, dot_rows};
  return kTable;
}

const VectorKernelTable* vector_kernels_for(Isa isa) {
  if (!isa_supported(isa)) return nullptr;
  switch (isa) {
    case Isa::kAvx512:
      return &avx512_vector_kernels();
    case Isa::kAvx2:
      return &avx2_vector_kernels();
    case Isa::kScalar:
      return &scalar_vector_kernels();
  }
  return nullptr;
}

const VectorKernelTable& vector_kernels() {
  static const VectorKernelTable& table = *vector_kernels_for(selected_isa());
  return table;
}

void layer_norm_f32(const LayerNormArgs& args, const VectorKernelTable& table) {
  if (args.rows <= 0 || args.n <= 0) return;
  LayerNormArgs a = args;
  if (a.x_stride == 0) a.x_stride = a.n;
  if (a.y_stride == 0) a.y_stride = a.n;
  if (a.skip_stride == 0) a.skip_stride = a.n;
  if (a.skip_rows == 0) a.skip_rows = a.rows;
  if (a.sum_stride == 0) a.sum_stride = a.n;
  split(a.rows, a.n, 1, [&](int64_t begin, int64_t end) { table.layer_norm_rows(a, begin, end); });
}

void softmax_f32(const SoftmaxArgs& args, const VectorKernelTable& table) {
  if (args.rows <= 0 || args.n <= 0) return;
  SoftmaxArgs a = args;
  if (a.x_stride == 0) a.x_stride = a.n;
  if (a.y_stride == 0) a.y_stride = a.n;
  if (a.mask_stride == 0) a.mask_stride = a.n;
  if (a.mask_group <= 0) a.mask_group = 1;
  split(a.rows, a.n, 1, [&](int64_t begin, int64_t end) { table.softmax_rows(a, begin, end); });
}

void gelu_f32(GeluKind kind, const float* x, const float* bias, float* y, int64_t rows, int64_t n,
              const VectorKernelTable& table) {
  if (rows <= 0 || n <= 0) return;
  split(rows * n, 1, kElementGrain, [&](int64_t begin, int64_t end) { table.gelu(kind, x, bias, n, y, begin, end); });
}

void binary_f32(BinaryOp op, const float* a, const float* b, int64_t b_len, float* y, int64_t count,
                const VectorKernelTable& table) {
  if (count <= 0) return;
  split(count, 1, kElementGrain, [&](int64_t begin, int64_t end) { table.binary(op, a, b, b_len, y, begin, end); });
}

void column_sums_f32(const float* x, int64_t rows, int64_t stride, int64_t n, float* y, const VectorKernelTable& table) {
  if (n <= 0) return;
  if (rows <= 0) {
    std::fill_n(y, n, 0.0f);
    return;
  }
  // Few columns (a pool over 32-256 channels: 2 to 16 cache lines a row): threads split the rows, each
  // summing its own into partial sums, added up in thread order. Split by columns, each thread would read
  // every other line of every row, and the hardware's line-pair prefetch would fetch the pair for both.
  const int64_t threads = omp_get_max_threads();
  if (n <= kRowSplitColumns && rows >= 2 * kColumnSumBlock && rows * n > kParallelMinElements && threads > 1 &&
      !omp_in_parallel()) {
    const int64_t blocks = (rows + kColumnSumBlock - 1) / kColumnSumBlock;
    auto* partials =
        reinterpret_cast<float*>(thread_buffer<ColumnSumPartials>(static_cast<size_t>(threads * n) * sizeof(float)));
    int64_t team = 1;
#pragma omp parallel
    {
      const int64_t t = omp_get_thread_num(), count = omp_get_num_threads();
#pragma omp single
      team = count;
      const int64_t begin = std::min(rows, blocks * t / count * kColumnSumBlock);
      const int64_t end = std::min(rows, blocks * (t + 1) / count * kColumnSumBlock);
      float* part = partials + t * n;
      if (begin < end) {
        table.column_sums(x + begin * stride, end - begin, stride, n, part);
      } else {
        std::fill_n(part, n, 0.0f);
      }
    }
    std::copy_n(partials, n, y);
    for (int64_t t = 1; t < team; ++t)
      for (int64_t j = 0; j < n; ++j) y[j] += partials[t * n + j];
    return;
  }
  split(n, rows, kElementGrain, [&](int64_t begin, int64_t end) { table.column_sums(x + begin, rows, stride, end - begin, y + begin); });
}

void dot_rows_f32(const float* w, int64_t k, const float* x, int64_t rows, float* y, const VectorKernelTable& table) {
  if (rows <= 0) return;
  if (k <= 0) {
    std::fill_n(y, rows, 0.0f);
    return;
  }
  split(rows, k, kElementGrain, [&](int64_t begin, int64_t end) { table.dot_rows(w + begin * k, k, x, end - begin, y + begin); });
}

// Elements per thread's worth of work, by what a step costs: the cheap ones are bound by memory and
// gain from a second thread only on large tensors; Pow by a general exponent is a double std::pow each.
void unary_f32(const ops::chain::Step& step, const float* x, float* y, int64_t count, const VectorKernelTable& table) {
  using K = ops::chain::StepKind;
  if (count <= 0) return;
  int64_t cost = 1;  // the transcendental steps: kParallelMinElements each
  switch (step.kind) {
    case K::kRelu:
    case K::kNeg:
    case K::kAbs:
    case K::kClip:
    case K::kLeakyRelu:
    case K::kHardSigmoid:
    case K::kFloor:
    case K::kCeil:
    case K::kRound:
      if (count < 4 * kParallelMinElements) return table.unary(step, x, y, count);
      break;
    case K::kPow:
      if (step.p0 != 2.0f && step.p0 != 0.5f && step.p0 != -1.0f) cost = 16;
      break;
    default:
      break;
  }
  split(count, cost, kElementGrain, [&](int64_t begin, int64_t end) { table.unary(step, x + begin, y + begin, end - begin); });
}

}  // namespace kiln::kernels::cpu

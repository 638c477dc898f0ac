// ReduceMean, ReduceSum and ReduceMax over float32, when the reduced axes, once size-1 dims are dropped
// and neighbours merged, form one block: x viewed as [outer, reduced, inner]. That covers a global pool
// in either layout (axes [2, 3] of NCHW: inner 1; axes [1, 2] of NHWC, what push_transposes writes for
// GlobalAveragePool: outer N, inner C), a LayerNorm-style mean over the last axis, and a sum over tokens.
// A run of reduced values (inner 1) sums in double, as the reference does, in 8 interleaved partial sums
// (the max too, in 8 chains), and a reduction over every element splits its run across the threads
// (ORT's ReduceMax of [1, 8388608] took 1.33 ms where one chain on one thread took 4.66); columns of
// channels-last rows
// (inner > 1: a global pool) sum in float32, vectorized (column_sums_f32, vector_kernels.h): they differ from
// the reference's double sums by about 1e-6 of the sum of magnitudes. A NaN wins a max, as in the reference. Other axis sets go to
// the reference.
#include "kernels/cpu/fast_kernel_table.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <limits>
#include <span>
#include <vector>

#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/vector_kernels.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

enum class Reduction { kMean, kSum, kMax };

constexpr int64_t kReduceParallelWork = 1 << 16;
constexpr size_t kReduceMaxRank = 8;  // higher ranks are left to the reference

class ReduceKernel : public FastKernel {
 public:
  ReduceKernel(Reduction kind, bool axes_input, std::vector<int64_t> axes, bool keepdims, bool noop_with_empty_axes)
      : kind_(kind),
        axes_input_(axes_input),
        axes_(std::move(axes)),
        keepdims_(keepdims),
        noop_with_empty_axes_(noop_with_empty_axes) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0)) return false;
    const ir::Tensor& x = ctx.input(0);
    const ir::Dims& s = x.shape();
    const auto rank = static_cast<int64_t>(s.size());
    // The axes as a span (of the attribute's, or of the input's): nothing allocated per call.
    std::span<const int64_t> axes(axes_);
    if (axes_input_ && ctx.has_input(1)) {
      const ir::Tensor& a = ctx.input(1);
      if (a.dtype() != ir::DType::kInt64 || a.rank() != 1) return false;
      axes = std::span<const int64_t>(a.data<int64_t>(), static_cast<size_t>(a.numel()));
    }
    if (axes.empty() && noop_with_empty_axes_) return false;  // identity: the reference copies
    if (s.size() > kReduceMaxRank) return false;
    std::array<bool, kReduceMaxRank> reduced{};
    for (size_t i = 0; i < s.size(); ++i) reduced[i] = axes.empty();
    for (int64_t a : axes) {
      if (a < -rank || a >= rank) return false;  // the reference says why
      reduced[static_cast<size_t>(a < 0 ? a + rank : a)] = true;
    }
    // [outer, r, inner]: the reduced dims (size-1 ones aside) must be contiguous.
    int64_t outer = 1, r = 1, inner = 1;
    int stage = 0;  // 0: before the reduced block, 1: in it, 2: after it
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == 1) continue;
      if (reduced[i]) {
        if (stage == 2) return false;
        stage = 1;
        r *= s[i];
      } else {
        if (stage == 1) stage = 2;
        (stage == 0 ? outer : inner) *= s[i];
      }
    }
    if (x.numel() == 0) return false;
    ir::Dims out_shape;
    for (size_t i = 0; i < s.size(); ++i) {
      if (!reduced[i])
        out_shape.push_back(s[i]);
      else if (keepdims_)
        out_shape.push_back(1);
    }
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    const float* xp = x.data<float>();
    float* yp = y.data<float>();
    const bool parallel = x.numel() >= kReduceParallelWork && omp_get_max_threads() > 1 && !omp_in_parallel();
    if (inner == 1 && outer == 1 && parallel) {
      // One run (a reduction over every element): split across the threads, the parts combined in order.
      yp[0] = reduce_split_run(xp, r);
    } else if (inner == 1) {
      // Each output a contiguous run of r values.
      parallel_for_static(parallel && outer > 1, outer, [&](int64_t o) { yp[o] = reduce_run(xp + o * r, r); });
    } else if (kind_ != Reduction::kMax) {
      // Rows of `inner` values, r of them per output row: column sums (vectorized, split by columns).
      const double scale = kind_ == Reduction::kMean ? 1.0 / static_cast<double>(r) : 1.0;
      for (int64_t o = 0; o < outer; ++o) {
        float* yo = yp + o * inner;
        column_sums_f32(xp + o * r * inner, r, inner, inner, yo);
        if (kind_ == Reduction::kMean)
          for (int64_t j = 0; j < inner; ++j) yo[j] = static_cast<float>(yo[j] * scale);
      }
    } else {
      // Rows of `inner` values, r of them per output row: the maximum row by row (vectorizes over inner).
      const int64_t chunk = 256;
      const int64_t chunks = (inner + chunk - 1) / chunk;
      parallel_for_static(parallel && outer * chunks > 1, outer * chunks, [&](int64_t task) {
        const int64_t o = task / chunks, i0 = task % chunks * chunk, n = std::min(chunk, inner - i0);
        max_rows(xp + o * r * inner + i0, r, inner, n, yp + o * inner + i0);
      });
    }
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  // max with NaN propagating, as the reference (and numpy's maximum) does.
  static float larger(float a, float b) { return a >= b || a != a ? a : b; }

  float reduce_run(const float* p, int64_t n) const {
    if (kind_ == Reduction::kMax) return max_run(p, n);
    const double acc = sum_run(p, n);
    return static_cast<float>(kind_ == Reduction::kMean ? acc / static_cast<double>(n) : acc);
  }

  // The maximum of n >= 1 values in kChains interleaved chains, combined in order: one chain's compare and
  // select per value is a dependency that ran at ~2 cycles a value.
  static float max_run(const float* p, int64_t n) {
    if (n < kChains) {
      float m = p[0];
      for (int64_t k = 1; k < n; ++k) m = larger(m, p[k]);
      return m;
    }
    float m[kChains];
    for (int c = 0; c < kChains; ++c) m[c] = p[c];
    int64_t k = kChains;
    for (; k + kChains <= n; k += kChains)
      for (int c = 0; c < kChains; ++c) m[c] = larger(m[c], p[k + c]);
    for (; k < n; ++k) m[0] = larger(m[0], p[k]);
    for (int c = 1; c < kChains; ++c) m[0] = larger(m[0], m[c]);
    return m[0];
  }

  // The sum of n values in double, in kChains interleaved partial sums (each add waits on the one before
  // in its chain only), added up in order.
  static double sum_run(const float* p, int64_t n) {
    double acc[kChains] = {};
    int64_t k = 0;
    for (; k + kChains <= n; k += kChains)
      for (int c = 0; c < kChains; ++c) acc[c] += p[k + c];
    for (; k < n; ++k) acc[0] += p[k];
    double total = 0;
    for (int c = 0; c < kChains; ++c) total += acc[c];
    return total;
  }

  // reduce_run over one long run, split into a contiguous part per thread.
  float reduce_split_run(const float* p, int64_t n) const {
    const int64_t threads = omp_get_max_threads();
    std::array<double, kMaxSplit> sums{};
    std::array<float, kMaxSplit> maxima{};
    const int64_t parts = std::min<int64_t>(threads, kMaxSplit);
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(parts))
    for (int64_t t = 0; t < parts; ++t) {
      const int64_t begin = n * t / parts, end = n * (t + 1) / parts;
      if (kind_ == Reduction::kMax) {
        maxima[t] = max_run(p + begin, end - begin);
      } else {
        sums[t] = sum_run(p + begin, end - begin);
      }
    }
    if (kind_ == Reduction::kMax) {
      float m = maxima[0];
      for (int64_t t = 1; t < parts; ++t) m = larger(m, maxima[t]);
      return m;
    }
    double total = 0;
    for (int64_t t = 0; t < parts; ++t) total += sums[t];
    return static_cast<float>(kind_ == Reduction::kMean ? total / static_cast<double>(n) : total);
  }

  static constexpr int kChains = 8;
  static constexpr int64_t kMaxSplit = 64;  // parts of a split run (threads beyond it share them)

  // y[j] = max over k < r of x[k * stride + j], j < n.
  static void max_rows(const float* x, int64_t r, int64_t stride, int64_t n, float* y) {
    std::copy_n(x, n, y);
    for (int64_t k = 1; k < r; ++k)
      for (int64_t j = 0; j < n; ++j) y[j] = larger(y[j], x[k * stride + j]);
  }

  Reduction kind_;
  bool axes_input_;
  std::vector<int64_t> axes_;
  bool keepdims_, noop_with_empty_axes_;
};

// `axes_input_since`: the opset from which axes is an input rather than an attribute.
template <Reduction kKind, int64_t kAxesInputSince>
std::unique_ptr<FastKernel> make_reduce(const ir::Node& n, const ir::Graph&, int64_t opset) {
  ops::NodeView v(n, opset);
  const bool axes_input = opset >= kAxesInputSince;
  std::vector<int64_t> axes = axes_input ? std::vector<int64_t>{} : v.attr_ints("axes");
  const bool noop = axes_input && v.attr_int("noop_with_empty_axes", 0) != 0;
  return std::make_unique<ReduceKernel>(kKind, axes_input, std::move(axes), v.attr_int("keepdims", 1) != 0, noop);
}

}  // namespace

std::span<const FastKernelEntry> reduce_kernel_entries() {
  constexpr uint64_t kF32 = dtype_set({ir::DType::kFloat32});
  static const FastKernelEntry kEntries[] = {
      {"", "ReduceMean", 1, kLatestOpset, kF32, make_reduce<Reduction::kMean, 18>},
      {"", "ReduceSum", 1, kLatestOpset, kF32, make_reduce<Reduction::kSum, 13>},
      {"", "ReduceMax", 1, kLatestOpset, kF32, make_reduce<Reduction::kMax, 18>},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

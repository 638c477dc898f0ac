// Add, Sub, Mul and Div on float32 with numpy broadcasting: the residual adds, squeeze-and-excitation
// gates ([N, H, W, C] x [N, 1, 1, C], or NCHW's [N, C, H, W] x [N, C, 1, 1]), per-channel scales and the
// scalar affine steps that CNN and transformer exports leave between their fused ops.
//
// The output's dims are merged where both operands step through them alike, which leaves a few
// (outer) dims walked by index and one inner run in which each operand either advances (stride 1) or
// stays on one value (stride 0, broadcast): four loops the compiler vectorizes. The reference computes
// in double and rounds once; a float32 add, multiply or divide is the same correctly rounded result.
#include "kernels/cpu/fast_kernel_table.h"

#include <omp.h>

#include <algorithm>
#include <array>

#include "kernels/cpu/fast_kernel_util.h"

namespace kiln::kernels::cpu {

namespace {

enum class ArithOp { kAdd, kSub, kMul, kDiv };

constexpr size_t kMaxDims = 8;
constexpr int64_t kParallelElements = 1 << 16;

template <ArithOp kOp>
inline float apply(float a, float b) {
  if constexpr (kOp == ArithOp::kAdd) return a + b;
  if constexpr (kOp == ArithOp::kSub) return a - b;
  if constexpr (kOp == ArithOp::kMul) return a * b;
  return a / b;
}

// y[j] = a[j * sa] op b[j * sb] for j < n, sa and sb each 0 or 1.
template <ArithOp kOp>
void run_inner(const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n) {
  if (sa && sb) {
    for (int64_t j = 0; j < n; ++j) y[j] = apply<kOp>(a[j], b[j]);
  } else if (sa) {
    const float bv = b[0];
    for (int64_t j = 0; j < n; ++j) y[j] = apply<kOp>(a[j], bv);
  } else if (sb) {
    const float av = a[0];
    for (int64_t j = 0; j < n; ++j) y[j] = apply<kOp>(av, b[j]);
  } else {
    std::fill_n(y, n, apply<kOp>(a[0], b[0]));
  }
}

// The broadcast of a and b as merged dims: sizes, and each operand's element stride per dim (0 where it
// broadcasts); the last dim is the inner run.
struct Plan {
  size_t rank = 0;
  std::array<int64_t, kMaxDims> size{}, sa{}, sb{};
};

bool plan_broadcast(const ir::Dims& as, const ir::Dims& bs, ir::Dims& out, Plan& p) {
  const size_t rank = std::max(as.size(), bs.size());
  if (rank > kMaxDims) return false;
  out = ir::Dims(rank, 0);
  std::array<int64_t, kMaxDims> size{}, sa{}, sb{};
  int64_t step_a = 1, step_b = 1;
  for (size_t i = rank; i-- > 0;) {
    const size_t from_end = rank - 1 - i;
    const int64_t ad = from_end < as.size() ? as[as.size() - 1 - from_end] : 1;
    const int64_t bd = from_end < bs.size() ? bs[bs.size() - 1 - from_end] : 1;
    if (ad != bd && ad != 1 && bd != 1) return false;  // the reference says why
    size[i] = ad == 1 ? bd : ad;
    sa[i] = ad == 1 ? 0 : step_a;
    sb[i] = bd == 1 ? 0 : step_b;
    step_a *= ad;
    step_b *= bd;
    out[i] = size[i];
  }
  // Size-1 dims dropped.
  p = Plan{};
  for (size_t i = 0; i < rank; ++i) {
    if (size[i] == 1) continue;
    p.size[p.rank] = size[i];
    p.sa[p.rank] = sa[i];
    p.sb[p.rank] = sb[i];
    ++p.rank;
  }
  // Neighbours merged, outermost first: a dim joins the one before it when, for each operand, both strides are 0, or the
  // outer stride is the inner stride times the inner size.
  Plan merged;
  for (size_t i = 0; i < p.rank; ++i) {
    if (merged.rank > 0) {
      const size_t k = merged.rank - 1;
      auto joins = [&](int64_t outer_stride, int64_t inner_stride) {
        return (outer_stride == 0 && inner_stride == 0) ||
               (outer_stride != 0 && inner_stride != 0 && outer_stride == inner_stride * p.size[i]);
      };
      if (joins(merged.sa[k], p.sa[i]) && joins(merged.sb[k], p.sb[i])) {
        merged.size[k] *= p.size[i];
        merged.sa[k] = p.sa[i];
        merged.sb[k] = p.sb[i];
        continue;
      }
    }
    merged.size[merged.rank] = p.size[i];
    merged.sa[merged.rank] = p.sa[i];
    merged.sb[merged.rank] = p.sb[i];
    ++merged.rank;
  }
  if (merged.rank == 0) {  // every dim 1: one element
    merged.rank = 1;
    merged.size[0] = 1;
    merged.sa[0] = merged.sb[0] = 1;
  }
  p = merged;
  return true;
}

template <ArithOp kOp>
class BinaryKernel : public FastKernel {
 public:
  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0) || !is_f32(ctx, 1)) return false;
    const ir::Tensor& a = ctx.input(0);
    const ir::Tensor& b = ctx.input(1);
    ir::Dims out_shape;
    Plan p;
    if (!plan_broadcast(a.shape(), b.shape(), out_shape, p)) return false;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    if (y.numel() > 0) {
      const float* ap = a.data<float>();
      const float* bp = b.data<float>();
      float* yp = y.data<float>();
      const size_t last = p.rank - 1;
      const int64_t inner = p.size[last];
      const int64_t rows = y.numel() / inner;
      const bool parallel = y.numel() >= kParallelElements && rows > 1 && omp_get_max_threads() > 1 && !omp_in_parallel();
      auto row = [&](int64_t r) {
        // Offsets of row r in a and b, from its index over the outer dims.
        int64_t rest = r, oa = 0, ob = 0;
        for (size_t i = last; i-- > 0;) {
          const int64_t d = rest % p.size[i];
          rest /= p.size[i];
          oa += d * p.sa[i];
          ob += d * p.sb[i];
        }
        run_inner<kOp>(ap + oa, p.sa[last], bp + ob, p.sb[last], yp + r * inner, inner);
      };
      if (rows == 1 && parallel) {
        // One long run: split it.
        const int64_t chunks = omp_get_max_threads() * 4, chunk = (inner + chunks - 1) / chunks;
        parallel_for_static(true, chunks, [&](int64_t c) {
          const int64_t j0 = std::min(inner, c * chunk), n = std::min(inner, j0 + chunk) - j0;
          run_inner<kOp>(ap + j0 * p.sa[last], p.sa[last], bp + j0 * p.sb[last], p.sb[last], yp + j0, n);
        });
      } else {
        parallel_for_static(parallel, rows, row);
      }
    }
    ctx.set_output(0, std::move(y));
    return true;
  }
  // Each output element reads its operands' elements at the same index or at an earlier one (a
  // broadcast operand is smaller), so y may take an operand's buffer when it has the output's shape; the
  // executor offers it only then.
  std::vector<size_t> in_place_inputs() const override { return {0, 1}; }
};

template <ArithOp kOp>
std::unique_ptr<FastKernel> make_binary(const ir::Node&, const ir::Graph&, int64_t) {
  return std::make_unique<BinaryKernel<kOp>>();
}

}  // namespace

std::span<const FastKernelEntry> binary_elementwise_kernel_entries() {
  constexpr uint64_t kF32 = dtype_set({ir::DType::kFloat32});
  // From opset 7 on: numpy broadcasting (before it, the `broadcast` and `axis` attributes).
  static const FastKernelEntry kEntries[] = {
      {"", "Add", 7, kLatestOpset, kF32, make_binary<ArithOp::kAdd>},
      {"", "Sub", 7, kLatestOpset, kF32, make_binary<ArithOp::kSub>},
      {"", "Mul", 7, kLatestOpset, kF32, make_binary<ArithOp::kMul>},
      {"", "Div", 7, kLatestOpset, kF32, make_binary<ArithOp::kDiv>},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

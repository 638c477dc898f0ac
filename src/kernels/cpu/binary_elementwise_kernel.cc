// Add, Sub, Mul and Div on float32 with numpy broadcasting: the residual adds, squeeze-and-excitation
// gates ([N, H, W, C] x [N, 1, 1, C], or NCHW's [N, C, H, W] x [N, C, 1, 1]), per-channel scales and the
// scalar affine steps that CNN and transformer exports leave between their fused ops.
//
// The broadcast is planned as merged dims (broadcast_plan.h), whose inner run has each operand advance
// or stay on one value: four loops the compiler vectorizes. Add and Mul where one operand has the
// output's shape and the other repeats along it (the same shape, a scalar, or a vector over the innermost
// merged dim: channels-last's SE gate) run kiln's per-ISA binary kernel instead (vector_kernels.h): on
// efficientnet-b0's [1,112,112,32] x [1,1,1,32], a 32-float run per row, the compiler's baseline loops
// took 0.45 ms. The reference computes in double and rounds once; a float32 add, multiply or divide is the
// same correctly rounded result.
#include "kernels/cpu/fast_kernel_table.h"

#include <omp.h>

#include <algorithm>
#include <array>

#include "kernels/cpu/broadcast_plan.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/vector_kernels.h"

namespace kiln::kernels::cpu {

namespace {

enum class ArithOp { kAdd, kSub, kMul, kDiv };

constexpr int64_t kParallelElements = 1 << 16;

template <ArithOp kOp>
inline float apply(float a, float b) {
  if constexpr (kOp == ArithOp::kAdd) return a + b;
  if constexpr (kOp == ArithOp::kSub) return a - b;
  if constexpr (kOp == ArithOp::kMul) return a * b;
  return a / b;
}

template <ArithOp kOp>
void run_inner(const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n) {
  broadcast_inner_run(a, sa, b, sb, y, n, [](float u, float v) { return apply<kOp>(u, v); });
}

// For a plan where one operand is the whole output and the other repeats every `len` elements of it (len:
// the output's size, 1, or the inner run), those two; false otherwise.
bool repeating_operands(const BroadcastPlan& p, const float* a, const float* b, const float*& whole,
                        const float*& repeating, int64_t& len) {
  const size_t last = p.rank - 1;
  if (p.sa[last] + p.sb[last] == 1 && p.rank == 1) {  // a scalar: the stride-0 one repeats every element
    whole = p.sa[0] ? a : b;
    repeating = p.sa[0] ? b : a;
    len = 1;
    return true;
  }
  if (p.sa[last] != 1 || p.sb[last] != 1) return false;
  if (p.rank == 1) {  // the same shape
    whole = a;
    repeating = b;
    len = p.size[0];
    return true;
  }
  if (p.rank != 2 || (p.sa[0] != 0 && p.sb[0] != 0)) return false;
  whole = p.sa[0] ? a : b;  // strides (inner, 1); the other's are (0, 1)
  repeating = p.sa[0] ? b : a;
  len = p.size[1];
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
    BroadcastPlan p;
    if (!plan_broadcast(a.shape(), b.shape(), out_shape, p)) return false;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    if (y.numel() > 0) {
      const float* ap = a.data<float>();
      const float* bp = b.data<float>();
      float* yp = y.data<float>();
      if constexpr (kOp == ArithOp::kAdd || kOp == ArithOp::kMul) {  // commutative: either may be `whole`
        const float* whole = nullptr;
        const float* repeating = nullptr;
        int64_t len = 0;
        if (repeating_operands(p, ap, bp, whole, repeating, len)) {
          binary_f32(kOp == ArithOp::kAdd ? BinaryOp::kAdd : BinaryOp::kMul, whole, repeating, len, yp, y.numel());
          ctx.set_output(0, std::move(y));
          return true;
        }
      }
      const size_t last = p.rank - 1;
      const int64_t inner = p.size[last];
      const int64_t rows = y.numel() / inner;
      const bool parallel = y.numel() >= kParallelElements && rows > 1 && omp_get_max_threads() > 1 && !omp_in_parallel();
      auto row = [&](int64_t r) {
        int64_t oa, ob;
        broadcast_row_offsets(p, r, oa, ob);
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

// Comparisons (Equal, Less, Greater, LessOrEqual, GreaterOrEqual) on float32, int64 and int32 (Equal also
// on bool), and the logical ops (And, Or, Xor, Not) on bool, with numpy broadcasting: the masks that
// transformer exports build (Equal(mask, 0), Less(positions, length)) and the small conditions of
// recurrent and control-flow graphs (silero-vad's Equal on int64 scalars, then Not, feeding If). Each
// result is exact and the reference's (kernels/reference/elementwise_compare.cc): any comparison with a
// NaN is false.
#include "kernels/cpu/fast_kernel_table.h"

#include <omp.h>

#include <algorithm>

#include "kernels/cpu/broadcast_plan.h"
#include "kernels/cpu/fast_kernel_util.h"

namespace kiln::kernels::cpu {

namespace {

enum class Relation { kEqual, kLess, kGreater, kLessOrEqual, kGreaterOrEqual, kAnd, kOr, kXor };

// Below this many output elements a call runs on the calling thread.
constexpr int64_t kCompareParallelElements = 1 << 17;

template <Relation kRel, class T>
inline bool relate(T a, T b) {
  if constexpr (kRel == Relation::kEqual) return a == b;
  if constexpr (kRel == Relation::kLess) return a < b;
  if constexpr (kRel == Relation::kGreater) return a > b;
  if constexpr (kRel == Relation::kLessOrEqual) return a <= b;
  if constexpr (kRel == Relation::kGreaterOrEqual) return a >= b;
  if constexpr (kRel == Relation::kAnd) return a && b;
  if constexpr (kRel == Relation::kOr) return a || b;
  return a != b;  // kXor, on bool
}

template <Relation kRel>
class RelationKernel : public FastKernel {
 public:
  bool run(ops::KernelContext& ctx) const override {
    const ir::Tensor& a = ctx.input(0);
    const ir::Tensor& b = ctx.input(1);
    if (a.dtype() != b.dtype()) return false;  // the reference says why
    if (kRel >= Relation::kAnd && a.dtype() != ir::DType::kBool) return false;
    switch (a.dtype()) {
      case ir::DType::kFloat32:
        return run_typed<float>(ctx, a, b);
      case ir::DType::kInt64:
        return run_typed<int64_t>(ctx, a, b);
      case ir::DType::kInt32:
        return run_typed<int32_t>(ctx, a, b);
      case ir::DType::kBool:
        return run_typed<bool>(ctx, a, b);
      default:
        return false;
    }
  }

 private:
  template <class T>
  static bool run_typed(ops::KernelContext& ctx, const ir::Tensor& a, const ir::Tensor& b) {
    ir::Dims out_shape;
    BroadcastPlan p;
    if (!plan_broadcast(a.shape(), b.shape(), out_shape, p)) return false;
    ir::Tensor y = ctx.make_tensor(ir::DType::kBool, out_shape);
    if (y.numel() > 0) {
      const T* ap = a.data<T>();
      const T* bp = b.data<T>();
      bool* yp = y.data<bool>();
      const size_t last = p.rank - 1;
      const int64_t inner = p.size[last], rows = y.numel() / inner;
      const bool parallel = y.numel() >= kCompareParallelElements && rows > 1 && omp_get_max_threads() > 1 &&
                            !omp_in_parallel();
      parallel_for_static(parallel, rows, [&](int64_t r) {
        int64_t oa, ob;
        broadcast_row_offsets(p, r, oa, ob);
        broadcast_inner_run(ap + oa, p.sa[last], bp + ob, p.sb[last], yp + r * inner, inner,
                            [](T u, T v) { return relate<kRel>(u, v); });
      });
    }
    ctx.set_output(0, std::move(y));
    return true;
  }
};

class NotKernel : public FastKernel {
 public:
  bool run(ops::KernelContext& ctx) const override {
    const ir::Tensor& x = ctx.input(0);
    if (x.dtype() != ir::DType::kBool) return false;
    ir::Tensor y = ctx.make_tensor(ir::DType::kBool, x.shape());
    const bool* xp = x.data<bool>();
    bool* yp = y.data<bool>();
    for (int64_t i = 0; i < x.numel(); ++i) yp[i] = !xp[i];
    ctx.set_output(0, std::move(y));
    return true;
  }
  std::vector<size_t> in_place_inputs() const override { return {0}; }
};

template <Relation kRel>
std::unique_ptr<FastKernel> make_relation(const ir::Node&, const ir::Graph&, int64_t) {
  return std::make_unique<RelationKernel<kRel>>();
}

std::unique_ptr<FastKernel> make_not(const ir::Node&, const ir::Graph&, int64_t) {
  return std::make_unique<NotKernel>();
}

}  // namespace

std::span<const FastKernelEntry> comparison_kernel_entries() {
  constexpr uint64_t kNumbers = dtype_set({ir::DType::kFloat32, ir::DType::kInt64, ir::DType::kInt32});
  constexpr uint64_t kEqualTypes = dtype_set({ir::DType::kFloat32, ir::DType::kInt64, ir::DType::kInt32, ir::DType::kBool});
  constexpr uint64_t kBool = dtype_set({ir::DType::kBool});
  // From opset 7 on: numpy broadcasting (before it, the `broadcast` and `axis` attributes).
  static const FastKernelEntry kEntries[] = {
      {"", "Equal", 7, kLatestOpset, kEqualTypes, make_relation<Relation::kEqual>},
      {"", "Less", 7, kLatestOpset, kNumbers, make_relation<Relation::kLess>},
      {"", "Greater", 7, kLatestOpset, kNumbers, make_relation<Relation::kGreater>},
      {"", "LessOrEqual", 12, kLatestOpset, kNumbers, make_relation<Relation::kLessOrEqual>},
      {"", "GreaterOrEqual", 12, kLatestOpset, kNumbers, make_relation<Relation::kGreaterOrEqual>},
      {"", "And", 7, kLatestOpset, kBool, make_relation<Relation::kAnd>},
      {"", "Or", 7, kLatestOpset, kBool, make_relation<Relation::kOr>},
      {"", "Xor", 7, kLatestOpset, kBool, make_relation<Relation::kXor>},
      {"", "Not", 1, kLatestOpset, kBool, make_not},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

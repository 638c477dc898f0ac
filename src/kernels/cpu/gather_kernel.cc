// Gather along any axis, with int32 or int64 indices (negative ones count from the end; a scalar index
// drops the axis), for every element type of 1, 2, 4 or 8 bytes: the output is outer x indices blocks,
// each block the `inner` elements that follow one index along the axis, contiguous in both tensors, so
// each is one copy (memcpy when long). Blocks are split across the OpenMP team for large outputs.
// Embedding lookups (rows of a [vocab, hidden] table), attention's head picks and the small gathers of
// shape arithmetic all take this path. Left to the reference, which says what is wrong: indices out of
// range or of other integer types, empty outputs, strings.
#include <cstring>
#include <vector>

#include "kernels/cpu/element_copy.h"
#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// Rows [begin, end) of y viewed as [outer * count, inner]: row r copies x's row (r / count) * dim +
// index[r % count] of the same view; every index already checked and made non-negative by `wrap`.
template <class W, class I>
void gather_blocks(const W* x, W* y, const I* index, int64_t count, int64_t dim, int64_t inner, int64_t begin,
                   int64_t end) {
  int64_t o = begin / count, i = begin % count;
  for (int64_t r = begin; r < end; ++r) {
    int64_t at = static_cast<int64_t>(index[i]);
    if (at < 0) at += dim;
    copy_run(y + r * inner, x + (o * dim + at) * inner, inner);
    if (++i == count) {
      i = 0;
      ++o;
    }
  }
}

// Whether every index lies in [-dim, dim).
template <class I>
bool gather_indices_in_range(const I* index, int64_t count, int64_t dim) {
  for (int64_t i = 0; i < count; ++i)
    if (index[i] < -dim || index[i] >= dim) return false;
  return true;
}

class GatherKernel : public FastKernel {
 public:
  explicit GatherKernel(int64_t axis) : axis_(axis) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0) || !ctx.has_input(1) || !movable(ctx.input(0).dtype())) return false;
    const ir::Tensor &x = ctx.input(0), &ind = ctx.input(1);
    const bool i64 = ind.dtype() == ir::DType::kInt64;
    if (!i64 && ind.dtype() != ir::DType::kInt32) return false;
    const ir::Dims& s = x.shape();
    const auto rank = static_cast<int64_t>(s.size());
    if (rank == 0 || axis_ < -rank || axis_ >= rank) return false;
    const auto axis = static_cast<size_t>(axis_ < 0 ? axis_ + rank : axis_);
    const int64_t count = ind.numel(), dim = s[axis];
    const bool in_range = i64 ? gather_indices_in_range(ind.data<int64_t>(), count, dim)
                              : gather_indices_in_range(ind.data<int32_t>(), count, dim);
    if (!in_range) return false;
    ir::Dims out_shape(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(axis));
    out_shape.insert(out_shape.end(), ind.shape().begin(), ind.shape().end());
    out_shape.insert(out_shape.end(), s.begin() + static_cast<std::ptrdiff_t>(axis) + 1, s.end());
    int64_t outer = 1, inner = 1;
    for (size_t d = 0; d < axis; ++d) outer *= s[d];
    for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
    if (outer * count * inner == 0) return false;
    ir::Tensor y = ctx.make_tensor(x.dtype(), out_shape);
    const bool parallel = worth_threads(static_cast<int64_t>(y.nbytes()), kCopyParallelBytes);
    visit_word(ir::dtype_size(x.dtype()), [&]<class W>() {
      const W* in = static_cast<const W*>(x.raw());
      W* out = static_cast<W*>(y.raw());
      parallel_for_ranges(parallel, outer * count, [&](int64_t begin, int64_t end) {
        if (i64)
          gather_blocks(in, out, ind.data<int64_t>(), count, dim, inner, begin, end);
        else
          gather_blocks(in, out, ind.data<int32_t>(), count, dim, inner, begin, end);
      });
    });
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  int64_t axis_;
};

std::unique_ptr<FastKernel> make_gather(const ir::Node& n, const ir::Graph&, int64_t opset) {
  return std::make_unique<GatherKernel>(ops::NodeView(n, opset).attr_int("axis", 0));
}

}  // namespace

std::span<const FastKernelEntry> gather_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"", "Gather", 1, kLatestOpset, kMovableTypes, make_gather},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

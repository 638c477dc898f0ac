// Pad, every opset (pads as an attribute before opset 11, as an input from 11, axes from 18) and every
// mode (constant, reflect, edge, and wrap from 19), for every element type of 1, 2, 4 or 8 bytes: the
// padded values are copies of input elements or of the constant, so each type moves as bytes.
//
// The output is walked as rows: the innermost axis that is padded (or cropped) with every axis inside it,
// whose unpadded extent is one contiguous `unit` of elements in both tensors. A row is then its begin pad
// (the constant, or units copied from within the row's source), one run copied with memcpy from the
// input, and its end pad. The axes outside the row pick each row's source row through the same per-axis
// map (or the constant, filling the whole row), so swin's window padding of [N, H, W, C] on H and W is
// rows of W * C elements, each one memcpy and two fills. Negative pads crop first, the remaining pads then
// fill from the cropped range, as the reference does (numpy's order). Rows are split across the OpenMP
// team for large outputs. Left to the reference, which says what is wrong: invalid pads, axes or modes,
// empty inputs or outputs, strings, ranks above kPadMaxDims.
#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cpu/element_copy.h"
#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

constexpr size_t kPadMaxDims = 8;

enum class PadFastMode { kConstant, kReflect, kEdge, kWrap };

using PadInts = SmallInts<2 * kPadMaxDims>;

// One axis of the pad: the input's [lo, lo + kept) survives the crop; begin / end elements are added
// before and after it.
struct PadAxis {
  int64_t lo = 0, kept = 0, begin = 0, end = 0;
  int64_t out() const { return begin + kept + end; }
};

// The input index that output position o of the axis copies, or -1 for the constant (the reference's
// pad_map, one position at a time).
inline int64_t pad_source_index(const PadAxis& a, PadFastMode mode, int64_t o) {
  int64_t j = o - a.begin;
  const int64_t m = a.kept;
  if (j < 0 || j >= m) {
    switch (mode) {
      case PadFastMode::kConstant:
        return -1;
      case PadFastMode::kEdge:
        j = std::clamp<int64_t>(j, 0, m - 1);
        break;
      case PadFastMode::kWrap:
        j = ((j % m) + m) % m;
        break;
      case PadFastMode::kReflect:
        if (m == 1) {
          j = 0;
        } else {
          const int64_t period = 2 * (m - 1);
          j = ((j % period) + period) % period;
          if (j >= m) j = period - j;
        }
        break;
    }
  }
  return j + a.lo;
}

// The pad as rows: `outer` axes (sizes, input strides) pick each row's source; the row is axis `row` of
// the input (in units of `unit` elements).
struct PadPlan {
  size_t outer = 0;
  std::array<PadAxis, kPadMaxDims> axes{};       // the outer axes, then the row's axis
  std::array<int64_t, kPadMaxDims> in_stride{};  // in elements, per outer axis
  int64_t unit = 1;                              // elements per position of the row's axis
  int64_t rows = 1;                              // output rows: the product of the outer axes' out()
};

template <class W>
void fill_run(W* dst, W value, int64_t n) {
  std::fill_n(dst, n, value);
}

// Output rows [begin, end) of y.
template <class W>
void pad_rows(const W* x, W* y, const PadPlan& p, PadFastMode mode, W fill, int64_t begin, int64_t end) {
  const PadAxis& r = p.axes[p.outer];
  const int64_t unit = p.unit, row_len = r.out() * unit;
  std::array<int64_t, kPadMaxDims> idx{};
  int64_t rest = begin;
  for (size_t k = p.outer; k-- > 0;) {
    idx[k] = rest % p.axes[k].out();
    rest /= p.axes[k].out();
  }
  for (int64_t row = begin; row < end; ++row) {
    W* out = y + row * row_len;
    int64_t src = 0;
    bool constant = false;
    for (size_t k = 0; k < p.outer && !constant; ++k) {
      const int64_t j = pad_source_index(p.axes[k], mode, idx[k]);
      constant = j < 0;
      src += j * p.in_stride[k];
    }
    if (constant) {
      fill_run(out, fill, row_len);
    } else {
      const W* in = x + src;
      // Begin and end pads of the row: the constant in one run, else unit by unit from the row's source.
      auto pad_part = [&](int64_t o0, int64_t o1) {
        if (o0 == o1) return;
        if (mode == PadFastMode::kConstant) return fill_run(out + o0 * unit, fill, (o1 - o0) * unit);
        for (int64_t o = o0; o < o1; ++o) copy_run(out + o * unit, in + pad_source_index(r, mode, o) * unit, unit);
      };
      pad_part(0, r.begin);
      copy_run(out + r.begin * unit, in + r.lo * unit, r.kept * unit);
      pad_part(r.begin + r.kept, r.out());
    }
    for (size_t k = p.outer; k-- > 0;) {  // next row: advance the odometer
      if (++idx[k] < p.axes[k].out()) break;
      idx[k] = 0;
    }
  }
}

class PadKernel : public FastKernel {
 public:
  // Before opset 11 the pads (and the constant) are attributes, given here; from 11 on, inputs.
  PadKernel(int64_t opset, PadFastMode mode, std::vector<int64_t> attr_pads, float attr_value)
      : opset_(opset), mode_(mode), attr_pads_(std::move(attr_pads)), attr_value_(attr_value) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0) || !movable(ctx.input(0).dtype())) return false;
    const ir::Tensor& x = ctx.input(0);
    const ir::Dims& s = x.shape();
    const size_t rank = s.size();
    if (rank == 0 || rank > kPadMaxDims || x.numel() == 0) return false;
    std::array<PadAxis, kPadMaxDims> axes{};
    if (!read_pads(ctx, s, axes)) return false;
    ir::Dims out_shape(rank, 0);
    int64_t numel = 1, bytes = 0;
    for (size_t a = 0; a < rank; ++a) {
      out_shape[a] = axes[a].out();
      if (__builtin_mul_overflow(numel, out_shape[a], &numel)) return false;
    }
    // Empty, or over the memory budget: the reference's case, and its message.
    if (numel == 0 || __builtin_mul_overflow(numel, static_cast<int64_t>(ir::dtype_size(x.dtype())), &bytes) ||
        bytes > ctx.limits().max_tensor_bytes)
      return false;
    // The fill word (the reference checks what we do not: a constant_value of another type or size).
    uint64_t fill_bits = 0;
    if (!fill_value(ctx, x.dtype(), fill_bits)) return false;
    // The row's axis: the innermost one that changes; the axes inside it form the unit.
    size_t row_axis = 0;
    bool any = false;
    for (size_t a = rank; a-- > 0;)
      if (axes[a].begin != 0 || axes[a].end != 0 || axes[a].kept != s[a]) {
        row_axis = a;
        any = true;
        break;
      }
    PadPlan plan;
    if (!any) row_axis = 0;  // nothing changes: one row, one copy
    plan.outer = row_axis;
    for (size_t a = rank; a-- > row_axis + 1;) plan.unit *= s[a];
    int64_t stride = plan.unit * s[row_axis];
    for (size_t a = row_axis; a-- > 0;) {
      plan.in_stride[a] = stride;
      stride *= s[a];
    }
    for (size_t a = 0; a <= row_axis; ++a) plan.axes[a] = axes[a];
    for (size_t a = 0; a < row_axis; ++a) plan.rows *= axes[a].out();
    ir::Tensor y = ctx.make_tensor(x.dtype(), out_shape);
    const bool parallel = worth_threads(static_cast<int64_t>(y.nbytes()), kCopyParallelBytes);
    visit_word(ir::dtype_size(x.dtype()), [&]<class W>() {
      W fill;
      std::memcpy(&fill, &fill_bits, sizeof(W));
      const W* in = static_cast<const W*>(x.raw());
      W* out = static_cast<W*>(y.raw());
      parallel_for_ranges(parallel, plan.rows,
                          [&](int64_t begin, int64_t end) { pad_rows(in, out, plan, mode_, fill, begin, end); });
    });
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  // Per axis of x: what survives the crop and what is added; false where the reference should say why.
  bool read_pads(const ops::KernelContext& ctx, const ir::Dims& s, std::array<PadAxis, kPadMaxDims>& axes) const {
    const auto rank = static_cast<int64_t>(s.size());
    PadInts pads, which;
    if (opset_ < 11) {
      if (!small_ints_of(attr_pads_, pads)) return false;
    } else if (!ctx.has_input(1) || !read_small_ints(ctx.input(1), pads)) {
      return false;
    }
    if (opset_ >= 18 && ctx.has_input(3)) {
      if (!read_small_ints(ctx.input(3), which)) return false;
    } else {
      which.count = s.size();
      for (size_t a = 0; a < s.size(); ++a) which.v[a] = static_cast<int64_t>(a);
    }
    const size_t n = which.count;
    if (pads.count != 2 * n) return false;
    std::array<bool, kPadMaxDims> seen{};
    std::array<int64_t, kPadMaxDims> begin{}, end{};
    for (size_t i = 0; i < n; ++i) {
      int64_t a = which.v[i];
      if (a < -rank || a >= rank) return false;
      if (a < 0) a += rank;
      const auto ax = static_cast<size_t>(a);
      if (seen[ax]) return false;
      seen[ax] = true;
      begin[ax] = pads.v[i];
      end[ax] = pads.v[i + n];
    }
    for (size_t a = 0; a < s.size(); ++a) {
      PadAxis& p = axes[a];
      // Far beyond any tensor that fits in memory: the reference reports the overflow.
      constexpr int64_t kHuge = int64_t{1} << 40;
      if (std::abs(begin[a]) > kHuge || std::abs(end[a]) > kHuge) return false;
      p.lo = std::max<int64_t>(0, -begin[a]);
      p.kept = s[a] - p.lo - std::max<int64_t>(0, -end[a]);
      p.begin = std::max<int64_t>(0, begin[a]);
      p.end = std::max<int64_t>(0, end[a]);
      if (p.kept < 0) return false;
      if (p.kept == 0 && p.out() > 0 && mode_ != PadFastMode::kConstant) return false;
    }
    return true;
  }

  // The constant's bits, in the low bytes of `bits`: the constant_value input (opset 11 on), else the
  // value attribute converted as the reference converts it.
  bool fill_value(const ops::KernelContext& ctx, ir::DType dtype, uint64_t& bits) const {
    bits = 0;
    if (mode_ != PadFastMode::kConstant) return true;
    if (opset_ >= 11) {
      if (!ctx.has_input(2)) return true;
      const ir::Tensor& v = ctx.input(2);
      if (v.numel() != 1 || v.dtype() != dtype) return false;
      std::memcpy(&bits, v.raw(), ir::dtype_size(dtype));
      return true;
    }
    ir::visit_numeric_dtype(dtype, [&]<class T>() {
      const T v = static_cast<T>(attr_value_);
      std::memcpy(&bits, &v, sizeof(T));
    });
    return true;
  }

  int64_t opset_;
  PadFastMode mode_;
  std::vector<int64_t> attr_pads_;
  float attr_value_;
};

std::unique_ptr<FastKernel> make_pad(const ir::Node& n, const ir::Graph&, int64_t opset) {
  ops::NodeView v(n, opset);
  const std::string m = v.attr_string("mode", "constant");
  PadFastMode mode;
  if (m == "constant")
    mode = PadFastMode::kConstant;
  else if (m == "reflect")
    mode = PadFastMode::kReflect;
  else if (m == "edge")
    mode = PadFastMode::kEdge;
  else if (m == "wrap" && opset >= 19)
    mode = PadFastMode::kWrap;
  else
    return nullptr;  // the reference says why
  std::vector<int64_t> pads;
  if (opset < 11) {
    const char* name = opset < 2 ? "paddings" : "pads";
    if (!v.has_attr(name)) return nullptr;
    pads = v.attr_ints(name);
  }
  return std::make_unique<PadKernel>(opset, mode, std::move(pads), opset < 11 ? v.attr_float("value", 0.0f) : 0.0f);
}

}  // namespace

std::span<const FastKernelEntry> pad_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"", "Pad", 1, kLatestOpset, kMovableTypes, make_pad},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

// Ops that rearrange elements by position: Transpose, Concat, Split, Slice, Tile, Expand, Pad,
// CenterCropPad, DepthToSpace, SpaceToDepth, ReverseSequence, Trilu, Col2Im.
#include <algorithm>
#include <limits>

#include "kernels/reference/tensor_util.h"

namespace kiln::ops::tensor_detail {

namespace {

using ir::Dim;
using ir::DType;
using ir::Shape;
using ir::Tensor;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// out[o] = src[sum over axes of maps[a][o_a] * stride_a], or `fill` where some maps[a][o_a] is -1.
// Serves Slice, Tile, Expand, Pad and CenterCropPad, whose output index along each axis depends only
// on the input index along that axis.
Tensor remap(const KernelContext& ctx, const Tensor& src, const std::vector<std::vector<int64_t>>& maps,
             const Tensor* fill) {
  size_t rank = maps.size();
  std::vector<int64_t> out_shape(rank);
  for (size_t a = 0; a < rank; ++a) out_shape[a] = static_cast<int64_t>(maps[a].size());
  Tensor out = ctx.make_tensor(src.dtype(), out_shape);
  int64_t n = out.numel();
  if (n == 0) return out;
  std::vector<int64_t> strides = ir::strides_of(src.shape());
  visit_storage(src.dtype(), [&]<class S>() {
    const S* in = storage<S>(src);
    S* o = storage<S>(out);
    S fill_value{};
    if (fill) fill_value = storage<S>(*fill)[0];
    std::vector<size_t> idx(rank, 0);
    for (int64_t k = 0; k < n; ++k) {
      int64_t off = 0;
      bool filled = false;
      for (size_t a = 0; a < rank; ++a) {
        int64_t m = maps[a][idx[a]];
        if (m < 0) {
          filled = true;
          break;
        }
        off += m * strides[a];
      }
      o[k] = filled ? fill_value : in[off];
      for (size_t a = rank; a-- > 0;) {
        if (++idx[a] < maps[a].size()) break;
        idx[a] = 0;
      }
    }
  });
  return out;
}

// Fails like make_tensor when an output of this shape would exceed the budget, and also when the
// per-axis index maps would (an empty output can still have one huge axis).
void check_budget(const KernelContext& ctx, DType dtype, const std::vector<int64_t>& shape) {
  int64_t n = 1, dims = 0, bytes = 0;
  for (int64_t d : shape) {
    if (d < 0) ctx.fail("negative dimension ", d, " in output shape ", ir::to_string(shape));
    if (__builtin_mul_overflow(n, d, &n) || __builtin_add_overflow(dims, d, &dims)) n = -1;
    if (n < 0) break;
  }
  if (n < 0 || __builtin_mul_overflow(n, static_cast<int64_t>(ir::dtype_size(dtype)), &bytes) ||
      bytes > ctx.limits().max_tensor_bytes || dims > ctx.limits().max_tensor_bytes / 8)
    ctx.fail("output of shape ", ir::to_string(shape), " (", ir::dtype_name(dtype),
             ") would need more than the memory budget of ", ctx.limits().max_tensor_bytes, " bytes");
}

std::vector<int64_t> identity_map(int64_t n) {
  std::vector<int64_t> m(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) m[static_cast<size_t>(i)] = i;
  return m;
}

// A known 1-D integer input's length at inference time, from its value or its static shape.
std::optional<int64_t> known_length(const InferenceContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return std::nullopt;
  const auto& s = ctx.input_type(i).shape;
  if (s && s->rank() == 1 && s->dims[0].is_static()) return s->dims[0].value;
  return std::nullopt;
}

// ---- Transpose ----

std::vector<int64_t> transpose_perm(const NodeView& node, size_t rank) {
  std::vector<int64_t> perm = node.attr_ints("perm");
  if (!node.has_attr("perm")) {
    for (size_t i = rank; i-- > 0;) perm.push_back(static_cast<int64_t>(i));
    return perm;
  }
  if (perm.size() != rank) node.fail("perm ", ir::to_string(perm), " does not match input rank ", rank);
  std::vector<bool> seen(rank, false);
  for (int64_t& p : perm) {
    p = normalize_axis(node, p, static_cast<int64_t>(rank));
    if (seen[static_cast<size_t>(p)]) node.fail("perm ", ir::to_string(perm), " is not a permutation");
    seen[static_cast<size_t>(p)] = true;
  }
  return perm;
}

void transpose_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.set_output(0, permute(ctx, x, x.shape(), transpose_perm(ctx, x.rank())));
}

void transpose_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (!in.shape) {
    std::optional<Shape> out;
    if (ctx.has_attr("perm")) out = Shape(std::vector<Dim>(ctx.attr_ints("perm").size()));
    ctx.set_output(0, in.dtype, out);
    return;
  }
  Shape out;
  for (int64_t p : transpose_perm(ctx, in.shape->rank())) out.dims.push_back(in.shape->dims[static_cast<size_t>(p)]);
  ctx.set_output(0, in.dtype, out);
}

// ---- Concat ----

int64_t concat_axis_attr(const NodeView& node) {
  if (node.opset() < 4) return node.attr_int("axis", 1);
  return node.attr_int("axis");
}

void concat_kernel(KernelContext& ctx) {
  std::vector<const Tensor*> xs;
  for (size_t i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i)) xs.push_back(&ctx.input(i));
  if (xs.empty()) ctx.fail("needs at least one input");
  const Tensor& first = *xs[0];
  int64_t rank = static_cast<int64_t>(first.rank());
  if (rank == 0) ctx.fail("cannot concatenate scalars");
  auto axis = static_cast<size_t>(normalize_axis(ctx, concat_axis_attr(ctx), rank));
  std::vector<int64_t> out_shape = first.shape();
  out_shape[axis] = 0;
  for (const Tensor* x : xs) {
    if (x->dtype() != first.dtype())
      ctx.fail("inputs have different element types ", ir::dtype_name(first.dtype()), " and ",
               ir::dtype_name(x->dtype()));
    bool ok = x->rank() == first.rank();
    for (size_t d = 0; ok && d < first.rank(); ++d) ok = d == axis || x->dim(d) == first.dim(d);
    if (!ok)
      ctx.fail("cannot concatenate shapes ", ir::to_string(first.shape()), " and ", ir::to_string(x->shape()),
               " along axis ", axis);
    out_shape[axis] += x->dim(axis);
  }
  Tensor out = ctx.make_tensor(first.dtype(), out_shape);
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= out_shape[d];
  for (size_t d = axis + 1; d < out_shape.size(); ++d) inner *= out_shape[d];
  int64_t out_row = out_shape[axis] * inner;
  visit_storage(first.dtype(), [&]<class S>() {
    S* o = storage<S>(out);
    int64_t col = 0;
    for (const Tensor* x : xs) {
      const S* in = storage<S>(*x);
      int64_t row = x->dim(axis) * inner;
      for (int64_t r = 0; r < outer; ++r) std::copy(in + r * row, in + (r + 1) * row, o + r * out_row + col);
      col += row;
    }
  });
  ctx.set_output(0, out);
}

void concat_infer(InferenceContext& ctx) {
  DType dtype = DType::kUndefined;
  std::optional<Shape> out;
  bool axis_known = true;
  int64_t axis_sum = 0;
  std::optional<size_t> axis;
  std::vector<const Shape*> shapes;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    const ir::Type& t = ctx.input_type(i);
    if (dtype == DType::kUndefined)
      dtype = t.dtype;
    else if (t.dtype != DType::kUndefined && t.dtype != dtype)
      ctx.fail("inputs have different element types ", ir::dtype_name(dtype), " and ", ir::dtype_name(t.dtype));
    if (!t.shape) {
      axis_known = false;
      continue;
    }
    shapes.push_back(&*t.shape);
  }
  if (shapes.empty()) {
    ctx.set_output(0, dtype, std::nullopt);
    return;
  }
  size_t rank = shapes[0]->rank();
  if (rank == 0) ctx.fail("cannot concatenate scalars");
  axis = static_cast<size_t>(normalize_axis(ctx, concat_axis_attr(ctx), static_cast<int64_t>(rank)));
  out = Shape(std::vector<Dim>(rank));
  for (const Shape* s : shapes) {
    if (s->rank() != rank) ctx.fail("cannot concatenate ranks ", rank, " and ", s->rank());
    for (size_t d = 0; d < rank; ++d) {
      const Dim& x = s->dims[d];
      if (d == *axis) {
        if (x.is_static())
          axis_sum += x.value;
        else
          axis_known = false;
        continue;
      }
      Dim& o = out->dims[d];
      if (x.is_static() && o.is_static() && x.value != o.value)
        ctx.fail("cannot concatenate shapes ", ir::to_string(*shapes[0]), " and ", ir::to_string(*s), " along axis ",
                 *axis);
      if (!o.is_static() && (x.is_static() || !o.is_symbolic())) o = x;
    }
  }
  if (axis_known) out->dims[*axis] = Dim(axis_sum);
  ctx.set_output(0, dtype, out);
}

// ---- Split ----

// Sizes along the axis, one per output; `dim` is the axis length when known.
std::optional<std::vector<int64_t>> split_sizes(const NodeView& node, std::optional<std::vector<int64_t>> given,
                                                std::optional<int64_t> dim, size_t num_outputs) {
  if (given) {
    if (given->size() != num_outputs)
      node.fail("split ", ir::to_string(*given), " has ", given->size(), " sizes for ", num_outputs, " outputs");
    int64_t sum = 0;
    for (int64_t s : *given) {
      if (s < 0) node.fail("split ", ir::to_string(*given), " has a negative size");
      sum += s;
    }
    if (dim && sum != *dim) node.fail("split ", ir::to_string(*given), " does not add up to the axis length ", *dim);
    return given;
  }
  auto n = static_cast<int64_t>(num_outputs);
  if (node.opset() >= 18 && node.has_attr("num_outputs")) {
    int64_t attr = node.attr_int("num_outputs");
    if (attr != n) node.fail("num_outputs is ", attr, " but the node has ", n, " outputs");
  }
  if (n <= 0) node.fail("needs at least one output");
  if (!dim) return std::nullopt;
  if (*dim % n == 0) return std::vector<int64_t>(num_outputs, *dim / n);
  if (node.opset() < 18) node.fail("cannot split an axis of length ", *dim, " into ", n, " equal parts");
  int64_t chunk = (*dim + n - 1) / n;  // opset 18: the last chunk is smaller
  int64_t last = *dim - chunk * (n - 1);
  if (last < 0) node.fail("cannot split an axis of length ", *dim, " into ", n, " chunks of ", chunk);
  std::vector<int64_t> sizes(num_outputs, chunk);
  sizes.back() = last;
  return sizes;
}

std::optional<std::vector<int64_t>> split_given(const KernelContext& ctx) {
  if (ctx.opset() >= 13 || (ctx.opset() < 2 && ctx.has_input(1))) {
    if (!ctx.has_input(1)) return std::nullopt;
    return int_values(ctx, ctx.input(1), "split");
  }
  if (!ctx.has_attr("split")) return std::nullopt;
  return ctx.attr_ints("split");
}

void split_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  auto axis = static_cast<size_t>(normalize_axis(ctx, ctx.attr_int("axis", 0), static_cast<int64_t>(x.rank())));
  std::vector<int64_t> sizes = *split_sizes(ctx, split_given(ctx), x.dim(axis), ctx.num_outputs());
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= x.dim(d);
  for (size_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  int64_t in_row = x.dim(axis) * inner, col = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    int64_t row = sizes[k] * inner;
    if (ctx.has_output(k)) {
      std::vector<int64_t> shape = x.shape();
      shape[axis] = sizes[k];
      Tensor out = ctx.make_tensor(x.dtype(), shape);
      visit_storage(x.dtype(), [&]<class S>() {
        const S* in = storage<S>(x);
        S* o = storage<S>(out);
        for (int64_t r = 0; r < outer; ++r) std::copy(in + r * in_row + col, in + r * in_row + col + row, o + r * row);
      });
      ctx.set_output(k, out);
    }
    col += row;
  }
}

void split_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  std::optional<std::vector<int64_t>> given;
  bool given_unknown = false;
  if (ctx.opset() >= 13 || (ctx.opset() < 2 && ctx.has_input(1))) {
    if (ctx.has_input(1)) {
      given = known_ints(ctx, 1);
      given_unknown = !given;
    }
  } else if (ctx.has_attr("split")) {
    given = ctx.attr_ints("split");
  }
  if (!in.shape) {
    for (size_t k = 0; k < ctx.num_outputs(); ++k) ctx.set_output(k, in.dtype, std::nullopt);
    return;
  }
  auto axis = static_cast<size_t>(normalize_axis(ctx, ctx.attr_int("axis", 0), static_cast<int64_t>(in.shape->rank())));
  const Dim& d = in.shape->dims[axis];
  std::optional<std::vector<int64_t>> sizes;
  if (!given_unknown)
    sizes = split_sizes(ctx, given, d.is_static() ? std::optional<int64_t>(d.value) : std::nullopt, ctx.num_outputs());
  for (size_t k = 0; k < ctx.num_outputs(); ++k) {
    Shape s = *in.shape;
    s.dims[axis] = sizes ? Dim((*sizes)[k]) : Dim();
    ctx.set_output(k, in.dtype, s);
  }
}

// ---- Slice ----

struct SliceParams {
  std::vector<int64_t> starts, ends, axes, steps;
  bool has_axes = false;
};

SliceParams slice_params_kernel(const KernelContext& ctx) {
  SliceParams p;
  if (ctx.opset() < 10) {
    p.starts = ctx.attr_ints("starts");
    p.ends = ctx.attr_ints("ends");
    p.has_axes = ctx.has_attr("axes");
    p.axes = ctx.attr_ints("axes");
  } else {
    p.starts = int_values(ctx, ctx.input(1), "starts");
    p.ends = int_values(ctx, ctx.input(2), "ends");
    p.has_axes = ctx.has_input(3);
    if (p.has_axes) p.axes = int_values(ctx, ctx.input(3), "axes");
    if (ctx.has_input(4)) p.steps = int_values(ctx, ctx.input(4), "steps");
  }
  return p;
}

// Normalizes axes and steps against the rank and checks the lengths agree.
void check_slice_params(const NodeView& node, SliceParams& p, int64_t rank) {
  if (p.ends.size() != p.starts.size())
    node.fail("starts ", ir::to_string(p.starts), " and ends ", ir::to_string(p.ends), " differ in length");
  if (!p.has_axes) {
    p.axes.clear();
    for (size_t i = 0; i < p.starts.size(); ++i) p.axes.push_back(static_cast<int64_t>(i));
  }
  if (p.axes.size() != p.starts.size())
    node.fail("axes ", ir::to_string(p.axes), " and starts ", ir::to_string(p.starts), " differ in length");
  if (p.steps.empty()) p.steps.assign(p.starts.size(), 1);
  if (p.steps.size() != p.starts.size())
    node.fail("steps ", ir::to_string(p.steps), " and starts ", ir::to_string(p.starts), " differ in length");
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  const std::vector<int64_t> given_axes = p.axes;
  for (size_t i = 0; i < p.axes.size(); ++i) {
    p.axes[i] = normalize_axis(node, p.axes[i], rank);
    if (seen[static_cast<size_t>(p.axes[i])]) node.fail("axes ", ir::to_string(given_axes), " repeat an axis");
    seen[static_cast<size_t>(p.axes[i])] = true;
    if (p.steps[i] == 0) node.fail("steps must not be zero");
  }
}

struct SliceAxis {
  int64_t start = 0, step = 1, count = 0;
};

// numpy slicing with ONNX's clamping: starts and ends beyond the bounds are clamped.
SliceAxis slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step) {
  SliceAxis s;
  s.step = step;
  if (dim == 0) return s;
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    s.count = end > start ? (end - start - 1) / step + 1 : 0;
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
    s.count = start > end ? (end - start + 1) / step + 1 : 0;
  }
  s.start = start;
  return s;
}

void slice_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  SliceParams p = slice_params_kernel(ctx);
  check_slice_params(ctx, p, static_cast<int64_t>(x.rank()));
  std::vector<std::vector<int64_t>> maps;
  for (size_t a = 0; a < x.rank(); ++a) maps.push_back(identity_map(x.dim(a)));
  for (size_t i = 0; i < p.axes.size(); ++i) {
    auto a = static_cast<size_t>(p.axes[i]);
    SliceAxis s = slice_axis(x.dim(a), p.starts[i], p.ends[i], p.steps[i]);
    maps[a].resize(static_cast<size_t>(s.count));
    for (int64_t k = 0; k < s.count; ++k) maps[a][static_cast<size_t>(k)] = s.start + k * s.step;
  }
  ctx.set_output(0, remap(ctx, x, maps, nullptr));
}

void slice_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (!in.shape) {
    ctx.set_output(0, in.dtype, std::nullopt);
    return;
  }
  auto rank = static_cast<int64_t>(in.shape->rank());
  SliceParams p;
  bool known = true;
  if (ctx.opset() < 10) {
    p.starts = ctx.attr_ints("starts");
    p.ends = ctx.attr_ints("ends");
    p.has_axes = ctx.has_attr("axes");
    p.axes = ctx.attr_ints("axes");
  } else {
    for (size_t i = 1; i < 5; ++i)
      if (ctx.has_input(i)) check_index_dtype(ctx, ctx.input_type(i).dtype, "starts, ends, axes and steps");
    auto starts = known_ints(ctx, 1), ends = known_ints(ctx, 2);
    std::optional<std::vector<int64_t>> axes, steps;
    p.has_axes = ctx.has_input(3);
    if (p.has_axes) axes = known_ints(ctx, 3);
    if (ctx.has_input(4)) steps = known_ints(ctx, 4);
    known = starts && ends && (!p.has_axes || axes) && (!ctx.has_input(4) || steps);
    if (known) {
      p.starts = *starts;
      p.ends = *ends;
      if (axes) p.axes = *axes;
      if (steps) p.steps = *steps;
    } else if (p.has_axes && axes) {
      // Only the named axes change.
      Shape out = *in.shape;
      for (int64_t a : *axes) out.dims[static_cast<size_t>(normalize_axis(ctx, a, rank))] = Dim();
      ctx.set_output(0, in.dtype, out);
      return;
    }
  }
  if (!known) {
    ctx.set_output(0, in.dtype, Shape(std::vector<Dim>(static_cast<size_t>(rank))));
    return;
  }
  check_slice_params(ctx, p, rank);
  Shape out = *in.shape;
  for (size_t i = 0; i < p.axes.size(); ++i) {
    Dim& d = out.dims[static_cast<size_t>(p.axes[i])];
    if (d.is_static()) {
      d = Dim(slice_axis(d.value, p.starts[i], p.ends[i], p.steps[i]).count);
    } else if (!(p.starts[i] == 0 && p.steps[i] == 1 && p.ends[i] >= (kInt64Max >> 1))) {
      d = Dim();  // a whole-axis slice keeps the symbol; anything else depends on the value
    }
  }
  ctx.set_output(0, in.dtype, out);
}

// ---- Tile ----

std::vector<int64_t> tile_repeats(const KernelContext& ctx, size_t rank) {
  const Tensor& r = ctx.input(1);
  std::vector<int64_t> reps = int_values(ctx, r, "repeats");
  if (r.rank() != 1 || reps.size() != rank)
    ctx.fail("repeats must be 1-D with one value per input dimension (", rank, "), got shape ",
             ir::to_string(r.shape()));
  for (int64_t v : reps)
    if (v < 0) ctx.fail("repeats ", ir::to_string(reps), " has a negative value");
  return reps;
}

void tile_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> reps = tile_repeats(ctx, x.rank());
  std::vector<int64_t> out_shape(x.rank());
  for (size_t a = 0; a < x.rank(); ++a)
    if (__builtin_mul_overflow(x.dim(a), reps[a], &out_shape[a])) ctx.fail("output shape overflows int64");
  check_budget(ctx, x.dtype(), out_shape);
  std::vector<std::vector<int64_t>> maps(x.rank());
  for (size_t a = 0; a < x.rank(); ++a) {
    maps[a].resize(static_cast<size_t>(out_shape[a]));
    for (int64_t i = 0; i < out_shape[a]; ++i) maps[a][static_cast<size_t>(i)] = i % x.dim(a);
  }
  ctx.set_output(0, remap(ctx, x, maps, nullptr));
}

void tile_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  check_index_dtype(ctx, ctx.input_type(1).dtype, "repeats");
  auto reps = known_ints(ctx, 1);
  if (!in.shape) {
    auto n = reps ? std::optional<int64_t>(static_cast<int64_t>(reps->size())) : known_length(ctx, 1);
    ctx.set_output(0, in.dtype,
                   n ? std::optional<Shape>(Shape(std::vector<Dim>(static_cast<size_t>(*n)))) : std::nullopt);
    return;
  }
  Shape out = *in.shape;
  if (!reps) {
    for (auto& d : out.dims) d = Dim();
  } else {
    if (reps->size() != out.rank())
      ctx.fail("repeats must have one value per input dimension (", out.rank(), "), got ", ir::to_string(*reps));
    for (size_t a = 0; a < out.rank(); ++a) {
      int64_t r = (*reps)[a];
      if (r < 0) ctx.fail("repeats ", ir::to_string(*reps), " has a negative value");
      Dim& d = out.dims[a];
      if (d.is_static()) {
        int64_t v;
        d = __builtin_mul_overflow(d.value, r, &v) ? Dim() : Dim(v);
      } else if (r == 0) {
        d = Dim(0);
      } else if (r != 1) {
        d = Dim();
      }
    }
  }
  ctx.set_output(0, in.dtype, out);
}

// ---- Expand ----

std::vector<int64_t> expand_target(const KernelContext& ctx) {
  const Tensor& s = ctx.input(1);
  if (s.rank() != 1) ctx.fail("shape must be 1-D, got shape ", ir::to_string(s.shape()));
  std::vector<int64_t> v = int_values(ctx, s, "shape");
  for (int64_t d : v)
    if (d < 0) ctx.fail("shape ", ir::to_string(v), " has a negative dimension");
  return v;
}

void expand_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> out_shape = broadcast_shapes(ctx, {x.shape(), expand_target(ctx)});
  check_budget(ctx, x.dtype(), out_shape);
  // Per-axis maps over a view of x with leading 1s: no per-element offset table.
  std::vector<int64_t> in_shape(out_shape.size() - x.rank(), 1);
  in_shape.insert(in_shape.end(), x.shape().begin(), x.shape().end());
  std::vector<std::vector<int64_t>> maps;
  for (size_t a = 0; a < out_shape.size(); ++a)
    maps.push_back(in_shape[a] == 1 ? std::vector<int64_t>(static_cast<size_t>(out_shape[a]), 0)
                                    : identity_map(out_shape[a]));
  ctx.set_output(0, remap(ctx, x.reshaped(in_shape), maps, nullptr));
}

void expand_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  check_index_dtype(ctx, ctx.input_type(1).dtype, "shape");
  if (auto v = known_ints(ctx, 1)) {
    for (int64_t d : *v)
      if (d < 0) ctx.fail("shape ", ir::to_string(*v), " has a negative dimension");
    ctx.set_output(0, in.dtype, broadcast_shapes(ctx, {in.shape, Shape::of(*v)}));
    return;
  }
  auto n = known_length(ctx, 1);
  if (!in.shape || !n) {
    ctx.set_output(0, in.dtype, std::nullopt);
    return;
  }
  size_t rank = std::max(in.shape->rank(), static_cast<size_t>(*n));
  Shape out{std::vector<Dim>(rank)};
  size_t off = rank - in.shape->rank();
  for (size_t i = 0; i < in.shape->rank(); ++i) {
    const Dim& d = in.shape->dims[i];
    if (d.is_static() && d.value != 1) out.dims[off + i] = d;  // the shape can only say 1 or the same
  }
  ctx.set_output(0, in.dtype, out);
}

// ---- Pad ----

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

PadMode pad_mode(const NodeView& node) {
  std::string m = node.attr_string("mode", "constant");
  if (m == "constant") return PadMode::kConstant;
  if (m == "reflect") return PadMode::kReflect;
  if (m == "edge") return PadMode::kEdge;
  if (m == "wrap" && node.opset() >= 19) return PadMode::kWrap;
  node.fail("unsupported mode \"", m, "\"");
}

// Pads per input axis as (begin, end), from the attribute (opset < 11) or the pads and axes inputs.
std::vector<std::pair<int64_t, int64_t>> pad_amounts(const NodeView& node, std::vector<int64_t> pads,
                                                     std::optional<std::vector<int64_t>> axes, int64_t rank) {
  std::vector<int64_t> ax;
  if (axes) {
    for (int64_t a : *axes) ax.push_back(normalize_axis(node, a, rank));
  } else {
    for (int64_t a = 0; a < rank; ++a) ax.push_back(a);
  }
  if (pads.size() != 2 * ax.size())
    node.fail("pads ", ir::to_string(pads), " must have 2 values per padded axis (", ax.size(), " axes)");
  std::vector<std::pair<int64_t, int64_t>> out(static_cast<size_t>(rank), {0, 0});
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (size_t i = 0; i < ax.size(); ++i) {
    auto a = static_cast<size_t>(ax[i]);
    if (seen[a]) node.fail("axes repeat axis ", a);
    seen[a] = true;
    out[a] = {pads[i], pads[i + ax.size()]};
  }
  return out;
}

// For one axis of length `dim`: the source index of each output position, -1 for the constant.
// Negative pads crop first; the remaining pads then fill from the cropped range, as numpy does.
std::vector<int64_t> pad_map(const NodeView& node, int64_t dim, int64_t begin, int64_t end, PadMode mode) {
  int64_t lo = std::max<int64_t>(0, -begin), hi = dim - std::max<int64_t>(0, -end);
  int64_t m = hi - lo, pb = std::max<int64_t>(0, begin), pe = std::max<int64_t>(0, end);
  if (m < 0) node.fail("pads ", begin, " and ", end, " crop more than the axis length ", dim);
  int64_t n = m + pb + pe;
  if (m == 0 && n > 0 && mode != PadMode::kConstant) node.fail("cannot pad an empty axis in mode other than constant");
  std::vector<int64_t> map(static_cast<size_t>(n));
  for (int64_t o = 0; o < n; ++o) {
    int64_t j = o - pb;
    if (j < 0 || j >= m) {
      switch (mode) {
        case PadMode::kConstant:
          j = -1;
          break;
        case PadMode::kEdge:
          j = std::clamp<int64_t>(j, 0, m - 1);
          break;
        case PadMode::kWrap:
          j = ((j % m) + m) % m;
          break;
        case PadMode::kReflect:
          if (m == 1) {
            j = 0;
          } else {
            int64_t period = 2 * (m - 1);
            j = ((j % period) + period) % period;
            if (j >= m) j = period - j;
          }
          break;
      }
    }
    map[static_cast<size_t>(o)] = j < 0 ? -1 : j + lo;
  }
  return map;
}

// The fill value as a one-element tensor of the input's type.
Tensor pad_fill(const KernelContext& ctx, DType dtype) {
  if (ctx.opset() >= 11) {
    if (ctx.has_input(2)) {
      const Tensor& v = ctx.input(2);
      if (v.numel() != 1) ctx.fail("constant_value must hold one value, got shape ", ir::to_string(v.shape()));
      if (v.dtype() != dtype)
        ctx.fail("constant_value has type ", ir::dtype_name(v.dtype()), ", the input ", ir::dtype_name(dtype));
      return v;
    }
    return Tensor(dtype, {});
  }
  float value = ctx.attr_float("value", 0.0f);
  Tensor t(dtype, {});
  ir::visit_dtype(dtype, [&]<class T>() {
    if constexpr (!std::is_same_v<T, std::string>) *t.data<T>() = static_cast<T>(value);
  });
  return t;
}

void pad_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  auto rank = static_cast<int64_t>(x.rank());
  std::vector<int64_t> pads;
  std::optional<std::vector<int64_t>> axes;
  if (ctx.opset() < 2)
    pads = ctx.attr_ints("paddings");
  else if (ctx.opset() < 11)
    pads = ctx.attr_ints("pads");
  else
    pads = int_values(ctx, ctx.input(1), "pads");
  if (ctx.opset() >= 18 && ctx.has_input(3)) axes = int_values(ctx, ctx.input(3), "axes");
  auto amounts = pad_amounts(ctx, pads, axes, rank);
  PadMode mode = pad_mode(ctx);
  std::vector<int64_t> out_shape(x.rank());
  for (size_t a = 0; a < x.rank(); ++a) {
    int64_t n = 0;
    if (__builtin_add_overflow(x.dim(a), amounts[a].first, &n) || __builtin_add_overflow(n, amounts[a].second, &n))
      ctx.fail("pads ", ir::to_string(pads), " make the output too large");
    if (n < 0) ctx.fail("pads ", ir::to_string(pads), " crop more than the input shape ", ir::to_string(x.shape()));
    out_shape[a] = n;
  }
  check_budget(ctx, x.dtype(), out_shape);
  std::vector<std::vector<int64_t>> maps;
  for (size_t a = 0; a < x.rank(); ++a)
    maps.push_back(pad_map(ctx, x.dim(a), amounts[a].first, amounts[a].second, mode));
  Tensor fill = pad_fill(ctx, x.dtype());
  ctx.set_output(0, remap(ctx, x, maps, &fill));
}

void pad_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (!in.shape) {
    ctx.set_output(0, in.dtype, std::nullopt);
    return;
  }
  auto rank = static_cast<int64_t>(in.shape->rank());
  std::optional<std::vector<int64_t>> pads, axes;
  bool axes_unknown = false;
  if (ctx.opset() < 2) {
    pads = ctx.attr_ints("paddings");
  } else if (ctx.opset() < 11) {
    pads = ctx.attr_ints("pads");
  } else {
    check_index_dtype(ctx, ctx.input_type(1).dtype, "pads");
    pads = known_ints(ctx, 1);
    if (ctx.opset() >= 18 && ctx.has_input(3)) {
      axes = known_ints(ctx, 3);
      axes_unknown = !axes;
    }
  }
  pad_mode(ctx);
  if (!pads || axes_unknown) {
    ctx.set_output(0, in.dtype, Shape(std::vector<Dim>(static_cast<size_t>(rank))));
    return;
  }
  auto amounts = pad_amounts(ctx, *pads, axes, rank);
  Shape out = *in.shape;
  for (size_t a = 0; a < out.rank(); ++a) {
    auto [b, e] = amounts[a];
    Dim& d = out.dims[a];
    if (d.is_static()) {
      int64_t v;
      if (__builtin_add_overflow(d.value, b, &v) || __builtin_add_overflow(v, e, &v)) v = -1;
      if (v < 0) ctx.fail("pads ", ir::to_string(*pads), " crop more than the axis length ", d.value);
      d = Dim(v);
    } else if (b != 0 || e != 0) {
      d = Dim();
    }
  }
  ctx.set_output(0, in.dtype, out);
}

// ---- CenterCropPad ----

std::vector<int64_t> crop_axes(const NodeView& node, int64_t rank, size_t n) {
  std::vector<int64_t> axes;
  if (node.has_attr("axes")) {
    for (int64_t a : node.attr_ints("axes")) axes.push_back(normalize_axis(node, a, rank));
  } else {
    for (int64_t a = 0; a < rank; ++a) axes.push_back(a);
  }
  if (axes.size() != n) node.fail("shape has ", n, " values for ", axes.size(), " axes");
  std::vector<int64_t> sorted = axes;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) node.fail("axes repeat an axis");
  return axes;
}

void center_crop_pad_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> target = int_values(ctx, ctx.input(1), "shape");
  std::vector<int64_t> axes = crop_axes(ctx, static_cast<int64_t>(x.rank()), target.size());
  std::vector<int64_t> out_shape = x.shape();
  for (size_t i = 0; i < axes.size(); ++i) {
    if (target[i] < 0) ctx.fail("shape ", ir::to_string(target), " has a negative dimension");
    out_shape[static_cast<size_t>(axes[i])] = target[i];
  }
  check_budget(ctx, x.dtype(), out_shape);
  std::vector<std::vector<int64_t>> maps;
  for (size_t a = 0; a < x.rank(); ++a) maps.push_back(identity_map(x.dim(a)));
  for (size_t i = 0; i < axes.size(); ++i) {
    auto a = static_cast<size_t>(axes[i]);
    int64_t d = x.dim(a), t = target[i];
    std::vector<int64_t> m(static_cast<size_t>(t), -1);
    // Crop starts at floor((d - t) / 2); pad puts floor((t - d) / 2) before.
    int64_t shift = t <= d ? (d - t) / 2 : -((t - d) / 2);
    for (int64_t o = 0; o < t; ++o) {
      int64_t j = o + shift;
      if (j >= 0 && j < d) m[static_cast<size_t>(o)] = j;
    }
    maps[a] = std::move(m);
  }
  Tensor fill(x.dtype(), {});
  ctx.set_output(0, remap(ctx, x, maps, &fill));
}

void center_crop_pad_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  auto target = known_ints(ctx, 1);
  if (!in.shape) {
    ctx.set_output(0, in.dtype, std::nullopt);
    return;
  }
  Shape out = *in.shape;
  if (!target) {
    if (ctx.has_attr("axes")) {
      for (int64_t a : ctx.attr_ints("axes"))
        out.dims[static_cast<size_t>(normalize_axis(ctx, a, static_cast<int64_t>(out.rank())))] = Dim();
    } else {
      for (auto& d : out.dims) d = Dim();
    }
  } else {
    auto axes = crop_axes(ctx, static_cast<int64_t>(out.rank()), target->size());
    for (size_t i = 0; i < axes.size(); ++i) {
      if ((*target)[i] < 0) ctx.fail("shape ", ir::to_string(*target), " has a negative dimension");
      out.dims[static_cast<size_t>(axes[i])] = Dim((*target)[i]);
    }
  }
  ctx.set_output(0, in.dtype, out);
}

// ---- DepthToSpace / SpaceToDepth ----

int64_t blocksize(const NodeView& node) {
  int64_t b = node.attr_int("blocksize");
  if (b <= 0 || b > (int64_t{1} << 20)) node.fail("blocksize ", b, " must be in [1, 2^20]");
  return b;
}

bool crd_mode(const NodeView& node) {
  std::string mode = node.opset() >= 11 ? node.attr_string("mode", "DCR") : "DCR";
  if (mode != "DCR" && mode != "CRD") node.fail("mode must be DCR or CRD, got \"", mode, "\"");
  return mode == "CRD";
}

void depth_to_space_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t b = blocksize(ctx);
  if (x.rank() != 4) ctx.fail("input must be 4-D, got shape ", ir::to_string(x.shape()));
  int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  if (c % (b * b) != 0) ctx.fail("channels ", c, " are not divisible by blocksize squared (", b * b, ")");
  int64_t oc = c / (b * b);
  Tensor t = crd_mode(ctx) ? permute(ctx, x, {n, oc, b, b, h, w}, {0, 1, 4, 2, 5, 3})
                           : permute(ctx, x, {n, b, b, oc, h, w}, {0, 3, 4, 1, 5, 2});
  ctx.set_output(0, t.reshaped({n, oc, h * b, w * b}));
}

void space_to_depth_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t b = blocksize(ctx);
  if (x.rank() != 4) ctx.fail("input must be 4-D, got shape ", ir::to_string(x.shape()));
  int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  if (h % b != 0 || w % b != 0) ctx.fail("spatial dims ", h, "x", w, " are not divisible by blocksize ", b);
  Tensor t = permute(ctx, x, {n, c, h / b, b, w / b, b}, {0, 3, 5, 1, 2, 4});
  ctx.set_output(0, t.reshaped({n, c * b * b, h / b, w / b}));
}

void depth_space_infer(InferenceContext& ctx, bool to_space) {
  const ir::Type& in = ctx.input_type(0);
  int64_t b = blocksize(ctx);
  if (to_space) crd_mode(ctx);
  if (!in.shape) {
    ctx.set_output(0, in.dtype, Shape(std::vector<Dim>(4)));
    return;
  }
  if (in.shape->rank() != 4) ctx.fail("input must be 4-D, got rank ", in.shape->rank());
  Shape out = *in.shape;
  auto divide = [&](Dim& d, int64_t by) {
    if (!d.is_static()) return;
    if (d.value % by != 0) ctx.fail("dimension ", d.value, " is not divisible by ", by);
    d = Dim(d.value / by);
  };
  auto multiply = [&](Dim& d, int64_t by) { d = d.is_static() ? Dim(d.value * by) : Dim(); };
  if (to_space) {
    divide(out.dims[1], b * b);
    multiply(out.dims[2], b);
    multiply(out.dims[3], b);
  } else {
    multiply(out.dims[1], b * b);
    divide(out.dims[2], b);
    divide(out.dims[3], b);
  }
  for (size_t i = 1; i < 4; ++i)
    if (!in.shape->dims[i].is_static()) out.dims[i] = Dim();
  ctx.set_output(0, in.dtype, out);
}

// ---- ReverseSequence ----

void reverse_sequence_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& lens_t = ctx.input(1);
  if (x.rank() < 2) ctx.fail("input must have rank 2 or more, got shape ", ir::to_string(x.shape()));
  int64_t batch_axis = ctx.attr_int("batch_axis", 1), time_axis = ctx.attr_int("time_axis", 0);
  if (!((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0)))
    ctx.fail("batch_axis and time_axis must be 0 and 1 in some order, got ", batch_axis, " and ", time_axis);
  std::vector<int64_t> lens = int_values(ctx, lens_t, "sequence_lens");
  int64_t batch = x.dim(static_cast<size_t>(batch_axis)), steps = x.dim(static_cast<size_t>(time_axis));
  if (lens_t.rank() != 1 || static_cast<int64_t>(lens.size()) != batch)
    ctx.fail("sequence_lens must be 1-D of the batch size ", batch, ", got shape ", ir::to_string(lens_t.shape()));
  for (int64_t l : lens)
    if (l < 0 || l > steps) ctx.fail("sequence length ", l, " is outside [0, ", steps, "]");
  std::vector<int64_t> strides = ir::strides_of(x.shape());
  int64_t inner = strides[1];
  int64_t bs = strides[static_cast<size_t>(batch_axis)], ts = strides[static_cast<size_t>(time_axis)];
  Tensor out = ctx.make_tensor(x.dtype(), x.shape());
  visit_storage(x.dtype(), [&]<class S>() {
    const S* in = storage<S>(x);
    S* o = storage<S>(out);
    for (int64_t bi = 0; bi < batch; ++bi) {
      for (int64_t t = 0; t < steps; ++t) {
        int64_t src_t = t < lens[static_cast<size_t>(bi)] ? lens[static_cast<size_t>(bi)] - 1 - t : t;
        const S* from = in + bi * bs + src_t * ts;
        std::copy(from, from + inner, o + bi * bs + t * ts);
      }
    }
  });
  ctx.set_output(0, out);
}

// ---- Trilu ----

void trilu_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) ctx.fail("input must have rank 2 or more, got shape ", ir::to_string(x.shape()));
  int64_t k = ctx.has_input(1) ? int_scalar(ctx, ctx.input(1), "k") : 0;
  bool upper = ctx.attr_int("upper", 1) != 0;
  int64_t rows = x.dim(x.rank() - 2), cols = x.dim(x.rank() - 1);
  k = std::clamp<int64_t>(k, -rows - 1, cols + 1);  // beyond these every element is kept or zeroed
  Tensor out = ctx.make_tensor(x.dtype(), x.shape());
  int64_t mats = rows * cols == 0 ? 0 : x.numel() / (rows * cols);
  visit_storage(x.dtype(), [&]<class S>() {
    const S* in = storage<S>(x);
    S* o = storage<S>(out);
    for (int64_t m = 0; m < mats; ++m)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          bool keep = upper ? j - i >= k : j - i <= k;
          int64_t off = (m * rows + i) * cols + j;
          if (keep) o[off] = in[off];
        }
  });
  ctx.set_output(0, out);
}

// ---- Col2Im ----

void col2im_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> image = int_values(ctx, ctx.input(1), "image_shape");
  std::vector<int64_t> block = int_values(ctx, ctx.input(2), "block_shape");
  size_t nd = image.size();
  if (nd == 0 || block.size() != nd)
    ctx.fail("image_shape ", ir::to_string(image), " and block_shape ", ir::to_string(block), " must have one length");
  if (x.rank() != 3) ctx.fail("input must be 3-D [N, C*prod(block_shape), L], got shape ", ir::to_string(x.shape()));
  std::vector<int64_t> dil = ctx.attr_ints("dilations", std::vector<int64_t>(nd, 1));
  std::vector<int64_t> strides = ctx.attr_ints("strides", std::vector<int64_t>(nd, 1));
  std::vector<int64_t> pads = ctx.attr_ints("pads", std::vector<int64_t>(2 * nd, 0));
  if (dil.size() != nd || strides.size() != nd || pads.size() != 2 * nd)
    ctx.fail("dilations, strides and pads must have ", nd, ", ", nd, " and ", 2 * nd, " values");
  int64_t block_size = 1, positions = 1;
  std::vector<int64_t> counts(nd);
  for (size_t d = 0; d < nd; ++d) {
    if (image[d] <= 0 || block[d] <= 0 || dil[d] <= 0 || strides[d] <= 0 || pads[d] < 0 || pads[d + nd] < 0)
      ctx.fail("image_shape, block_shape, dilations and strides must be positive and pads non-negative");
    // Bounded so that the span and position arithmetic below cannot overflow.
    constexpr int64_t kLimit = int64_t{1} << 31;
    if (image[d] > kLimit || block[d] > kLimit || dil[d] > kLimit || pads[d] > kLimit || pads[d + nd] > kLimit)
      ctx.fail("image_shape, block_shape, dilations and pads must be at most 2^31");
    int64_t span = dil[d] * (block[d] - 1) + 1;
    int64_t avail = image[d] + pads[d] + pads[d + nd];
    if (avail < span) ctx.fail("block ", block[d], " with dilation ", dil[d], " does not fit the padded image");
    counts[d] = (avail - span) / strides[d] + 1;
    if (__builtin_mul_overflow(block_size, block[d], &block_size) ||
        __builtin_mul_overflow(positions, counts[d], &positions))
      ctx.fail("block or position count overflows");
  }
  int64_t n = x.dim(0);
  if (x.dim(1) % block_size != 0)
    ctx.fail("input dimension 1 (", x.dim(1), ") is not a multiple of the block size ", block_size);
  if (x.dim(2) != positions)
    ctx.fail("input dimension 2 (", x.dim(2), ") must equal the number of block positions ", positions);
  int64_t c = x.dim(1) / block_size;
  std::vector<int64_t> out_shape = {n, c};
  out_shape.insert(out_shape.end(), image.begin(), image.end());
  Tensor out = ctx.make_tensor(x.dtype(), out_shape);
  int64_t image_size = Tensor::checked_numel(image);
  std::vector<int64_t> img_strides = ir::strides_of(image);
  ir::visit_numeric_dtype(x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    T* o = out.data<T>();
    std::vector<int64_t> kb(nd), pos(nd);
    for (int64_t b = 0; b < n * c; ++b) {
      T* img = o + b * image_size;
      for (int64_t k = 0; k < block_size; ++k) {
        for (int64_t r = k, d = static_cast<int64_t>(nd); d-- > 0;) {
          kb[static_cast<size_t>(d)] = r % block[static_cast<size_t>(d)];
          r /= block[static_cast<size_t>(d)];
        }
        const T* col = in + (b * block_size + k) * positions;
        for (int64_t l = 0; l < positions; ++l) {
          int64_t off = 0;
          bool inside = true;
          for (int64_t r = l, d = static_cast<int64_t>(nd); d-- > 0;) {
            auto du = static_cast<size_t>(d);
            int64_t p = r % counts[du];
            r /= counts[du];
            int64_t y = p * strides[du] - pads[du] + kb[du] * dil[du];
            if (y < 0 || y >= image[du]) inside = false;
            off += y * img_strides[du];
          }
          if (inside) img[off] = static_cast<T>(img[off] + col[l]);
        }
      }
    }
  });
  ctx.set_output(0, out);
}

void col2im_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (in.shape && in.shape->rank() != 3) ctx.fail("input must be 3-D, got rank ", in.shape->rank());
  auto image = known_ints(ctx, 1);
  auto block = known_ints(ctx, 2);
  std::optional<int64_t> nd =
      image ? std::optional<int64_t>(static_cast<int64_t>(image->size())) : known_length(ctx, 1);
  if (!nd) {
    ctx.set_output(0, in.dtype, std::nullopt);
    return;
  }
  Shape out{std::vector<Dim>(static_cast<size_t>(*nd) + 2)};
  if (in.shape) {
    out.dims[0] = in.shape->dims[0];
    int64_t bs = 1;
    bool ok = block.has_value();
    if (block)
      for (int64_t v : *block) ok = ok && v > 0 && !__builtin_mul_overflow(bs, v, &bs);
    if (ok && in.shape->dims[1].is_static() && in.shape->dims[1].value % bs == 0)
      out.dims[1] = Dim(in.shape->dims[1].value / bs);
  }
  if (image)
    for (size_t d = 0; d < image->size(); ++d) out.dims[d + 2] = Dim((*image)[d]);
  ctx.set_output(0, in.dtype, out);
}

void same_shape_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  ctx.set_output(0, in.dtype, in.shape);
}

}  // namespace

void register_layout_ops(OpRegistry& r) {
  r.add(OpDef{"", "Transpose", 1, kMaxOnnxOpset, transpose_infer, transpose_kernel});
  r.add(OpDef{"", "Concat", 1, kMaxOnnxOpset, concat_infer, concat_kernel});
  r.add(OpDef{"", "Split", 1, kMaxOnnxOpset, split_infer, split_kernel});
  r.add(OpDef{"", "Slice", 1, kMaxOnnxOpset, slice_infer, slice_kernel});
  r.add(OpDef{"", "Tile", 6, kMaxOnnxOpset, tile_infer, tile_kernel});
  r.add(OpDef{"", "Expand", 8, kMaxOnnxOpset, expand_infer, expand_kernel});
  r.add(OpDef{"", "Pad", 1, kMaxOnnxOpset, pad_infer, pad_kernel});
  r.add(OpDef{"", "CenterCropPad", 18, kMaxOnnxOpset, center_crop_pad_infer, center_crop_pad_kernel});
  r.add(OpDef{"", "DepthToSpace", 1, kMaxOnnxOpset, [](InferenceContext& c) { depth_space_infer(c, true); },
              depth_to_space_kernel});
  r.add(OpDef{"", "SpaceToDepth", 1, kMaxOnnxOpset, [](InferenceContext& c) { depth_space_infer(c, false); },
              space_to_depth_kernel});
  r.add(OpDef{"", "ReverseSequence", 10, kMaxOnnxOpset, same_shape_infer, reverse_sequence_kernel});
  r.add(OpDef{"", "Trilu", 14, kMaxOnnxOpset, same_shape_infer, trilu_kernel});
  r.add(OpDef{"", "Col2Im", 18, kMaxOnnxOpset, col2im_infer, col2im_kernel});
}

}  // namespace kiln::ops::tensor_detail

#include "kernels/reference/common.h"

namespace kiln::ops {

int64_t normalize_axis(const NodeView& node, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1)) node.fail("axis ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> broadcast_shapes(const NodeView& node, const std::vector<std::vector<int64_t>>& shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  std::vector<int64_t> out(rank, 1);
  for (const auto& s : shapes) {
    size_t off = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t d = s[i];
      int64_t& o = out[off + i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string all;
      for (const auto& t : shapes) all += (all.empty() ? "" : " and ") + ir::to_string(t);
      node.fail("cannot broadcast shapes ", all);
    }
  }
  return out;
}

std::optional<ir::Shape> broadcast_shapes(const NodeView& node, const std::vector<std::optional<ir::Shape>>& shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) {
    if (!s) return std::nullopt;
    rank = std::max(rank, s->rank());
  }
  ir::Shape out;
  out.dims.assign(rank, ir::Dim(1));
  for (const auto& s : shapes) {
    size_t off = rank - s->rank();
    for (size_t i = 0; i < s->rank(); ++i) {
      const ir::Dim& d = s->dims[i];
      ir::Dim& o = out.dims[off + i];
      if (d.is_static() && d.value == 1) continue;
      if (o.is_static() && o.value == 1) {
        o = d;
        continue;
      }
      if (d == o) continue;
      if (d.is_static() && o.is_static()) {
        node.fail("cannot broadcast dimension ", d.value, " with ", o.value);
      }
      // An unknown dim is 1 or equal to the other side, so the other side's value stands; a static
      // non-1 value wins over a symbol; two different symbols give an unknown dim.
      const bool d_unknown = !d.is_static() && d.symbol.empty();
      const bool o_unknown = !o.is_static() && o.symbol.empty();
      if (d_unknown) continue;
      if (o_unknown || d.is_static())
        o = d;
      else if (!o.is_static())
        o = ir::Dim();
    }
  }
  return out;
}

std::vector<int64_t> broadcast_offsets(const std::vector<int64_t>& in_shape, const std::vector<int64_t>& out_shape) {
  size_t rank = out_shape.size();
  std::vector<int64_t> in_strides(rank, 0);
  {
    std::vector<int64_t> s = ir::strides_of(in_shape);
    size_t off = rank - in_shape.size();
    for (size_t i = 0; i < in_shape.size(); ++i) in_strides[off + i] = in_shape[i] == 1 ? 0 : s[i];
  }
  int64_t n = 1;
  for (int64_t d : out_shape) n *= d;
  std::vector<int64_t> offsets(static_cast<size_t>(n));
  std::vector<int64_t> idx(rank, 0);
  int64_t cur = 0;
  for (int64_t k = 0; k < n; ++k) {
    offsets[static_cast<size_t>(k)] = cur;
    for (size_t i = rank; i-- > 0;) {
      ++idx[i];
      cur += in_strides[i];
      if (idx[i] < out_shape[i]) break;
      cur -= in_strides[i] * idx[i];
      idx[i] = 0;
    }
  }
  return offsets;
}

void infer_same_as_input(InferenceContext& ctx) {
  if (ctx.num_outputs() > 0) ctx.set_output_type(0, ctx.input_type(0));
}

void infer_broadcast(InferenceContext& ctx, std::optional<ir::DType> out_dtype) {
  std::vector<std::optional<ir::Shape>> shapes;
  ir::DType dtype = ir::DType::kUndefined;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    const ir::Type& t = ctx.input_type(i);
    shapes.push_back(t.shape);
    if (dtype == ir::DType::kUndefined) dtype = t.dtype;
  }
  ctx.set_output(0, out_dtype.value_or(dtype), broadcast_shapes(ctx, shapes));
}

void infer_dtype_only(InferenceContext& ctx, size_t output, ir::DType dtype, std::optional<size_t> rank) {
  std::optional<ir::Shape> shape;
  if (rank) shape = ir::Shape(std::vector<ir::Dim>(*rank));
  ctx.set_output(output, dtype, shape);
}

std::optional<std::vector<int64_t>> static_shape(const ir::Type& t) {
  if (!t.shape || !t.shape->is_static()) return std::nullopt;
  return t.shape->values();
}

}  // namespace kiln::ops

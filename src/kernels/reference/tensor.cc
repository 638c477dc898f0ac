// Shape and data-movement ops. The ops live in tensor_shape.cc, tensor_layout.cc and tensor_index.cc;
// this file registers them and holds the helpers they share (tensor_util.h).
#include <algorithm>
#include <cstring>

#include "kernels/reference/tensor_util.h"

namespace kiln::ops {

namespace tensor_detail {

void gather_by_offsets(const ir::Tensor& src, ir::Tensor& dst, const std::vector<int64_t>& map) {
  visit_storage(src.dtype(), [&]<class S>() {
    const S* in = storage<S>(src);
    S* out = storage<S>(dst);
    for (size_t i = 0; i < map.size(); ++i) out[i] = in[map[i]];
  });
}

ir::Tensor permute(const KernelContext& ctx, const ir::Tensor& src, const std::vector<int64_t>& in_shape,
                   const std::vector<int64_t>& perm) {
  size_t rank = in_shape.size();
  std::vector<int64_t> out_shape(rank), in_strides = ir::strides_of(in_shape), step(rank);
  for (size_t i = 0; i < rank; ++i) {
    out_shape[i] = in_shape[static_cast<size_t>(perm[i])];
    step[i] = in_strides[static_cast<size_t>(perm[i])];
  }
  ir::Tensor out = ctx.make_tensor(src.dtype(), out_shape);
  int64_t n = out.numel();
  if (n == 0) return out;
  visit_storage(src.dtype(), [&]<class S>() {
    const S* in = storage<S>(src);
    S* o = storage<S>(out);
    std::vector<int64_t> idx(rank, 0);
    int64_t cur = 0;
    for (int64_t k = 0; k < n; ++k) {
      o[k] = in[cur];
      for (size_t i = rank; i-- > 0;) {
        ++idx[i];
        cur += step[i];
        if (idx[i] < out_shape[i]) break;
        cur -= step[i] * idx[i];
        idx[i] = 0;
      }
    }
  });
  return out;
}

std::vector<int64_t> int_values(const NodeView& node, const ir::Tensor& t, const char* what) {
  if (!ir::is_integer(t.dtype())) node.fail(what, " must be an integer tensor, got ", ir::dtype_name(t.dtype()));
  return t.to_int64_vector();
}

int64_t int_scalar(const NodeView& node, const ir::Tensor& t, const char* what) {
  if (t.numel() != 1) node.fail(what, " must hold one value, got shape ", ir::to_string(t.shape()));
  return int_values(node, t, what)[0];
}

std::optional<std::vector<int64_t>> known_ints(const InferenceContext& ctx, size_t i) {
  const ir::Tensor* v = ctx.has_input(i) ? ctx.input_value(i) : nullptr;
  if (!v || !ir::is_integer(v->dtype())) return std::nullopt;
  return v->to_int64_vector();
}

ir::Dim dim_product(const std::vector<ir::Dim>& dims) {
  int64_t p = 1;
  bool all_static = true;
  const ir::Dim* symbol = nullptr;
  int non_one = 0;
  for (const auto& d : dims) {
    if (d.is_static()) {
      if (d.value == 0) return ir::Dim(0);
      if (__builtin_mul_overflow(p, d.value, &p)) all_static = false;
      if (d.value != 1) ++non_one;
    } else {
      all_static = false;
      ++non_one;
      if (d.is_symbolic()) symbol = &d;
    }
  }
  if (all_static) return ir::Dim(p);
  if (non_one == 1 && symbol) return *symbol;
  return ir::Dim();
}

const std::optional<ir::Shape>& input_shape(const InferenceContext& ctx, size_t i) { return ctx.input_type(i).shape; }

void check_index_dtype(const NodeView& node, ir::DType t, const char* what) {
  if (t != ir::DType::kUndefined && !ir::is_integer(t))
    node.fail(what, " must be an integer tensor, got ", ir::dtype_name(t));
}

}  // namespace tensor_detail

void register_tensor_ops(OpRegistry& r) {
  tensor_detail::register_shape_ops(r);
  tensor_detail::register_layout_ops(r);
  tensor_detail::register_index_ops(r);
}

}  // namespace kiln::ops

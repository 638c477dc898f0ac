// Helpers for the data-movement ops (kernels/reference/tensor*.cc): these ops copy elements without
// looking at them, so they dispatch on storage size rather than on element type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/reference/common.h"
#include "ops/registry.h"

namespace kiln::ops::tensor_detail {

// Storage of a complex128 element: moved as bytes, never interpreted.
struct Bytes16 {
  uint64_t lo, hi;
};

// Calls f.template operator()<S>() with S an unsigned integer (or Bytes16) of the element's size, or
// std::string for string tensors.
template <class F>
decltype(auto) visit_storage(ir::DType t, F&& f) {
  if (t == ir::DType::kString) return f.template operator()<std::string>();
  if (t == ir::DType::kUndefined) fail("undefined element type");
  switch (ir::dtype_size(t)) {
    case 1:
      return f.template operator()<uint8_t>();
    case 2:
      return f.template operator()<uint16_t>();
    case 4:
      return f.template operator()<uint32_t>();
    case 8:
      return f.template operator()<uint64_t>();
    case 16:
      return f.template operator()<Bytes16>();
    default:
      fail("unsupported element type ", ir::dtype_name(t));
  }
}

template <class S>
S* storage(ir::Tensor& t) {
  return static_cast<S*>(t.raw());
}
template <class S>
const S* storage(const ir::Tensor& t) {
  return static_cast<const S*>(t.raw());
}

// dst[i] = src[map[i]] for every element of dst; map holds offsets into src.
void gather_by_offsets(const ir::Tensor& src, ir::Tensor& dst, const std::vector<int64_t>& map);

// Copy of `src` with its axes permuted: out.shape[i] = in_shape[perm[i]]. `in_shape` may differ from
// src.shape() (same element count): DepthToSpace permutes a 6-d view of a 4-d tensor.
ir::Tensor permute(const KernelContext& ctx, const ir::Tensor& src, const std::vector<int64_t>& in_shape,
                   const std::vector<int64_t>& perm);

// Values of an integer input as int64 (any integer type); fails naming the node for other types.
std::vector<int64_t> int_values(const NodeView& node, const ir::Tensor& t, const char* what);
// The single value of a scalar or one-element tensor.
int64_t int_scalar(const NodeView& node, const ir::Tensor& t, const char* what);

// Integer values of input i when known at inference time.
std::optional<std::vector<int64_t>> known_ints(const InferenceContext& ctx, size_t i);

// Product of dims when static; the single symbol when all other dims are 1; unknown otherwise.
ir::Dim dim_product(const std::vector<ir::Dim>& dims);

// Input i's shape when its rank is known.
const std::optional<ir::Shape>& input_shape(const InferenceContext& ctx, size_t i);

// Fails unless the dtype is an integer type (or undefined, meaning not yet known).
void check_index_dtype(const NodeView& node, ir::DType t, const char* what);

// Sub-family registration, called from register_tensor_ops.
void register_shape_ops(OpRegistry& r);   // Reshape, Flatten, Squeeze, Unsqueeze, Shape, Size, Identity ...
void register_layout_ops(OpRegistry& r);  // Transpose, Concat, Split, Slice, Tile, Expand, Pad, DepthToSpace ...
void register_index_ops(OpRegistry& r);   // Gather*, Scatter*, NonZero, Compress, OneHot, TopK, Unique, CumSum

}  // namespace kiln::ops::tensor_detail

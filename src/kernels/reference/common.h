// Helpers shared by the reference kernels and their shape functions: axis normalization,
// numpy-style broadcasting (concrete and symbolic), and common inference rules.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ir/shape.h"
#include "ir/tensor.h"
#include "ops/op_def.h"

namespace kiln::ops {

// Maps a possibly negative axis into [0, rank); fails naming the node when out of range.
int64_t normalize_axis(const NodeView& node, int64_t axis, int64_t rank);

// numpy broadcasting of concrete shapes; fails naming the node when incompatible.
std::vector<int64_t> broadcast_shapes(const NodeView& node, const std::vector<std::vector<int64_t>>& shapes);
// The same over symbolic shapes; nullopt when some rank is unknown.
std::optional<ir::Shape> broadcast_shapes(const NodeView& node, const std::vector<std::optional<ir::Shape>>& shapes);

// For each output element (row-major over out_shape), the offset into an input of in_shape that
// broadcasts to it. Cheap enough for reference kernels: one vector of offsets.
std::vector<int64_t> broadcast_offsets(const std::vector<int64_t>& in_shape, const std::vector<int64_t>& out_shape);

// Inference rules used by many ops.
void infer_same_as_input(InferenceContext& ctx);  // output 0 = type of input 0
void infer_broadcast(InferenceContext& ctx, std::optional<ir::DType> out_dtype = std::nullopt);  // over all inputs
// Output 0 is a tensor of input 0's dtype (or `dtype`) and unknown shape of known rank (or unknown).
void infer_dtype_only(InferenceContext& ctx, size_t output, ir::DType dtype, std::optional<size_t> rank = std::nullopt);

// Shape of a tensor type as a concrete vector when fully static.
std::optional<std::vector<int64_t>> static_shape(const ir::Type& t);

}  // namespace kiln::ops

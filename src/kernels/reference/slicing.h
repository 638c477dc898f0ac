// Taking one slice along an axis and stacking slices back: shared by Scan, Loop and the sequence ops.
#pragma once

#include <vector>

#include "ir/tensor.h"

namespace kiln::ops {

// The index-th slice of t along axis, with that axis removed.
ir::Tensor take_slice(const ir::Tensor& t, int64_t axis, int64_t index);
// Stacks equally shaped tensors along a new axis at position `axis`.
ir::Tensor stack_tensors(const std::vector<ir::Tensor>& parts, int64_t axis);
// Concatenates tensors along an existing axis.
ir::Tensor concat_tensors(const std::vector<ir::Tensor>& parts, int64_t axis);
// Copies elements between tensors of the same dtype (strings by value).
void copy_elements(const ir::Tensor& src, int64_t src_offset, ir::Tensor& dst, int64_t dst_offset, int64_t count);

}  // namespace kiln::ops

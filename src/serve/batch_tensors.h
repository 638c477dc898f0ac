// Many requests' tensors into one batch along dim 0, and a batch's outputs back into each request's rows;
// token inputs padded along their sequence dim, and outputs cut back to a request's own length.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/shape.h"
#include "ir/tensor.h"

namespace kiln::serve {

// The parts one after another along dim 0; they must share the dtype and every other dim.
ir::Tensor stack_rows(const std::vector<const ir::Tensor*>& parts);
// Rows [begin, begin + count) of dim 0, copied.
ir::Tensor slice_rows(const ir::Tensor& t, int64_t begin, int64_t count);
// `t` with dim `axis` grown to `length`, the new places zero (numeric dtypes only).
ir::Tensor pad_axis(const ir::Tensor& t, size_t axis, int64_t length);
// The first `length` places of dim `axis`, copied (numeric dtypes only).
ir::Tensor truncate_axis(const ir::Tensor& t, size_t axis, int64_t length);

}  // namespace kiln::serve

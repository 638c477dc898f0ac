#include "serve/batch_tensors.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace kiln::serve {

ir::Tensor stack_rows(const std::vector<const ir::Tensor*>& parts) {
  if (parts.empty()) fail("stack_rows: nothing to stack");
  const ir::Tensor& first = *parts.front();
  if (first.rank() == 0) fail("stack_rows: a scalar has no rows");
  ir::Dims shape = first.shape();
  shape[0] = 0;
  for (const ir::Tensor* p : parts) {
    bool same = p->dtype() == first.dtype() && p->rank() == first.rank();
    for (size_t d = 1; same && d < first.rank(); ++d) same = p->dim(d) == first.dim(d);
    if (!same) fail("stack_rows: ", ir::to_string(p->shape()), " does not stack with ", ir::to_string(first.shape()));
    shape[0] += p->dim(0);
  }
  ir::Tensor out(first.dtype(), shape);
  if (first.dtype() == ir::DType::kString) {
    std::string* dst = out.data<std::string>();
    for (const ir::Tensor* p : parts)
      for (int64_t i = 0; i < p->numel(); ++i) *dst++ = p->data<std::string>()[i];
    return out;
  }
  auto* dst = static_cast<char*>(out.raw());
  for (const ir::Tensor* p : parts) {
    std::memcpy(dst, p->raw(), p->nbytes());
    dst += p->nbytes();
  }
  return out;
}

ir::Tensor slice_rows(const ir::Tensor& t, int64_t begin, int64_t count) {
  if (t.rank() == 0 || begin < 0 || count < 0 || begin + count > t.dim(0))
    fail("slice_rows: rows [", begin, ", ", begin + count, ") of ", ir::to_string(t.shape()));
  ir::Dims shape = t.shape();
  shape[0] = count;
  ir::Tensor out(t.dtype(), shape);
  const int64_t row = count > 0 ? out.numel() / count : 0;
  if (t.dtype() == ir::DType::kString) {
    for (int64_t i = 0; i < out.numel(); ++i) out.data<std::string>()[i] = t.data<std::string>()[begin * row + i];
    return out;
  }
  const size_t row_bytes = static_cast<size_t>(row) * ir::dtype_size(t.dtype());
  std::memcpy(out.raw(), static_cast<const char*>(t.raw()) + static_cast<size_t>(begin) * row_bytes, out.nbytes());
  return out;
}

// Named, not anonymous: the sanitizer build compiles kiln_core as a unity build.
namespace batch_tensors_detail {

// `t` with dim `axis` resized to `length`: the first min(old, length) places copied, the rest zero.
ir::Tensor resize_axis(const ir::Tensor& t, size_t axis, int64_t length, const char* what) {
  if (axis >= t.rank() || length < 0 || t.dtype() == ir::DType::kString)
    fail(what, ": dim ", axis, " of ", ir::to_string(t.shape()), " to ", length);
  ir::Dims shape = t.shape();
  const int64_t from = shape[axis];
  shape[axis] = length;
  ir::Tensor out(t.dtype(), shape);
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= t.dim(d);
  for (size_t d = axis + 1; d < t.rank(); ++d) inner *= t.dim(d);
  const size_t element = ir::dtype_size(t.dtype());
  const size_t copy = static_cast<size_t>(std::min(from, length) * inner) * element;
  const auto* src = static_cast<const char*>(t.raw());
  auto* dst = static_cast<char*>(out.raw());
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(dst + static_cast<size_t>(o * length * inner) * element,
                src + static_cast<size_t>(o * from * inner) * element, copy);
  return out;
}

}  // namespace batch_tensors_detail

ir::Tensor pad_axis(const ir::Tensor& t, size_t axis, int64_t length) {
  if (axis < t.rank() && length < t.dim(axis)) fail("pad_axis: ", length, " is shorter than ", ir::to_string(t.shape()));
  return batch_tensors_detail::resize_axis(t, axis, length, "pad_axis");
}

ir::Tensor truncate_axis(const ir::Tensor& t, size_t axis, int64_t length) {
  if (axis < t.rank() && length > t.dim(axis)) fail("truncate_axis: ", length, " is longer than ", ir::to_string(t.shape()));
  return batch_tensors_detail::resize_axis(t, axis, length, "truncate_axis");
}

}  // namespace kiln::serve

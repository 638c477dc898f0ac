#include "kernels/reference/slicing.h"

#include <cstring>
#include <string>

#include "ir/shape.h"

namespace kiln::ops {

void copy_elements(const ir::Tensor& src, int64_t src_offset, ir::Tensor& dst, int64_t dst_offset, int64_t count) {
  if (count <= 0) return;
  if (src.dtype() == ir::DType::kString) {
    const std::string* s = src.data<std::string>() + src_offset;
    std::string* d = dst.data<std::string>() + dst_offset;
    for (int64_t i = 0; i < count; ++i) d[i] = s[i];
    return;
  }
  size_t es = ir::dtype_size(src.dtype());
  std::memcpy(static_cast<char*>(dst.raw()) + dst_offset * static_cast<int64_t>(es),
              static_cast<const char*>(src.raw()) + src_offset * static_cast<int64_t>(es),
              static_cast<size_t>(count) * es);
}

ir::Tensor take_slice(const ir::Tensor& t, int64_t axis, int64_t index) {
  KILN_CHECK(axis >= 0 && axis < static_cast<int64_t>(t.rank()), "slice axis ", axis, " out of range for rank ",
             t.rank());
  KILN_CHECK(index >= 0 && index < t.dim(static_cast<size_t>(axis)), "slice index ", index, " out of range");
  std::vector<int64_t> shape = t.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= shape[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(axis) + 1; i < shape.size(); ++i) inner *= shape[i];
  int64_t n = shape[static_cast<size_t>(axis)];
  shape.erase(shape.begin() + axis);
  ir::Tensor out(t.dtype(), shape);
  for (int64_t o = 0; o < outer; ++o) copy_elements(t, (o * n + index) * inner, out, o * inner, inner);
  return out;
}

ir::Tensor stack_tensors(const std::vector<ir::Tensor>& parts, int64_t axis) {
  KILN_CHECK(!parts.empty(), "cannot stack zero tensors");
  const auto& shape0 = parts[0].shape();
  for (const auto& p : parts)
    KILN_CHECK(p.shape() == shape0 && p.dtype() == parts[0].dtype(), "cannot stack tensors of shapes ",
               ir::to_string(shape0), " and ", ir::to_string(p.shape()));
  std::vector<int64_t> unsq = shape0;
  KILN_CHECK(axis >= 0 && axis <= static_cast<int64_t>(unsq.size()), "stack axis ", axis, " out of range");
  unsq.insert(unsq.begin() + axis, 1);
  std::vector<ir::Tensor> reshaped;
  for (const auto& p : parts) reshaped.push_back(p.reshaped(unsq));
  return concat_tensors(reshaped, axis);
}

ir::Tensor concat_tensors(const std::vector<ir::Tensor>& parts, int64_t axis) {
  KILN_CHECK(!parts.empty(), "cannot concatenate zero tensors");
  std::vector<int64_t> shape = parts[0].shape();
  KILN_CHECK(axis >= 0 && axis < static_cast<int64_t>(shape.size()), "concat axis ", axis, " out of range for rank ",
             shape.size());
  int64_t total = 0;
  for (const auto& p : parts) {
    KILN_CHECK(p.rank() == shape.size() && p.dtype() == parts[0].dtype(), "cannot concatenate ", p.dtype(),
               ir::to_string(p.shape()), " with ", parts[0].dtype(), ir::to_string(shape));
    for (size_t i = 0; i < shape.size(); ++i)
      KILN_CHECK(static_cast<int64_t>(i) == axis || p.dim(i) == shape[i], "cannot concatenate shapes ",
                 ir::to_string(p.shape()), " and ", ir::to_string(shape), " along axis ", axis);
    total += p.dim(static_cast<size_t>(axis));
  }
  shape[static_cast<size_t>(axis)] = total;
  ir::Tensor out(parts[0].dtype(), shape);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= shape[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(axis) + 1; i < shape.size(); ++i) inner *= shape[i];
  int64_t offset = 0;
  for (const auto& p : parts) {
    int64_t chunk = p.dim(static_cast<size_t>(axis)) * inner;
    for (int64_t o = 0; o < outer; ++o) copy_elements(p, o * chunk, out, o * total * inner + offset, chunk);
    offset += chunk;
  }
  return out;
}

}  // namespace kiln::ops

#include "ir/shape.h"

namespace kiln::ir {

std::string to_string(const Dim& d) {
  if (d.is_static()) return std::to_string(d.value);
  return d.symbol.empty() ? "?" : d.symbol;
}

std::string to_string(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.dims.size(); ++i) {
    if (i) out += ",";
    out += to_string(s.dims[i]);
  }
  return out + "]";
}

std::string to_string(const Dims& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

std::string to_string(const Type& t) {
  switch (t.kind) {
    case Type::Kind::kTensor:
      return std::string(dtype_name(t.dtype)) + (t.shape ? to_string(*t.shape) : "[...]");
    case Type::Kind::kSequence:
      return "seq(" + (t.elem ? to_string(*t.elem) : "?") + ")";
    case Type::Kind::kOptional:
      return "optional(" + (t.elem ? to_string(*t.elem) : "?") + ")";
    case Type::Kind::kMap:
      return "map";
    case Type::Kind::kSparseTensor:
      return "sparse_tensor";
    default:
      return "?";
  }
}

}  // namespace kiln::ir

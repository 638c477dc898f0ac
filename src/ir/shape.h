// Shapes as the graph knows them: each dimension is a number, a named symbol ("batch"), or unknown.
// Concrete tensors carry ir::Dims (ir/dims.h); this type is for declarations and inference.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/dims.h"
#include "ir/dtype.h"

namespace kiln::ir {

struct Dim {
  int64_t value = -1;  // >= 0 when known
  std::string symbol;  // non-empty for a named symbolic dimension

  Dim() = default;
  Dim(int64_t v) : value(v) {}  // NOLINT: a number is a dimension
  static Dim symbolic(std::string name) {
    Dim d;
    d.symbol = std::move(name);
    return d;
  }
  bool is_static() const { return value >= 0; }
  bool is_symbolic() const { return value < 0 && !symbol.empty(); }
  bool operator==(const Dim& o) const {
    return is_static() ? value == o.value : (o.value < 0 && !symbol.empty() && symbol == o.symbol);
  }
};

// A shape of known rank. Unknown rank is std::optional<Shape> without a value.
struct Shape {
  std::vector<Dim> dims;

  Shape() = default;
  Shape(std::vector<Dim> d) : dims(std::move(d)) {}  // NOLINT
  static Shape of(const Dims& v) {
    Shape s;
    for (int64_t x : v) s.dims.emplace_back(x);
    return s;
  }
  size_t rank() const { return dims.size(); }
  bool is_static() const {
    for (const auto& d : dims)
      if (!d.is_static()) return false;
    return true;
  }
  std::vector<int64_t> values() const {  // -1 where not static
    std::vector<int64_t> v;
    for (const auto& d : dims) v.push_back(d.value);
    return v;
  }
  const Dim& operator[](size_t i) const { return dims[i]; }
  Dim& operator[](size_t i) { return dims[i]; }
  bool operator==(const Shape& o) const { return dims == o.dims; }
};

std::string to_string(const Dim& d);
std::string to_string(const Shape& s);                 // "[batch,128,768]", "?" for unknown dims
std::string to_string(const Dims& s);  // "[1,128,768]"

// The type of a graph value: a tensor, a sequence of tensors, an optional, or unknown.
struct Type {
  enum class Kind { kUnknown, kTensor, kSequence, kOptional, kMap, kSparseTensor };
  Kind kind = Kind::kUnknown;
  DType dtype = DType::kUndefined;  // element type of a tensor
  std::optional<Shape> shape;       // tensor shape, when the rank is known
  std::shared_ptr<Type> elem;       // element type of a sequence or optional

  static Type tensor(DType t, std::optional<Shape> s = std::nullopt) {
    Type ty;
    ty.kind = Kind::kTensor;
    ty.dtype = t;
    ty.shape = std::move(s);
    return ty;
  }
  static Type sequence(Type e) {
    Type ty;
    ty.kind = Kind::kSequence;
    ty.elem = std::make_shared<Type>(std::move(e));
    return ty;
  }
  static Type optional(Type e) {
    Type ty;
    ty.kind = Kind::kOptional;
    ty.elem = std::make_shared<Type>(std::move(e));
    return ty;
  }
  bool is_tensor() const { return kind == Kind::kTensor; }
};

std::string to_string(const Type& t);  // "float32[batch,128]", "seq(float32[?])"

}  // namespace kiln::ir

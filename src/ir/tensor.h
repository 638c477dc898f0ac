// A dense tensor: element type, concrete shape, and storage shared between copies (copying a Tensor
// is cheap and aliases; clone() copies the data). Strings are stored as std::string objects.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ir/dims.h"
#include "ir/dtype.h"

namespace kiln::ir {

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-initialized storage (empty strings for kString), 64-byte aligned.
  Tensor(DType dtype, Dims shape);
  // Wraps memory owned by `owner` (an mmap, an arena); no copy is made.
  static Tensor view(DType dtype, Dims shape, std::shared_ptr<void> owner, void* data);
  template <class T>
  static Tensor scalar(T v) {
    Tensor t(dtype_v<T>, {});
    *t.data<T>() = v;
    return t;
  }
  template <class T>
  static Tensor from_vector(const std::vector<T>& v, std::vector<int64_t> shape) {
    Tensor t(dtype_v<T>, std::move(shape));
    KILN_CHECK(static_cast<size_t>(t.numel()) == v.size(), "from_vector: ", v.size(), " values for shape of ",
               t.numel(), " elements");
    for (size_t i = 0; i < v.size(); ++i) t.data<T>()[i] = v[i];
    return t;
  }

  bool defined() const { return dtype_ != DType::kUndefined; }
  DType dtype() const { return dtype_; }
  const Dims& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_[i]; }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

  // How many tensors share this one's storage (0 when it has none).
  long storage_use_count() const { return holder_.use_count(); }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <class T>
  T* data() {
    check_type(dtype_v<T>);
    return static_cast<T*>(data_);
  }
  template <class T>
  const T* data() const {
    check_type(dtype_v<T>);
    return static_cast<const T*>(data_);
  }

  // Same storage, new shape with the same element count.
  Tensor reshaped(Dims shape) const;
  Tensor clone() const;
  // Element i converted to double / int64 (numeric types, bool and the narrow types; a narrow float's
  // NaN or infinity reads as int64 0).
  double as_double(int64_t i) const;
  int64_t as_int64(int64_t i) const;
  // All elements as int64 (for shape-like inputs: Reshape's shape, Slice's starts, ...).
  std::vector<int64_t> to_int64_vector() const;
  // Exact equality of dtype, shape and bytes (strings by value).
  bool bitwise_equal(const Tensor& other) const;

  // Element count of a shape; throws kiln::Error on a negative dim or int64 overflow.
  static int64_t checked_numel(const Dims& shape);

 private:
  void check_type(DType t) const;

  DType dtype_ = DType::kUndefined;
  Dims shape_;
  int64_t numel_ = 0;
  std::shared_ptr<void> holder_;
  void* data_ = nullptr;
};

std::vector<int64_t> strides_of(const Dims& shape);  // row-major, in elements

// What flows along a graph edge at run time: a tensor, a sequence of tensors, or an empty optional.
struct Datum {
  enum class Kind { kNone, kTensor, kSequence };
  Kind kind = Kind::kNone;
  Tensor tensor;
  std::vector<Tensor> sequence;
  DType sequence_dtype = DType::kUndefined;  // element type of an empty sequence

  Datum() = default;
  Datum(Tensor t) : kind(Kind::kTensor), tensor(std::move(t)) {}  // NOLINT
  static Datum of_sequence(std::vector<Tensor> s, DType elem) {
    Datum d;
    d.kind = Kind::kSequence;
    d.sequence = std::move(s);
    d.sequence_dtype = elem;
    return d;
  }
  bool is_tensor() const { return kind == Kind::kTensor; }
  bool is_sequence() const { return kind == Kind::kSequence; }
  bool is_none() const { return kind == Kind::kNone; }
};

}  // namespace kiln::ir

#include "ir/tensor.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/mman.h>

#include "ir/allocation_count.h"
#include "ir/narrow_types.h"
#include "ir/shape.h"

namespace kiln::ir {

namespace {
std::atomic<uint64_t> g_storage_allocations{0};
constexpr size_t kMappedStorageBytes = size_t{1} << 20;
}  // namespace

uint64_t tensor_storage_allocations() { return g_storage_allocations.load(std::memory_order_relaxed); }


int64_t Tensor::checked_numel(const Dims& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    KILN_CHECK(d >= 0, "negative dimension ", d, " in shape ", to_string(shape));
    if (__builtin_mul_overflow(n, d, &n)) fail("element count of shape ", to_string(shape), " overflows int64");
  }
  return n;
}

Tensor::Tensor(DType dtype, Dims shape) : dtype_(dtype), shape_(std::move(shape)) {
  numel_ = checked_numel(shape_);
  size_t elem = dtype_size(dtype_);
  KILN_CHECK(numel_ <= static_cast<int64_t>(SIZE_MAX / 2 / elem), "tensor of shape ", to_string(shape_),
             " is too large");
  if (dtype_ == DType::kString) {
    auto* s = new std::string[static_cast<size_t>(numel_ ? numel_ : 1)];
    holder_ = std::shared_ptr<void>(s, [](void* p) { delete[] static_cast<std::string*>(p); });
    data_ = s;
    return;
  }
  size_t bytes = static_cast<size_t>(numel_) * elem;
  size_t padded = (bytes + 63) / 64 * 64;
  if (padded == 0) padded = 64;
  g_storage_allocations.fetch_add(1, std::memory_order_relaxed);
  if (padded >= kMappedStorageBytes) {
    // Large storage is mapped directly: it goes back to the system the moment it is released (glibc
    // raises its mmap threshold after the first large free and then keeps freed weights in the heap),
    // and fresh pages are already zero.
    void* p = ::mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("cannot allocate ", bytes, " bytes for a tensor of shape ", to_string(shape_));
    holder_ = std::shared_ptr<void>(p, [padded](void* q) { ::munmap(q, padded); });
    data_ = p;
    return;
  }
  void* p = std::aligned_alloc(64, padded);
  if (!p) fail("cannot allocate ", bytes, " bytes for a tensor of shape ", to_string(shape_));
  std::memset(p, 0, padded);
  holder_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  data_ = p;
}

Tensor Tensor::view(DType dtype, Dims shape, std::shared_ptr<void> owner, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = checked_numel(t.shape_);
  t.holder_ = std::move(owner);
  t.data_ = data;
  return t;
}

void Tensor::check_type(DType t) const {
  if (t != dtype_) fail("tensor holds ", dtype_name(dtype_), ", accessed as ", dtype_name(t));
}

Tensor Tensor::reshaped(Dims shape) const {
  int64_t n = checked_numel(shape);
  KILN_CHECK(n == numel_, "cannot reshape ", numel_, " elements into ", to_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  if (!defined()) return {};
  Tensor t(dtype_, shape_);
  if (dtype_ == DType::kString) {
    for (int64_t i = 0; i < numel_; ++i) t.data<std::string>()[i] = data<std::string>()[i];
  } else if (nbytes()) {
    std::memcpy(t.data_, data_, nbytes());
  }
  return t;
}

double Tensor::as_double(int64_t i) const {
  if (is_narrow(dtype_)) return narrow_to_double(dtype_, static_cast<const uint8_t*>(data_)[i]);
  return visit_dtype(dtype_, [&]<class T>() -> double {
    if constexpr (std::is_same_v<T, std::string>) {
      fail("cannot read a string tensor as a number");
    } else if constexpr (std::is_same_v<T, std::complex<float>> || std::is_same_v<T, std::complex<double>>) {
      return static_cast<double>(static_cast<const T*>(data_)[i].real());
    } else {
      return static_cast<double>(static_cast<const T*>(data_)[i]);
    }
  });
}

int64_t Tensor::as_int64(int64_t i) const {
  if (is_narrow(dtype_)) {
    double d = narrow_to_double(dtype_, static_cast<const uint8_t*>(data_)[i]);
    return std::fabs(d) < 9.2e18 ? static_cast<int64_t>(d) : 0;  // NaN fails the test too
  }
  return visit_dtype(dtype_, [&]<class T>() -> int64_t {
    if constexpr (std::is_same_v<T, std::string>) {
      fail("cannot read a string tensor as a number");
    } else if constexpr (std::is_same_v<T, std::complex<float>> || std::is_same_v<T, std::complex<double>>) {
      return static_cast<int64_t>(static_cast<const T*>(data_)[i].real());
    } else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
      return static_cast<int64_t>(static_cast<float>(static_cast<const T*>(data_)[i]));
    } else {
      return static_cast<int64_t>(static_cast<const T*>(data_)[i]);
    }
  });
}

std::vector<int64_t> Tensor::to_int64_vector() const {
  std::vector<int64_t> v(static_cast<size_t>(numel_));
  for (int64_t i = 0; i < numel_; ++i) v[static_cast<size_t>(i)] = as_int64(i);
  return v;
}

bool Tensor::bitwise_equal(const Tensor& o) const {
  if (dtype_ != o.dtype_ || shape_ != o.shape_) return false;
  if (dtype_ == DType::kString) {
    for (int64_t i = 0; i < numel_; ++i)
      if (data<std::string>()[i] != o.data<std::string>()[i]) return false;
    return true;
  }
  return nbytes() == 0 || std::memcmp(data_, o.data_, nbytes()) == 0;
}

std::vector<int64_t> strides_of(const Dims& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

}  // namespace kiln::ir

// The dimensions of a concrete tensor: a small vector of int64 that keeps up to kInline dimensions in
// place, so that making a tensor (or an arena view) in a steady-state run touches no heap. Tensors of
// higher rank (rare: ONNX models seldom pass 6) spill to the heap.
//
// It converts implicitly to and from std::vector<int64_t>, so code written against vectors keeps
// working; hot paths use Dims itself (the conversion to a vector allocates).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <vector>

namespace kiln::ir {

class Dims {
 public:
  static constexpr size_t kInline = 8;
  using value_type = int64_t;
  using size_type = size_t;
  using iterator = int64_t*;
  using const_iterator = const int64_t*;
  using reference = int64_t&;
  using const_reference = const int64_t&;

  Dims() = default;
  Dims(std::initializer_list<int64_t> v) { assign(v.begin(), v.end()); }
  Dims(const std::vector<int64_t>& v) { assign(v.data(), v.data() + v.size()); }  // NOLINT: a vector is dims
  Dims(size_t n, int64_t value) { resize(n, value); }
  Dims(const int64_t* first, const int64_t* last) { assign(first, last); }
  template <std::input_iterator It>
  Dims(It first, It last) {
    for (; first != last; ++first) push_back(static_cast<int64_t>(*first));
  }
  Dims(const Dims& o) { assign(o.begin(), o.end()); }
  Dims(Dims&& o) noexcept { take(o); }
  Dims& operator=(const Dims& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  Dims& operator=(Dims&& o) noexcept {
    if (this != &o) {
      heap_.reset();
      take(o);
    }
    return *this;
  }
  Dims& operator=(std::initializer_list<int64_t> v) {
    assign(v.begin(), v.end());
    return *this;
  }

  operator std::vector<int64_t>() const { return vec(); }  // NOLINT: allocates; for vector-based code
  std::vector<int64_t> vec() const { return std::vector<int64_t>(begin(), end()); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t* data() { return heap_ ? heap_.get() : inline_; }
  const int64_t* data() const { return heap_ ? heap_.get() : inline_; }
  iterator begin() { return data(); }
  iterator end() { return data() + size_; }
  const_iterator begin() const { return data(); }
  const_iterator end() const { return data() + size_; }
  int64_t& operator[](size_t i) { return data()[i]; }
  int64_t operator[](size_t i) const { return data()[i]; }
  int64_t& front() { return data()[0]; }
  int64_t front() const { return data()[0]; }
  int64_t& back() { return data()[size_ - 1]; }
  int64_t back() const { return data()[size_ - 1]; }

  void reserve(size_t n) {
    if (n <= capacity()) return;
    auto bigger = std::make_unique<int64_t[]>(n);
    std::copy(begin(), end(), bigger.get());
    heap_ = std::move(bigger);
    heap_capacity_ = n;
  }
  void clear() { size_ = 0; }
  void push_back(int64_t v) {
    if (size_ == capacity()) reserve(std::max<size_t>(2 * size_, kInline));
    data()[size_++] = v;
  }
  void pop_back() { --size_; }
  void resize(size_t n, int64_t value = 0) {
    reserve(n);
    for (size_t i = size_; i < n; ++i) data()[i] = value;
    size_ = n;
  }
  iterator insert(const_iterator pos, int64_t v) {
    size_t at = static_cast<size_t>(pos - begin());
    push_back(v);
    std::rotate(begin() + at, end() - 1, end());
    return begin() + at;
  }
  template <std::input_iterator It>
  iterator insert(const_iterator pos, It first, It last) {
    const Dims values(first, last);  // first copied: [first, last) may lie in this Dims, which may grow
    size_t at = static_cast<size_t>(pos - begin()), old = size_;
    for (int64_t v : values) push_back(v);
    std::rotate(begin() + at, begin() + old, end());
    return begin() + at;
  }
  iterator erase(const_iterator first, const_iterator last) {
    int64_t* f = begin() + (first - begin());
    int64_t* l = begin() + (last - begin());
    std::copy(l, end(), f);
    size_ -= static_cast<size_t>(l - f);
    return f;
  }
  iterator erase(const_iterator pos) { return erase(pos, pos + 1); }

  friend bool operator==(const Dims& a, const Dims& b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

 private:
  size_t capacity() const { return heap_ ? heap_capacity_ : kInline; }
  void assign(const int64_t* first, const int64_t* last) {
    size_ = 0;
    reserve(static_cast<size_t>(last - first));
    std::copy(first, last, data());
    size_ = static_cast<size_t>(last - first);
  }
  void take(Dims& o) {
    size_ = o.size_;
    if (o.heap_) {
      heap_ = std::move(o.heap_);
      heap_capacity_ = o.heap_capacity_;
    } else {
      std::copy(o.inline_, o.inline_ + o.size_, inline_);
    }
    o.size_ = 0;
  }

  int64_t inline_[kInline] = {};
  std::unique_ptr<int64_t[]> heap_;  // set once the dims outgrow inline_
  size_t heap_capacity_ = 0;
  size_t size_ = 0;
};

}  // namespace kiln::ir

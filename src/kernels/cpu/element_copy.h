// What the data-movement kernels share (data_movement_kernel.cc, pad_kernel.cc, gather_kernel.cc): they
// move elements as unsigned words of the element's size, so one instantiation per size (1, 2, 4 or 8
// bytes) serves every numeric type; strings and complex numbers stay with the reference kernels.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ir/dtype.h"
#include "ir/tensor.h"
#include "kernels/cpu/fast_kernel_table.h"

namespace kiln::kernels::cpu {

// The element types moved as words: the table entries' dtype set, and the per-call check.
inline constexpr uint64_t kMovableTypes =
    dtype_set({ir::DType::kFloat32, ir::DType::kUInt8, ir::DType::kInt8, ir::DType::kUInt16, ir::DType::kInt16,
               ir::DType::kInt32, ir::DType::kInt64, ir::DType::kBool, ir::DType::kFloat16, ir::DType::kFloat64,
               ir::DType::kUInt32, ir::DType::kUInt64, ir::DType::kBFloat16});

inline bool movable(ir::DType t) { return dtype_set_has(kMovableTypes, t); }

// Copies that move at least this many bytes are split across the OpenMP team.
inline constexpr int64_t kCopyParallelBytes = 256 * 1024;

// f.template operator()<W>() with W the unsigned integer of `bytes` bytes (1, 2, 4 or 8).
template <class F>
void visit_word(size_t bytes, F&& f) {
  switch (bytes) {
    case 1:
      return f.template operator()<uint8_t>();
    case 2:
      return f.template operator()<uint16_t>();
    case 4:
      return f.template operator()<uint32_t>();
    default:
      return f.template operator()<uint64_t>();
  }
}

// dst[0, n) = src[0, n): a loop for short runs (a memcpy call costs more than it moves), memcpy else.
template <class W>
inline void copy_run(W* dst, const W* src, int64_t n) {
  if (n < 16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  } else {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(W));
  }
}

// dst[0, n) = src[0, n) in bytes, without a call (for a row's short segments, where copy_run's memcpy
// call costs more than a 96-byte segment): 32-byte moves, the last one ending at n (overlapping the one
// before), or two overlapping moves of the largest power of two <= n. Nothing outside [0, n) is touched.
inline void short_copy(char* dst, const char* src, int64_t n) {
  if (n >= 32) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) std::memcpy(dst + i, src + i, 32);
    if (i < n) std::memcpy(dst + n - 32, src + n - 32, 32);
  } else if (n >= 16) {
    std::memcpy(dst, src, 16);
    std::memcpy(dst + n - 16, src + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(dst, src, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

// Up to N integers read from a kernel's input or attribute (Slice's starts, Pad's pads), held without
// touching the heap.
template <size_t N>
struct SmallInts {
  size_t count = 0;
  std::array<int64_t, N> v{};
};

// The values of a 1-D int32 / int64 tensor, or false (other types, ranks and lengths go to the reference).
template <size_t N>
bool read_small_ints(const ir::Tensor& t, SmallInts<N>& out) {
  if (t.rank() != 1 || t.numel() > static_cast<int64_t>(N)) return false;
  out.count = static_cast<size_t>(t.numel());
  if (t.dtype() == ir::DType::kInt64) {
    for (size_t i = 0; i < out.count; ++i) out.v[i] = t.data<int64_t>()[i];
  } else if (t.dtype() == ir::DType::kInt32) {
    for (size_t i = 0; i < out.count; ++i) out.v[i] = t.data<int32_t>()[i];
  } else {
    return false;
  }
  return true;
}

template <size_t N>
bool small_ints_of(const std::vector<int64_t>& values, SmallInts<N>& out) {
  if (values.size() > N) return false;
  out.count = values.size();
  for (size_t i = 0; i < out.count; ++i) out.v[i] = values[i];
  return true;
}

}  // namespace kiln::kernels::cpu

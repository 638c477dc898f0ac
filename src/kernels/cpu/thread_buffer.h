// Per-thread scratch memory for kernels: grown to the largest size asked for and kept, so that
// steady-state calls allocate nothing and concurrent calls (each on its own thread) never share one.
#pragma once

#include <cstddef>
#include <new>

namespace kiln::kernels::cpu {

// The calling thread's buffer for `Owner` (one buffer per owner type and thread), at least `bytes`
// long and 64-byte aligned. Its contents are not kept when it grows.
template <class Owner>
std::byte* thread_buffer(size_t bytes) {
  struct Buffer {
    std::byte* data = nullptr;
    size_t size = 0;
    ~Buffer() { ::operator delete[](data, std::align_val_t(64)); }
  };
  thread_local Buffer buffer;
  if (bytes > buffer.size) {
    ::operator delete[](buffer.data, std::align_val_t(64));
    buffer.data = nullptr;
    buffer.data = static_cast<std::byte*>(::operator new[](bytes, std::align_val_t(64)));
    buffer.size = bytes;
  }
  return buffer.data;
}

}  // namespace kiln::kernels::cpu

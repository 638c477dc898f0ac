// Per-thread scratch memory for kernels: grown to the largest size asked for and kept, so that
// steady-state calls allocate nothing and concurrent calls (each on its own thread) never share one.
//
// A thread's buffer is made on its first call, and a worker thread that never drew a task of some kernel
// during the first runs would make it later, in what should be a steady-state run.
// grow_thread_buffers_on_all_threads() closes that gap: it gives every OpenMP thread every kind of buffer
// at the largest size any thread has asked for (the executor calls it when it has recorded a new plan).
#pragma once

#include <atomic>
#include <cstddef>
#include <new>

namespace kiln::kernels::cpu {

namespace detail {
// One kind of buffer (one Owner): the largest size asked for, and how to grow the calling thread's.
struct ThreadBufferKind {
  std::atomic<size_t> largest{0};
  void (*grow)(size_t bytes) = nullptr;
};
// Registers a kind once, for grow_thread_buffers_on_all_threads(); the returned kind lives forever.
ThreadBufferKind& register_thread_buffer_kind(void (*grow)(size_t bytes));
}  // namespace detail

// The calling thread's buffer for `Owner` (one buffer per owner type and thread), at least `bytes`
// long and 64-byte aligned. Its contents are not kept when it grows.
template <class Owner>
std::byte* thread_buffer(size_t bytes) {
  struct Buffer {
    std::byte* data = nullptr;
    size_t size = 0;
    ~Buffer() { ::operator delete[](data, std::align_val_t(64)); }
  };
  static detail::ThreadBufferKind& kind =
      detail::register_thread_buffer_kind([](size_t n) { thread_buffer<Owner>(n); });
  thread_local Buffer buffer;
  if (bytes > buffer.size) {
    ::operator delete[](buffer.data, std::align_val_t(64));
    buffer.data = nullptr;
    buffer.data = static_cast<std::byte*>(::operator new[](bytes, std::align_val_t(64)));
    buffer.size = bytes;
    size_t seen = kind.largest.load(std::memory_order_relaxed);
    while (seen < bytes && !kind.largest.compare_exchange_weak(seen, bytes, std::memory_order_relaxed)) {
    }
  }
  return buffer.data;
}

// Grows, on every thread of an OpenMP parallel region, every kind of buffer to the largest size any
// thread has asked for so far.
void grow_thread_buffers_on_all_threads();

}  // namespace kiln::kernels::cpu

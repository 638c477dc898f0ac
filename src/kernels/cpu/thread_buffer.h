// Per-thread scratch memory for kernels: grown to the largest size asked for and kept, so that
// steady-state calls allocate nothing and concurrent calls (each on its own thread) never share one.
//
// thread_buffer is for scratch the calling thread uses (a product's packed A, a convolution's
// workspace): that thread makes it on its first call. worker_thread_buffer is for scratch each OpenMP
// worker uses inside a parallel loop (the attention tiles): a worker that drew no such task during the
// first runs would make its buffer later, in what should be a steady-state run. So those kinds are
// registered, and grow_worker_buffers_if_needed() (the executor calls it before each planned run) gives
// every thread of the calling thread's team every such kind at the largest size asked for, whenever a
// size grew since that thread last did it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

namespace kiln::kernels::cpu {

namespace detail {
// One kind of worker buffer (one Owner): the largest size asked for, and how to grow the calling thread's.
struct ThreadBufferKind {
  std::atomic<size_t> largest{0};
  void (*grow)(size_t bytes) = nullptr;
};
// Registers a kind once; the returned kind lives forever.
ThreadBufferKind& register_thread_buffer_kind(void (*grow)(size_t bytes));
// Notes that a kind's largest size grew (the workers' buffers are then grown again).
void note_thread_buffer_growth(ThreadBufferKind& kind, size_t bytes);

template <class Owner>
std::byte* grow_calling_thread_buffer(size_t bytes, bool* grew) {
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
    if (grew) *grew = true;
  }
  return buffer.data;
}
}  // namespace detail

// The calling thread's buffer for `Owner` (one buffer per owner type and thread), at least `bytes`
// long and 64-byte aligned. Its contents are not kept when it grows.
template <class Owner>
std::byte* thread_buffer(size_t bytes) {
  return detail::grow_calling_thread_buffer<Owner>(bytes, nullptr);
}

// The same, for scratch used by OpenMP worker threads (see above).
template <class Owner>
std::byte* worker_thread_buffer(size_t bytes) {
  static detail::ThreadBufferKind& kind =
      detail::register_thread_buffer_kind([](size_t n) { detail::grow_calling_thread_buffer<Owner>(n, nullptr); });
  bool grew = false;
  std::byte* data = detail::grow_calling_thread_buffer<Owner>(bytes, &grew);
  if (grew) detail::note_thread_buffer_growth(kind, bytes);
  return data;
}

// When a worker buffer's largest size grew since the calling thread last called this: grows, on every
// thread of an OpenMP parallel region, every kind of worker buffer to its largest size.
void grow_worker_buffers_if_needed();

}  // namespace kiln::kernels::cpu

#include "kernels/cpu/thread_buffer.h"

#include <omp.h>

#include <deque>
#include <mutex>
#include <new>

namespace kiln::kernels::cpu {

namespace {

struct ThreadBufferRegistry {
  std::mutex mutex;
  std::deque<detail::ThreadBufferKind> kinds;  // a deque: registered kinds never move
  std::atomic<uint64_t> generation{0};         // bumped whenever a kind's largest size grows
};

ThreadBufferRegistry& thread_buffer_registry() {
  static ThreadBufferRegistry r;
  return r;
}

}  // namespace

detail::ThreadBufferKind& detail::register_thread_buffer_kind(void (*grow)(size_t bytes)) {
  ThreadBufferRegistry& r = thread_buffer_registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  ThreadBufferKind& k = r.kinds.emplace_back();
  k.grow = grow;
  return k;
}

void detail::note_thread_buffer_growth(ThreadBufferKind& kind, size_t bytes) {
  size_t seen = kind.largest.load(std::memory_order_relaxed);
  while (seen < bytes && !kind.largest.compare_exchange_weak(seen, bytes, std::memory_order_relaxed)) {
  }
  if (seen < bytes) thread_buffer_registry().generation.fetch_add(1, std::memory_order_relaxed);
}

void grow_worker_buffers_if_needed() {
  thread_local uint64_t done = 0;  // the generation this thread's team was last grown to
  ThreadBufferRegistry& r = thread_buffer_registry();
  const uint64_t now = r.generation.load(std::memory_order_relaxed);
  if (now == done) return;
  std::lock_guard<std::mutex> lock(r.mutex);  // kinds registered meanwhile wait for the next call
#pragma omp parallel
  for (detail::ThreadBufferKind& k : r.kinds) {
    const size_t bytes = k.largest.load(std::memory_order_relaxed);
    try {
      if (bytes > 0) k.grow(bytes);
    } catch (const std::bad_alloc&) {  // not here: the kernel asks again, and fails, on its own call
    }
  }
  done = now;
}

}  // namespace kiln::kernels::cpu

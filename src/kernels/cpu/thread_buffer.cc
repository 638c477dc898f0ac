#include "kernels/cpu/thread_buffer.h"

#include <omp.h>

#include <deque>
#include <mutex>

namespace kiln::kernels::cpu {

namespace {

struct ThreadBufferRegistry {
  std::mutex mutex;
  std::deque<detail::ThreadBufferKind> kinds;  // a deque: registered kinds never move
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

void grow_thread_buffers_on_all_threads() {
  ThreadBufferRegistry& r = thread_buffer_registry();
  std::lock_guard<std::mutex> lock(r.mutex);  // kinds registered meanwhile wait for the next call
#pragma omp parallel
  for (detail::ThreadBufferKind& k : r.kinds) {
    const size_t bytes = k.largest.load(std::memory_order_relaxed);
    if (bytes > 0) k.grow(bytes);
  }
}

}  // namespace kiln::kernels::cpu

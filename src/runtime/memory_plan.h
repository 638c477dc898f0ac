// Memory planning for one input-shape signature of a graph: every tensor buffer the kernels ask for,
// with the span of nodes during which it is alive, gets an offset in one arena so that buffers alive at
// the same time never overlap and buffers that are not share memory.
//
// The buffers come from a recorded run (runtime/executor.cc records every KernelContext::make_tensor
// call of the first run with a new signature and when each buffer was last read), so the plan is exact
// for the kernels that actually run, fast or reference, including their temporaries and views.
//
// Placement is greedy by size, largest first, each at the lowest 64-byte aligned offset that does not
// overlap any already placed buffer whose lifetime intersects its own: the classic heuristic (TFLite's
// and ONNX Runtime's planners are of this family), within a few percent of the lower bound (the largest
// sum of sizes alive at one node) on transformer graphs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln::runtime {

struct BufferLifetime {
  size_t bytes = 0;
  size_t first = 0;  // index of the node that creates it
  size_t last = 0;   // index of the last node that reads it (or a view of it); >= first
};

struct MemoryPlan {
  static constexpr size_t kAlignment = 64;
  std::vector<size_t> offsets;  // per buffer, in the order given
  size_t arena_bytes = 0;
  size_t lower_bound_bytes = 0;  // the most bytes alive at any one node: no plan can do better
};

MemoryPlan plan_memory(const std::vector<BufferLifetime>& buffers);

}  // namespace kiln::runtime

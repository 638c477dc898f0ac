#include "runtime/memory_plan.h"

#include <algorithm>
#include <map>
#include <numeric>

namespace kiln::runtime {

namespace {

size_t aligned(size_t bytes) { return (bytes + MemoryPlan::kAlignment - 1) / MemoryPlan::kAlignment * MemoryPlan::kAlignment; }

bool overlap_in_time(const BufferLifetime& a, const BufferLifetime& b) { return a.first <= b.last && b.first <= a.last; }

}  // namespace

MemoryPlan plan_memory(const std::vector<BufferLifetime>& buffers) {
  MemoryPlan plan;
  plan.offsets.assign(buffers.size(), 0);

  // Lower bound: the most bytes alive at one node (a sweep over creation and release points).
  std::map<size_t, int64_t> delta;
  for (const auto& b : buffers) {
    delta[b.first] += static_cast<int64_t>(aligned(b.bytes));
    delta[b.last + 1] -= static_cast<int64_t>(aligned(b.bytes));
  }
  int64_t alive = 0;
  for (const auto& [node, d] : delta) {
    alive += d;
    plan.lower_bound_bytes = std::max(plan.lower_bound_bytes, static_cast<size_t>(alive));
  }

  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Largest first; ties by creation so that the plan does not depend on the sort's stability.
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (buffers[a].bytes != buffers[b].bytes) return buffers[a].bytes > buffers[b].bytes;
    return a < b;
  });

  std::vector<size_t> placed;  // indices of placed buffers
  std::vector<std::pair<size_t, size_t>> taken;  // [offset, end) of placed buffers alive with this one
  for (size_t i : order) {
    const BufferLifetime& b = buffers[i];
    const size_t size = aligned(b.bytes);
    taken.clear();
    for (size_t j : placed)
      if (overlap_in_time(b, buffers[j])) taken.emplace_back(plan.offsets[j], plan.offsets[j] + aligned(buffers[j].bytes));
    std::sort(taken.begin(), taken.end());
    size_t offset = 0;
    for (const auto& [start, end] : taken) {
      if (offset + size <= start) break;  // fits in the gap before this one
      offset = std::max(offset, end);
    }
    plan.offsets[i] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
    placed.push_back(i);
  }
  return plan;
}

}  // namespace kiln::runtime

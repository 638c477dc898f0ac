#include "runtime/arena.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "runtime/memory_plan.h"

namespace kiln::runtime {

// Recorded buffers alive now, by start address -> (end address, buffer index). A buffer's deleter
// removes it, so an address the heap hands out again is never taken for an older buffer.
struct BufferRecorder::Live {
  std::map<uintptr_t, std::pair<uintptr_t, size_t>> by_address;
};

BufferRecorder::BufferRecorder(size_t num_nodes)
    : num_nodes_(num_nodes), calls_per_node_(num_nodes, 0), live_(std::make_shared<Live>()) {}

ir::Tensor BufferRecorder::allocate(ir::DType dtype, ir::Dims shape, size_t bytes, bool zero_fill) {
  ir::Tensor heap(dtype, std::move(shape));  // zero-filled: the recorded run is an ordinary run
  if (bytes == 0 || node_ >= num_nodes_) return heap;
  const size_t index = buffers_.size();
  buffers_.push_back({node_, calls_per_node_[node_]++, bytes, node_});
  const auto start = reinterpret_cast<uintptr_t>(heap.raw());
  live_->by_address[start] = {start + bytes, index};
  // Keep the heap tensor's storage alive through a holder whose deleter also forgets the address.
  auto storage = std::make_shared<ir::Tensor>(heap);
  std::shared_ptr<void> owner(heap.raw(), [storage, live = live_, start](void*) mutable {
    live->by_address.erase(start);
    storage.reset();
  });
  return ir::Tensor::view(dtype, heap.shape(), std::move(owner), heap.raw());
}

void BufferRecorder::after_node(std::span<const ir::Datum> outputs, const std::vector<size_t>& last_use) {
  auto extend = [&](const ir::Tensor& t, size_t last) {
    if (!t.defined() || t.nbytes() == 0) return;
    const auto p = reinterpret_cast<uintptr_t>(t.raw());
    auto it = live_->by_address.upper_bound(p);
    if (it == live_->by_address.begin()) return;
    --it;
    if (p >= it->second.first) return;  // not inside a recorded buffer
    Buffer& b = buffers_[it->second.second];
    b.last = std::max(b.last, last);
  };
  for (size_t k = 0; k < outputs.size() && k < last_use.size(); ++k) {
    const ir::Datum& d = outputs[k];
    if (d.is_tensor()) extend(d.tensor, last_use[k]);
    for (const ir::Tensor& t : d.sequence) extend(t, last_use[k]);
  }
}

int64_t BufferRecorder::whole_buffer(const ir::Tensor& t) const {
  if (!t.defined() || t.nbytes() == 0) return -1;
  auto it = live_->by_address.find(reinterpret_cast<uintptr_t>(t.raw()));
  if (it == live_->by_address.end() || buffers_[it->second.second].bytes != t.nbytes()) return -1;
  return static_cast<int64_t>(it->second.second);
}

void BufferRecorder::note_in_place(const ir::Tensor& output, const ir::Tensor& input) {
  const int64_t out = whole_buffer(output), in = whole_buffer(input);
  if (out < 0 || in < 0 || out == in || buffers_[static_cast<size_t>(out)].node != node_ ||
      buffers_[static_cast<size_t>(out)].bytes != buffers_[static_cast<size_t>(in)].bytes)
    return;
  in_place_.emplace_back(static_cast<size_t>(out), static_cast<size_t>(in));
}

ArenaLayout BufferRecorder::finish() const {
  ArenaLayout layout;
  layout.per_node.resize(num_nodes_);
  for (size_t i = 0; i < num_nodes_; ++i) layout.per_node[i].resize(calls_per_node_[i]);
  // In place: an output joins its input's buffer when nothing read the input after the output's node
  // (its last reader, views included, is that node). Chains (x -> gelu -> layer norm) share one buffer.
  std::vector<size_t> root(buffers_.size());
  for (size_t i = 0; i < root.size(); ++i) root[i] = i;
  auto find = [&](size_t i) {
    while (root[i] != i) i = root[i] = root[root[i]];
    return i;
  };
  std::vector<bool> joined(buffers_.size(), false);
  for (const auto& [out, in] : in_place_) {
    if (joined[out] || buffers_[in].last != buffers_[out].node) continue;
    root[find(out)] = find(in);
    joined[out] = true;
    ++layout.in_place_buffers;
  }
  // One lifetime per group of buffers sharing memory.
  std::vector<BufferLifetime> lifetimes;
  std::vector<size_t> group_of(buffers_.size());
  std::vector<int64_t> group_index(buffers_.size(), -1);
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const Buffer& b = buffers_[i];
    layout.per_node[b.node][b.seq].bytes = b.bytes;
    const size_t r = find(i);
    if (group_index[r] < 0) {
      group_index[r] = static_cast<int64_t>(lifetimes.size());
      lifetimes.push_back({b.bytes, b.node, b.last});
    }
    BufferLifetime& l = lifetimes[static_cast<size_t>(group_index[r])];
    l.bytes = std::max(l.bytes, b.bytes);
    l.first = std::min(l.first, b.node);
    l.last = std::max(l.last, b.last);
    group_of[i] = static_cast<size_t>(group_index[r]);
  }
  MemoryPlan plan = plan_memory(lifetimes);
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const Buffer& b = buffers_[i];
    ArenaLayout::Block& block = layout.per_node[b.node][b.seq];
    block.offset = plan.offsets[group_of[i]];
    block.planned = true;
    block.in_place = joined[i];
  }
  layout.arena_bytes = plan.arena_bytes;
  layout.lower_bound_bytes = plan.lower_bound_bytes;
  layout.planned_buffers = buffers_.size();
  return layout;
}

ArenaAllocator::ArenaAllocator(const ArenaLayout& layout, std::shared_ptr<void> arena)
    : layout_(layout), arena_(std::move(arena)), base_(static_cast<char*>(arena_.get())) {}

void ArenaAllocator::begin_node(size_t node) {
  node_ = node;
  seq_ = 0;
}

ir::Tensor ArenaAllocator::allocate(ir::DType dtype, ir::Dims shape, size_t bytes, bool zero_fill) {
  // Empty tensors were not recorded (BufferRecorder::allocate): counting them here would hand every later
  // call of the node the block recorded for the call after it.
  // (An empty tensor points at the arena's start, so that it needs no memory of its own.)
  if (bytes == 0) return ir::Tensor::view(dtype, std::move(shape), arena_, base_);
  const size_t seq = seq_++;
  if (node_ < layout_.per_node.size() && seq < layout_.per_node[node_].size()) {
    const ArenaLayout::Block& block = layout_.per_node[node_][seq];
    if (block.planned && bytes <= block.bytes && (!block.in_place || in_place_allowed_)) {
      char* p = base_ + block.offset;
      if (zero_fill) std::memset(p, 0, bytes);
      return ir::Tensor::view(dtype, std::move(shape), arena_, p);
    }
  }
  return ir::Tensor(dtype, std::move(shape));
}

bool ArenaAllocator::owns(const ir::Tensor& t) const {
  const char* p = static_cast<const char*>(t.raw());
  return p >= base_ && p < base_ + layout_.arena_bytes;
}

std::shared_ptr<void> ArenaPool::take() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!free_.empty()) {
      std::shared_ptr<void> a = std::move(free_.back());
      free_.pop_back();
      return a;
    }
  }
  const size_t padded = (bytes_ + MemoryPlan::kAlignment - 1) / MemoryPlan::kAlignment * MemoryPlan::kAlignment;
  void* p = std::aligned_alloc(MemoryPlan::kAlignment, padded ? padded : MemoryPlan::kAlignment);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

void ArenaPool::give_back(std::shared_ptr<void> arena) {
  if (arena.use_count() != 1) return;  // something still holds a view: let it own the memory
  std::lock_guard<std::mutex> lock(mutex_);
  free_.push_back(std::move(arena));
}

}  // namespace kiln::runtime

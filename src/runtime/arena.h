// Tensor memory for planned runs. The first run of a graph with a new input-shape signature goes
// through a BufferRecorder, which hands out heap tensors and notes every buffer's size, creating node
// and last reader; its layout (runtime/memory_plan.h) then serves every later run of that signature
// through an ArenaAllocator: each make_tensor call of node i, in the same order as recorded, gets its
// planned slice of one arena, so a steady-state run makes no tensor allocation at all.
//
// Why record rather than infer: the recorded run sees exactly what the kernels that will run ask for
// (fast or reference, their scratch tensors, the views a Reshape makes of its input), so the plan needs
// no knowledge of any kernel. A call that does not match the plan (a data-dependent size larger than
// recorded) gets heap memory, which is always safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "ir/tensor.h"
#include "ops/op_def.h"

namespace kiln::runtime {

// Where each recorded make_tensor call goes in a planned run.
struct ArenaLayout {
  struct Block {
    size_t bytes = 0;
    size_t offset = 0;
    // Graph outputs are planned too: the executor copies them out of the arena at the end of the run
    // (into the caller's tensors where it can), so a steady-state run needs no heap at all.
    bool planned = false;
    // Placed where an input of its node is (that input's last reader is this node, and its kernel may
    // write over it: FastKernel::in_place_inputs); served only while that fast kernel runs.
    bool in_place = false;
  };
  std::vector<std::vector<Block>> per_node;  // per node, in make_tensor order
  size_t arena_bytes = 0;
  size_t lower_bound_bytes = 0;
  size_t planned_buffers = 0;
  size_t in_place_buffers = 0;
};

class BufferRecorder : public ops::TensorAllocator {
 public:
  explicit BufferRecorder(size_t num_nodes);
  void begin_node(size_t node) { node_ = node; }
  ir::Tensor allocate(ir::DType dtype, ir::Dims shape, size_t bytes, bool zero_fill) override;
  // After the current node ran: its output k is read last by node last_use[k] (num_nodes: a graph
  // output). An output that is (a view of) a recorded buffer extends that buffer's life.
  void after_node(std::span<const ir::Datum> outputs, const std::vector<size_t>& last_use);
  // The current node's fast kernel wrote `output` and may have written it over `input`: if both are whole
  // recorded buffers of the same size and the input's last reader turns out to be this node, the plan
  // gives them one place.
  void note_in_place(const ir::Tensor& output, const ir::Tensor& input);
  ArenaLayout finish() const;

 private:
  struct Buffer {
    size_t node = 0, seq = 0, bytes = 0, last = 0;
  };
  struct Live;  // the recorded buffers still alive, by address (shared with their deleters)
  // The recorded buffer that starts at t's first byte and is exactly t's size; -1 when none.
  int64_t whole_buffer(const ir::Tensor& t) const;
  std::vector<std::pair<size_t, size_t>> in_place_;  // (output buffer, input buffer) candidates
  size_t num_nodes_;
  size_t node_ = 0;
  std::vector<Buffer> buffers_;
  std::vector<size_t> calls_per_node_;
  std::shared_ptr<Live> live_;
};

// One arena per concurrent run, taken from and returned to an ArenaPool.
class ArenaAllocator : public ops::TensorAllocator {
 public:
  ArenaAllocator(const ArenaLayout& layout, std::shared_ptr<void> arena);
  void begin_node(size_t node);
  // Whether blocks planned in place may be served now: only while the fast kernel that declared the
  // input writable runs (its reference fallback, should it decline, gets fresh memory).
  void allow_in_place(bool allow) { in_place_allowed_ = allow; }
  ir::Tensor allocate(ir::DType dtype, ir::Dims shape, size_t bytes, bool zero_fill) override;
  // True when t's memory lies in the arena (a graph output must then be copied out before the arena is
  // reused).
  bool owns(const ir::Tensor& t) const;

 private:
  const ArenaLayout& layout_;
  std::shared_ptr<void> arena_;
  char* base_;
  size_t node_ = 0, seq_ = 0;
  bool in_place_allowed_ = false;
};

// The arenas of one layout: a run takes one (making it only when every arena is in use, i.e. the first
// time at each level of concurrency) and gives it back.
class ArenaPool {
 public:
  explicit ArenaPool(size_t bytes) : bytes_(bytes) {}
  std::shared_ptr<void> take();
  // Returns an arena after a run; kept only when nothing else still refers to it.
  void give_back(std::shared_ptr<void> arena);

 private:
  size_t bytes_;
  std::mutex mutex_;
  std::vector<std::shared_ptr<void>> free_;
};

}  // namespace kiln::runtime

// The profiler's recorder: per-node timings of a Session's runs (`kiln run --profile`, `kiln bench
// --profile`). Attach one to a session (Session::set_profiler); while it is attached, the executor times
// each node of the main graph with steady_clock and records which kernel answered the call (the node's
// fast kernel, or its reference kernel when there is none or it declined) and the shapes it read and wrote.
// profile_report.h turns the records into tables and a Chrome trace.
//
// Every call is kept, not running sums: the trace shows each one. Storage for the expected number of runs
// is reserved when the nodes are known, and a call's shapes are compared with the last set that node saw
// (new shape sets are rare), so that recording costs two clock reads and a few stores per node.
//
// Nodes inside subgraphs (If/Loop/Scan bodies) are recorded too, each naming the node that ran its graph
// (ProfiledNode::parent): the summary shows that node's own time, its bodies' nodes apart.
//
// Not thread-safe: while a profiler is attached, one caller at a time runs the session.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ir/dtype.h"
#include "ir/tensor.h"

namespace kiln::runtime {

// A value a node read or wrote, as a profile shows it.
struct ProfiledValue {
  enum class Kind : uint8_t { kAbsent, kTensor, kSequence, kNone };
  Kind kind = Kind::kAbsent;                // kAbsent: an omitted optional input
  ir::DType dtype = ir::DType::kUndefined;  // a sequence's: its elements'
  std::vector<int64_t> shape;               // a sequence's: {its length}
};

// What a profile knows of a node before it runs; the executor describes each node once, when the
// profiler is attached (kernel names are worked out then, not per call).
struct ProfiledNode {
  std::string name;         // the node's name, or op#index when it has none
  std::string op_type;      // with its domain when that is not ai.onnx: "com.microsoft.Attention"
  std::string fast_kernel;  // its prepared fast kernel's name and implementation; empty: none
  // Inputs the node's fast kernel holds packed (weights released from the graph): invisible at run time.
  std::vector<std::pair<size_t, ProfiledValue>> held_inputs;
  int parent = -1;  // a subgraph's node: the index of the node running that subgraph; -1 in the main graph
};

class Profiler {
 public:
  using Clock = std::chrono::steady_clock;

  // One node call; times in ns since the profiler's origin.
  struct Call {
    uint32_t node = 0;
    uint32_t shape_set = 0;  // index into shape_sets(node)
    uint32_t run = 0;        // index into runs() (of a run that failed: the next one's)
    bool fast = false;       // its fast kernel answered; else the reference kernel ran
    int64_t start_ns = 0, dur_ns = 0;
  };
  // One whole run (Executor::run of the main graph).
  struct Run {
    int64_t start_ns = 0, dur_ns = 0;
    int64_t thread = 0;  // the calling thread's id, which ran every node of the run
  };
  struct ShapeSet {
    std::vector<ProfiledValue> inputs, outputs;
  };

  // `expected_runs`: how many runs to reserve storage for (more are recorded, growing it). `origin`: time 0
  // of the records; profilers written into one trace share one.
  explicit Profiler(size_t expected_runs = 1, Clock::time_point origin = Clock::now());

  // ---- called by the executor ----
  // The nodes of the graph to be profiled. Attached again to the same graph, the records go on; attached to
  // another, they start afresh.
  void attach(std::vector<ProfiledNode> nodes, bool fast_kernels);
  void begin_run();
  void end_run();
  // Node `node` ran from start to end; `fast`: its fast kernel answered.
  void record(size_t node, Clock::time_point start, Clock::time_point end, bool fast,
              std::span<const ir::Datum* const> inputs, std::span<const ir::Datum> outputs);

  // ---- what was recorded ----
  const std::vector<ProfiledNode>& nodes() const { return nodes_; }
  // Whether the session had fast kernels enabled (a profile of reference kernels only is no surprise).
  bool fast_kernels() const { return fast_kernels_; }
  const std::vector<Call>& calls() const { return calls_; }
  const std::vector<Run>& runs() const { return runs_; }
  // The distinct input/output shapes node i was called with, in the order first seen.
  const std::vector<ShapeSet>& shape_sets(size_t node) const { return shapes_[node].sets; }
  Clock::time_point origin() const { return origin_; }

 private:
  // A node's shape sets and, per set, a flat signature compared with each call without allocating:
  // per value, a tensor as {dtype, rank, dims...}, else {-1} absent, {-2, dtype, length} a sequence, {-3} none.
  struct NodeShapes {
    std::vector<ShapeSet> sets;
    std::vector<std::vector<int64_t>> signatures;
    uint32_t last = 0;  // the set of the node's previous call
  };
  uint32_t shape_set_of(size_t node, std::span<const ir::Datum* const> inputs, std::span<const ir::Datum> outputs);
  int64_t since_origin(Clock::time_point t) const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t - origin_).count();
  }

  size_t expected_runs_;
  Clock::time_point origin_;
  std::vector<ProfiledNode> nodes_;
  bool fast_kernels_ = false;
  std::vector<NodeShapes> shapes_;
  std::vector<Call> calls_;
  std::vector<Run> runs_;
  Clock::time_point run_start_;
  int64_t run_thread_ = 0;
};

}  // namespace kiln::runtime

// Runs a graph node by node, in topological order, with the reference kernels or, where one covers the
// node and the call, a fast kernel prepared here once (kernels/cpu/fast_kernels.h). Values are released
// after their last use. Subgraphs (If/Loop/Scan bodies) run through the same executor and see the
// values of their enclosing graphs.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"
#include "kernels/cpu/fast_kernels.h"
#include "ops/op_def.h"
#include "runtime/arena.h"

namespace kiln::runtime {

// Values visible to a running graph: its bindings and computed values, then its initializers (bound
// once, when the executor prepared the graph, not copied in on every run); lookups fall through to
// enclosing graphs.
struct Scope {
  const Scope* parent = nullptr;
  std::unordered_map<std::string, ir::Datum> values;
  const std::unordered_map<std::string, ir::Datum>* initializers = nullptr;
  const ir::Datum* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent) {
      auto it = s->values.find(name);
      if (it != s->values.end()) return &it->second;
      if (s->initializers) {
        auto in = s->initializers->find(name);
        if (in != s->initializers->end()) return &in->second;
      }
    }
    return nullptr;
  }
};

class Executor {
 public:
  // Called after each node with its outputs (for checking inferred types, tracing, ...).
  using NodeObserver = std::function<void(const ir::Node&, const std::vector<ir::Datum>&)>;

  // Resolves every node of the model (and of its subgraphs) to its op declaration once, and with
  // `fast_kernels` prepares the fast kernels (packing weights). Initializers of the main graph that fast
  // kernels absorbed (FastKernel::absorbed_inputs) and nothing else reads are, with `release_absorbed`,
  // erased from the model as they are packed, so that the weights are never held twice.
  Executor(ir::Model& model, ops::Limits limits, bool fast_kernels = false, bool release_absorbed = false);
  ~Executor();

  // Runs g with `bindings` for its inputs (the caller binds graph inputs; initializers are bound here)
  // and returns g's outputs in order.
  std::vector<ir::Datum> run(const ir::Graph& g, std::unordered_map<std::string, ir::Datum> bindings,
                             const Scope* outer) const;

  void set_observer(NodeObserver observer) { observer_ = std::move(observer); }
  // Nodes of the main graph with a fast kernel prepared (for reports and tests).
  size_t fast_kernel_count() const;
  // Initializers erased because fast kernels hold them packed, and their bytes.
  size_t released_initializers() const { return released_initializers_; }
  size_t released_bytes() const { return released_bytes_; }

  // Memory plans of the main graph, one per input-shape signature seen (at most kMaxPlans, least
  // recently used dropped first). The first run of a signature records its buffers; every later one
  // runs in the plan's arena.
  static constexpr size_t kMaxPlans = 8;
  struct PlanStats {
    size_t plans = 0;        // cached now
    size_t plans_made = 0;   // since creation (a signature evicted and seen again is planned again)
    size_t arena_bytes = 0;  // of the most recently used plan
    size_t lower_bound_bytes = 0;
    size_t planned_buffers = 0;
  };
  PlanStats plan_stats() const;
  int64_t opset_of(const ir::Node& n) const { return model_.opset(n.domain); }

 private:
  struct PreparedGraph {
    std::vector<const ops::OpDef*> defs;                          // per node
    std::vector<std::unique_ptr<kernels::cpu::FastKernel>> fast;  // per node; null: reference only
    std::unordered_map<std::string, size_t> last_use;             // value -> index of the last node reading it
    std::vector<std::vector<size_t>> output_last_use;             // per node and output (nodes.size(): graph output)
    std::vector<std::vector<bool>> absorbed;                      // per node and input: held by its fast kernel
    std::unordered_map<std::string, ir::Datum> initializers;      // the graph's (sharing storage), after absorption
  };
  const PreparedGraph& prepared(const ir::Graph& g) const;
  // `releasable`: g itself, when its initializers may be released as fast kernels absorb them.
  void prepare(const ir::Graph& g, ir::Graph* releasable = nullptr);
  // How many readers each initializer of g has (node inputs, subgraph references, graph inputs/outputs).
  static std::unordered_map<std::string, size_t> initializer_readers(const ir::Graph& g);
  // Marks node's inputs absorbed by k and erases each initializer whose last reader absorbed it.
  void absorb(ir::Graph& g, size_t node, const kernels::cpu::FastKernel& k,
              std::unordered_map<std::string, size_t>& readers, std::vector<bool>& absorbed);
  struct Plan {
    std::vector<int64_t> signature;
    ArenaLayout layout;
    std::unique_ptr<ArenaPool> arenas;  // a run holds the Plan's shared_ptr, so eviction never pulls it away
  };
  // The plan for this signature, moved to the front of the cache; nullptr when there is none yet.
  std::shared_ptr<Plan> find_plan(const std::vector<int64_t>& signature) const;
  std::vector<ir::Datum> run_nodes(const ir::Graph& g, Scope& scope, ops::TensorAllocator* allocator,
                                   BufferRecorder* recorder, ArenaAllocator* arena) const;

  const ir::Model& model_;
  ops::Limits limits_;
  bool fast_kernels_;
  std::unordered_map<const ir::Graph*, PreparedGraph> prepared_;
  NodeObserver observer_;
  size_t released_initializers_ = 0, released_bytes_ = 0;
  bool plannable_ = true;  // false for graphs with subgraphs: what an If returns may alias differently per run
  mutable std::mutex plans_mutex_;
  mutable std::list<std::shared_ptr<Plan>> plans_;  // most recently used first
  mutable size_t plans_made_ = 0;
};

}  // namespace kiln::runtime

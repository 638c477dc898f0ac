// Runs a graph node by node, in topological order, with the reference kernels or, where one covers the
// node and the call, a fast kernel prepared here once (kernels/cpu/fast_kernels.h). Values are released
// after their last use. Subgraphs (If/Loop/Scan bodies) run through the same executor and see the
// values of their enclosing graphs. With a profiler attached (set_profiler), each node of the main graph is
// timed (runtime/profiler.h); without one, a run pays one predictable branch per node for it.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"
#include "kernels/cpu/fast_kernels.h"
#include "ops/op_def.h"
#include "runtime/arena.h"
#include "runtime/profiler.h"

namespace kiln::runtime {

// One value of a running graph: what a node computed or the caller bound (`set`), until its last reader ran.
struct Slot {
  ir::Datum value;
  bool set = false;
};

// Values visible to a running graph, by name (for subgraphs, which read their enclosing graphs' values):
// its slots, then its initializers (bound once, when the executor prepared the graph); lookups fall
// through to enclosing graphs. The graph's own nodes read their inputs by slot index, not by name.
struct Scope {
  const Scope* parent = nullptr;
  const std::unordered_map<std::string, size_t>* slot_of = nullptr;
  const Slot* slots = nullptr;
  const std::unordered_map<std::string, ir::Datum>* initializers = nullptr;
  const ir::Datum* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent) {
      if (s->slot_of) {
        auto it = s->slot_of->find(name);
        if (it != s->slot_of->end() && s->slots[it->second].set) return &s->slots[it->second].value;
      }
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
  using NodeObserver = std::function<void(const ir::Node&, std::span<const ir::Datum>)>;

  // Resolves every node of the model (and of its subgraphs) to its op declaration once, and with
  // `fast_kernels` prepares the fast kernels (packing weights). Initializers of the main graph that fast
  // kernels absorbed (FastKernel::absorbed_inputs) and nothing else reads are, with `release_absorbed`,
  // erased from the model as they are packed, so that the weights are never held twice. `fast_options`
  // say what the fast kernels may trade for speed (bfloat16 products).
  Executor(ir::Model& model, ops::Limits limits, bool fast_kernels = false, bool release_absorbed = false,
           kernels::cpu::FastKernelOptions fast_options = {});
  ~Executor();

  // Runs g with `bindings` for its inputs (by name; an input that is also an initializer may be left
  // unbound) and returns g's outputs in order.
  std::vector<ir::Datum> run(const ir::Graph& g, const std::unordered_map<std::string, ir::Datum>& bindings,
                             const Scope* outer) const;
  // The same, writing the outputs into `results` (resized to g's outputs). A result that already holds a
  // tensor of the output's type and shape, with storage nothing else shares, is overwritten in place:
  // with the same `results` from call to call, a steady-state run of the main graph allocates nothing.
  void run(const ir::Graph& g, const std::unordered_map<std::string, ir::Datum>& bindings,
           std::vector<ir::Datum>& results) const;

  void set_observer(NodeObserver observer) { observer_ = std::move(observer); }
  // Times every node of the main graph's following runs into `profiler` (describing the nodes to it now);
  // nullptr stops. Not while a run is in progress; one caller at a time while it is attached.
  void set_profiler(Profiler* profiler);
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
    size_t in_place_buffers = 0;  // planned where an input of their node was (FastKernel::in_place_inputs)
  };
  PlanStats plan_stats() const;
  int64_t opset_of(const ir::Node& n) const { return model_.opset(n.domain); }

 private:
  // Where a node input (or graph output) is read from.
  struct ValueRef {
    enum class Kind : uint8_t { kAbsent, kSlot, kInitializer, kOuter };
    Kind kind = Kind::kAbsent;  // kAbsent: an omitted optional input, or an initializer its fast kernel holds
    size_t slot = 0;
    const ir::Datum* initializer = nullptr;
    const std::string* name = nullptr;  // for kOuter lookups and messages
  };
  struct PreparedGraph {
    std::vector<const ops::OpDef*> defs;                          // per node
    std::vector<std::unique_ptr<kernels::cpu::FastKernel>> fast;  // per node; null: reference only
    std::vector<std::vector<size_t>> in_place;                    // per node: its fast kernel's in_place_inputs()
    std::vector<std::vector<size_t>> output_last_use;             // per node and output (nodes.size(): graph output)
    std::unordered_map<std::string, ir::Datum> initializers;      // the graph's (sharing storage), after absorption
    std::unordered_map<std::string, size_t> slot_of;  // graph inputs and node outputs -> slot
    std::vector<size_t> input_slots;                   // per graph input
    std::vector<std::vector<ValueRef>> node_inputs;    // per node and input
    std::vector<std::vector<int64_t>> node_outputs;    // per node and output: slot, -1 when unused
    std::vector<std::vector<size_t>> released_after;   // per node: slots no later node (or output) reads
    std::vector<ValueRef> graph_outputs;
    size_t max_node_inputs = 0, max_node_outputs = 0;
    // Per node: the types of the inputs its fast kernel holds packed, released from the graph (for profiles).
    std::vector<std::vector<std::pair<size_t, ProfiledValue>>> held_inputs;
  };
  // A run's values and the scratch a node's KernelContext uses, kept by a Plan between runs.
  struct RunState {
    std::vector<Slot> slots;
    std::vector<const ir::Datum*> inputs;
    std::vector<ir::Datum> outputs;
    std::vector<uint8_t> output_set;
    explicit RunState(const PreparedGraph& p)
        : slots(p.slot_of.size()), inputs(p.max_node_inputs), outputs(p.max_node_outputs), output_set(p.max_node_outputs) {}
  };
  const PreparedGraph& prepared(const ir::Graph& g) const;
  // `releasable`: g itself, when its initializers may be released as fast kernels absorb them.
  void prepare(const ir::Graph& g, ir::Graph* releasable = nullptr);
  // Numbers g's values (graph inputs, node outputs) and resolves every node input to a slot, an
  // initializer or an enclosing graph's value, so that a run looks nothing up by name.
  static void assign_slots(const ir::Graph& g, const std::unordered_map<std::string, size_t>& last_use,
                           const std::vector<std::vector<bool>>& absorbed, PreparedGraph& p);
  // How many readers each initializer of g has (node inputs, subgraph references, graph inputs/outputs).
  static std::unordered_map<std::string, size_t> initializer_readers(const ir::Graph& g);
  // Marks node's inputs absorbed by k (noting their types in `held`) and erases each initializer whose last
  // reader absorbed it.
  void absorb(ir::Graph& g, size_t node, const kernels::cpu::FastKernel& k,
              std::unordered_map<std::string, size_t>& readers, std::vector<bool>& absorbed,
              std::vector<std::pair<size_t, ProfiledValue>>& held);
  struct Plan {
    std::vector<int64_t> signature;
    ArenaLayout layout;
    std::unique_ptr<ArenaPool> arenas;  // a run holds the Plan's shared_ptr, so eviction never pulls it away
  };
  // The signature of a run of the main graph: every bound input's dtype, rank and dims; empty when an
  // input is unbound or not a tensor (such a run is not planned).
  static std::vector<int64_t> signature_of(const PreparedGraph& p, const RunState& state);
  static bool signature_matches(const std::vector<int64_t>& signature, const PreparedGraph& p, const RunState& state);
  // The plan for the signature of the inputs bound in state, moved to the front of the cache; nullptr
  // when there is none yet.
  std::shared_ptr<Plan> find_plan(const PreparedGraph& p, const RunState& state) const;
  std::unique_ptr<RunState> take_state(const PreparedGraph& p) const;
  void give_back_state(std::unique_ptr<RunState> state) const;
  // Binds g's inputs into state's slots: by name from `bindings`, else by position from `positional`,
  // else the initializer of that name.
  void bind(const ir::Graph& g, const PreparedGraph& p, RunState& state,
            const std::unordered_map<std::string, ir::Datum>* bindings, std::vector<ir::Datum>* positional) const;
  // A run without a memory plan (subgraphs, observed runs, graphs with subgraphs), in a state of its own.
  void run_unplanned(const ir::Graph& g, const std::unordered_map<std::string, ir::Datum>* bindings,
                     std::vector<ir::Datum>* positional, const Scope* outer, std::vector<ir::Datum>& results) const;
  // A run of the main graph (Executor::run without the profiler's bracket).
  void run_main(const ir::Graph& g, const std::unordered_map<std::string, ir::Datum>& bindings,
                std::vector<ir::Datum>& results) const;
  // Runs g's nodes with the inputs bound in state and writes g's outputs into results.
  void run_nodes(const ir::Graph& g, const PreparedGraph& p, RunState& state, const Scope* outer,
                 ops::TensorAllocator* allocator, BufferRecorder* recorder, ArenaAllocator* arena,
                 std::vector<ir::Datum>& results) const;
  std::vector<ir::Datum> run_subgraph(const ir::Graph& g, std::vector<ir::Datum> inputs, const Scope* outer) const;

  const ir::Model& model_;
  ops::Limits limits_;
  bool fast_kernels_;
  kernels::cpu::FastKernelOptions fast_options_;
  std::unordered_map<const ir::Graph*, PreparedGraph> prepared_;
  NodeObserver observer_;
  Profiler* profiler_ = nullptr;
  std::unordered_map<const ir::Graph*, size_t> profile_base_;  // per profiled graph: its first node's index
  size_t released_initializers_ = 0, released_bytes_ = 0;
  bool plannable_ = true;  // false for graphs with subgraphs: what an If returns may alias differently per run
  mutable std::mutex plans_mutex_;
  mutable std::list<std::shared_ptr<Plan>> plans_;  // most recently used first
  mutable size_t plans_made_ = 0;
  mutable std::mutex states_mutex_;
  mutable std::vector<std::unique_ptr<RunState>> free_states_;  // of the main graph, one per concurrent run
};

}  // namespace kiln::runtime

#include "runtime/executor.h"

#include <algorithm>
#include <cstring>

#include "ir/graph_check.h"
#include "kernels/cpu/thread_buffer.h"
#include "ops/registry.h"

namespace kiln::runtime {

Executor::Executor(ir::Model& model, ops::Limits limits, bool fast_kernels, bool release_absorbed,
                   kernels::cpu::FastKernelOptions fast_options)
    : model_(model), limits_(limits), fast_kernels_(fast_kernels), fast_options_(fast_options) {
  prepare(model.graph, release_absorbed ? &model.graph : nullptr);
}

std::unordered_map<std::string, size_t> Executor::initializer_readers(const ir::Graph& g) {
  std::unordered_map<std::string, size_t> readers;
  auto count = [&](const std::string& name) {
    if (g.initializers.count(name)) ++readers[name];
  };
  for (const auto& in : g.inputs) count(in.name);  // a feed may override it
  for (const auto& out : g.outputs) count(out.name);
  for (const ir::Node& n : g.nodes) {
    for (const auto& in : n.inputs)
      if (!in.empty()) count(in);
    for (const auto& a : n.attributes) {
      std::vector<const ir::Graph*> subs;
      if (a.g) subs.push_back(a.g.get());
      for (const auto& sg : a.graphs) subs.push_back(sg.get());
      for (const ir::Graph* sg : subs)
        for (const auto& r : ir::outer_references(*sg)) count(r);
    }
  }
  return readers;
}

void Executor::absorb(ir::Graph& g, size_t node, const kernels::cpu::FastKernel& k,
                      std::unordered_map<std::string, size_t>& readers, std::vector<bool>& absorbed,
                      std::vector<std::pair<size_t, ProfiledValue>>& held) {
  const ir::Node& n = g.nodes[node];
  for (size_t j : k.absorbed_inputs()) {
    if (j >= n.inputs.size() || n.inputs[j].empty()) continue;
    auto r = readers.find(n.inputs[j]);
    if (r == readers.end()) continue;  // not an initializer
    absorbed[j] = true;
    auto it = g.initializers.find(n.inputs[j]);
    ProfiledValue type;
    type.kind = ProfiledValue::Kind::kTensor;
    type.dtype = it->second.dtype();
    type.shape.assign(it->second.shape().begin(), it->second.shape().end());
    held.emplace_back(j, std::move(type));
    if (--r->second > 0) continue;
    ++released_initializers_;
    released_bytes_ += it->second.nbytes();
    g.initializers.erase(it);  // the last reader holds it packed: free it now, before the next is packed
  }
}

Executor::~Executor() = default;

size_t Executor::fast_kernel_count() const {
  size_t n = 0;
  for (const auto& k : prepared_.at(&model_.graph).fast) n += k != nullptr;
  return n;
}

void Executor::prepare(const ir::Graph& g, ir::Graph* releasable) {
  PreparedGraph p;
  // Only needed here: value -> index of the last node reading it (nodes.size(): a graph output), and per
  // node and input whether its fast kernel holds it.
  std::unordered_map<std::string, size_t> last_use;
  std::vector<std::vector<bool>> absorbed;
  const auto& registry = ops::OpRegistry::instance();
  std::unordered_map<std::string, size_t> readers;
  if (releasable && fast_kernels_) readers = initializer_readers(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    const ops::OpDef* def = registry.find(n.domain, n.op_type, opset_of(n));
    if (!def || !def->kernel)
      fail("unsupported op ", n.op_type, " (domain ", ir::is_default_domain(n.domain) ? "ai.onnx" : n.domain,
           ", opset ", opset_of(n), ")", n.name.empty() ? "" : " at node \"" + n.name + "\"");
    p.defs.push_back(def);
    p.fast.push_back(fast_kernels_ ? kernels::cpu::make_fast_kernel(n, g, opset_of(n), fast_options_) : nullptr);
    p.in_place.push_back(p.fast.back() ? p.fast.back()->in_place_inputs() : std::vector<size_t>{});
    absorbed.emplace_back(n.inputs.size(), false);
    p.held_inputs.emplace_back();
    if (releasable && p.fast.back())
      absorb(*releasable, i, *p.fast.back(), readers, absorbed.back(), p.held_inputs.back());
    for (const auto& in : n.inputs)
      if (!in.empty()) last_use[in] = i;
    for (const auto& a : n.attributes) {
      std::vector<const ir::Graph*> subs;
      if (a.g) subs.push_back(a.g.get());
      for (const auto& sg : a.graphs) subs.push_back(sg.get());
      for (const ir::Graph* sg : subs) {
        for (const auto& r : ir::outer_references(*sg)) last_use[r] = i;
        prepare(*sg);
      }
    }
  }
  // Graph outputs live to the end.
  for (const auto& o : g.outputs) last_use[o.name] = g.nodes.size();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    std::vector<size_t> lu;
    for (const auto& out : g.nodes[i].outputs) {
      auto it = out.empty() ? last_use.end() : last_use.find(out);
      lu.push_back(it == last_use.end() ? i : std::max(i, it->second));
    }
    p.output_last_use.push_back(std::move(lu));
  }
  if (&g != &model_.graph && !p.defs.empty()) plannable_ = false;  // a subgraph: its parent is not planned
  for (const auto& [name, t] : g.initializers) p.initializers.emplace(name, ir::Datum(t));
  assign_slots(g, last_use, absorbed, prepared_[&g] = std::move(p));
}

void Executor::assign_slots(const ir::Graph& g, const std::unordered_map<std::string, size_t>& last_use,
                            const std::vector<std::vector<bool>>& absorbed, PreparedGraph& p) {
  auto slot = [&](const std::string& name) { return p.slot_of.emplace(name, p.slot_of.size()).first->second; };
  for (const auto& in : g.inputs) p.input_slots.push_back(slot(in.name));
  for (const ir::Node& n : g.nodes) {
    std::vector<int64_t> outs;
    for (const auto& o : n.outputs) outs.push_back(o.empty() ? -1 : static_cast<int64_t>(slot(o)));
    p.node_outputs.push_back(std::move(outs));
    p.max_node_inputs = std::max(p.max_node_inputs, n.inputs.size());
    p.max_node_outputs = std::max(p.max_node_outputs, n.outputs.size());
  }
  auto ref = [&](const std::string& name, bool absorbed) {
    ValueRef r;
    r.name = &name;
    if (name.empty()) return r;
    if (auto it = p.slot_of.find(name); it != p.slot_of.end()) {
      r.kind = ValueRef::Kind::kSlot;
      r.slot = it->second;
    } else if (auto in = p.initializers.find(name); in != p.initializers.end()) {
      r.kind = ValueRef::Kind::kInitializer;
      r.initializer = &in->second;
    } else if (!absorbed) {
      r.kind = ValueRef::Kind::kOuter;
    }
    return r;
  };
  p.released_after.resize(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    std::vector<ValueRef> ins;
    for (size_t j = 0; j < n.inputs.size(); ++j) {
      ins.push_back(ref(n.inputs[j], absorbed[i][j]));
      // Released after its last reader; a name read twice by one node is released once.
      const ValueRef& r = ins.back();
      if (r.kind != ValueRef::Kind::kSlot || last_use.at(n.inputs[j]) != i) continue;
      auto& rel = p.released_after[i];
      if (std::find(rel.begin(), rel.end(), r.slot) == rel.end()) rel.push_back(r.slot);
    }
    p.node_inputs.push_back(std::move(ins));
    // An output nothing reads is released at once.
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (p.node_outputs[i][k] >= 0 && !last_use.count(n.outputs[k]))
        p.released_after[i].push_back(static_cast<size_t>(p.node_outputs[i][k]));
  }
  for (const auto& o : g.outputs) p.graph_outputs.push_back(ref(o.name, false));
}

const Executor::PreparedGraph& Executor::prepared(const ir::Graph& g) const {
  auto it = prepared_.find(&g);
  if (it == prepared_.end()) fail("internal: graph \"", g.name, "\" was not prepared");
  return it->second;
}

std::vector<int64_t> Executor::signature_of(const PreparedGraph& p, const RunState& state) {
  std::vector<int64_t> signature;
  for (size_t slot : p.input_slots) {
    const Slot& v = state.slots[slot];
    if (!v.set || !v.value.is_tensor()) return {};
    const ir::Tensor& t = v.value.tensor;
    signature.push_back(static_cast<int64_t>(t.dtype()));
    signature.push_back(static_cast<int64_t>(t.rank()));
    signature.insert(signature.end(), t.shape().begin(), t.shape().end());
  }
  return signature;
}

bool Executor::signature_matches(const std::vector<int64_t>& signature, const PreparedGraph& p, const RunState& state) {
  size_t at = 0;
  for (size_t slot : p.input_slots) {
    const Slot& v = state.slots[slot];
    if (!v.set || !v.value.is_tensor()) return false;
    const ir::Tensor& t = v.value.tensor;
    if (at + 2 + t.rank() > signature.size() || signature[at] != static_cast<int64_t>(t.dtype()) ||
        signature[at + 1] != static_cast<int64_t>(t.rank()) ||
        !std::equal(t.shape().begin(), t.shape().end(), signature.begin() + static_cast<ptrdiff_t>(at + 2)))
      return false;
    at += 2 + t.rank();
  }
  return at == signature.size();
}

std::shared_ptr<Executor::Plan> Executor::find_plan(const PreparedGraph& p, const RunState& state) const {
  for (auto it = plans_.begin(); it != plans_.end(); ++it) {
    if (!signature_matches((*it)->signature, p, state)) continue;
    plans_.splice(plans_.begin(), plans_, it);
    return plans_.front();
  }
  return nullptr;
}

std::unique_ptr<Executor::RunState> Executor::take_state(const PreparedGraph& p) const {
  {
    std::lock_guard<std::mutex> lock(states_mutex_);
    if (!free_states_.empty()) {
      std::unique_ptr<RunState> state = std::move(free_states_.back());
      free_states_.pop_back();
      return state;
    }
  }
  return std::make_unique<RunState>(p);
}

void Executor::give_back_state(std::unique_ptr<RunState> state) const {
  // Drop the run's values and what the last node left in its unused outputs: views of the arena would
  // keep the arena from going back to its pool.
  for (Slot& s : state->slots) s = Slot();
  for (ir::Datum& d : state->outputs) d = ir::Datum();
  std::lock_guard<std::mutex> lock(states_mutex_);
  free_states_.push_back(std::move(state));
}

Executor::PlanStats Executor::plan_stats() const {
  std::lock_guard<std::mutex> lock(plans_mutex_);
  PlanStats s;
  s.plans = plans_.size();
  s.plans_made = plans_made_;
  if (!plans_.empty()) {
    s.arena_bytes = plans_.front()->layout.arena_bytes;
    s.lower_bound_bytes = plans_.front()->layout.lower_bound_bytes;
    s.planned_buffers = plans_.front()->layout.planned_buffers;
    s.in_place_buffers = plans_.front()->layout.in_place_buffers;
  }
  return s;
}

namespace {

// Writes a graph output into the caller's result. One in the arena is copied out (the arena is reused by
// the next run): into the result's own storage when that fits and nothing else shares it, else a clone.
void deliver(const ir::Datum& value, ir::Datum& result, const ArenaAllocator* arena) {
  if (!arena) {
    result = value;
    return;
  }
  if (value.is_tensor() && arena->owns(value.tensor)) {
    const ir::Tensor& t = value.tensor;
    ir::Tensor& r = result.tensor;
    if (result.is_tensor() && r.dtype() == t.dtype() && t.dtype() != ir::DType::kString && r.shape() == t.shape() &&
        r.storage_use_count() == 1 && !arena->owns(r)) {
      if (t.nbytes()) std::memcpy(r.raw(), t.raw(), t.nbytes());
      return;
    }
    result = ir::Datum(t.clone());
    return;
  }
  result = value;
  for (ir::Tensor& t : result.sequence)
    if (arena->owns(t)) t = t.clone();
}

}  // namespace

std::vector<ir::Datum> Executor::run(const ir::Graph& g, const std::unordered_map<std::string, ir::Datum>& bindings,
                                     const Scope* outer) const {
  std::vector<ir::Datum> results;
  if (&g == &model_.graph && !outer)
    run(g, bindings, results);
  else
    run_unplanned(g, &bindings, nullptr, outer, results);
  return results;
}

void Executor::run_unplanned(const ir::Graph& g, const std::unordered_map<std::string, ir::Datum>* bindings,
                             std::vector<ir::Datum>* positional, const Scope* outer,
                             std::vector<ir::Datum>& results) const {
  const PreparedGraph& p = prepared(g);
  RunState state(p);
  bind(g, p, state, bindings, positional);
  run_nodes(g, p, state, outer, nullptr, nullptr, nullptr, results);
}

std::vector<ir::Datum> Executor::run_subgraph(const ir::Graph& g, std::vector<ir::Datum> inputs, const Scope* outer) const {
  if (inputs.size() > g.inputs.size())
    fail("subgraph \"", g.name, "\" takes ", g.inputs.size(), " inputs, given ", inputs.size());
  std::vector<ir::Datum> results;
  run_unplanned(g, nullptr, &inputs, outer, results);
  return results;
}

void Executor::bind(const ir::Graph& g, const PreparedGraph& p, RunState& state,
                    const std::unordered_map<std::string, ir::Datum>* bindings, std::vector<ir::Datum>* positional) const {
  for (size_t k = 0; k < g.inputs.size(); ++k) {
    Slot& s = state.slots[p.input_slots[k]];
    const std::string& name = g.inputs[k].name;
    if (bindings) {
      if (auto it = bindings->find(name); it != bindings->end()) {
        s.value = it->second;
        s.set = true;
        continue;
      }
    } else if (positional && k < positional->size()) {
      s.value = std::move((*positional)[k]);
      s.set = true;
      continue;
    }
    if (auto in = p.initializers.find(name); in != p.initializers.end()) {
      s.value = in->second;
      s.set = true;
    }
  }
}

void Executor::set_profiler(Profiler* profiler) {
  profiler_ = profiler;
  profile_base_.clear();
  if (!profiler) return;
  // The main graph's nodes first, then each subgraph's (If/Loop/Scan bodies, depth first), each node naming
  // the node that runs its graph: the summary counts a parent's own time apart from its bodies'.
  std::vector<ProfiledNode> nodes;
  auto describe = [&](auto&& self, const ir::Graph& g, int parent, const std::string& prefix) -> void {
    const PreparedGraph& p = prepared(g);
    const size_t base = nodes.size();
    profile_base_[&g] = base;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const ir::Node& n = g.nodes[i];
      ProfiledNode& d = nodes.emplace_back();
      d.op_type = ir::is_default_domain(n.domain) ? n.op_type : n.domain + "." + n.op_type;
      d.name = prefix + (n.name.empty() ? str(n.op_type, "#", i) : n.name);
      // implementation() may ask oneDNN what it picked: once here, never per call.
      if (p.fast[i]) d.fast_kernel = p.fast[i]->name() + " " + p.fast[i]->implementation();
      d.held_inputs = p.held_inputs[i];
      d.parent = parent;
    }
    for (size_t i = 0; i < g.nodes.size(); ++i)
      for (const auto& a : g.nodes[i].attributes) {
        const std::string name = nodes[base + i].name + "/" + a.name + "/";
        if (a.g) self(self, *a.g, static_cast<int>(base + i), name);
        for (size_t k = 0; k < a.graphs.size(); ++k) self(self, *a.graphs[k], static_cast<int>(base + i), str(name, k, "/"));
      }
  };
  describe(describe, model_.graph, -1, "");
  profiler->attach(std::move(nodes), fast_kernels_);
}

void Executor::run(const ir::Graph& g, const std::unordered_map<std::string, ir::Datum>& bindings,
                   std::vector<ir::Datum>& results) const {
  if (profiler_ && &g == &model_.graph) {
    profiler_->begin_run();
    run_main(g, bindings, results);
    profiler_->end_run();  // not reached when the run fails: a failed run has no "run" record
    return;
  }
  run_main(g, bindings, results);
}

void Executor::run_main(const ir::Graph& g, const std::unordered_map<std::string, ir::Datum>& bindings,
                        std::vector<ir::Datum>& results) const {
  if (&g != &model_.graph || !plannable_ || observer_) {
    run_unplanned(g, &bindings, nullptr, nullptr, results);
    return;
  }
  const PreparedGraph& p = prepared(g);
  std::unique_ptr<RunState> state = take_state(p);
  bind(g, p, *state, &bindings, nullptr);
  std::shared_ptr<Plan> plan;
  {
    std::lock_guard<std::mutex> lock(plans_mutex_);
    plan = find_plan(p, *state);
  }
  std::vector<int64_t> signature;
  if (!plan) signature = signature_of(p, *state);
  if (!plan && signature.empty()) {  // an input is unbound or not a tensor: not planned
    run_nodes(g, p, *state, nullptr, nullptr, nullptr, nullptr, results);
    give_back_state(std::move(state));
    return;
  }
  if (!plan) {
    BufferRecorder recorder(g.nodes.size());
    run_nodes(g, p, *state, nullptr, &recorder, &recorder, nullptr, results);
    give_back_state(std::move(state));
    plan = std::make_shared<Plan>();
    plan->signature = std::move(signature);
    plan->layout = recorder.finish();
    plan->arenas = std::make_unique<ArenaPool>(plan->layout.arena_bytes);
    std::lock_guard<std::mutex> lock(plans_mutex_);
    bool planned = false;
    for (const auto& q : plans_) planned = planned || q->signature == plan->signature;
    if (!planned) {  // a concurrent first run may have planned it already
      plans_.push_front(std::move(plan));
      ++plans_made_;
      if (plans_.size() > kMaxPlans) plans_.pop_back();
    }
    return;
  }
  // Every thread of this caller's team gets the worker scratch the kernels have asked for (a no-op unless a
  // size grew since this thread last did it), so that a steady-state run allocates nothing.
  kernels::cpu::grow_worker_buffers_if_needed();
  std::shared_ptr<void> arena_memory = plan->arenas->take();
  {
    ArenaAllocator arena(plan->layout, arena_memory);
    run_nodes(g, p, *state, nullptr, &arena, nullptr, &arena, results);
    give_back_state(std::move(state));
  }
  plan->arenas->give_back(std::move(arena_memory));
}

void Executor::run_nodes(const ir::Graph& g, const PreparedGraph& p, RunState& state, const Scope* outer,
                         ops::TensorAllocator* allocator, BufferRecorder* recorder, ArenaAllocator* arena,
                         std::vector<ir::Datum>& results) const {
  Scope scope;
  scope.parent = outer;
  scope.slot_of = &p.slot_of;
  scope.slots = state.slots.data();
  scope.initializers = &p.initializers;
  // Captures two pointers: std::function keeps it in place, without allocating.
  const ops::KernelContext::SubgraphRunner run_sub = [this, &scope](const ir::Graph& sg, std::vector<ir::Datum> inputs) {
    return run_subgraph(sg, std::move(inputs), &scope);
  };
  // Subgraphs' nodes are profiled too, under their own indices (set_profiler numbered them).
  Profiler* profiler = nullptr;
  size_t profile_base = 0;
  if (profiler_) [[unlikely]] {
    if (auto it = profile_base_.find(&g); it != profile_base_.end()) {
      profiler = profiler_;
      profile_base = it->second;
    }
  }

  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    const size_t num_in = n.inputs.size(), num_out = n.outputs.size();
    for (size_t j = 0; j < num_in; ++j) {
      const ValueRef& r = p.node_inputs[i][j];
      const ir::Datum* d = nullptr;
      switch (r.kind) {
        case ValueRef::Kind::kAbsent:
          break;  // omitted, or held by the node's fast kernel
        case ValueRef::Kind::kSlot:
          if (state.slots[r.slot].set) d = &state.slots[r.slot].value;
          break;
        case ValueRef::Kind::kInitializer:
          d = r.initializer;
          break;
        case ValueRef::Kind::kOuter:
          d = outer ? outer->find(*r.name) : nullptr;
          break;
      }
      if (!d && r.kind != ValueRef::Kind::kAbsent) fail("[", n.label(), "] input \"", *r.name, "\" has no value");
      state.inputs[j] = d;
    }
    for (size_t k = 0; k < num_out; ++k) {
      state.outputs[k] = ir::Datum();
      state.output_set[k] = 0;
    }
    std::span<ir::Datum> outs(state.outputs.data(), num_out);
    ops::KernelContext ctx(n, opset_of(n), std::span<const ir::Datum* const>(state.inputs.data(), num_in), outs,
                           std::span<uint8_t>(state.output_set.data(), num_out), limits_, &run_sub);
    ctx.set_allocator(allocator);
    if (recorder) recorder->begin_node(i);
    if (arena) arena->begin_node(i);
    // The node's fast kernel if it answers, else its reference kernel; true when the fast one answered.
    auto run_kernel = [&] {
      bool fast = false;
      if (p.fast[i]) {
        ctx.set_zero_fill(false);  // a fast kernel writes every element it allocates
        if (arena) arena->allow_in_place(true);
        fast = p.fast[i]->run(ctx);
        if (arena) arena->allow_in_place(false);
        ctx.set_zero_fill(true);
      }
      if (!fast) p.defs[i]->kernel(ctx);
      return fast;
    };
    bool done;
    if (!profiler) [[likely]] {  // the one test an unprofiled run pays per node
      done = run_kernel();
    } else {
      const Profiler::Clock::time_point start = Profiler::Clock::now();
      done = run_kernel();
      const Profiler::Clock::time_point end = Profiler::Clock::now();
      profiler->record(profile_base + i, start, end, done, std::span<const ir::Datum* const>(state.inputs.data(), num_in), outs);
    }
    if (recorder && done && num_out > 0 && outs[0].is_tensor())
      for (size_t j : p.in_place[i])
        if (j < num_in && state.inputs[j] && state.inputs[j]->is_tensor())
          recorder->note_in_place(outs[0].tensor, state.inputs[j]->tensor);
    for (size_t k = 0; k < num_out; ++k)
      if (!n.outputs[k].empty() && !ctx.output_was_set(k))
        fail("[", n.label(), "] produced no value for output \"", n.outputs[k], "\"");
    if (observer_) observer_(n, outs);
    if (recorder) recorder->after_node(outs, p.output_last_use[i]);
    for (size_t k = 0; k < num_out; ++k) {
      if (p.node_outputs[i][k] < 0) continue;
      Slot& s = state.slots[static_cast<size_t>(p.node_outputs[i][k])];
      s.value = std::move(outs[k]);
      s.set = true;
    }
    for (size_t slot : p.released_after[i]) state.slots[slot] = Slot();
  }

  results.resize(g.outputs.size());
  for (size_t k = 0; k < g.outputs.size(); ++k) {
    const ValueRef& r = p.graph_outputs[k];
    const ir::Datum* d = nullptr;
    if (r.kind == ValueRef::Kind::kSlot && state.slots[r.slot].set) d = &state.slots[r.slot].value;
    if (r.kind == ValueRef::Kind::kInitializer) d = r.initializer;
    if (r.kind == ValueRef::Kind::kOuter && outer) d = outer->find(*r.name);
    if (!d) fail("graph output \"", g.outputs[k].name, "\" was not computed");
    deliver(*d, results[k], arena);
  }
}

}  // namespace kiln::runtime

#include "runtime/executor.h"

#include "ir/graph_check.h"
#include "ops/registry.h"

namespace kiln::runtime {

Executor::Executor(ir::Model& model, ops::Limits limits, bool fast_kernels, bool release_absorbed)
    : model_(model), limits_(limits), fast_kernels_(fast_kernels) {
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
                      std::unordered_map<std::string, size_t>& readers, std::vector<bool>& absorbed) {
  const ir::Node& n = g.nodes[node];
  for (size_t j : k.absorbed_inputs()) {
    if (j >= n.inputs.size() || n.inputs[j].empty()) continue;
    auto r = readers.find(n.inputs[j]);
    if (r == readers.end()) continue;  // not an initializer
    absorbed[j] = true;
    if (--r->second > 0) continue;
    auto it = g.initializers.find(n.inputs[j]);
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
    p.fast.push_back(fast_kernels_ ? kernels::cpu::make_fast_kernel(n, g, opset_of(n)) : nullptr);
    p.absorbed.emplace_back(n.inputs.size(), false);
    if (releasable && p.fast.back()) absorb(*releasable, i, *p.fast.back(), readers, p.absorbed.back());
    for (const auto& in : n.inputs)
      if (!in.empty()) p.last_use[in] = i;
    for (const auto& a : n.attributes) {
      std::vector<const ir::Graph*> subs;
      if (a.g) subs.push_back(a.g.get());
      for (const auto& sg : a.graphs) subs.push_back(sg.get());
      for (const ir::Graph* sg : subs) {
        for (const auto& r : ir::outer_references(*sg)) p.last_use[r] = i;
        prepare(*sg);
      }
    }
  }
  // Graph outputs live to the end.
  for (const auto& o : g.outputs) p.last_use[o.name] = g.nodes.size();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    std::vector<size_t> lu;
    for (const auto& out : g.nodes[i].outputs) {
      auto it = out.empty() ? p.last_use.end() : p.last_use.find(out);
      lu.push_back(it == p.last_use.end() ? i : std::max(i, it->second));
    }
    p.output_last_use.push_back(std::move(lu));
  }
  if (&g != &model_.graph && !p.defs.empty()) plannable_ = false;  // a subgraph: its parent is not planned
  for (const auto& [name, t] : g.initializers) p.initializers.emplace(name, ir::Datum(t));
  prepared_[&g] = std::move(p);
}

const Executor::PreparedGraph& Executor::prepared(const ir::Graph& g) const {
  auto it = prepared_.find(&g);
  if (it == prepared_.end()) fail("internal: graph \"", g.name, "\" was not prepared");
  return it->second;
}

std::shared_ptr<Executor::Plan> Executor::find_plan(const std::vector<int64_t>& signature) const {
  for (auto it = plans_.begin(); it != plans_.end(); ++it) {
    if ((*it)->signature != signature) continue;
    plans_.splice(plans_.begin(), plans_, it);
    return plans_.front();
  }
  return nullptr;
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
  }
  return s;
}

std::vector<ir::Datum> Executor::run(const ir::Graph& g, std::unordered_map<std::string, ir::Datum> bindings,
                                     const Scope* outer) const {
  Scope scope;
  scope.parent = outer;
  scope.values = std::move(bindings);
  scope.initializers = &prepared(g).initializers;
  if (&g != &model_.graph || !plannable_ || observer_) return run_nodes(g, scope, nullptr, nullptr, nullptr);

  // The signature: every graph input's dtype and shape.
  std::vector<int64_t> signature;
  for (const auto& in : g.inputs) {
    const ir::Datum* d = scope.find(in.name);
    if (!d || !d->is_tensor()) return run_nodes(g, scope, nullptr, nullptr, nullptr);
    signature.push_back(static_cast<int64_t>(d->tensor.dtype()));
    signature.push_back(static_cast<int64_t>(d->tensor.rank()));
    signature.insert(signature.end(), d->tensor.shape().begin(), d->tensor.shape().end());
  }

  std::shared_ptr<Plan> plan;
  {
    std::lock_guard<std::mutex> lock(plans_mutex_);
    plan = find_plan(signature);
  }
  if (!plan) {
    BufferRecorder recorder(g.nodes.size());
    std::vector<ir::Datum> results = run_nodes(g, scope, &recorder, &recorder, nullptr);
    plan = std::make_shared<Plan>();
    plan->signature = std::move(signature);
    plan->layout = recorder.finish();
    plan->arenas = std::make_unique<ArenaPool>(plan->layout.arena_bytes);
    std::lock_guard<std::mutex> lock(plans_mutex_);
    if (!find_plan(plan->signature)) {  // a concurrent first run may have planned it already
      plans_.push_front(std::move(plan));
      ++plans_made_;
      if (plans_.size() > kMaxPlans) plans_.pop_back();
    }
    return results;
  }
  std::shared_ptr<void> arena_memory = plan->arenas->take();
  std::vector<ir::Datum> results;
  {
    ArenaAllocator arena(plan->layout, arena_memory);
    results = run_nodes(g, scope, &arena, nullptr, &arena);
    scope.values.clear();
  }
  plan->arenas->give_back(std::move(arena_memory));
  return results;
}

std::vector<ir::Datum> Executor::run_nodes(const ir::Graph& g, Scope& scope, ops::TensorAllocator* allocator,
                                           BufferRecorder* recorder, ArenaAllocator* arena) const {
  const PreparedGraph& p = prepared(g);

  ops::KernelContext::SubgraphRunner run_sub = [this, &scope](const ir::Graph& sg, std::vector<ir::Datum> inputs) {
    if (inputs.size() > sg.inputs.size())
      fail("subgraph \"", sg.name, "\" takes ", sg.inputs.size(), " inputs, given ", inputs.size());
    std::unordered_map<std::string, ir::Datum> b;
    for (size_t i = 0; i < inputs.size(); ++i) b[sg.inputs[i].name] = std::move(inputs[i]);
    return run(sg, std::move(b), &scope);
  };

  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    std::vector<const ir::Datum*> inputs;
    inputs.reserve(n.inputs.size());
    for (const auto& name : n.inputs) {
      if (name.empty()) {
        inputs.push_back(nullptr);
        continue;
      }
      const ir::Datum* d = scope.find(name);
      if (!d && !(i < p.absorbed.size() && p.absorbed[i][inputs.size()]))
        fail("[", n.label(), "] input \"", name, "\" has no value");
      inputs.push_back(d);  // null for a released initializer: its fast kernel holds it
    }
    ops::KernelContext ctx(n, opset_of(n), std::move(inputs), limits_, run_sub);
    ctx.set_allocator(allocator);
    if (recorder) recorder->begin_node(i);
    if (arena) arena->begin_node(i);
    bool done = false;
    if (p.fast[i]) {
      ctx.set_zero_fill(false);  // a fast kernel writes every element it allocates
      done = p.fast[i]->run(ctx);
      ctx.set_zero_fill(true);
    }
    if (!done) p.defs[i]->kernel(ctx);
    auto& outs = ctx.outputs();
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty() && !ctx.output_was_set(k))
        fail("[", n.label(), "] produced no value for output \"", n.outputs[k], "\"");
    if (observer_) observer_(n, outs);
    if (recorder) recorder->after_node(outs, p.output_last_use[i]);
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty()) scope.values[n.outputs[k]] = std::move(outs[k]);
    // Release what no later node (or graph output) reads.
    for (const auto& name : n.inputs) {
      if (name.empty()) continue;
      auto lu = p.last_use.find(name);
      if (lu != p.last_use.end() && lu->second == i) scope.values.erase(name);
    }
  }

  std::vector<ir::Datum> results;
  results.reserve(g.outputs.size());
  for (const auto& o : g.outputs) {
    const ir::Datum* d = scope.find(o.name);
    if (!d) fail("graph output \"", o.name, "\" was not computed");
    results.push_back(*d);
    // Outputs leave the run; one in the arena (a kernel allocating differently than when recorded)
    // is copied out before the arena is reused.
    if (arena) {
      ir::Datum& r = results.back();
      if (r.is_tensor() && arena->owns(r.tensor)) r.tensor = r.tensor.clone();
      for (ir::Tensor& t : r.sequence)
        if (arena->owns(t)) t = t.clone();
    }
  }
  return results;
}

}  // namespace kiln::runtime

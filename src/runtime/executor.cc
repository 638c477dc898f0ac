#include "runtime/executor.h"

#include "ir/graph_check.h"
#include "ops/registry.h"

namespace kiln::runtime {

Executor::Executor(const ir::Model& model, ops::Limits limits, bool fast_kernels)
    : model_(model), limits_(limits), fast_kernels_(fast_kernels) {
  prepare(model.graph);
}

Executor::~Executor() = default;

size_t Executor::fast_kernel_count() const {
  size_t n = 0;
  for (const auto& k : prepared_.at(&model_.graph).fast) n += k != nullptr;
  return n;
}

void Executor::prepare(const ir::Graph& g) {
  PreparedGraph p;
  const auto& registry = ops::OpRegistry::instance();
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    const ops::OpDef* def = registry.find(n.domain, n.op_type, opset_of(n));
    if (!def || !def->kernel)
      fail("unsupported op ", n.op_type, " (domain ", ir::is_default_domain(n.domain) ? "ai.onnx" : n.domain,
           ", opset ", opset_of(n), ")", n.name.empty() ? "" : " at node \"" + n.name + "\"");
    p.defs.push_back(def);
    p.fast.push_back(fast_kernels_ ? kernels::cpu::make_fast_kernel(n, g, opset_of(n)) : nullptr);
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
  prepared_[&g] = std::move(p);
}

std::vector<ir::Datum> Executor::run(const ir::Graph& g, std::unordered_map<std::string, ir::Datum> bindings,
                                     const Scope* outer) const {
  auto it = prepared_.find(&g);
  if (it == prepared_.end()) fail("internal: graph \"", g.name, "\" was not prepared");
  const PreparedGraph& p = it->second;

  Scope scope;
  scope.parent = outer;
  scope.values = std::move(bindings);
  for (const auto& [name, t] : g.initializers)
    if (!scope.values.count(name)) scope.values.emplace(name, ir::Datum(t));

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
      if (!d) fail("[", n.label(), "] input \"", name, "\" has no value");
      inputs.push_back(d);
    }
    ops::KernelContext ctx(n, opset_of(n), std::move(inputs), limits_, run_sub);
    if (!p.fast[i] || !p.fast[i]->run(ctx)) p.defs[i]->kernel(ctx);
    auto& outs = ctx.outputs();
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty() && !ctx.output_was_set(k))
        fail("[", n.label(), "] produced no value for output \"", n.outputs[k], "\"");
    if (observer_) observer_(n, outs);
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
  }
  return results;
}

}  // namespace kiln::runtime

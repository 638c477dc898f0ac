// Constant folding: a node whose inputs are all constants (initializers or Constant outputs) is run once
// by its reference kernel and replaced by initializers holding its outputs — Transposes of weights,
// shape arithmetic on static shapes, a Cast of a constant. Left alone: random ops (a new draw per run),
// ops with subgraphs, nodes whose outputs would exceed the byte budget (folding must not bloat the
// model), and nodes whose kernel fails (the failure belongs to run time, where it names the input).
// Subgraphs (If/Loop/Scan bodies) are folded too, each on its own constants: exporters that build a model
// per branch (silero-vad: one per sample rate) compute the branch's weights there, and a fast kernel
// inside the branch packs only what is an initializer of its graph. A body's value from an enclosing
// graph is a constant when it is one there (an initializer or a Constant of that graph).
#include <set>

#include "common/error.h"
#include "ops/registry.h"
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"

namespace kiln::passes {

namespace {

bool is_random(const std::string& op) {
  static const std::set<std::string> kRandom = {"RandomNormal",      "RandomNormalLike", "RandomUniform",
                                                "RandomUniformLike", "Multinomial",      "Bernoulli"};
  return kRandom.count(op) > 0;
}

bool has_subgraph(const ir::Node& n) {
  for (const auto& a : n.attributes)
    if (a.g || !a.graphs.empty()) return true;
  return false;
}

// The graphs enclosing a subgraph, nearest first: a body reads their values by name.
using Enclosing = std::vector<const GraphIndex*>;

// Whether `g` defines `v` itself (a graph input, an initializer or a node output), hiding any enclosing
// graph's value of that name.
bool defines(const ir::Graph& g, const GraphIndex& index, const std::string& v) {
  return index.producer(v) >= 0 || index.is_graph_input(v) || g.initializers.count(v) > 0;
}

bool fold_graph(ir::Graph& g, PassContext& ctx, const Enclosing& enclosing) {
  bool changed = false;
  GraphIndex index(g);
  // Values folded so far in this walk, readable by later nodes (the index predates them).
  std::unordered_map<std::string, ir::Tensor> folded;
  auto constant = [&](const std::string& v) -> std::optional<ir::Tensor> {
    if (auto it = folded.find(v); it != folded.end()) return it->second;
    if (defines(g, index, v) || enclosing.empty()) return index.constant(v);
    // A body's weights are often the enclosing graph's initializers, read by name.
    for (const GraphIndex* outer : enclosing) {
      if (defines(outer->graph(), *outer, v)) return outer->constant(v);
    }
    return std::nullopt;
  };
  std::vector<int> removed;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const ir::Node& n = g.nodes[i];
    if ((ir::is_default_domain(n.domain) && n.op_type == "Constant") || is_random(n.op_type) || has_subgraph(n))
      continue;
    std::vector<ir::Datum> inputs(n.inputs.size());
    std::vector<const ir::Datum*> pointers(n.inputs.size(), nullptr);
    bool all_constant = !n.inputs.empty();
    for (size_t k = 0; k < n.inputs.size() && all_constant; ++k) {
      if (n.inputs[k].empty()) continue;
      std::optional<ir::Tensor> t = constant(n.inputs[k]);
      if (!t)
        all_constant = false;
      else {
        inputs[k] = ir::Datum(*t);
        pointers[k] = &inputs[k];
      }
    }
    if (!all_constant) continue;
    for (const auto& o : n.outputs)
      if (index.is_read_by_subgraph(o)) all_constant = false;
    if (!all_constant) continue;
    const int64_t opset = ctx.model().opset(n.domain);
    const ops::OpDef* def = ops::OpRegistry::instance().find(n.domain, n.op_type, opset);
    if (!def || !def->kernel) continue;
    ops::Limits limits = ctx.options().limits;
    limits.max_tensor_bytes = std::min(limits.max_tensor_bytes, ctx.options().fold_budget_bytes);
    ops::KernelContext kc(n, opset, pointers, limits, nullptr);
    try {
      def->kernel(kc);
    } catch (const Error& e) {
      ctx.rejected("constant folding", n, e.what());
      continue;
    }
    int64_t bytes = 0;
    bool tensors = true;
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      if (!kc.output_was_set(k) || !kc.outputs()[k].is_tensor())
        tensors = false;
      else
        bytes += static_cast<int64_t>(kc.outputs()[k].tensor.nbytes());
    }
    if (!tensors) continue;
    if (bytes > ctx.options().fold_budget_bytes) {
      ctx.rejected("constant folding", n,
                   "its outputs (" + std::to_string(bytes) + " bytes) exceed the folding budget");
      continue;
    }
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      folded[n.outputs[k]] = kc.outputs()[k].tensor;
      g.add_initializer(n.outputs[k], kc.outputs()[k].tensor);
    }
    removed.push_back(i);
    ctx.changed(n.op_type + " folded");
    changed = true;
  }
  remove_nodes(g, removed);
  GraphIndex after(g);
  Enclosing inner = {&after};
  inner.insert(inner.end(), enclosing.begin(), enclosing.end());
  for (ir::Node& n : g.nodes)
    for (ir::Attribute& a : n.attributes) {
      if (a.g) changed |= fold_graph(*a.g, ctx, inner);
      for (auto& sub : a.graphs) changed |= fold_graph(*sub, ctx, inner);
    }
  return changed;
}

}  // namespace

bool fold_constants(ir::Graph& g, PassContext& ctx) { return fold_graph(g, ctx, {}); }

}  // namespace kiln::passes

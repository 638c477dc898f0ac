// Shape arithmetic on static dims: where graph-level inference knows a value before the model runs (a
// Shape of a tensor whose dims are static, a Gather of such a shape, a Concat of those ...), the value
// becomes an initializer and the node that computed it goes. Inference has already done the arithmetic
// (analysis/shape_inference.h folds small constant subexpressions); this pass keeps the result.
//
//   x: float[batch, 128]    Shape(x) -> s; Gather(s, 1) -> d     =>   d = 128 (initializer); Shape stays
#include <unordered_set>

#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "analysis/shape_inference.h"

namespace kiln::passes {

namespace {

// The value of `v` when inference knows it: a folded value, or shape values whose dims are all static
// (a Gather of dim 1 of a [batch, 128] shape is 128 even though the shape as a whole is not known).
std::optional<ir::Tensor> known_value(const analysis::InferredTypes& types, const std::string& v) {
  if (auto it = types.values.find(v); it != types.values.end()) return it->second;
  auto dims = types.dim_values.find(v);
  auto type = types.types.find(v);
  if (dims == types.dim_values.end() || type == types.types.end() || !type->second.is_tensor() || !type->second.shape ||
      type->second.dtype != ir::DType::kInt64 || type->second.shape->rank() > 1)
    return std::nullopt;
  std::vector<int64_t> values;
  for (const auto& d : dims->second) {
    if (!d.is_static()) return std::nullopt;
    values.push_back(d.value);
  }
  if (type->second.shape->rank() == 0) {
    if (values.size() != 1) return std::nullopt;
    return ir::Tensor::scalar<int64_t>(values[0]);
  }
  return ir::Tensor::from_vector<int64_t>(values, {static_cast<int64_t>(values.size())});
}

}  // namespace

bool fold_shapes(ir::Graph& g, PassContext& ctx) {
  analysis::InferredTypes types = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
  GraphIndex index(g);
  bool changed = false;
  std::vector<int> removed;
  // Inference treats an initializer that is also a graph input as its default value, but a caller may
  // feed another: nothing computed from such a value may be frozen (its shape is declared, though).
  std::unordered_set<std::string> overridable;
  for (const auto& v : g.inputs)
    if (g.initializers.count(v.name)) overridable.insert(v.name);
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const ir::Node& n = g.nodes[i];
    const bool reads_shape_only = n.op_type == "Shape" || n.op_type == "Size";
    bool tainted = false;
    for (const auto& in : n.inputs) tainted |= !reads_shape_only && overridable.count(in) > 0;
    if (tainted) {
      for (const auto& o : n.outputs) overridable.insert(o);
      continue;
    }
    if (ir::is_default_domain(n.domain) && n.op_type == "Constant") continue;
    bool all_known = !n.outputs.empty();
    std::vector<ir::Tensor> values(n.outputs.size());
    for (size_t k = 0; k < n.outputs.size() && all_known; ++k) {
      if (n.outputs[k].empty()) continue;
      std::optional<ir::Tensor> v = known_value(types, n.outputs[k]);
      if (!v || index.is_read_by_subgraph(n.outputs[k]))
        all_known = false;
      else
        values[k] = *v;
    }
    if (!all_known) continue;
    // Only what a Shape started: other constant subexpressions are constant folding's, with its budget.
    bool from_shape = n.op_type == "Shape" || n.op_type == "Size";
    for (const auto& in : n.inputs)
      if (!in.empty() && !index.constant(in) && !g.find_initializer(in)) from_shape = true;
    if (!from_shape) continue;
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty()) g.add_initializer(n.outputs[k], values[k]);
    removed.push_back(i);
    ctx.changed(n.op_type + " folded from static shapes");
    changed = true;
  }
  remove_nodes(g, removed);
  return changed;
}

}  // namespace kiln::passes

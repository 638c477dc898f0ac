#include "analysis/constant_nodes.h"

#include <algorithm>

namespace kiln::analysis {

std::optional<ir::Tensor> constant_node_value(const ir::Node& n) {
  if (n.op_type != "Constant" || !ir::is_default_domain(n.domain) || n.attributes.size() != 1) return std::nullopt;
  const ir::Attribute& a = n.attributes[0];
  using K = ir::Attribute::Kind;
  if (a.name == "value" && a.kind == K::kTensor) return a.t;
  if (a.name == "value_float" && a.kind == K::kFloat) return ir::Tensor::scalar<float>(a.f);
  if (a.name == "value_int" && a.kind == K::kInt) return ir::Tensor::scalar<int64_t>(a.i);
  if (a.name == "value_floats" && a.kind == K::kFloats)
    return ir::Tensor::from_vector<float>(a.floats, {static_cast<int64_t>(a.floats.size())});
  if (a.name == "value_ints" && a.kind == K::kInts)
    return ir::Tensor::from_vector<int64_t>(a.ints, {static_cast<int64_t>(a.ints.size())});
  return std::nullopt;
}

int constants_to_initializers(ir::Graph& g) {
  int replaced = 0;
  for (ir::Node& n : g.nodes)
    for (ir::Attribute& a : n.attributes) {
      if (a.g) replaced += constants_to_initializers(*a.g);
      for (const auto& sg : a.graphs)
        if (sg) replaced += constants_to_initializers(*sg);
    }
  auto is_replaced = [&](const ir::Node& n) {
    // A Constant whose output is also declared a graph input would become an overridable default; such a
    // graph is invalid anyway (two producers), and is left for the graph check to name.
    if (n.outputs.size() != 1 || n.outputs[0].empty() || g.initializers.count(n.outputs[0])) return false;
    for (const auto& in : g.inputs)
      if (in.name == n.outputs[0]) return false;
    std::optional<ir::Tensor> t = constant_node_value(n);
    if (!t) return false;
    g.add_initializer(n.outputs[0], std::move(*t));
    ++replaced;
    return true;
  };
  g.nodes.erase(std::remove_if(g.nodes.begin(), g.nodes.end(), is_replaced), g.nodes.end());
  return replaced;
}

}  // namespace kiln::analysis

#include "passes/graph_index.h"

#include "analysis/constant_nodes.h"
#include "ir/graph_check.h"

namespace kiln::passes {

GraphIndex::GraphIndex(const ir::Graph& g) : g_(g) {
  for (const auto& v : g.inputs) graph_inputs_.insert(v.name);
  for (const auto& v : g.outputs) graph_outputs_.insert(v.name);
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const ir::Node& n = g.nodes[i];
    for (const auto& o : n.outputs)
      if (!o.empty()) producer_[o] = i;
    for (int k = 0; k < static_cast<int>(n.inputs.size()); ++k)
      if (!n.inputs[k].empty()) uses_[n.inputs[k]].push_back({i, k});
    for (const auto& a : n.attributes) {
      if (a.g)
        for (const auto& v : ir::outer_references(*a.g)) subgraph_reads_.insert(v);
      for (const auto& sub : a.graphs)
        for (const auto& v : ir::outer_references(*sub)) subgraph_reads_.insert(v);
    }
  }
}

int GraphIndex::producer(const std::string& value) const {
  auto it = producer_.find(value);
  return it == producer_.end() ? -1 : it->second;
}

const ir::Node* GraphIndex::producer_node(const std::string& value) const {
  int p = producer(value);
  return p < 0 ? nullptr : &g_.nodes[p];
}

const std::vector<Use>& GraphIndex::uses(const std::string& value) const {
  auto it = uses_.find(value);
  return it == uses_.end() ? no_uses_ : it->second;
}

size_t GraphIndex::use_count(const std::string& value) const {
  return uses(value).size() + graph_outputs_.count(value) + subgraph_reads_.count(value);
}

int GraphIndex::only_consumer(const std::string& value) const {
  if (use_count(value) != 1) return -1;
  const auto& u = uses(value);
  return u.empty() ? -1 : u[0].node;
}

std::optional<ir::Tensor> GraphIndex::constant(const std::string& value) const {
  if (value.empty()) return std::nullopt;
  if (int p = producer(value); p >= 0) return analysis::constant_node_value(g_.nodes[p]);
  // An initializer that is also a graph input is a default the caller may override: not a constant.
  if (graph_inputs_.count(value)) return std::nullopt;
  if (const ir::Tensor* t = g_.find_initializer(value)) return *t;
  return std::nullopt;
}

std::optional<double> GraphIndex::scalar(const std::string& value) const {
  std::optional<ir::Tensor> t = constant(value);
  if (!t || t->numel() != 1 || t->dtype() == ir::DType::kString) return std::nullopt;
  return t->as_double(0);
}

}  // namespace kiln::passes

#include "passes/graph_edit.h"

#include <algorithm>

namespace kiln::passes {

namespace {

void rename_uses(ir::Graph& g, const std::string& from, const std::string& to) {
  for (auto& n : g.nodes)
    for (auto& in : n.inputs)
      if (in == from) in = to;
}

}  // namespace

bool redirect_value(ir::Graph& g, const GraphIndex& index, std::string from, std::string to) {
  if (from == to || index.is_read_by_subgraph(from)) return false;
  if (!index.is_graph_output(from)) {
    rename_uses(g, from, to);
    return true;
  }
  // `from` must keep its name. Rename `to` instead, if `to` is an ordinary node output.
  int p = index.producer(to);
  if (p < 0 || index.is_graph_output(to) || index.is_read_by_subgraph(to)) return false;
  rename_uses(g, to, from);
  for (auto& o : g.nodes[p].outputs)
    if (o == to) o = from;
  // The old producer of `from` now writes a name nobody reads; dead-code elimination drops it. Give it a
  // placeholder so that the name `from` has one writer.
  int old = index.producer(from);
  if (old >= 0)
    for (auto& o : g.nodes[old].outputs)
      if (o == from) o = from + "__replaced_by_" + to;
  return true;
}

void remove_nodes(ir::Graph& g, std::vector<int> indices) {
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  std::vector<ir::Node> kept;
  kept.reserve(g.nodes.size() - indices.size());
  size_t k = 0;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    if (k < indices.size() && indices[k] == i) {
      ++k;
      continue;
    }
    kept.push_back(std::move(g.nodes[i]));
  }
  g.nodes = std::move(kept);
}

}  // namespace kiln::passes

// Dead-code elimination: removes nodes none of whose outputs is read (by a node, a subgraph or as a graph
// output), repeatedly, and initializers nothing reads; in subgraphs (If/Loop/Scan bodies) too, where
// constant folding leaves the folded nodes' inputs behind.
#include <unordered_set>

#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"

namespace kiln::passes {

bool eliminate_dead_code(ir::Graph& g, PassContext& ctx) {
  bool changed = false;
  for (;;) {
    GraphIndex index(g);
    std::vector<int> dead;
    for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
      bool used = false;
      for (const auto& o : g.nodes[i].outputs)
        if (!o.empty() && index.use_count(o) > 0) used = true;
      if (!used) dead.push_back(i);
    }
    if (dead.empty()) break;
    ctx.changed("nodes removed", static_cast<int64_t>(dead.size()));
    remove_nodes(g, dead);
    changed = true;
  }
  GraphIndex index(g);
  std::vector<std::string> kept;
  for (const auto& name : g.initializer_names) {
    if (index.use_count(name) > 0 || index.is_graph_input(name)) {
      kept.push_back(name);
      continue;
    }
    g.initializers.erase(name);
    ctx.changed("initializers removed");
    changed = true;
  }
  g.initializer_names = std::move(kept);
  for (ir::Node& n : g.nodes)
    for (ir::Attribute& a : n.attributes) {
      if (a.g) changed |= eliminate_dead_code(*a.g, ctx);
      for (auto& sub : a.graphs) changed |= eliminate_dead_code(*sub, ctx);
    }
  return changed;
}

}  // namespace kiln::passes

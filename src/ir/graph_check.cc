#include "ir/graph_check.h"

#include <queue>
#include <unordered_map>

namespace kiln::ir {

namespace {

void collect_outer_references(const Graph& g, std::unordered_set<std::string>& defined,
                              std::unordered_set<std::string>& refs) {
  for (const auto& v : g.inputs) defined.insert(v.name);
  for (const auto& name : g.initializer_names) defined.insert(name);
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs)
      if (!o.empty()) defined.insert(o);
  for (const auto& n : g.nodes) {
    for (const auto& i : n.inputs)
      if (!i.empty() && !defined.count(i)) refs.insert(i);
    for (const auto& a : n.attributes) {
      std::vector<const Graph*> subs;
      if (a.g) subs.push_back(a.g.get());
      for (const auto& sg : a.graphs) subs.push_back(sg.get());
      for (const Graph* sg : subs) {
        std::unordered_set<std::string> inner_defined = defined;
        std::unordered_set<std::string> inner_refs;
        collect_outer_references(*sg, inner_defined, inner_refs);
        for (const auto& r : inner_refs)
          if (!defined.count(r)) refs.insert(r);
      }
    }
  }
  for (const auto& o : g.outputs)
    if (!defined.count(o.name)) refs.insert(o.name);
}

}  // namespace

std::unordered_set<std::string> outer_references(const Graph& g) {
  std::unordered_set<std::string> defined, refs;
  collect_outer_references(g, defined, refs);
  return refs;
}

void check_and_sort_graph(Graph& g, const std::unordered_set<std::string>& outer_scope, const std::string& where) {
  const std::string graph_label = g.name.empty() ? "graph" : "graph \"" + g.name + "\"";
  auto fail_here = [&](const auto&... args) { fail(where, ": ", args...); };

  // Who defines each value: -1 for graph inputs and initializers, the node index otherwise.
  std::unordered_map<std::string, int64_t> producer;
  for (const auto& v : g.inputs) {
    if (v.name.empty()) fail_here(graph_label, " has an input without a name");
    if (producer.count(v.name)) fail_here(graph_label, " declares input \"", v.name, "\" twice");
    producer[v.name] = -1;
  }
  for (const auto& name : g.initializer_names) producer.emplace(name, -1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    for (const auto& o : n.outputs) {
      if (o.empty()) continue;
      auto it = producer.find(o);
      if (it != producer.end()) {
        if (it->second < 0) fail_here(n.label(), " writes \"", o, "\", which is already a graph input or initializer");
        fail_here("value \"", o, "\" is written by two nodes: ", g.nodes[static_cast<size_t>(it->second)].label(),
                  " and ", n.label());
      }
      producer[o] = static_cast<int64_t>(i);
    }
  }

  // Kahn's algorithm; a min-heap on the original index keeps file order where the graph allows it.
  std::vector<int64_t> pending(g.nodes.size(), 0);
  std::vector<std::vector<size_t>> consumers(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    std::unordered_set<std::string> inner_refs;
    for (const auto& a : n.attributes) {
      if (a.g)
        for (const auto& r : outer_references(*a.g)) inner_refs.insert(r);
      for (const auto& sg : a.graphs)
        for (const auto& r : outer_references(*sg)) inner_refs.insert(r);
    }
    auto depend = [&](const std::string& in, bool from_subgraph) {
      auto it = producer.find(in);
      if (it == producer.end()) {
        if (outer_scope.count(in)) return;
        fail_here(n.label(), from_subgraph ? " has a subgraph that reads \"" : " reads \"", in,
                  "\", which no node, input or initializer defines");
      }
      if (it->second >= 0) {
        if (static_cast<size_t>(it->second) == i) {
          if (from_subgraph) return;
          fail_here(n.label(), " reads its own output \"", in, "\" (a cycle)");
        }
        consumers[static_cast<size_t>(it->second)].push_back(i);
        ++pending[i];
      }
    };
    for (const auto& in : n.inputs)
      if (!in.empty()) depend(in, false);
    for (const auto& in : inner_refs) depend(in, true);
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (pending[i] == 0) ready.push(i);
  std::vector<size_t> order;
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    order.push_back(i);
    for (size_t c : consumers[i])
      if (--pending[c] == 0) ready.push(c);
  }
  if (order.size() != g.nodes.size()) {
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (pending[i] > 0) fail_here(graph_label, " has a cycle through ", g.nodes[i].label());
  }

  for (const auto& o : g.outputs) {
    if (!producer.count(o.name) && !outer_scope.count(o.name))
      fail_here(graph_label, " output \"", o.name, "\" is not produced by any node, input or initializer");
  }

  std::vector<Node> sorted;
  sorted.reserve(g.nodes.size());
  for (size_t i : order) sorted.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(sorted);

  // Subgraphs see everything defined so far in this graph and the enclosing ones.
  std::unordered_set<std::string> visible = outer_scope;
  for (const auto& [name, _] : producer) visible.insert(name);
  for (auto& n : g.nodes)
    for (auto& a : n.attributes) {
      if (a.g) check_and_sort_graph(*a.g, visible, where);
      for (auto& sg : a.graphs) check_and_sort_graph(*sg, visible, where);
    }
}

}  // namespace kiln::ir

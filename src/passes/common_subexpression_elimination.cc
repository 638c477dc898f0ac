// Common-subexpression elimination: two nodes with the same op, domain, inputs and attributes compute the
// same values, so the later one's readers are sent to the earlier one and it becomes dead code:
//
//   Shape(x) -> a        Shape(x) -> a
//   Shape(x) -> b   =>   (readers of b read a)
//
// Constant nodes with bit-identical values count as the same. Random ops and ops with subgraphs are
// never merged.
#include <sstream>
#include <unordered_map>

#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"

namespace kiln::passes {

namespace {

bool mergeable(const ir::Node& n) {
  if (n.op_type.rfind("Random", 0) == 0 || n.op_type == "Multinomial" || n.op_type == "Bernoulli") return false;
  for (const auto& a : n.attributes)
    if (a.g || !a.graphs.empty() || a.kind == ir::Attribute::Kind::kSparseTensor) return false;
  return true;
}

void write_tensor(std::ostringstream& key, const ir::Tensor& t) {
  key << static_cast<int>(t.dtype()) << ir::to_string(t.shape()) << ':';
  if (t.dtype() == ir::DType::kString) {
    for (int64_t i = 0; i < t.numel(); ++i) key << t.data<std::string>()[i].size() << '/' << t.data<std::string>()[i];
  } else {
    key.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
  }
}

// Everything that decides what the node computes, as one string.
std::string signature(const ir::Node& n) {
  std::ostringstream key;
  key << n.domain << '|' << n.op_type << '|' << n.inputs.size() << '|';
  for (const auto& in : n.inputs) key << in.size() << ':' << in << '|';
  key << n.outputs.size() << '|';
  for (const auto& a : n.attributes) {
    key << a.name << '=' << static_cast<int>(a.kind) << ':';
    key << a.i << ',' << a.f << ',' << a.s.size() << '/' << a.s << ',';
    for (auto v : a.ints) key << v << ',';
    for (auto v : a.floats) key << v << ',';
    for (const auto& v : a.strings) key << v.size() << '/' << v << ',';
    if (a.t.defined()) write_tensor(key, a.t);
    for (const auto& t : a.tensors) write_tensor(key, t);
    key << '|';
  }
  return key.str();
}

}  // namespace

bool eliminate_common_subexpressions(ir::Graph& g, PassContext& ctx) {
  bool changed = false;
  // Nodes are in topological order, so the first of a set of equal nodes is the one to keep; merging
  // one pair can make later pairs equal (their inputs now have the same names), which one walk handles.
  std::unordered_map<std::string, int> first;
  std::vector<int> removed;
  // Outputs that are graph outputs or read by subgraphs are never redirected, and redirecting a plain
  // value does not change which values are those, so one index serves the whole walk.
  const GraphIndex index(g);
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const ir::Node& n = g.nodes[i];
    if (!mergeable(n)) continue;
    std::string key = signature(n);
    auto [it, inserted] = first.emplace(key, i);
    if (inserted) continue;
    const ir::Node& kept = g.nodes[it->second];
    bool all = true;
    for (size_t k = 0; k < n.outputs.size() && all; ++k) {
      if (n.outputs[k].empty()) continue;
      if (kept.outputs[k].empty() || index.is_graph_output(n.outputs[k]) || index.is_read_by_subgraph(n.outputs[k]))
        all = false;
    }
    if (!all) continue;
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty()) redirect_value(g, index, n.outputs[k], kept.outputs[k]);
    removed.push_back(i);
    ctx.changed(n.op_type + " merged");
    changed = true;
  }
  remove_nodes(g, removed);
  return changed;
}

}  // namespace kiln::passes

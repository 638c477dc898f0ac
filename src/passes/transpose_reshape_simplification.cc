// Chains of layout ops that collapse:
//   Transpose(Transpose(x, p1), p2)        -> Transpose(x, c) with c[i] = p1[p2[i]]; nothing if c is identity
//   Transpose(x, identity)                 -> x
//   Reshape(Reshape(x, s1), s2)            -> Reshape(x, s2)   (s2 constant, without 0 "copy" entries)
//   Squeeze(Unsqueeze(x, a), a)            -> x
// An inner node is bypassed only when the outer one is its only reader.
#include "ops/node_view.h"
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln::passes {

namespace {

std::optional<std::vector<int64_t>> perm_of(const ir::Node& n) {
  const ir::Attribute* a = n.find_attribute("perm");
  if (!a) return std::nullopt;  // the default reverses the dims: rank needed, left alone
  return a->ints;
}

bool is_identity(const std::vector<int64_t>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != static_cast<int64_t>(i)) return false;
  return true;
}

// Squeeze/Unsqueeze axes from the attribute (before opset 13) or the constant input (13+).
std::optional<std::vector<int64_t>> axes_of(const ir::Node& n, const GraphIndex& index) {
  if (const ir::Attribute* a = n.find_attribute("axes")) return a->ints;
  if (n.inputs.size() < 2 || n.inputs[1].empty()) return std::nullopt;
  std::optional<ir::Tensor> t = index.constant(n.inputs[1]);
  if (!t) return std::nullopt;
  return t->to_int64_vector();
}

}  // namespace

bool simplify_transpose_reshape_chains(ir::Graph& g, PassContext& ctx) {
  bool changed = false;
  for (bool again = true; again;) {
    again = false;
    GraphIndex index(g);
    for (int i = 0; i < static_cast<int>(g.nodes.size()) && !again; ++i) {
      ir::Node& n = g.nodes[i];
      if (!ir::is_default_domain(n.domain) || n.inputs.empty() || n.outputs.empty()) continue;
      const ir::Node* inner = index.producer_node(n.inputs[0]);
      const bool inner_private = inner && index.only_consumer(n.inputs[0]) == i;
      if (n.op_type == "Transpose") {
        std::optional<std::vector<int64_t>> p2 = perm_of(n);
        if (!p2) continue;
        if (is_identity(*p2)) {
          if (redirect_value(g, index, n.outputs[0], n.inputs[0])) {
            remove_nodes(g, {i});
            ctx.changed("identity Transpose removed");
            again = changed = true;
          }
          continue;
        }
        if (!is_op(inner, "Transpose") || !inner_private) continue;
        std::optional<std::vector<int64_t>> p1 = perm_of(*inner);
        if (!p1 || p1->size() != p2->size()) continue;
        std::vector<int64_t> c(p2->size());
        for (size_t k = 0; k < c.size(); ++k) c[k] = (*p1)[(*p2)[k]];
        n.inputs[0] = inner->inputs[0];
        for (auto& a : n.attributes)
          if (a.name == "perm") a.ints = c;
        ctx.changed("Transpose pair merged");
        again = changed = true;
      } else if (n.op_type == "Reshape" && is_op(inner, "Reshape") && inner_private && n.inputs.size() > 1) {
        std::optional<ir::Tensor> s2 = index.constant(n.inputs[1]);
        if (!s2) continue;
        bool copies = false;
        for (int64_t v : s2->to_int64_vector()) copies |= v == 0;
        if (copies) continue;
        n.inputs[0] = inner->inputs[0];
        ctx.changed("Reshape pair merged");
        again = changed = true;
      } else if (n.op_type == "Squeeze" && is_op(inner, "Unsqueeze") && inner_private) {
        std::optional<std::vector<int64_t>> a = axes_of(n, index), b = axes_of(*inner, index);
        if (!a || !b || *a != *b) continue;
        if (redirect_value(g, index, n.outputs[0], inner->inputs[0])) {
          remove_nodes(g, {i});
          ctx.changed("Unsqueeze/Squeeze pair removed");
          again = changed = true;
        }
      }
    }
  }
  return changed;
}

}  // namespace kiln::passes

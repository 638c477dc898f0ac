// Removes nodes that pass their input through unchanged, sending their readers to the input:
//   Identity(x)                     -> x
//   Dropout(x) in inference mode    -> x   (when its mask output is not read)
//   Cast(x, to=T) where x is T      -> x
//   Reshape(x, s) where s is x's own shape (static, or the same symbolic dims) -> x
//   Pad(x, pads) where the pads are constant and all zero (any mode) -> x
// Types come from graph-level inference on the declared input types.
#include <optional>
#include <vector>

#include "ops/node_view.h"
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "analysis/shape_inference.h"

namespace kiln::passes {

namespace {

bool same_known_shape(const ir::Type& a, const ir::Type& b) {
  if (!a.is_tensor() || !b.is_tensor() || !a.shape || !b.shape || a.dtype != b.dtype) return false;
  if (a.shape->rank() != b.shape->rank()) return false;
  for (size_t i = 0; i < a.shape->rank(); ++i) {
    const ir::Dim &x = (*a.shape)[i], &y = (*b.shape)[i];
    if (!(x.is_static() || x.is_symbolic()) || !(x == y)) return false;
  }
  return true;
}

// What kind of pass-through `n` is, or nullptr.
// A Pad whose pads are known and all zero: its output is its input in every mode. The pads must also be
// as many as the reference kernel wants (two per padded axis), so that no error is removed with the node.
bool zero_pads(const ir::Node& n, const ir::Type* in, const GraphIndex& index, int64_t opset) {
  std::vector<int64_t> pads;
  if (opset < 11) {
    ops::NodeView view(n, opset);
    const char* name = opset < 2 ? "paddings" : "pads";
    if (!view.has_attr(name)) return false;
    pads = view.attr_ints(name);
  } else {
    if (n.inputs.size() < 2 || n.inputs[1].empty()) return false;
    std::optional<ir::Tensor> t = index.constant(n.inputs[1]);
    if (!t || t->rank() != 1) return false;
    if (t->dtype() == ir::DType::kInt64)
      pads.assign(t->data<int64_t>(), t->data<int64_t>() + t->numel());
    else if (t->dtype() == ir::DType::kInt32)
      pads.assign(t->data<int32_t>(), t->data<int32_t>() + t->numel());
    else
      return false;
  }
  for (int64_t p : pads)
    if (p != 0) return false;
  size_t padded_axes = 0;
  if (opset >= 18 && n.inputs.size() > 3 && !n.inputs[3].empty()) {
    std::optional<ir::Tensor> axes = index.constant(n.inputs[3]);
    if (!axes || axes->rank() != 1) return false;
    padded_axes = static_cast<size_t>(axes->numel());
  } else {
    if (!in || !in->is_tensor() || !in->shape) return false;
    padded_axes = in->shape->rank();
  }
  return pads.size() == 2 * padded_axes;
}

const char* pass_through_kind(const ir::Node& n, const analysis::InferredTypes& types, const GraphIndex& index,
                              int64_t opset) {
  if (!ir::is_default_domain(n.domain) || n.inputs.empty() || n.inputs[0].empty() || n.outputs.empty()) return nullptr;
  auto type_of = [&](const std::string& v) -> const ir::Type* {
    auto it = types.types.find(v);
    return it == types.types.end() ? nullptr : &it->second;
  };
  if (n.op_type == "Identity") return "Identity";
  if (n.op_type == "Dropout") {
    bool mask_read = n.outputs.size() > 1 && !n.outputs[1].empty() && index.use_count(n.outputs[1]) > 0;
    // training_mode (opset 12+) is an input: only a constant false (or absent) is inference.
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
      std::optional<double> training = index.scalar(n.inputs[2]);
      if (!training || *training != 0) return nullptr;
    }
    return mask_read ? nullptr : "Dropout";
  }
  if (n.op_type == "Cast") {
    const ir::Type* in = type_of(n.inputs[0]);
    ops::NodeView view(n, 0);
    if (in && in->is_tensor() && static_cast<int64_t>(in->dtype) == view.attr_int("to", -1)) return "Cast";
    return nullptr;
  }
  if (n.op_type == "Pad") return zero_pads(n, type_of(n.inputs[0]), index, opset) ? "Pad" : nullptr;
  if (n.op_type == "Reshape") {
    const ir::Type* in = type_of(n.inputs[0]);
    const ir::Type* out = type_of(n.outputs[0]);
    if (in && out && same_known_shape(*in, *out)) return "Reshape";
  }
  return nullptr;
}

}  // namespace

bool eliminate_identities(ir::Graph& g, PassContext& ctx) {
  analysis::InferredTypes types = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
  bool changed = false;
  std::optional<GraphIndex> index(std::in_place, g);
  std::vector<int> removed;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const ir::Node& n = g.nodes[i];
    const char* kind = pass_through_kind(n, types, *index, ctx.opset());
    if (!kind) continue;
    // Redirecting renames values, so the index must be rebuilt after each success.
    if (!redirect_value(g, *index, n.outputs[0], n.inputs[0])) {
      ctx.rejected(kind, n, "its output is a graph output and its input cannot take the output's name");
      continue;
    }
    removed.push_back(i);
    ctx.changed(std::string(kind) + " removed");
    changed = true;
    index.emplace(g);
  }
  remove_nodes(g, removed);
  return changed;
}

}  // namespace kiln::passes

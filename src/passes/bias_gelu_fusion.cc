// The bias Add in front of a GELU moves into the GELU (ONNX Runtime's BiasGelu / FastGelu with bias):
//
//   x -> Add(bias) -> com.microsoft.Gelu       =>   com.microsoft.BiasGelu(x, bias)
//   x -> Add(bias) -> com.microsoft.FastGelu   =>   com.microsoft.FastGelu(x, bias)
//
// bias must be a constant 1-D vector over x's last dim (static), so that x + bias has x's shape; the Add's
// operands may come in either order (torch writes Add(bias, MatMul)). Runs after fuse_gelu, which writes
// the Gelu and FastGelu nodes.
//
// Candidates reported and left alone: an Add whose sum is read elsewhere too, and an Add whose operands
// are not "tensor + constant vector over its last dim".
#include <optional>

#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "analysis/shape_inference.h"

namespace kiln::passes {

namespace {

struct Candidate {
  std::string x, bias;
};

// Which operand of `add` is the bias, or a reason why neither is.
std::optional<Candidate> split_bias(const ir::Node& add, const GraphIndex& index, const analysis::InferredTypes& types,
                                    std::string& reason) {
  for (int k = 0; k < 2; ++k) {
    std::optional<ir::Tensor> b = index.constant(add.inputs[k]);
    const std::string& x = add.inputs[1 - k];
    if (!b || index.constant(x)) continue;
    auto xt = types.types.find(x);
    if (xt == types.types.end() || !xt->second.is_tensor() || !xt->second.shape || xt->second.shape->rank() == 0) {
      reason = "the shape of \"" + x + "\" is unknown";
      return std::nullopt;
    }
    const ir::Dim& last = xt->second.shape->dims.back();
    if (b->rank() != 1 || !last.is_static() || b->dim(0) != last.value) {
      reason = "the constant \"" + add.inputs[k] + "\" is not a 1-D vector over the last dim of \"" + x + "\"";
      return std::nullopt;
    }
    if (b->dtype() != ir::DType::kFloat32 || xt->second.dtype != ir::DType::kFloat32) {
      reason = "not float32";
      return std::nullopt;
    }
    return Candidate{x, add.inputs[k]};
  }
  reason = "neither operand of the Add is a constant bias";
  return std::nullopt;
}

}  // namespace

bool fuse_bias_gelu(ir::Graph& g, PassContext& ctx) {
  std::optional<analysis::InferredTypes> types;
  GraphIndex index(g);
  std::vector<int> removed;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    ir::Node& n = g.nodes[i];
    if (n.domain != kContribDomain) continue;
    const bool gelu = n.op_type == "Gelu" && n.inputs.size() == 1;
    const bool fast =
        n.op_type == "FastGelu" && (n.inputs.size() == 1 || (n.inputs.size() == 2 && n.inputs[1].empty()));
    if (!gelu && !fast) continue;
    const char* pattern = gelu ? "BiasGelu" : "FastGelu bias";
    const int p = index.producer(n.inputs[0]);
    if (p < 0) continue;
    const ir::Node& add = g.nodes[p];
    if (!ir::is_default_domain(add.domain) || add.op_type != "Add" || add.inputs.size() != 2) continue;
    if (index.only_consumer(add.outputs[0]) != i) {
      ctx.rejected(pattern, add, "the sum is also read elsewhere");
      continue;
    }
    if (!types) types = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
    std::string reason;
    std::optional<Candidate> c = split_bias(add, index, *types, reason);
    if (!c) {
      ctx.rejected(pattern, add, reason);
      continue;
    }
    if (gelu) {
      n.op_type = "BiasGelu";
      n.inputs = {c->x, c->bias};
      if (n.name.size() >= 4 && n.name.compare(n.name.size() - 4, 4, "Gelu") == 0)
        n.name = ctx.fresh_name(n.name.substr(0, n.name.size() - 4) + "BiasGelu");
    } else {
      n.inputs = {c->x, c->bias};
    }
    removed.push_back(p);
    ctx.changed(pattern);
  }
  if (removed.empty()) return false;
  remove_nodes(g, removed);
  return true;
}

}  // namespace kiln::passes

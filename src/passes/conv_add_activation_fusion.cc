// A Conv whose only reader is a residual Add (and the Relu after it, if any) becomes one
// com.microsoft.FusedConv with the Add's other operand as its fourth input Z, as ONNX Runtime's own
// ConvAddActivationFusion writes it: FusedConv computes activation(Conv(x, W, B) + Z), so the sum and
// the activation run on the convolution's output while it is in cache (kiln's fast kernel does them as
// oneDNN post-ops), and the Add and Relu nodes are gone.
//
//     x -> Conv(W, B) --.
//                        Add -> [Relu] ->   =>   com.microsoft.FusedConv(x, W, B, z, activation="Relu")
//     z ----------------'
//
// Z must have exactly the Conv output's shape (FusedConv does not broadcast): both operands' inferred
// shapes must be known and equal (symbolic dims compare by name). The Conv must be float32 (FusedConv's
// only type) and read by the Add alone; the Relu fuses when it is the Add output's only reader. A Conv
// already fused with an activation is not matched: its activation comes before the sum. ResNet's 16
// residual blocks each give one (Conv + Add + Relu); MobileNetV3's 6 residual Adds (no activation after)
// one each.
#include <optional>

#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"
#include "analysis/shape_inference.h"

namespace kiln::passes {

namespace {

constexpr const char* kPattern = "Conv+Add";

bool is_float32_conv(const ir::Graph& g, const ir::Node& conv) {
  if (conv.inputs.size() < 2 || conv.inputs.size() > 3) return false;
  if (const ir::Tensor* w = g.find_initializer(conv.inputs[1])) return w->dtype() == ir::DType::kFloat32;
  const ir::ValueInfo* in = g.find_input(conv.inputs[1]);
  return in && in->type.is_tensor() && in->type.dtype == ir::DType::kFloat32;
}

}  // namespace

bool fuse_conv_add_activation(ir::Graph& g, PassContext& ctx) {
  GraphIndex index(g);
  std::optional<analysis::InferredTypes> types;
  std::vector<int> removed;
  std::vector<bool> taken(g.nodes.size(), false);
  const size_t original = g.nodes.size();
  bool changed = false;
  for (size_t i = 0; i < original; ++i) {
    const ir::Node& add = g.nodes[i];
    if (!is_op(add, "Add") || add.inputs.size() != 2 || add.outputs.size() != 1 || taken[i]) continue;
    for (size_t k = 0; k < 2; ++k) {
      const int c = index.producer(add.inputs[k]);
      if (c < 0 || taken[c] || !is_op(g.nodes[c], "Conv") || !is_float32_conv(g, g.nodes[c])) continue;
      const ir::Node& conv = g.nodes[c];
      if (index.only_consumer(add.inputs[k]) != static_cast<int>(i)) {
        ctx.rejected(kPattern, conv, "the Conv output has readers besides the Add");
        continue;
      }
      if (!types) types = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
      const ir::Type* y = tensor_type_with_shape(*types, add.inputs[k]);
      const ir::Type* z = tensor_type_with_shape(*types, add.inputs[1 - k]);
      if (!y || !z || !known_and_equal(*y->shape, *z->shape) || z->dtype != ir::DType::kFloat32) {
        ctx.rejected(kPattern, conv, "the Add's other operand does not have the Conv output's shape (no broadcasting)");
        continue;
      }
      ir::Node fused = conv;
      fused.domain = kContribDomain;
      fused.op_type = "FusedConv";
      fused.inputs.resize(3);  // an absent bias stays "", Z is the fourth input
      fused.inputs.push_back(add.inputs[1 - k]);
      fused.outputs = add.outputs;
      std::vector<int> absorbed = {c, static_cast<int>(i)};
      const int r = index.only_consumer(add.outputs[0]);
      if (r >= 0 && !taken[r] && is_op(g.nodes[r], "Relu") && g.nodes[r].outputs.size() == 1) {
        ir::Attribute a;
        a.name = "activation";
        a.kind = ir::Attribute::Kind::kString;
        a.s = "Relu";
        fused.attributes.push_back(a);
        fused.outputs = g.nodes[r].outputs;
        absorbed.push_back(r);
      }
      for (int n : absorbed) taken[n] = true;
      removed.insert(removed.end(), absorbed.begin(), absorbed.end());
      ctx.import_contrib_domain();
      ctx.changed(absorbed.size() == 3 ? "FusedConv Conv+Add+Relu" : "FusedConv Conv+Add");
      g.nodes.push_back(std::move(fused));
      changed = true;
      break;
    }
  }
  remove_nodes(g, removed);
  return changed;
}

}  // namespace kiln::passes

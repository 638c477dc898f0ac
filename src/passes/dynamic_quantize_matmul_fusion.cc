// The subgraph that ONNX Runtime's quantize_dynamic (and `kiln quantize --mode int8-dynamic`) writes for
// each MatMul with constant weights, folded into ONNX Runtime's com.microsoft.DynamicQuantizeMatMul, so
// that a kernel quantizes A and multiplies in int8 in one call:
//
//   DynamicQuantizeLinear(A) -> (qA, a_scale, a_zp)
//   MatMulInteger(qA, B, a_zp [, b_zp]) -> Cast(to float) -> Mul(., Mul(a_scale, b_scale)) [-> Add(bias)]
//     =>  com.microsoft.DynamicQuantizeMatMul(A, B, b_scale, b_zp, bias)
//
// B, b_scale, b_zp and bias must be constants (bias a 1-D vector over B's columns); the Mul and Add take
// their operands in either order. One DynamicQuantizeLinear may feed several MatMulIntegers (Q, K and V
// share theirs): each is rewritten, and the DynamicQuantizeLinear goes with its last reader (dead code).
// The product is the same computation: the reference kernel rounds as the subgraph does, bit for bit;
// the fast kernel removes A's zero point in float32, so its results may differ in the last bits.
//
// Candidates reported and left alone: a MatMulInteger whose A does not come from a DynamicQuantizeLinear
// with its own zero point, whose B or zero points are not constants, or whose result is read elsewhere.
#include <optional>

#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln::passes {

namespace {

constexpr const char* kPattern = "DynamicQuantizeMatMul";

// The operand of a two-input node that is not `known`, or "" when neither is.
std::string other_input(const ir::Node& n, const std::string& known) {
  if (n.inputs.size() != 2) return "";
  if (n.inputs[0] == known) return n.inputs[1];
  if (n.inputs[1] == known) return n.inputs[0];
  return "";
}

bool is_float_cast(const ir::Node& n) {
  if (!is_op(n, "Cast") || n.inputs.size() != 1) return false;
  const ir::Attribute* to = n.find_attribute("to");
  return to && to->i == static_cast<int64_t>(ir::DType::kFloat32);
}

}  // namespace

bool fuse_dynamic_quantize_matmul(ir::Graph& g, PassContext& ctx) {
  GraphIndex index(g);
  std::vector<int> removed;
  bool changed = false;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const ir::Node& mmi = g.nodes[i];
    if (!is_op(mmi, "MatMulInteger") || mmi.inputs.size() < 3) continue;
    const ir::Node* dql = index.producer_node(mmi.inputs[0]);
    if (!is_op(dql, "DynamicQuantizeLinear") || dql->outputs.size() < 3 || mmi.inputs[2] != dql->outputs[2]) {
      ctx.rejected(kPattern, mmi, "A and its zero point do not come from one DynamicQuantizeLinear");
      continue;
    }
    const std::string b_zp = mmi.inputs.size() > 3 ? mmi.inputs[3] : "";
    const std::optional<ir::Tensor> b = index.constant(mmi.inputs[1]);
    if (!b || (!b_zp.empty() && !index.constant(b_zp))) {
      ctx.rejected(kPattern, mmi, "B or its zero point is not a constant");
      continue;
    }
    // DynamicQuantizeMatMul takes b_scale and b_zero_point per tensor or as one value per column of B.
    auto per_tensor_or_column = [&](const ir::Tensor& t) {
      return t.numel() == 1 || (b->rank() >= 1 && t.shape() == ir::Dims{b->shape().back()});
    };
    if (!b_zp.empty() && !per_tensor_or_column(*index.constant(b_zp))) {
      ctx.rejected(kPattern, mmi, "B's zero point is neither one value nor one per column");
      continue;
    }
    const int cast_at = index.only_consumer(mmi.outputs[0]);
    if (cast_at < 0 || !is_float_cast(g.nodes[cast_at])) {
      ctx.rejected(kPattern, mmi, "the int32 product is not only cast to float");
      continue;
    }
    const int mul_at = index.only_consumer(g.nodes[cast_at].outputs[0]);
    if (mul_at < 0 || !is_op(g.nodes[mul_at], "Mul")) {
      ctx.rejected(kPattern, mmi, "the cast product is not only multiplied by a scale");
      continue;
    }
    const ir::Node& mul = g.nodes[mul_at];
    const ir::Node* scales = index.producer_node(other_input(mul, g.nodes[cast_at].outputs[0]));
    const std::string b_scale = scales && is_op(*scales, "Mul") ? other_input(*scales, dql->outputs[1]) : "";
    if (b_scale.empty() || !index.constant(b_scale)) {
      ctx.rejected(kPattern, mmi, "the scale is not a_scale times a constant b_scale");
      continue;
    }
    if (!per_tensor_or_column(*index.constant(b_scale))) {
      ctx.rejected(kPattern, mmi, "b_scale is neither one value nor one per column");
      continue;
    }
    // A bias Add after it joins the op: a constant vector over B's columns.
    std::string bias, output = mul.outputs[0];
    int add_at = index.only_consumer(mul.outputs[0]);
    if (add_at >= 0 && is_op(g.nodes[add_at], "Add")) {
      const std::string other = other_input(g.nodes[add_at], mul.outputs[0]);
      const std::optional<ir::Tensor> v = other.empty() ? std::nullopt : index.constant(other);
      if (v && v->dtype() == ir::DType::kFloat32 && v->rank() == 1 && b->rank() >= 1 && v->dim(0) == b->shape().back()) {
        bias = other;
        output = g.nodes[add_at].outputs[0];
      } else {
        add_at = -1;
      }
    } else {
      add_at = -1;
    }
    ir::Node fused;
    fused.name = ctx.fresh_name(scope_of(mul.name) + "DynamicQuantizeMatMul");
    fused.op_type = "DynamicQuantizeMatMul";
    fused.domain = kContribDomain;
    fused.inputs = {dql->inputs[0], mmi.inputs[1], b_scale, b_zp, bias};
    while (!fused.inputs.empty() && fused.inputs.back().empty()) fused.inputs.pop_back();
    fused.outputs = {output};
    // The fused node takes the Mul's place (or the Add's): every value it reads is defined before it.
    g.nodes[add_at >= 0 ? add_at : mul_at] = std::move(fused);
    removed.push_back(i);
    removed.push_back(cast_at);
    if (add_at >= 0) removed.push_back(mul_at);
    ctx.import_contrib_domain();
    ctx.changed(kPattern);
    changed = true;
  }
  if (!changed) return false;
  remove_nodes(g, removed);
  return true;
}

}  // namespace kiln::passes

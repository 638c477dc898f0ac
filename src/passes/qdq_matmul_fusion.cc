// The QDQ form of an int8 product, as ONNX Runtime's quantize_static (and `kiln quantize --mode
// int8-static`) writes it, folded into ONNX Runtime's com.microsoft.MatMulIntegerToFloat, so that one int8
// kernel multiplies the quantized activation by the int8 weights:
//
//   qA ─> DequantizeLinear(a_scale, a_zp) ─> MatMul ─> [Add(bias)] ─> Y      qA ─> MatMulIntegerToFloat(B', a_scale,
//   B (int8) ─> DequantizeLinear(b_scale, 0) ─┘                       =>           b_scale', a_zp, -, bias) ─> Y
//
// qA is whatever the DequantizeLinear reads, usually the QuantizeLinear of the float32 activation, which
// stays (its static scale is a constant, so quantizing costs one pass over A). A Gemm is folded as well:
// transB transposes B once (B' = B^T, the int8 constant [K, N]), alpha joins b_scale, and beta * C (a
// vector over the columns) becomes the bias. MatMulIntegerToFloat computes
//
//     Y = float(sum_k (qA - a_zp) (B - b_zp)) * (a_scale * b_scale[n]) + bias[n]
//
// which is what the float32 product of the two dequantized operands computes, up to float rounding (the
// integer sum is exact; the float32 products and sums of the unfused graph round at each step).
//
// This runs before constant folding, which would otherwise turn DequantizeLinear(int8 constant) into a
// float32 constant and the product back into a float32 one (what happens at level basic: correct, and
// float32 speed).
//
// Candidates reported and left alone: an A or B that does not come from a DequantizeLinear, a B that is not
// an int8 2-D constant with a zero zero point, scales that are not constants (a_scale one value, b_scale one
// or one per output channel), a Gemm with transA or a C that is not a vector over the columns.
#include <algorithm>
#include <optional>
#include <set>

#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln::passes {

namespace {

constexpr const char* kPattern = "MatMulIntegerToFloat";

struct Reject {
  std::string reason;
};

// The constant operand of a two-input node that is not `known`, or "" when there is none.
std::string other_input(const ir::Node& n, const std::string& known) {
  if (n.inputs.size() != 2) return "";
  if (n.inputs[0] == known) return n.inputs[1];
  if (n.inputs[1] == known) return n.inputs[0];
  return "";
}

int64_t int_attr(const ir::Node& n, const char* name, int64_t fallback) {
  const ir::Attribute* a = n.find_attribute(name);
  return a ? a->i : fallback;
}

// A DequantizeLinear in the forms the fold takes: per tensor or per axis (no blocks), float32 output.
const ir::Node* plain_dequantize(const GraphIndex& index, const std::string& value) {
  const ir::Node* dq = index.producer_node(value);
  if (!is_op(dq, "DequantizeLinear") || dq->inputs.size() < 2) return nullptr;
  if (int_attr(*dq, "block_size", 0) != 0) return nullptr;
  const int64_t out = int_attr(*dq, "output_dtype", 0);
  if (out != 0 && out != static_cast<int64_t>(ir::DType::kFloat32)) return nullptr;
  return dq;
}

std::string zero_point_of(const ir::Node& dq) { return dq.inputs.size() > 2 ? dq.inputs[2] : ""; }

}  // namespace

bool fuse_qdq_matmul(ir::Graph& g, PassContext& ctx) {
  GraphIndex index(g);
  std::vector<int> removed;
  std::set<int> bypassed;  // the DequantizeLinear nodes of A and B of each fused product
  bool changed = false;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const ir::Node& n = g.nodes[i];
    const bool gemm = is_op(n, "Gemm") && n.inputs.size() >= 2;
    if (!(is_op(n, "MatMul") && n.inputs.size() == 2) && !gemm) continue;
    const ir::Node* dq_b = plain_dequantize(index, n.inputs[1]);
    if (!dq_b || !index.constant(dq_b->inputs[0])) continue;  // not an int8 product at all: no report
    try {
      const ir::Node* dq_a = plain_dequantize(index, n.inputs[0]);
      if (!dq_a) throw Reject{"A does not come from a DequantizeLinear"};
      const std::optional<ir::Tensor> a_scale = index.constant(dq_a->inputs[1]);
      if (!a_scale || a_scale->dtype() != ir::DType::kFloat32 || a_scale->numel() != 1)
        throw Reject{"A's scale is not one float32 constant"};
      // The zero point tells A's type (DequantizeLinear also takes int16 and int32, which no int8 kernel
      // runs): without one it is unknown here, and the product is left as it is.
      const std::string a_zp = zero_point_of(*dq_a);
      const std::optional<ir::Tensor> a_zp_value = a_zp.empty() ? std::nullopt : index.constant(a_zp);
      if (!a_zp_value || a_zp_value->numel() != 1 ||
          (a_zp_value->dtype() != ir::DType::kUInt8 && a_zp_value->dtype() != ir::DType::kInt8))
        throw Reject{"A's zero point is not one 8-bit constant"};

      const ir::Tensor b = *index.constant(dq_b->inputs[0]);
      if (b.dtype() != ir::DType::kInt8 || b.rank() != 2) throw Reject{"B is not an int8 2-D constant"};
      const bool trans_b = gemm && int_attr(n, "transB", 0) != 0;
      if (gemm && int_attr(n, "transA", 0) != 0) throw Reject{"Gemm with transA"};
      const int64_t k = trans_b ? b.dim(1) : b.dim(0), cols = trans_b ? b.dim(0) : b.dim(1);
      const int channel_axis = trans_b ? 0 : 1;
      const std::optional<ir::Tensor> b_scale = index.constant(dq_b->inputs[1]);
      if (!b_scale || b_scale->dtype() != ir::DType::kFloat32) throw Reject{"B's scale is not a float32 constant"};
      if (b_scale->numel() != 1) {
        const int64_t axis = int_attr(*dq_b, "axis", 1);
        if (b_scale->rank() != 1 || b_scale->dim(0) != cols || (axis < 0 ? axis + 2 : axis) != channel_axis)
          throw Reject{"B's scale is neither one value nor one per output channel"};
      }
      if (const std::string b_zp = zero_point_of(*dq_b); !b_zp.empty()) {
        const std::optional<ir::Tensor> z = index.constant(b_zp);
        bool zero = z && z->dtype() == ir::DType::kInt8;
        for (int64_t j = 0; zero && j < z->numel(); ++j) zero = z->data<int8_t>()[j] == 0;
        if (!zero) throw Reject{"B's zero point is not 0"};
      }

      // The bias: Gemm's beta * C, or a MatMul's Add of a constant vector over the columns.
      std::string output = n.outputs[0];
      std::optional<ir::Tensor> bias;
      int add_at = -1;
      const float alpha = gemm ? (n.find_attribute("alpha") ? n.find_attribute("alpha")->f : 1.0f) : 1.0f;
      if (gemm && n.inputs.size() > 2 && !n.inputs[2].empty()) {
        const std::optional<ir::Tensor> c = index.constant(n.inputs[2]);
        if (!c || c->dtype() != ir::DType::kFloat32 || c->numel() != cols ||
            (c->rank() != 1 && c->shape() != ir::Dims{1, cols}))
          throw Reject{"Gemm's C is not a float32 constant vector over the columns"};
        const float beta = n.find_attribute("beta") ? n.find_attribute("beta")->f : 1.0f;
        bias = ir::Tensor(ir::DType::kFloat32, {cols});
        for (int64_t j = 0; j < cols; ++j) bias->data<float>()[j] = beta * c->data<float>()[j];
      } else if (!gemm) {
        add_at = index.only_consumer(n.outputs[0]);
        if (add_at >= 0 && is_op(g.nodes[add_at], "Add")) {
          const std::string other = other_input(g.nodes[add_at], n.outputs[0]);
          std::optional<ir::Tensor> v = other.empty() ? std::nullopt : index.constant(other);
          if (v && v->dtype() == ir::DType::kFloat32 && v->rank() == 1 && v->dim(0) == cols) {
            bias = std::move(v);
            output = g.nodes[add_at].outputs[0];
          } else {
            add_at = -1;
          }
        } else {
          add_at = -1;
        }
      }

      // B' [K, N] and b_scale' (alpha in it), as new constants where they differ from the file's.
      std::string weights = dq_b->inputs[0], scale = dq_b->inputs[1];
      if (trans_b) {
        ir::Tensor t(ir::DType::kInt8, {k, cols});
        for (int64_t r = 0; r < k; ++r)
          for (int64_t c = 0; c < cols; ++c) t.data<int8_t>()[r * cols + c] = b.data<int8_t>()[c * k + r];
        weights = ctx.fresh_name(dq_b->inputs[0] + "_transposed");
        g.add_initializer(weights, std::move(t));
      }
      if (alpha != 1.0f) {
        ir::Tensor s(ir::DType::kFloat32, b_scale->shape());
        for (int64_t j = 0; j < s.numel(); ++j) s.data<float>()[j] = alpha * b_scale->data<float>()[j];
        scale = ctx.fresh_name(dq_b->inputs[1] + "_times_alpha");
        g.add_initializer(scale, std::move(s));
      }
      std::string bias_name;
      if (bias) {
        bias_name = add_at >= 0 ? other_input(g.nodes[add_at], n.outputs[0]) : ctx.fresh_name(n.name + "_bias");
        if (add_at < 0) g.add_initializer(bias_name, std::move(*bias));
      }

      const std::vector<std::string> n_inputs = n.inputs;  // n is overwritten below
      ir::Node fused;
      fused.name = ctx.fresh_name(scope_of(n.name) + "MatMulIntegerToFloat");
      fused.op_type = "MatMulIntegerToFloat";
      fused.domain = kContribDomain;
      fused.inputs = {dq_a->inputs[0], weights, dq_a->inputs[1], scale, a_zp, "", bias_name};
      while (!fused.inputs.empty() && fused.inputs.back().empty()) fused.inputs.pop_back();
      fused.outputs = {output};
      // The fused node takes the product's place (or its Add's): every value it reads is defined before it.
      if (add_at >= 0) {
        g.nodes[add_at] = std::move(fused);
        removed.push_back(i);
      } else {
        g.nodes[i] = std::move(fused);
      }
      bypassed.insert(index.producer(n_inputs[0]));
      bypassed.insert(index.producer(n_inputs[1]));
      ctx.import_contrib_domain();
      ctx.changed(kPattern);
      changed = true;
    } catch (const Reject& r) {
      ctx.rejected(kPattern, n, r.reason);
    }
  }
  if (!changed) return false;
  // The DequantizeLinear nodes the fused products read go now when nothing else reads them: left for
  // dead-code elimination at the end of the round, constant folding (next in the pipeline) would first
  // turn every int8 weight into a float32 copy, seconds and hundreds of MB for a BERT-base.
  const GraphIndex after(g);
  const std::set<int> gone(removed.begin(), removed.end());
  for (int dq : bypassed) {
    const std::string& out = g.nodes[dq].outputs[0];
    const std::vector<Use>& uses = after.uses(out);
    const bool read = std::any_of(uses.begin(), uses.end(), [&](const Use& u) { return !gone.count(u.node); });
    if (!read && !after.is_graph_output(out) && !after.is_read_by_subgraph(out)) removed.push_back(dq);
  }
  remove_nodes(g, removed);
  return true;
}

}  // namespace kiln::passes

#include "passes/dynamic_quantization.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <optional>

#include "common/error.h"
#include "passes/graph_index.h"
#include "passes/model_metadata.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"
#include "passes/weight_quantization.h"

namespace kiln::passes {

namespace {

constexpr const char* kPattern = "int8 dynamic";

// B as int8 with its scale (and zero points, all 0): [K, N] row-major whatever B's layout was.
struct QuantizedWeights {
  std::string q, scale, zero_point;
};

ir::Node make_node(std::string name, const char* op, std::vector<std::string> inputs, std::vector<std::string> outputs) {
  ir::Node n;
  n.name = std::move(name);
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  return n;
}

// B as symmetric int8 [K, N] (weight_quantization.h), whatever B's layout: transposed B [N, K] is quantized
// per row, then laid out as [K, N]. Gemm's alpha joins the scales: (alpha s) (qA x qB) == alpha (s (qA x qB)).
void quantize_columns(const ir::Tensor& b, bool trans, bool per_channel, float alpha, std::vector<int8_t>& q,
                      std::vector<float>& scales) {
  SymmetricInt8 w = quantize_symmetric_int8(b, per_channel ? (trans ? 0 : 1) : -1);
  scales = std::move(w.scales);
  if (trans) {
    const int64_t n = b.dim(0), k = b.dim(1);
    q.resize(w.values.size());
    for (int64_t r = 0; r < k; ++r)
      for (int64_t c = 0; c < n; ++c) q[static_cast<size_t>(r * n + c)] = w.values[static_cast<size_t>(c * k + r)];
  } else {
    q = std::move(w.values);
  }
  if (alpha != 1.0f)
    for (float& s : scales) s *= alpha;
}

// An embedding table as int8 rows (weight_quantization.h). Returns whether it did.
bool quantize_table(ir::Graph& g, const GraphIndex& index, const ir::Node& n, PassContext& ctx,
                    std::vector<ir::Node>& nodes, DynamicQuantizeReport& report) {
  std::optional<QuantizedTable> table = quantize_embedding_table(g, index, n, ctx);
  if (!table) return false;
  for (ir::Node& q : table->nodes) nodes.push_back(std::move(q));
  report.quantized.push_back(n.label());
  ++report.tables;
  report.float_weight_bytes += table->float_bytes;
  report.int8_weight_bytes += table->int8_bytes;
  return true;
}

}  // namespace

DynamicQuantizeReport quantize_dynamic(ir::Model& model, const DynamicQuantizeOptions& options) {
  const int64_t opset = model.opset("");
  if (opset < 11)
    fail("int8 dynamic quantization needs ONNX opset 11 or later (DynamicQuantizeLinear); the model imports opset ",
         opset);
  ir::Graph& g = model.graph;
  DynamicQuantizeReport report;
  OptimizeOptions optimize_options;
  PassReport pass_report;
  PassContext ctx(model, optimize_options, pass_report);
  const GraphIndex index(g);

  std::map<std::string, std::vector<std::string>> activation;  // A -> DynamicQuantizeLinear's three outputs
  std::map<std::string, QuantizedWeights> weights;              // B (and layout) -> its int8 version
  std::vector<ir::Node> nodes;
  nodes.reserve(g.nodes.size());
  for (const ir::Node& n : g.nodes) {
    const bool matmul = is_op(n, "MatMul") && n.inputs.size() == 2;
    const bool gemm = is_op(n, "Gemm") && n.inputs.size() >= 2;
    if (is_op(n, "Gather") && !is_excluded(n, options.exclude) && quantize_table(g, index, n, ctx, nodes, report))
      continue;
    if (!matmul && !gemm) {
      nodes.push_back(n);
      continue;
    }
    auto skip = [&](std::string reason) {
      report.skipped.push_back({kPattern, n.label(), std::move(reason)});
      nodes.push_back(n);
    };
    if (is_excluded(n, options.exclude)) {
      skip("excluded (--exclude)");
      continue;
    }
    const std::optional<ir::Tensor> b = index.constant(n.inputs[1]);
    if (!b || b->dtype() != ir::DType::kFloat32 || b->rank() != 2) {
      skip("B is not a 2-D float32 constant");
      continue;
    }
    if (index.constant(n.inputs[0])) {
      skip("A is a constant too (constant folding's work)");
      continue;
    }
    if (!all_finite(*b)) {
      skip("B \"" + n.inputs[1] + "\" holds NaN or infinity");
      continue;
    }
    float alpha = 1.0f, beta = 1.0f;
    bool trans_b = false;
    std::optional<ir::Tensor> c;
    if (gemm) {
      const ir::Attribute* ta = n.find_attribute("transA");
      const ir::Attribute* tb = n.find_attribute("transB");
      const ir::Attribute* al = n.find_attribute("alpha");
      const ir::Attribute* be = n.find_attribute("beta");
      if (ta && ta->i != 0) {
        skip("Gemm with transA");
        continue;
      }
      trans_b = tb && tb->i != 0;
      alpha = al ? al->f : 1.0f;
      beta = be ? be->f : 1.0f;
      if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        c = index.constant(n.inputs[2]);
        if (!c || c->dtype() != ir::DType::kFloat32) {
          skip("Gemm's C is not a float32 constant");
          continue;
        }
      }
    }
    const int64_t k = trans_b ? b->dim(1) : b->dim(0), cols = trans_b ? b->dim(0) : b->dim(1);

    // The activations' quantization, once per A.
    auto [act, fresh] = activation.try_emplace(n.inputs[0]);
    if (fresh) {
      const std::string& a = n.inputs[0];
      act->second = {ctx.fresh_name(a + "_quantized"), ctx.fresh_name(a + "_scale"), ctx.fresh_name(a + "_zero_point")};
      nodes.push_back(make_node(ctx.fresh_name(a + "_QuantizeLinear"), "DynamicQuantizeLinear", {a}, act->second));
    }
    const std::vector<std::string>& qa = act->second;

    // The weights, once per (B, layout, alpha).
    const std::string key = n.inputs[1] + (trans_b ? "|T" : "") + "|" + std::to_string(std::bit_cast<uint32_t>(alpha));
    auto [wq, new_weights] = weights.try_emplace(key);
    if (new_weights) {
      std::vector<int8_t> q;
      std::vector<float> scales;
      quantize_columns(*b, trans_b, options.per_channel, alpha, q, scales);
      const std::string& bn = n.inputs[1];
      wq->second = {ctx.fresh_name(bn + "_quantized"), ctx.fresh_name(bn + "_scale"), ctx.fresh_name(bn + "_zero_point")};
      g.add_initializer(wq->second.q, ir::Tensor::from_vector(q, {k, cols}));
      const std::vector<int64_t> group_shape = options.per_channel ? std::vector<int64_t>{cols} : std::vector<int64_t>{};
      g.add_initializer(wq->second.scale, ir::Tensor::from_vector(scales, group_shape));
      g.add_initializer(wq->second.zero_point,
                        ir::Tensor::from_vector(std::vector<int8_t>(scales.size(), 0), group_shape));
      report.int8_weight_bytes += static_cast<int64_t>(q.size() + scales.size() * 5);  // 4 for a scale, 1 its zero point
      report.float_weight_bytes += static_cast<int64_t>(b->nbytes());
    }

    const std::string out = n.outputs[0];
    const std::string product = ctx.fresh_name(out + "_output_quantized");
    const std::string as_float = ctx.fresh_name(product + "_cast_output");
    const std::string scales = ctx.fresh_name(n.name + "_quant_scales_mul:0");
    const std::string scaled = c ? ctx.fresh_name(out + "_scaled") : out;
    nodes.push_back(make_node(ctx.fresh_name(n.name + "_quant_scales_mul"), "Mul", {qa[1], wq->second.scale}, {scales}));
    nodes.push_back(make_node(ctx.fresh_name(n.name + "_quant"), "MatMulInteger",
                              {qa[0], wq->second.q, qa[2], wq->second.zero_point}, {product}));
    ir::Node cast = make_node(ctx.fresh_name(n.name + "_quant_cast"), "Cast", {product}, {as_float});
    ir::Attribute to;
    to.name = "to";
    to.kind = ir::Attribute::Kind::kInt;
    to.i = static_cast<int64_t>(ir::DType::kFloat32);
    cast.attributes.push_back(to);
    nodes.push_back(std::move(cast));
    nodes.push_back(make_node(ctx.fresh_name(n.name + "_quant_output_scale_mul"), "Mul", {as_float, scales}, {scaled}));
    if (c) {
      std::string bias = n.inputs[2];
      if (beta != 1.0f) {
        ir::Tensor scaled_c(ir::DType::kFloat32, c->shape());
        for (int64_t i = 0; i < c->numel(); ++i) scaled_c.data<float>()[i] = beta * c->data<float>()[i];
        bias = ctx.fresh_name(n.inputs[2] + "_times_beta");
        g.add_initializer(bias, std::move(scaled_c));
      }
      nodes.push_back(make_node(ctx.fresh_name(n.name + "_bias_add"), "Add", {scaled, bias}, {out}));
    }
    report.quantized.push_back(n.label());
  }
  if (report.quantized.empty()) return report;
  g.nodes = std::move(nodes);
  eliminate_dead_code(g, ctx);  // the float weights nothing reads now
  set_model_metadata(model, kQuantizationMetadataKey, "int8-dynamic");
  return report;
}

}  // namespace kiln::passes

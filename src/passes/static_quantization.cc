#include "passes/static_quantization.h"

#include <optional>
#include <set>

#include "common/error.h"
#include "kernels/reference/dynamic_quantization.h"
#include "passes/graph_index.h"
#include "passes/model_metadata.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"
#include "passes/weight_quantization.h"

namespace kiln::passes {

namespace {

constexpr const char* kStaticPattern = "int8 static";

ir::Node make_qdq_node(std::string name, const char* op, std::vector<std::string> inputs, std::string output) {
  ir::Node n;
  n.name = std::move(name);
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = {std::move(output)};
  return n;
}

bool is_static_candidate_op(const ir::Node& n) {
  return (is_op(n, "MatMul") && n.inputs.size() == 2) || (is_op(n, "Gemm") && n.inputs.size() >= 2);
}

bool has_flag(const ir::Node& n, const char* name) {
  const ir::Attribute* a = n.find_attribute(name);
  return a && a->i != 0;
}

// Why product `n` stays float32, or "" when it is quantized.
std::string why_static_float(const ir::Node& n, const GraphIndex& index, const StaticQuantizeOptions& options) {
  if (is_excluded(n, options.exclude)) return "excluded (--exclude)";
  const std::optional<ir::Tensor> b = index.constant(n.inputs[1]);
  if (!b || b->dtype() != ir::DType::kFloat32 || b->rank() != 2) return "B is not a 2-D float32 constant";
  if (index.constant(n.inputs[0])) return "A is a constant too (constant folding's work)";
  if (!all_finite(*b)) return "B \"" + n.inputs[1] + "\" holds NaN or infinity";
  if (is_op(n, "Gemm") && has_flag(n, "transA")) return "Gemm with transA";
  return "";
}

void check_qdq_opset(const ir::Model& model, const StaticQuantizeOptions& options) {
  const int64_t opset = model.opset("");
  if (opset < 10)
    fail("int8 static quantization needs ONNX opset 10 or later (QuantizeLinear); the model imports opset ", opset);
  if (options.per_channel && opset < 13)
    fail(
        "per-channel int8 static quantization needs ONNX opset 13 or later (DequantizeLinear's axis); the model "
        "imports opset ",
        opset, ": quantize per tensor (without --per-channel)");
}

}  // namespace

StaticQuantizePlan plan_static_quantization(const ir::Model& model, const StaticQuantizeOptions& options) {
  check_qdq_opset(model, options);
  const GraphIndex index(model.graph);
  StaticQuantizePlan plan;
  std::set<std::string> seen;
  for (const ir::Node& n : model.graph.nodes) {
    if (!is_static_candidate_op(n)) continue;
    if (std::string why = why_static_float(n, index, options); !why.empty()) {
      plan.skipped.push_back({kStaticPattern, n.label(), std::move(why)});
      continue;
    }
    if (seen.insert(n.inputs[0]).second) plan.activations.push_back(n.inputs[0]);
  }
  return plan;
}

StaticQuantizeReport quantize_static(ir::Model& model, const StaticQuantizeOptions& options,
                                     const std::map<std::string, ActivationRange>& ranges) {
  check_qdq_opset(model, options);
  ir::Graph& g = model.graph;
  StaticQuantizeReport report;
  OptimizeOptions optimize_options;
  PassReport pass_report;
  PassContext ctx(model, optimize_options, pass_report);
  const GraphIndex index(g);

  // Each activation's pair, written right after the node that computes it (first, for a graph input).
  std::map<std::string, std::vector<ir::Node>> pair_after;  // A -> its QuantizeLinear, DequantizeLinear
  std::map<std::string, std::string> dequantized;           // A -> the DequantizeLinear's output
  std::map<std::string, std::string> weight_of;             // B and its axis -> DequantizeLinear's output
  std::vector<ir::Node> weight_nodes;                       // they read constants only: first in the graph
  std::map<size_t, std::vector<ir::Node>> table_at;         // a Gather's index -> its int8 Gather, DequantizeLinear
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    ir::Node& n = g.nodes[i];
    if (is_op(n, "Gather") && !is_excluded(n, options.exclude)) {
      if (std::optional<QuantizedTable> table = quantize_embedding_table(g, index, n, ctx)) {
        table_at[i] = std::move(table->nodes);
        report.quantized.push_back(n.label());
        ++report.tables;
        report.float_weight_bytes += table->float_bytes;
        report.int8_weight_bytes += table->int8_bytes;
      }
      continue;
    }
    if (!is_static_candidate_op(n)) continue;
    if (std::string why = why_static_float(n, index, options); !why.empty()) {
      report.skipped.push_back({kStaticPattern, n.label(), std::move(why)});
      continue;
    }
    const std::string a = n.inputs[0];
    if (!dequantized.count(a)) {
      auto range = ranges.find(a);
      if (range == ranges.end()) fail("int8 static quantization: no calibrated range for activation \"", a, "\"");
      const ops::DynamicQuantization q = ops::dynamic_quantization(range->second.min, range->second.max);
      const std::string scale = ctx.fresh_name(a + "_scale"), zero_point = ctx.fresh_name(a + "_zero_point");
      g.add_initializer(scale, ir::Tensor::from_vector(std::vector<float>{q.scale}, {}));
      g.add_initializer(zero_point, ir::Tensor::from_vector(std::vector<uint8_t>{q.zero_point}, {}));
      const std::string quantized = ctx.fresh_name(a + "_QuantizeLinear_Output");
      const std::string restored = ctx.fresh_name(a + "_DequantizeLinear_Output");
      std::vector<ir::Node>& pair = pair_after[a];
      pair.push_back(
          make_qdq_node(ctx.fresh_name(a + "_QuantizeLinear"), "QuantizeLinear", {a, scale, zero_point}, quantized));
      pair.push_back(make_qdq_node(ctx.fresh_name(a + "_DequantizeLinear"), "DequantizeLinear",
                                   {quantized, scale, zero_point}, restored));
      dequantized[a] = restored;
      ++report.activations;
    }

    const std::optional<ir::Tensor> b = index.constant(n.inputs[1]);
    // The output channels of B: its columns, or its rows in a Gemm with transB.
    const int axis = is_op(n, "Gemm") && has_flag(n, "transB") ? 0 : 1;
    const std::string key = n.inputs[1] + "|" + std::to_string(axis);
    auto [w, fresh] = weight_of.try_emplace(key);
    if (fresh) {
      const SymmetricInt8 q = quantize_symmetric_int8(*b, options.per_channel ? axis : -1);
      const std::string& bn = n.inputs[1];
      const std::string values = ctx.fresh_name(bn + "_quantized"), scale = ctx.fresh_name(bn + "_scale"),
                        zero_point = ctx.fresh_name(bn + "_zero_point");
      const std::vector<int64_t> group_shape =
          options.per_channel ? std::vector<int64_t>{static_cast<int64_t>(q.scales.size())} : std::vector<int64_t>{};
      g.add_initializer(values, ir::Tensor::from_vector(q.values, b->shape()));
      g.add_initializer(scale, ir::Tensor::from_vector(q.scales, group_shape));
      g.add_initializer(zero_point, ir::Tensor::from_vector(std::vector<int8_t>(q.scales.size(), 0), group_shape));
      w->second = ctx.fresh_name(bn + "_DequantizeLinear_Output");
      ir::Node dq = make_qdq_node(ctx.fresh_name(bn + "_DequantizeLinear"), "DequantizeLinear",
                                  {values, scale, zero_point}, w->second);
      if (options.per_channel) {
        ir::Attribute axis_attr;
        axis_attr.name = "axis";
        axis_attr.kind = ir::Attribute::Kind::kInt;
        axis_attr.i = axis;
        dq.attributes.push_back(std::move(axis_attr));
      }
      weight_nodes.push_back(std::move(dq));
      report.float_weight_bytes += static_cast<int64_t>(b->nbytes());
      report.int8_weight_bytes += static_cast<int64_t>(q.values.size() + q.scales.size() * 5);  // 4 + 1 per group
    }
    n.inputs[0] = dequantized[a];
    n.inputs[1] = w->second;
    report.quantized.push_back(n.label());
  }
  if (report.quantized.empty()) return report;

  std::vector<ir::Node> nodes = std::move(weight_nodes);
  nodes.reserve(nodes.size() + g.nodes.size() + 2 * pair_after.size());
  for (const ir::ValueInfo& in : g.inputs)
    if (auto it = pair_after.find(in.name); it != pair_after.end())
      for (ir::Node& q : it->second) nodes.push_back(std::move(q));
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    ir::Node& n = g.nodes[i];
    const std::vector<std::string> outputs = n.outputs;
    if (auto table = table_at.find(i); table != table_at.end()) {
      for (ir::Node& q : table->second) nodes.push_back(std::move(q));
    } else {
      nodes.push_back(std::move(n));
    }
    for (const std::string& o : outputs)
      if (auto it = pair_after.find(o); it != pair_after.end())
        for (ir::Node& q : it->second) nodes.push_back(std::move(q));
  }
  g.nodes = std::move(nodes);
  eliminate_dead_code(g, ctx);  // the float weights nothing reads now
  set_model_metadata(model, kQuantizationMetadataKey, "int8-static");
  return report;
}

}  // namespace kiln::passes

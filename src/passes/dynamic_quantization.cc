#include "passes/dynamic_quantization.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <optional>

#include "common/error.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

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

// Symmetric int8 in [-127, 127], as ONNX Runtime's quantize_dynamic makes weights: scale = max|w| / 127
// (1 for an all-zero group), q = round_half_even(w / scale) in float32.
void quantize_columns(const float* w, int64_t k, int64_t n, bool trans, bool per_channel, float alpha,
                      std::vector<int8_t>& q, std::vector<float>& scales) {
  auto at = [&](int64_t r, int64_t c) { return trans ? w[c * k + r] : w[r * n + c]; };
  const int64_t groups = per_channel ? n : 1;
  scales.assign(static_cast<size_t>(groups), 0.0f);
  for (int64_t r = 0; r < k; ++r)
    for (int64_t c = 0; c < n; ++c) {
      float& s = scales[static_cast<size_t>(per_channel ? c : 0)];
      s = std::max(s, std::fabs(at(r, c)));
    }
  for (float& s : scales) s = s == 0.0f || !std::isfinite(s) ? 1.0f : s / 127.0f;
  q.resize(static_cast<size_t>(k * n));
  for (int64_t r = 0; r < k; ++r)
    for (int64_t c = 0; c < n; ++c) {
      const float v = std::nearbyint(at(r, c) / scales[static_cast<size_t>(per_channel ? c : 0)]);
      q[static_cast<size_t>(r * n + c)] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  if (alpha != 1.0f)
    for (float& s : scales) s *= alpha;  // Gemm's alpha: (alpha s) (qA x qB) == alpha (s (qA x qB))
}

// Quantizing NaN or infinity has no meaning (and an infinite maximum would make every scale useless).
bool all_finite(const ir::Tensor& t) {
  const float* v = t.data<float>();
  return std::all_of(v, v + t.numel(), [](float x) { return std::isfinite(x); });
}

bool excluded(const ir::Node& n, const DynamicQuantizeOptions& options) {
  return std::any_of(options.exclude.begin(), options.exclude.end(),
                     [&](const std::string& e) { return e == n.name || e == n.op_type; });
}

// An embedding table (a Gather of rows from a large float32 constant [V, D]) as ONNX Runtime's
// quantize_dynamic stores it: int8 rows, symmetric per tensor, gathered and then dequantized
// (Gather -> DequantizeLinear), so that only the rows read are ever float32. Tables under
// kMinTableValues stay float32 (a token-type table of 2 rows saves nothing). Returns whether it did.
constexpr int64_t kMinTableValues = 64 * 1024;

bool quantize_table(ir::Graph& g, const GraphIndex& index, const ir::Node& n, PassContext& ctx,
                    std::vector<ir::Node>& nodes, DynamicQuantizeReport& report) {
  const std::optional<ir::Tensor> table = index.constant(n.inputs[0]);
  const ir::Attribute* axis = n.find_attribute("axis");
  if (!table || table->dtype() != ir::DType::kFloat32 || table->rank() != 2 || table->numel() < kMinTableValues ||
      (axis && axis->i != 0) || n.inputs.size() != 2 || index.constant(n.inputs[1]) || !all_finite(*table))
    return false;
  std::vector<int8_t> q;
  std::vector<float> scale;
  quantize_columns(table->data<float>(), table->dim(0), table->dim(1), false, false, 1.0f, q, scale);
  const std::string& t = n.inputs[0];
  const std::string qt = ctx.fresh_name(t + "_quantized"), st = ctx.fresh_name(t + "_scale"),
                    zt = ctx.fresh_name(t + "_zero_point");
  g.add_initializer(qt, ir::Tensor::from_vector(q, table->shape()));
  g.add_initializer(st, ir::Tensor::from_vector(scale, {}));
  g.add_initializer(zt, ir::Tensor::from_vector(std::vector<int8_t>{0}, {}));
  const std::string rows = ctx.fresh_name(n.outputs[0] + "_quantized");
  ir::Node gather = n;
  gather.inputs[0] = qt;
  gather.outputs = {rows};
  nodes.push_back(std::move(gather));
  nodes.push_back(make_node(ctx.fresh_name(n.name + "_dequantize"), "DequantizeLinear", {rows, st, zt}, {n.outputs[0]}));
  report.quantized.push_back(n.label());
  ++report.tables;
  report.float_weight_bytes += static_cast<int64_t>(table->nbytes());
  report.int8_weight_bytes += static_cast<int64_t>(q.size() + 5);
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
    if (is_op(n, "Gather") && !excluded(n, options) && quantize_table(g, index, n, ctx, nodes, report)) continue;
    if (!matmul && !gemm) {
      nodes.push_back(n);
      continue;
    }
    auto skip = [&](std::string reason) {
      report.skipped.push_back({kPattern, n.label(), std::move(reason)});
      nodes.push_back(n);
    };
    if (excluded(n, options)) {
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
      quantize_columns(b->data<float>(), k, cols, trans_b, options.per_channel, alpha, q, scales);
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
  bool tagged = false;
  for (auto& [key, value] : model.metadata_props)
    if (key == "kiln.quantization") {
      value = "int8-dynamic";
      tagged = true;
    }
  if (!tagged) model.metadata_props.emplace_back("kiln.quantization", "int8-dynamic");
  return report;
}

}  // namespace kiln::passes

#include "passes/weight_quantization.h"

#include <algorithm>
#include <cmath>

namespace kiln::passes {

SymmetricInt8 quantize_symmetric_int8(const ir::Tensor& w, int axis) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const float* v = w.data<float>();
  auto group = [&](int64_t r, int64_t c) { return static_cast<size_t>(axis == 0 ? r : axis == 1 ? c : 0); };
  SymmetricInt8 q;
  q.scales.assign(static_cast<size_t>(axis == 0 ? rows : axis == 1 ? cols : 1), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float& s = q.scales[group(r, c)];
      s = std::max(s, std::fabs(v[r * cols + c]));
    }
  for (float& s : q.scales) s = s == 0.0f || !std::isfinite(s) ? 1.0f : s / 127.0f;
  q.values.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float x = std::nearbyint(v[r * cols + c] / q.scales[group(r, c)]);  // half to even
      q.values[static_cast<size_t>(r * cols + c)] = static_cast<int8_t>(std::clamp(x, -127.0f, 127.0f));
    }
  return q;
}

std::optional<QuantizedTable> quantize_embedding_table(ir::Graph& g, const GraphIndex& index, const ir::Node& n,
                                                       PassContext& ctx) {
  if (!ir::is_default_domain(n.domain) || n.op_type != "Gather" || n.inputs.size() != 2) return std::nullopt;
  const std::optional<ir::Tensor> table = index.constant(n.inputs[0]);
  const ir::Attribute* axis = n.find_attribute("axis");
  if (!table || table->dtype() != ir::DType::kFloat32 || table->rank() != 2 || table->numel() < kMinTableValues ||
      (axis && axis->i != 0) || index.constant(n.inputs[1]) || !all_finite(*table))
    return std::nullopt;
  const SymmetricInt8 q = quantize_symmetric_int8(*table, -1);
  const std::string& t = n.inputs[0];
  const std::string qt = ctx.fresh_name(t + "_quantized"), st = ctx.fresh_name(t + "_scale"),
                    zt = ctx.fresh_name(t + "_zero_point");
  g.add_initializer(qt, ir::Tensor::from_vector(q.values, table->shape()));
  g.add_initializer(st, ir::Tensor::from_vector(q.scales, {}));
  g.add_initializer(zt, ir::Tensor::from_vector(std::vector<int8_t>{0}, {}));
  QuantizedTable out;
  const std::string rows = ctx.fresh_name(n.outputs[0] + "_quantized");
  ir::Node gather = n;
  gather.inputs[0] = qt;
  gather.outputs = {rows};
  out.nodes.push_back(std::move(gather));
  ir::Node dq;
  dq.name = ctx.fresh_name(n.name + "_dequantize");
  dq.op_type = "DequantizeLinear";
  dq.inputs = {rows, st, zt};
  dq.outputs = {n.outputs[0]};
  out.nodes.push_back(std::move(dq));
  out.float_bytes = static_cast<int64_t>(table->nbytes());
  out.int8_bytes = static_cast<int64_t>(q.values.size() + 5);
  return out;
}

bool all_finite(const ir::Tensor& t) {
  const float* v = t.data<float>();
  return std::all_of(v, v + t.numel(), [](float x) { return std::isfinite(x); });
}

bool is_excluded(const ir::Node& n, const std::vector<std::string>& exclude) {
  return std::any_of(exclude.begin(), exclude.end(),
                     [&](const std::string& e) { return e == n.name || e == n.op_type; });
}

}  // namespace kiln::passes

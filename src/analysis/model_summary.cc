#include "analysis/model_summary.h"

#include <filesystem>
#include <optional>

#include "analysis/constant_nodes.h"
#include "analysis/shape_inference.h"
#include "ops/registry.h"

namespace kiln::analysis {

namespace {

int64_t numel_or_neg(const ir::Type* t) {
  if (!t || !t->shape || !t->shape->is_static()) return -1;
  int64_t n = 1;
  for (const auto& d : t->shape->dims) n *= d.value;
  return n;
}

int64_t dim_or_neg(const ir::Type* t, int64_t i) {
  if (!t || !t->shape) return -1;
  int64_t r = static_cast<int64_t>(t->shape->rank());
  if (i < 0) i += r;
  if (i < 0 || i >= r || !t->shape->dims[static_cast<size_t>(i)].is_static()) return -1;
  return t->shape->dims[static_cast<size_t>(i)].value;
}

}  // namespace

int64_t estimate_node_flops(const ir::Node& n, const std::vector<const ir::Type*>& in,
                            const std::vector<const ir::Type*>& out) {
  const std::string& op = n.op_type;
  const ir::Type* y = out.empty() ? nullptr : out[0];
  if (op == "MatMul" || op == "MatMulInteger" || op == "FusedMatMul") {
    int64_t k = dim_or_neg(in.size() > 0 ? in[0] : nullptr, -1);
    int64_t outs = numel_or_neg(y);
    if (k < 0 || outs < 0) return -1;
    return 2 * outs * k;
  }
  if (op == "Gemm") {
    const ir::Type* a = in.empty() ? nullptr : in[0];
    bool trans_a = false;
    if (const ir::Attribute* t = n.find_attribute("transA")) trans_a = t->i != 0;
    int64_t k = dim_or_neg(a, trans_a ? 0 : 1);
    int64_t outs = numel_or_neg(y);
    if (k < 0 || outs < 0) return -1;
    return 2 * outs * k;
  }
  if (op == "Conv" || op == "ConvInteger" || op == "FusedConv" || op == "QLinearConv") {
    size_t w_index = op == "QLinearConv" ? 3 : 1;
    const ir::Type* w = in.size() > w_index ? in[w_index] : nullptr;
    int64_t w_numel = numel_or_neg(w);
    int64_t outs = numel_or_neg(y);
    int64_t m = dim_or_neg(w, 0);
    if (w_numel < 0 || outs < 0 || m <= 0) return -1;
    return 2 * outs * (w_numel / m);  // each output element: (C/group * kernel) multiply-adds
  }
  if (op == "ConvTranspose") {
    const ir::Type* x = in.empty() ? nullptr : in[0];
    const ir::Type* w = in.size() > 1 ? in[1] : nullptr;
    int64_t x_numel = numel_or_neg(x), w_numel = numel_or_neg(w), c = dim_or_neg(w, 0);
    if (x_numel < 0 || w_numel < 0 || c <= 0) return -1;
    return 2 * x_numel * (w_numel / c);
  }
  return 0;
}

ModelSummary summarize(const ir::Model& model, const std::map<std::string, int64_t>& dims) {
  ModelSummary s;
  s.ir_version = model.ir_version;
  s.producer = model.producer_name + (model.producer_version.empty() ? "" : " " + model.producer_version);
  for (const auto& [d, v] : model.opset_imports) s.opsets[ir::is_default_domain(d) ? "ai.onnx" : d] = v;
  const ir::Graph& g = model.graph;
  for (const auto& v : g.inputs)
    if (!g.initializers.count(v.name)) s.inputs.push_back(v);
  s.node_count = static_cast<int64_t>(g.nodes.size());
  for (const auto& n : g.nodes)
    s.op_histogram[ir::is_default_domain(n.domain) ? n.op_type : n.domain + "." + n.op_type]++;
  auto count = [&s](const ir::Tensor& t) {
    s.parameter_count += t.numel();
    if (t.dtype() != ir::DType::kString) s.parameter_bytes += static_cast<int64_t>(t.nbytes());
  };
  for (const auto& [name, t] : g.initializers) count(t);
  // Weights some exporters (paddle2onnx among them) write as Constant nodes: parameters all the same.
  for (const auto& n : g.nodes)
    if (std::optional<ir::Tensor> t = constant_node_value(n)) count(*t);
  if (!model.path.empty()) {
    std::error_code ec;
    auto size = std::filesystem::file_size(model.path, ec);
    if (!ec) s.file_bytes = static_cast<int64_t>(size);
  }

  // Concrete input types for the FLOPs estimate: symbolic dims get the given values, else 1.
  std::unordered_map<std::string, ir::Type> concrete;
  for (const auto& v : s.inputs) {
    ir::Type t = v.type;
    if (t.is_tensor() && t.shape) {
      for (auto& d : t.shape->dims) {
        if (d.is_static()) continue;
        int64_t value = 1;
        if (!d.symbol.empty()) {
          auto it = dims.find(d.symbol);
          if (it != dims.end()) value = it->second;
          s.dims_assumed[d.symbol] = value;
        }
        d = ir::Dim(value);
      }
    }
    concrete[v.name] = t;
  }
  ops::Limits limits;
  InferredTypes typed;
  try {
    typed = infer_types(model, g, concrete, limits);
  } catch (const Error&) {
    typed = {};
  }
  // Outputs with types inferred from the declared (symbolic) inputs.
  InferredTypes symbolic;
  try {
    symbolic = infer_types(model, g, {}, limits);
  } catch (const Error&) {
    symbolic = {};
  }
  for (const auto& o : g.outputs) {
    ir::ValueInfo v = o;
    auto it = symbolic.types.find(o.name);
    if (it != symbolic.types.end() && it->second.kind != ir::Type::Kind::kUnknown &&
        (v.type.kind == ir::Type::Kind::kUnknown || (it->second.shape && !v.type.shape)))
      v.type = it->second;
    s.outputs.push_back(std::move(v));
  }
  int64_t total = 0;
  bool known = !typed.types.empty();
  for (const auto& n : g.nodes) {
    std::vector<const ir::Type*> in, out;
    for (const auto& name : n.inputs) {
      auto it = typed.types.find(name);
      in.push_back(it == typed.types.end() ? nullptr : &it->second);
    }
    for (const auto& name : n.outputs) {
      auto it = typed.types.find(name);
      out.push_back(it == typed.types.end() ? nullptr : &it->second);
    }
    int64_t f = estimate_node_flops(n, in, out);
    if (f < 0)
      known = false;
    else
      total += f;
  }
  s.flops = known ? total : -1;
  return s;
}

}  // namespace kiln::analysis

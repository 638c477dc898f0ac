#include "runtime/shape_inference.h"

#include "ops/registry.h"

namespace kiln::runtime {

namespace {

// Folding runs kernels at inference time; only for small values, where it is shape arithmetic.
constexpr int64_t kMaxFoldElements = 1 << 16;

bool is_nondeterministic(const std::string& op) {
  return op.rfind("Random", 0) == 0 || op == "Bernoulli" || op == "Multinomial";
}

bool has_subgraph(const ir::Node& n) {
  for (const auto& a : n.attributes)
    if (a.g || !a.graphs.empty()) return true;
  return false;
}

ir::Type type_of_tensor(const ir::Tensor& t) { return ir::Type::tensor(t.dtype(), ir::Shape::of(t.shape())); }

}  // namespace

InferredTypes infer_types(const ir::Model& model, const ir::Graph& g,
                          const std::unordered_map<std::string, ir::Type>& input_types, const ops::Limits& limits) {
  InferredTypes r;
  for (const auto& v : g.inputs) {
    auto it = input_types.find(v.name);
    r.types[v.name] = it != input_types.end() ? it->second : v.type;
  }
  for (const auto& [name, t] : g.initializers) {
    if (!input_types.count(name)) {
      r.types[name] = type_of_tensor(t);
      r.values[name] = t;
    }
  }
  const auto& registry = ops::OpRegistry::instance();
  const ir::Type unknown;
  for (const auto& n : g.nodes) {
    int64_t opset = model.opset(n.domain);
    const ops::OpDef* def = registry.find(n.domain, n.op_type, opset);
    std::vector<const ir::Type*> in_types;
    std::vector<const ir::Tensor*> in_values;
    bool all_known = true;
    int64_t fold_elements = 0;
    for (const auto& in : n.inputs) {
      if (in.empty()) {
        in_types.push_back(nullptr);
        in_values.push_back(nullptr);
        continue;
      }
      auto t = r.types.find(in);
      in_types.push_back(t != r.types.end() ? &t->second : &unknown);
      auto v = r.values.find(in);
      if (v != r.values.end()) {
        in_values.push_back(&v->second);
        fold_elements += v->second.numel();
      } else {
        in_values.push_back(nullptr);
        all_known = false;
      }
    }
    ops::InferenceContext ctx(n, opset, in_types, in_values);
    if (def && def->infer) def->infer(ctx);
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty()) r.types[n.outputs[k]] = ctx.output_types()[k];
    for (size_t k = 0; k < ctx.output_values().size() && k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty() && ctx.output_values()[k].defined()) r.values[n.outputs[k]] = ctx.output_values()[k];

    bool foldable = def && def->kernel && all_known && fold_elements <= kMaxFoldElements &&
                    !is_nondeterministic(n.op_type) && !has_subgraph(n);
    if (!foldable) continue;
    std::vector<const ir::Datum*> datums;
    std::vector<ir::Datum> storage;
    storage.reserve(in_values.size());
    for (const ir::Tensor* v : in_values) {
      if (!v) {
        datums.push_back(nullptr);
        continue;
      }
      storage.emplace_back(*v);
      datums.push_back(&storage.back());
    }
    ops::KernelContext kctx(n, opset, datums, limits, nullptr);
    def->kernel(kctx);
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      const ir::Datum& d = kctx.outputs()[k];
      if (n.outputs[k].empty() || !d.is_tensor()) continue;
      check_matches_inferred(r.types[n.outputs[k]], d, "output \"" + n.outputs[k] + "\" of " + n.label());
      r.types[n.outputs[k]] = type_of_tensor(d.tensor);
      if (d.tensor.numel() <= kMaxFoldElements) r.values[n.outputs[k]] = d.tensor;
    }
  }
  return r;
}

void check_matches_inferred(const ir::Type& inferred, const ir::Datum& actual, const std::string& what) {
  if (inferred.kind == ir::Type::Kind::kUnknown) return;
  if (inferred.kind == ir::Type::Kind::kTensor) {
    if (!actual.is_tensor()) {
      if (actual.is_none()) return;  // optional tensors may be empty
      fail("internal: ", what, " was inferred as a tensor but is a sequence");
    }
    const ir::Tensor& t = actual.tensor;
    if (inferred.dtype != ir::DType::kUndefined && inferred.dtype != t.dtype())
      fail("internal: ", what, " was inferred as ", inferred.dtype, " but is ", t.dtype());
    if (!inferred.shape) return;
    if (inferred.shape->rank() != t.rank())
      fail("internal: ", what, " was inferred with shape ", ir::to_string(*inferred.shape), " but has shape ",
           ir::to_string(t.shape()));
    for (size_t i = 0; i < t.rank(); ++i)
      if (inferred.shape->dims[i].is_static() && inferred.shape->dims[i].value != t.dim(i))
        fail("internal: ", what, " was inferred with shape ", ir::to_string(*inferred.shape), " but has shape ",
             ir::to_string(t.shape()));
  }
}

}  // namespace kiln::runtime

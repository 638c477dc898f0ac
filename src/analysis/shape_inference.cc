#include "analysis/shape_inference.h"

#include <algorithm>

#include "ops/registry.h"

namespace kiln::analysis {

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

constexpr int64_t kMaxDimValues = 16;  // longer int64 vectors are data, not shapes

std::optional<std::vector<ir::Dim>> dims_of_value(const ir::Tensor& t) {
  if ((t.dtype() != ir::DType::kInt64 && t.dtype() != ir::DType::kInt32) || t.rank() > 1 || t.numel() > kMaxDimValues)
    return std::nullopt;
  std::vector<ir::Dim> dims;
  for (int64_t i = 0; i < t.numel(); ++i) dims.emplace_back(t.as_int64(i));
  return dims;
}

int64_t int_attr(const ir::Node& n, const char* name, int64_t dflt) {
  const ir::Attribute* a = n.find_attribute(name);
  return a && a->kind == ir::Attribute::Kind::kInt ? a->i : dflt;
}

// Propagates symbolic shape values through the ops that shape arithmetic is made of. Returns the
// dims of output 0 when they can be known element by element.
std::optional<std::vector<ir::Dim>> propagate_dim_values(const ir::Node& n, int64_t opset, const InferredTypes& r,
                                                         const std::vector<const ir::Type*>& in_types) {
  auto dims_in = [&](size_t i) -> const std::vector<ir::Dim>* {
    if (i >= n.inputs.size() || n.inputs[i].empty()) return nullptr;
    auto it = r.dim_values.find(n.inputs[i]);
    return it == r.dim_values.end() ? nullptr : &it->second;
  };
  auto ints_in = [&](size_t i) -> std::optional<std::vector<int64_t>> {
    if (i >= n.inputs.size() || n.inputs[i].empty()) return std::nullopt;
    auto it = r.values.find(n.inputs[i]);
    if (it == r.values.end()) return std::nullopt;
    return it->second.to_int64_vector();
  };
  const std::string& op = n.op_type;
  if (!ir::is_default_domain(n.domain)) return std::nullopt;
  if (op == "Shape") {
    const ir::Type* t = in_types.empty() ? nullptr : in_types[0];
    if (!t || !t->shape) return std::nullopt;
    int64_t rank = static_cast<int64_t>(t->shape->rank());
    int64_t start = opset >= 15 ? int_attr(n, "start", 0) : 0;
    int64_t end = opset >= 15 ? int_attr(n, "end", rank) : rank;
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    end = std::clamp<int64_t>(end, start, rank);
    return std::vector<ir::Dim>(t->shape->dims.begin() + start, t->shape->dims.begin() + end);
  }
  if (op == "Identity" || op == "Cast" || op == "Squeeze" || op == "Unsqueeze") {
    // Scalars and 1-element vectors hold the same single value; longer vectors pass through.
    const auto* d = dims_in(0);
    if (!d) return std::nullopt;
    return *d;
  }
  if (op == "Gather") {
    const auto* d = dims_in(0);
    auto idx = ints_in(1);
    if (!d || !idx || int_attr(n, "axis", 0) != 0) return std::nullopt;
    std::vector<ir::Dim> out;
    int64_t len = static_cast<int64_t>(d->size());
    for (int64_t i : *idx) {
      if (i < 0) i += len;
      if (i < 0 || i >= len) return std::nullopt;
      out.push_back((*d)[static_cast<size_t>(i)]);
    }
    return out;
  }
  if (op == "Concat") {
    std::vector<ir::Dim> out;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const auto* d = dims_in(i);
      if (!d) return std::nullopt;
      out.insert(out.end(), d->begin(), d->end());
    }
    return out;
  }
  if (op == "Slice" && opset >= 10) {
    const auto* d = dims_in(0);
    auto starts = ints_in(1), ends = ints_in(2);
    if (!d || !starts || !ends || starts->size() != 1 || ends->size() != 1) return std::nullopt;
    if (n.inputs.size() > 3 && !n.inputs[3].empty()) {
      auto axes = ints_in(3);
      if (!axes || axes->size() != 1 || ((*axes)[0] != 0 && (*axes)[0] != -1)) return std::nullopt;
    }
    if (n.inputs.size() > 4 && !n.inputs[4].empty()) {
      auto steps = ints_in(4);
      if (!steps || steps->size() != 1 || (*steps)[0] != 1) return std::nullopt;
    }
    int64_t len = static_cast<int64_t>(d->size());
    int64_t b = (*starts)[0], e = (*ends)[0];
    if (b < 0) b += len;
    if (e < 0) e += len;
    b = std::clamp<int64_t>(b, 0, len);
    e = std::clamp<int64_t>(e, b, len);
    return std::vector<ir::Dim>(d->begin() + b, d->begin() + e);
  }
  return std::nullopt;
}

// Output shape of a Reshape whose target is known element by element.
std::optional<ir::Shape> reshape_from_dims(const ir::Node& n, int64_t opset, const ir::Type* in,
                                           const std::vector<ir::Dim>& target) {
  bool allowzero = opset >= 14 && int_attr(n, "allowzero", 0) != 0;
  ir::Shape out;
  int infer_at = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    ir::Dim d = target[i];
    if (d.is_static() && d.value == 0 && !allowzero) {
      if (!in || !in->shape || i >= in->shape->rank()) return std::nullopt;
      d = in->shape->dims[i];
    } else if (d.is_static() && d.value == -1) {
      if (infer_at >= 0) return std::nullopt;
      infer_at = static_cast<int>(i);
      d = ir::Dim();
    }
    out.dims.push_back(d);
  }
  if (infer_at >= 0 && in && in->shape) {
    // -1 is what remains of the input's dims once the other target dims are divided out; symbols
    // cancel when they appear on both sides.
    std::vector<ir::Dim> rest = in->shape->dims;
    int64_t num = 1, den = 1;
    for (size_t i = 0; i < out.dims.size(); ++i) {
      if (static_cast<int>(i) == infer_at) continue;
      const ir::Dim& d = out.dims[i];
      if (d.is_static()) {
        den *= d.value;
        continue;
      }
      auto it = std::find_if(rest.begin(), rest.end(), [&](const ir::Dim& x) { return x.is_symbolic() && x == d; });
      if (it == rest.end()) return out;
      rest.erase(it);
    }
    std::vector<ir::Dim> symbols;
    for (const auto& d : rest) {
      if (d.is_static())
        num *= d.value;
      else
        symbols.push_back(d);
    }
    if (symbols.empty() && den > 0 && num % den == 0)
      out.dims[static_cast<size_t>(infer_at)] = ir::Dim(num / den);
    else if (symbols.size() == 1 && den > 0 && num == den && symbols[0].is_symbolic())
      out.dims[static_cast<size_t>(infer_at)] = symbols[0];
  }
  return out;
}

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
      if (auto dims = dims_of_value(t)) r.dim_values[name] = std::move(*dims);
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
    if (!n.outputs.empty() && !n.outputs[0].empty()) {
      if (auto dims = propagate_dim_values(n, opset, r, in_types)) r.dim_values[n.outputs[0]] = std::move(*dims);
      // A Reshape whose target is known symbolically keeps the symbols its op inference cannot see.
      if (n.op_type == "Reshape" && ir::is_default_domain(n.domain) && n.inputs.size() > 1) {
        auto target = r.dim_values.find(n.inputs[1]);
        ir::Type& out = r.types[n.outputs[0]];
        if (target != r.dim_values.end() && out.is_tensor()) {
          if (auto shape = reshape_from_dims(n, opset, in_types[0], target->second)) {
            bool consistent = !out.shape || out.shape->rank() == shape->rank();
            for (size_t i = 0; consistent && out.shape && i < shape->rank(); ++i)
              if (out.shape->dims[i].is_static()) shape->dims[i] = out.shape->dims[i];
            if (consistent) out.shape = std::move(*shape);
          }
        }
      }
    }
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
      if (auto dims = dims_of_value(d.tensor)) r.dim_values[n.outputs[k]] = std::move(*dims);
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

}  // namespace kiln::analysis

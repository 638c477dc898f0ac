#include "runtime/session.h"

#include "ir/graph_check.h"
#include "onnx/model_io.h"
#include "passes/optimizer.h"
#include "runtime/gradient_expansion.h"
#include "runtime/inline_functions.h"
#include "runtime/model_check.h"

namespace kiln::runtime {

Session::Session(ir::Model model, SessionOptions options)
    : model_(std::make_unique<ir::Model>(std::move(model))), options_(options) {
  ir::Model& m = *model_;
  const std::string where = m.path.empty() ? "model" : m.path;
  inline_functions(m);
  expand_gradients(m);
  check_supported(m);
  ir::check_and_sort_graph(m.graph, {}, where);
  if (m.graph.nodes.empty() && m.graph.outputs.empty()) fail(where, ": the graph is empty (no nodes, no outputs)");
  if (options_.optimization != passes::Level::kNone) {
    passes::OptimizeOptions po;
    po.level = options_.optimization;
    po.target = passes::Target::kKiln;  // in memory, kiln's own fused ops are fine: nothing else reads the graph
    po.limits = options_.limits;
    passes::optimize(m, po);
  }

  for (const auto& v : m.graph.inputs)
    if (!m.graph.initializers.count(v.name)) inputs_.push_back(v);
  {
    // Scoped: the inferred constants share the initializers' storage, which the executor may release.
    InferredTypes inferred = infer_types(m, m.graph, {}, options_.limits);
    for (const auto& o : m.graph.outputs) {
      ir::ValueInfo v = o;
      auto it = inferred.types.find(o.name);
      if (it != inferred.types.end() && it->second.kind != ir::Type::Kind::kUnknown) v.type = it->second;
      outputs_.push_back(std::move(v));
    }
  }
  // verify_inference re-infers types on the model per run, so it keeps every weight there.
  executor_ = std::make_unique<Executor>(m, options_.limits, options_.fast_kernels, !options_.verify_inference);
}

Session Session::load(const std::string& path, SessionOptions options) {
  return Session(onnx_io::load_model(path), options);
}

namespace {

std::string describe(const ir::Datum& d) {
  if (d.is_tensor()) return std::string(ir::dtype_name(d.tensor.dtype())) + ir::to_string(d.tensor.shape());
  if (d.is_sequence()) return "a sequence";
  return "an empty optional";
}

}  // namespace

void Session::check_feeds(const std::unordered_map<std::string, ir::Datum>& feeds) const {
  const std::string where = model_->path.empty() ? "model" : model_->path;
  std::unordered_map<std::string, int64_t> symbols;  // symbolic dim -> value bound by an earlier input
  for (const auto& in : inputs_) {
    auto it = feeds.find(in.name);
    if (it == feeds.end()) fail(where, ": missing input \"", in.name, "\" (", ir::to_string(in.type), ")");
    const ir::Datum& d = it->second;
    const ir::Type& t = in.type;
    if (t.kind == ir::Type::Kind::kTensor) {
      if (!d.is_tensor())
        fail(where, ": input \"", in.name, "\" must be a tensor ", ir::to_string(t), ", got ", describe(d));
      const ir::Tensor& x = d.tensor;
      if (t.dtype != ir::DType::kUndefined && x.dtype() != t.dtype)
        fail(where, ": input \"", in.name, "\" must be ", t.dtype, ", got ", x.dtype());
      if (t.shape) {
        if (t.shape->rank() != x.rank())
          fail(where, ": input \"", in.name, "\" must have rank ", t.shape->rank(), " ", ir::to_string(*t.shape),
               ", got shape ", ir::to_string(x.shape()));
        for (size_t i = 0; i < x.rank(); ++i) {
          const ir::Dim& dim = t.shape->dims[i];
          if (dim.is_static() && dim.value != x.dim(i))
            fail(where, ": input \"", in.name, "\" must have shape ", ir::to_string(*t.shape), ", got ",
                 ir::to_string(x.shape()), " (dim ", i, ")");
          if (dim.is_symbolic()) {
            auto [s, inserted] = symbols.emplace(dim.symbol, x.dim(i));
            if (!inserted && s->second != x.dim(i))
              fail(where, ": input \"", in.name, "\" has ", dim.symbol, " = ", x.dim(i), " (dim ", i,
                   "), but an earlier input has ", dim.symbol, " = ", s->second);
          }
        }
      }
    } else if (t.kind == ir::Type::Kind::kSequence && !d.is_sequence()) {
      fail(where, ": input \"", in.name, "\" must be a sequence, got ", describe(d));
    }
  }
  for (const auto& [name, _] : feeds) {
    bool known = false;
    for (const auto& in : inputs_) known = known || in.name == name;
    if (!known) {
      std::string names;
      for (const auto& in : inputs_) names += (names.empty() ? "" : ", ") + in.name;
      fail(where, ": unknown input \"", name, "\" (the model's inputs are: ", names, ")");
    }
  }
}

size_t Session::fast_kernel_count() const { return executor_->fast_kernel_count(); }

std::vector<ir::Datum> Session::run(const std::unordered_map<std::string, ir::Datum>& feeds) const {
  check_feeds(feeds);
  std::unordered_map<std::string, ir::Datum> bindings(feeds.begin(), feeds.end());
  if (!options_.verify_inference) return executor_->run(model_->graph, std::move(bindings), nullptr);

  std::unordered_map<std::string, ir::Type> concrete;
  for (const auto& [name, d] : feeds)
    if (d.is_tensor()) concrete[name] = ir::Type::tensor(d.tensor.dtype(), ir::Shape::of(d.tensor.shape()));
  InferredTypes inferred = infer_types(*model_, model_->graph, concrete, options_.limits);
  Executor checked(*model_, options_.limits);
  checked.set_observer([&](const ir::Node& n, const std::vector<ir::Datum>& outs) {
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      auto it = inferred.types.find(n.outputs[k]);
      if (n.outputs[k].empty() || it == inferred.types.end()) continue;
      check_matches_inferred(it->second, outs[k], "output \"" + n.outputs[k] + "\" of " + n.label());
    }
  });
  return checked.run(model_->graph, std::move(bindings), nullptr);
}

}  // namespace kiln::runtime

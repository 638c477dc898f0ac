#include "runtime/session.h"

#include <algorithm>
#include <string_view>

#include "analysis/model_preparation.h"
#include "analysis/shape_inference.h"
#include "common/error.h"
#include "kernels/cpu/onednn_matmul.h"
#include "onnx/model_io.h"
#include "passes/optimizer.h"

namespace kiln::runtime {

Precision parse_precision(std::string_view name) {
  if (name == "fp32" || name == "float32") return Precision::kFloat32;
  if (name == "bf16" || name == "bfloat16") return Precision::kBfloat16;
  if (name == "model") return Precision::kModel;
  fail("unknown precision '", name, "' (known: fp32, bf16)");
}

namespace {

// The precision the model's metadata asks for; float32 when it has no tag.
Precision tagged_precision(const ir::Model& m) {
  for (const auto& [key, value] : m.metadata_props) {
    if (key != kPrecisionMetadataKey) continue;
    Precision p = Precision::kModel;
    try {
      p = parse_precision(value);
    } catch (const Error&) {
      // named below, as the model's
    }
    KILN_CHECK(p != Precision::kModel, "the model's metadata ", kPrecisionMetadataKey, " = '", value,
               "' is not a precision kiln knows (fp32, bf16)");
    return p;
  }
  return Precision::kFloat32;
}

}  // namespace

Session::Session(ir::Model model, SessionOptions options)
    : model_(std::make_unique<ir::Model>(std::move(model))), options_(options) {
  ir::Model& m = *model_;
  precision_ = options_.precision == Precision::kModel ? tagged_precision(m) : options_.precision;
  analysis::prepare_model(m);
  if (options_.optimization != passes::Level::kNone) {
    passes::OptimizeOptions po;
    po.level = options_.optimization;
    po.target = passes::Target::kKiln;  // in memory, kiln's own fused ops are fine: nothing else reads the graph
    po.limits = options_.limits;
    passes::optimize(m, po);
  }

  for (const auto& v : m.graph.inputs)
    if (!m.graph.initializers.count(v.name)) inputs_.push_back(v);
  for (const auto& in : inputs_) {
    std::vector<int> ids;
    if (in.type.kind == ir::Type::Kind::kTensor && in.type.shape)
      for (const ir::Dim& d : in.type.shape->dims) {
        int id = -1;
        if (d.is_symbolic()) {
          auto it = std::find(symbols_.begin(), symbols_.end(), d.symbol);
          id = static_cast<int>(it - symbols_.begin());
          if (it == symbols_.end()) symbols_.push_back(d.symbol);
        }
        ids.push_back(id);
      }
    symbol_of_dim_.push_back(std::move(ids));
  }
  {
    // Scoped: the inferred constants share the initializers' storage, which the executor may release.
    analysis::InferredTypes inferred = analysis::infer_types(m, m.graph, {}, options_.limits);
    for (const auto& o : m.graph.outputs) {
      ir::ValueInfo v = o;
      auto it = inferred.types.find(o.name);
      if (it != inferred.types.end() && it->second.kind != ir::Type::Kind::kUnknown) v.type = it->second;
      outputs_.push_back(std::move(v));
    }
  }
  // verify_inference re-infers types on the model per run, so it keeps every weight there.
  executor_ = std::make_unique<Executor>(m, options_.limits, options_.fast_kernels, !options_.verify_inference,
                                         fast_kernel_options());
}

kernels::cpu::FastKernelOptions Session::fast_kernel_options() const {
  kernels::cpu::FastKernelOptions fast;
  // Under KILN_GEMM=panel nothing runs bf16, the attention core included.
  fast.bf16_matmul = precision_ == Precision::kBfloat16 && kernels::cpu::bf16_products_run();
  return fast;
}

bool Session::computes_bf16() const {
  return options_.fast_kernels && fast_kernel_options().bf16_matmul;
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
  const std::string_view where = model_->path.empty() ? std::string_view("model") : std::string_view(model_->path);
  // Symbolic dim -> value bound by an earlier input (-1: none yet); on the stack for the usual few symbols.
  constexpr size_t kFewSymbols = 16;
  int64_t few[kFewSymbols];
  std::vector<int64_t> many;
  int64_t* bound = few;
  if (symbols_.size() > kFewSymbols) {
    many.resize(symbols_.size());
    bound = many.data();
  }
  std::fill(bound, bound + symbols_.size(), int64_t{-1});
  for (size_t input = 0; input < inputs_.size(); ++input) {
    const ir::ValueInfo& in = inputs_[input];
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
            int64_t& b = bound[symbol_of_dim_[input][i]];
            if (b >= 0 && b != x.dim(i))
              fail(where, ": input \"", in.name, "\" has ", dim.symbol, " = ", x.dim(i), " (dim ", i,
                   "), but an earlier input has ", dim.symbol, " = ", b);
            b = x.dim(i);
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

void Session::run(const std::unordered_map<std::string, ir::Datum>& feeds, std::vector<ir::Datum>& outputs) const {
  if (options_.verify_inference) {
    outputs = run(feeds);
    return;
  }
  check_feeds(feeds);
  executor_->run(model_->graph, feeds, outputs);
}

std::vector<ir::Datum> Session::run(const std::unordered_map<std::string, ir::Datum>& feeds) const {
  check_feeds(feeds);
  if (!options_.verify_inference) return executor_->run(model_->graph, feeds, nullptr);

  std::unordered_map<std::string, ir::Type> concrete;
  for (const auto& [name, d] : feeds)
    if (d.is_tensor()) concrete[name] = ir::Type::tensor(d.tensor.dtype(), ir::Shape::of(d.tensor.shape()));
  analysis::InferredTypes inferred = analysis::infer_types(*model_, model_->graph, concrete, options_.limits);
  // With the options' kernels: the conformance runner checks the fast kernels this way too.
  Executor checked(*model_, options_.limits, options_.fast_kernels, false, fast_kernel_options());
  checked.set_observer([&](const ir::Node& n, std::span<const ir::Datum> outs) {
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      auto it = inferred.types.find(n.outputs[k]);
      if (n.outputs[k].empty() || it == inferred.types.end()) continue;
      analysis::check_matches_inferred(it->second, outs[k], "output \"" + n.outputs[k] + "\" of " + n.label());
    }
  });
  return checked.run(model_->graph, feeds, nullptr);
}

}  // namespace kiln::runtime

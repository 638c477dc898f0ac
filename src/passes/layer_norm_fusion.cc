// Layer normalization over the last axis, as exporters spell it out, becomes one LayerNormalization:
//
//        +-----------------------------------------------------------------+
//        |                                                                 v
//   X -> ReduceMean -> Sub -> [Cast] -> Pow(2) -> ReduceMean -> Add(eps) -> Sqrt -> [Cast] -> Div
//   |                  ^  |                                                                 ^  |
//   +------------------+  +--------- (the same Sub, or a second Sub(X, mean)) --------------+  |
//                                                                                               v
//                                                                        Mul(gamma) -> Add(beta)
//
//   =>  X -> LayerNormalization(axis=-1, epsilon=eps)(X, gamma, beta)
//
// Variants accepted: Mul(d, d) for Pow(d, 2); Mul(d, Reciprocal(Sqrt(...))) for the Div; the Sub reused
// or recomputed from the same mean; Casts to a float type around the variance (fp16 models compute it
// in float; LayerNormalization does so by itself with stash_type=1); ReduceMean's axes as an attribute
// (opset < 18) or as a constant input (opset 18+); every commutative operand in either order. gamma and
// beta must be constant vectors over the last dim; a missing Mul writes a ones gamma, a missing Add a
// zeros beta.
//
// Left alone, with the reason reported: a mean or variance over an axis other than the last, keepdims=0,
// an epsilon that is not a constant, a Sub that subtracts the mean of a different tensor, intermediate
// values read outside the pattern, and an X whose last dim is not static.
#include <cmath>
#include <optional>
#include <set>
#include <sstream>

#include "ops/node_view.h"
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"
#include "analysis/shape_inference.h"

namespace kiln::passes {

namespace {

constexpr const char* kPattern = "LayerNorm";

bool is_float_type(int64_t dtype) {
  return dtype == static_cast<int64_t>(ir::DType::kFloat32) || dtype == static_cast<int64_t>(ir::DType::kFloat16) ||
         dtype == static_cast<int64_t>(ir::DType::kFloat64) || dtype == static_cast<int64_t>(ir::DType::kBFloat16);
}

std::string join(const std::vector<int64_t>& v) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < v.size(); ++i) out << (i ? "," : "") << v[i];
  out << "]";
  return out.str();
}

// The matcher: one candidate, anchored at a Sqrt, walked outwards.
class Matcher {
 public:
  Matcher(const ir::Model& model, const ir::Graph& g, const GraphIndex& index, const analysis::InferredTypes& types)
      : model_(model), g_(g), index_(index), types_(types) {}

  struct Result {
    std::vector<int> nodes;  // every node the fused op replaces
    std::string x, gamma, beta, output;
    std::optional<ir::Tensor> new_gamma, new_beta;  // to add as initializers when the graph has none
    float epsilon = 0;
    const ir::Node* anchor = nullptr;  // the mean's ReduceMean, for messages
  };

  // nullopt with `reason` empty: not a layer norm at all; with a reason: a layer norm left alone.
  std::optional<Result> match(int sqrt_index, std::string& reason) {
    reason.clear();
    anchor_ = nullptr;
    Result r;
    const ir::Node& sqrt = g_.nodes[sqrt_index];
    const ir::Node* add_eps = node_of(sqrt.inputs[0]);
    if (!is_op(add_eps, "Add") || add_eps->inputs.size() != 2) return std::nullopt;
    int var_slot = -1;
    for (int k = 0; k < 2; ++k)
      if (is_op(node_of(cast_input(add_eps->inputs[k])), "ReduceMean")) var_slot = k;
    if (var_slot < 0) return std::nullopt;
    const ir::Node* var_rm = node_of(cast_input(add_eps->inputs[var_slot]));
    const std::string& eps_value = add_eps->inputs[1 - var_slot];

    // The square of the centred value: Pow(d, 2) or Mul(d, d), d possibly Cast.
    const ir::Node* square = node_of(cast_input(var_rm->inputs[0]));
    std::string centred;
    if (is_op(square, "Pow") && square->inputs.size() == 2) {
      std::optional<double> e = index_.scalar(square->inputs[1]);
      if (!e || *e != 2.0) return std::nullopt;
      centred = square->inputs[0];
    } else if (is_op(square, "Mul") && square->inputs.size() == 2 && square->inputs[0] == square->inputs[1]) {
      centred = square->inputs[0];
    } else {
      return std::nullopt;
    }
    const ir::Node* sub = node_of(cast_input(centred));
    if (!is_op(sub, "Sub")) {
      reason = "the variance is not of X minus its mean (RMS normalization?)";
      anchor_ = var_rm;
      return std::nullopt;
    }
    const ir::Node* mean_rm = node_of(sub->inputs[1]);
    anchor_ = mean_rm && is_op(mean_rm, "ReduceMean") ? mean_rm : sub;
    r.anchor = anchor_;
    if (!is_op(mean_rm, "ReduceMean")) {
      reason = "the Sub does not subtract a ReduceMean";
      return std::nullopt;
    }
    r.x = sub->inputs[0];
    if (mean_rm->inputs[0] != r.x) {
      reason = "the Sub subtracts the mean of a different tensor (mean of \"" + mean_rm->inputs[0] + "\" from \"" +
               r.x + "\")";
      return std::nullopt;
    }

    // X: a float tensor of known rank and static last dim.
    auto xt = types_.types.find(r.x);
    if (xt == types_.types.end() || !xt->second.is_tensor() || !xt->second.shape || xt->second.shape->rank() == 0) {
      reason = "the rank of X is unknown";
      return std::nullopt;
    }
    const ir::Type& x_type = xt->second;
    const int64_t rank = static_cast<int64_t>(x_type.shape->rank());
    if (!is_float_type(static_cast<int64_t>(x_type.dtype))) {
      reason = "X is not a float tensor";
      return std::nullopt;
    }
    for (const ir::Node* rm : {mean_rm, var_rm})
      if (!reduces_last_axis(*rm, rank, reason)) return std::nullopt;

    std::optional<double> eps = index_.scalar(eps_value);
    if (!eps) {
      reason = "epsilon (\"" + eps_value + "\") is not a constant";
      return std::nullopt;
    }
    r.epsilon = static_cast<float>(*eps);

    // The division: Div(d, s) or Mul(d, Reciprocal(s)), s the Sqrt possibly Cast.
    std::vector<const ir::Node*> nodes = {mean_rm, sub, square, var_rm, add_eps, &sqrt};
    add_casts(var_rm->inputs[0], nodes);
    add_casts(add_eps->inputs[var_slot], nodes);
    add_casts(centred, nodes);
    std::string stddev = sqrt.outputs[0];
    for (const ir::Node* cast = reader(stddev, "Cast");
         cast && is_float_type(ops::NodeView(*cast, 0).attr_int("to", 0)); cast = reader(stddev, "Cast")) {
      nodes.push_back(cast);
      stddev = cast->outputs[0];
    }
    const ir::Node* next = reader(stddev, "Div");
    if (!next) next = reader(stddev, "Reciprocal");
    std::string divided;
    if (is_op(next, "Div") && next->inputs.size() == 2 && next->inputs[1] == stddev) {
      divided = next->inputs[0];
      nodes.push_back(next);
    } else if (is_op(next, "Reciprocal")) {
      const ir::Node* mul = reader(next->outputs[0], "Mul");
      if (!is_op(mul, "Mul") || mul->inputs.size() != 2) {
        reason = "the reciprocal of the standard deviation is not multiplied into X minus its mean";
        return std::nullopt;
      }
      nodes.push_back(next);
      nodes.push_back(mul);
      divided = mul->inputs[0] == next->outputs[0] ? mul->inputs[1] : mul->inputs[0];
      next = mul;
    } else {
      reason = "the standard deviation is not divided into X minus its mean";
      return std::nullopt;
    }
    r.output = next->outputs[0];
    // What is divided: the same Sub, or a second Sub(X, mean) (or of a second ReduceMean(X)).
    if (divided != sub->outputs[0]) {
      const ir::Node* sub2 = node_of(divided);
      const ir::Node* mean2 = sub2 && sub2->inputs.size() == 2 ? node_of(sub2->inputs[1]) : nullptr;
      bool same = is_op(sub2, "Sub") && sub2->inputs[0] == r.x &&
                  (mean2 == mean_rm ||
                   (is_op(mean2, "ReduceMean") && mean2->inputs[0] == r.x && reduces_last_axis(*mean2, rank, reason)));
      if (!same) {
        if (reason.empty()) reason = "the value divided by the standard deviation is not X minus its mean";
        return std::nullopt;
      }
      nodes.push_back(sub2);
      if (mean2 != mean_rm) nodes.push_back(mean2);
    }

    // The affine part: Mul(gamma), then Add(beta), each optional.
    const ir::Dim& last_dim = x_type.shape->dims.back();
    if (!last_dim.is_static()) {
      reason = "the last dim of X is not static";
      return std::nullopt;
    }
    const int64_t h = last_dim.value;
    const ir::Node* mul = consumer(r.output);
    if (is_op(mul, "Mul") && (r.gamma = vector_operand(*mul, r.output, h, x_type.dtype)).size()) {
      nodes.push_back(mul);
      r.output = mul->outputs[0];
    }
    const ir::Node* add = consumer(r.output);
    if (is_op(add, "Add") && (r.beta = vector_operand(*add, r.output, h, x_type.dtype)).size()) {
      nodes.push_back(add);
      r.output = add->outputs[0];
    }
    if (r.gamma.empty() || r.beta.empty()) {
      if (x_type.dtype != ir::DType::kFloat32) {
        reason = std::string("no ") + (r.gamma.empty() ? "gamma" : "beta") + " to take, and X is not float32";
        return std::nullopt;
      }
      if (r.gamma.empty()) r.new_gamma = ir::Tensor::from_vector(std::vector<float>(h, 1.0f), {h});
      if (r.beta.empty()) r.new_beta = ir::Tensor(ir::DType::kFloat32, {h});
    }

    // Every value but the output must be read only inside the pattern.
    std::set<const ir::Node*> inside(nodes.begin(), nodes.end());
    for (const ir::Node* n : nodes) {
      r.nodes.push_back(static_cast<int>(n - g_.nodes.data()));
      for (const auto& o : n->outputs) {
        if (o.empty() || o == r.output) continue;
        bool outside = index_.is_graph_output(o) || index_.is_read_by_subgraph(o);
        for (const Use& u : index_.uses(o)) outside = outside || !inside.count(&g_.nodes[u.node]);
        if (outside) {
          reason = "the intermediate value \"" + o + "\" is also read outside the pattern";
          return std::nullopt;
        }
      }
    }
    return r;
  }

  const ir::Node* anchor() const { return anchor_; }

 private:
  const ir::Node* node_of(const std::string& v) const { return v.empty() ? nullptr : index_.producer_node(v); }
  // The one node reading `v`, or nullptr.
  const ir::Node* consumer(const std::string& v) const {
    int c = index_.only_consumer(v);
    return c < 0 ? nullptr : &g_.nodes[c];
  }
  // The first node reading `v` that is an `op`; whether `v` is read elsewhere too is checked at the end.
  const ir::Node* reader(const std::string& v, const char* op) const {
    for (const Use& u : index_.uses(v))
      if (is_op(&g_.nodes[u.node], op)) return &g_.nodes[u.node];
    return nullptr;
  }
  // Looks through Casts to float types.
  std::string cast_input(std::string v) const {
    for (const ir::Node* n = node_of(v); is_op(n, "Cast") && is_float_type(ops::NodeView(*n, 0).attr_int("to", 0));
         n = node_of(v))
      v = n->inputs[0];
    return v;
  }
  void add_casts(std::string v, std::vector<const ir::Node*>& nodes) const {
    for (const ir::Node* n = node_of(v); is_op(n, "Cast") && is_float_type(ops::NodeView(*n, 0).attr_int("to", 0));
         n = node_of(v)) {
      nodes.push_back(n);
      v = n->inputs[0];
    }
  }

  bool reduces_last_axis(const ir::Node& rm, int64_t rank, std::string& reason) const {
    ops::NodeView view(rm, model_.opset(""));
    std::vector<int64_t> axes;
    if (rm.inputs.size() > 1 && !rm.inputs[1].empty()) {
      std::optional<ir::Tensor> t = index_.constant(rm.inputs[1]);
      if (!t) {
        reason = "the axes of " + rm.label() + " are not a constant";
        return false;
      }
      axes = t->to_int64_vector();
    } else {
      axes = view.attr_ints("axes");
    }
    if (axes.size() != 1 || (axes[0] != -1 && axes[0] != rank - 1)) {
      reason = rm.label() + " reduces over axes " + (axes.empty() ? std::string("(all)") : join(axes)) +
               ", not the last axis alone";
      return false;
    }
    if (view.attr_int("keepdims", 1) != 1) {
      reason = rm.label() + " does not keep the reduced dim";
      return false;
    }
    return true;
  }

  // The operand of `n` other than `value` when it is a constant vector of length h and type dtype.
  std::string vector_operand(const ir::Node& n, const std::string& value, int64_t h, ir::DType dtype) const {
    if (n.inputs.size() != 2) return "";
    const std::string& other = n.inputs[0] == value ? n.inputs[1] : n.inputs[0];
    if (other == value) return "";
    std::optional<ir::Tensor> t = index_.constant(other);
    if (!t || t->dtype() != dtype || t->rank() != 1 || t->dim(0) != h) return "";
    return other;
  }

  const ir::Model& model_;
  const ir::Graph& g_;
  const GraphIndex& index_;
  const analysis::InferredTypes& types_;
  const ir::Node* anchor_ = nullptr;
};

// "/encoder/layer.0/output/LayerNorm/ReduceMean" -> "/encoder/layer.0/output/LayerNorm/LayerNormalization".
std::string fused_name(const ir::Node& anchor) {
  size_t slash = anchor.name.rfind('/');
  std::string scope = slash == std::string::npos ? anchor.name + "/" : anchor.name.substr(0, slash + 1);
  return scope + "LayerNormalization";
}

}  // namespace

bool fuse_layer_norm(ir::Graph& g, PassContext& ctx) {
  analysis::InferredTypes types = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
  GraphIndex index(g);
  Matcher matcher(ctx.model(), g, index, types);
  std::vector<bool> taken(g.nodes.size(), false);
  std::vector<int> removed;
  std::vector<ir::Node> fused;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    if (!is_op(&g.nodes[i], "Sqrt") || taken[i]) continue;
    std::string reason;
    std::optional<Matcher::Result> r = matcher.match(i, reason);
    if (!r) {
      if (!reason.empty()) ctx.rejected(kPattern, matcher.anchor() ? *matcher.anchor() : g.nodes[i], reason);
      continue;
    }
    bool overlaps = false;
    for (int n : r->nodes) overlaps = overlaps || taken[n];
    if (overlaps) continue;
    for (int n : r->nodes) taken[n] = true;
    removed.insert(removed.end(), r->nodes.begin(), r->nodes.end());

    ir::Node ln;
    ln.name = ctx.fresh_name(fused_name(*r->anchor));
    ln.op_type = "LayerNormalization";
    if (r->new_gamma) {
      r->gamma = ctx.fresh_name(ln.name + ".scale");
      g.add_initializer(r->gamma, std::move(*r->new_gamma));
    }
    if (r->new_beta) {
      r->beta = ctx.fresh_name(ln.name + ".bias");
      g.add_initializer(r->beta, std::move(*r->new_beta));
    }
    ln.inputs = {r->x, r->gamma, r->beta};
    ln.outputs = {r->output};
    ir::Attribute axis, epsilon;
    axis.name = "axis";
    axis.kind = ir::Attribute::Kind::kInt;
    axis.i = -1;
    epsilon.name = "epsilon";
    epsilon.kind = ir::Attribute::Kind::kFloat;
    epsilon.f = r->epsilon;
    ln.attributes = {axis, epsilon};
    fused.push_back(std::move(ln));
    ctx.changed("LayerNormalization");
  }
  if (fused.empty()) return false;
  remove_nodes(g, removed);
  for (auto& n : fused) g.nodes.push_back(std::move(n));
  return true;
}

}  // namespace kiln::passes

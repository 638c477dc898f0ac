// GELU, as exporters spell it out, becomes ONNX Runtime's com.microsoft.Gelu or FastGelu.
//
// The erf form, 0.5 * x * (1 + erf(x / sqrt(2))):
//
//   x -> Div(1.4142135) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5)        =>   x -> com.microsoft.Gelu
//   |                                         ^
//   +-----------------------------------------+
//
// The tanh form, 0.5 * x * (1 + tanh(0.7978845608 * (x + 0.044715 * x^3))):
//
//   x -> Pow(3) -> Mul(0.044715) -> Add(x) -> Mul(0.7978845608) -> Tanh -> Add(1) -> Mul(0.5 * x)
//                                                                     =>   x -> com.microsoft.FastGelu
//
// Variants accepted: Mul by 0.70710678 for the Div by sqrt(2); x*x*x for Pow(x, 3); the 0.5 applied to
// x first (Mul(0.5 * x, 1 + f)), to the product last (Mul(x * (1 + f), 0.5)) or to (1 + f)
// (Mul(x, (1 + f) * 0.5)); every commutative operand in either order. Constants match within 1e-4
// relative. Every intermediate value must be read only inside the pattern.
//
// Candidates reported and left alone: an Erf of x over a constant other than sqrt(2), a Tanh of the
// cubic with other coefficients, and patterns whose intermediate values are read elsewhere.
#include <cmath>
#include <optional>
#include <set>

#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"

namespace kiln::passes {

namespace {

constexpr double kSqrt2 = 1.4142135623730951;
constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kCubicCoefficient = 0.044715;

bool is_op(const ir::Node* n, const std::string& op) {
  if (!n || !ir::is_default_domain(n->domain) || n->op_type != op || n->outputs.empty()) return false;
  const size_t arity = op == "Erf" || op == "Tanh" ? 1 : 2;
  return n->inputs.size() == arity;
}

bool near(double v, double want) { return std::abs(v - want) <= 1e-4 * std::abs(want); }

class Matcher {
 public:
  Matcher(const ir::Graph& g, const GraphIndex& index) : g_(g), index_(index) {}

  struct Result {
    std::vector<int> nodes;
    std::string x, output;
  };

  // Erf(x / sqrt(2)) ... ; nullopt with an empty reason when it is no GELU at all.
  std::optional<Result> match_erf(const ir::Node& erf, std::string& reason) {
    reason.clear();
    nodes_ = {&erf};
    const ir::Node* arg = node_of(erf.inputs[0]);
    std::string x;
    if (is_op(arg, "Div")) {
      std::optional<double> c = index_.scalar(arg->inputs[1]);
      if (!c) return std::nullopt;
      if (!near(*c, kSqrt2)) {
        reason = "Erf of x / " + std::to_string(*c) + ", not x / sqrt(2)";
        return std::nullopt;
      }
      x = arg->inputs[0];
    } else if (is_op(arg, "Mul")) {
      int k = scalar_slot(*arg);
      if (k < 0) return std::nullopt;
      double c = *index_.scalar(arg->inputs[k]);
      if (!near(c, 1.0 / kSqrt2)) {
        reason = "Erf of x * " + std::to_string(c) + ", not x / sqrt(2)";
        return std::nullopt;
      }
      x = arg->inputs[1 - k];
    } else {
      return std::nullopt;
    }
    nodes_.push_back(arg);
    return finish(erf.outputs[0], x, reason);
  }

  // Tanh(0.7978845608 * (x + 0.044715 * x^3)) ...
  std::optional<Result> match_tanh(const ir::Node& tanh, std::string& reason) {
    reason.clear();
    nodes_ = {&tanh};
    const ir::Node* scale = node_of(tanh.inputs[0]);
    if (!is_op(scale, "Mul")) return std::nullopt;
    int k = scalar_slot(*scale);
    if (k < 0) return std::nullopt;
    double c1 = *index_.scalar(scale->inputs[k]);
    const ir::Node* inner = node_of(scale->inputs[1 - k]);
    if (!is_op(inner, "Add")) return std::nullopt;
    // inner = x + 0.044715 * cube(x), either order.
    for (int xs = 0; xs < 2; ++xs) {
      const std::string& x = inner->inputs[xs];
      const ir::Node* term = node_of(inner->inputs[1 - xs]);
      if (!is_op(term, "Mul")) continue;
      int ks = scalar_slot(*term);
      if (ks < 0) continue;
      double c2 = *index_.scalar(term->inputs[ks]);
      std::vector<const ir::Node*> cube_nodes;
      if (!is_cube(term->inputs[1 - ks], x, cube_nodes)) continue;
      if (!near(c1, kSqrt2OverPi) || !near(c2, kCubicCoefficient)) {
        reason = "Tanh of " + std::to_string(c1) + " * (x + " + std::to_string(c2) +
                 " * x^3), not sqrt(2/pi) * (x + 0.044715 * x^3)";
        return std::nullopt;
      }
      nodes_.insert(nodes_.end(), {scale, inner, term});
      nodes_.insert(nodes_.end(), cube_nodes.begin(), cube_nodes.end());
      return finish(tanh.outputs[0], x, reason);
    }
    return std::nullopt;
  }

 private:
  const ir::Node* node_of(const std::string& v) const { return v.empty() ? nullptr : index_.producer_node(v); }
  // The first node reading `v` that is an `op`; whether `v` is read elsewhere too is checked at the end.
  const ir::Node* reader(const std::string& v, const char* op) const {
    for (const Use& u : index_.uses(v))
      if (is_op(&g_.nodes[u.node], op)) return &g_.nodes[u.node];
    return nullptr;
  }
  // The input slot of a two-input node that holds a constant scalar, or -1.
  int scalar_slot(const ir::Node& n) const {
    for (int k = 0; k < 2; ++k)
      if (index_.scalar(n.inputs[k])) return k;
    return -1;
  }
  // The other input of a two-input node, or "" when `v` is not one of them.
  static std::string other(const ir::Node& n, const std::string& v) {
    if (n.inputs[0] == v) return n.inputs[1];
    if (n.inputs[1] == v) return n.inputs[0];
    return "";
  }
  bool is_scalar(const std::string& v, double want) const {
    std::optional<double> c = index_.scalar(v);
    return c && near(*c, want);
  }

  // Pow(x, 3), Mul(Mul(x, x), x) or Mul(x, Mul(x, x)).
  bool is_cube(const std::string& v, const std::string& x, std::vector<const ir::Node*>& nodes) const {
    const ir::Node* n = node_of(v);
    if (is_op(n, "Pow") && n->inputs[0] == x && is_scalar(n->inputs[1], 3.0)) {
      nodes.push_back(n);
      return true;
    }
    if (!is_op(n, "Mul")) return false;
    std::string sq = other(*n, x);
    const ir::Node* s = node_of(sq);
    if (sq.empty() || !is_op(s, "Mul") || s->inputs[0] != x || s->inputs[1] != x) return false;
    nodes.push_back(n);
    nodes.push_back(s);
    return true;
  }

  // From f = erf(...) or tanh(...): Add(1, f), then the halving and the product with x in any of the three
  // orders.
  std::optional<Result> finish(const std::string& f, const std::string& x, std::string& reason) {
    const ir::Node* one_plus = reader(f, "Add");
    if (!is_op(one_plus, "Add") || !is_scalar(other(*one_plus, f), 1.0)) return std::nullopt;
    nodes_.push_back(one_plus);
    const std::string& a = one_plus->outputs[0];
    const ir::Node* m = reader(a, "Mul");
    if (!is_op(m, "Mul")) return std::nullopt;
    std::string b = other(*m, a);
    const ir::Node* out = nullptr;
    if (b == x) {
      // Mul(x, 1 + f), then Mul(0.5).
      const ir::Node* half = reader(m->outputs[0], "Mul");
      if (!is_op(half, "Mul") || !is_scalar(other(*half, m->outputs[0]), 0.5)) return std::nullopt;
      nodes_.insert(nodes_.end(), {m, half});
      out = half;
    } else if (is_scalar(b, 0.5)) {
      // Mul(1 + f, 0.5), then Mul(x).
      const ir::Node* times_x = reader(m->outputs[0], "Mul");
      if (!is_op(times_x, "Mul") || other(*times_x, m->outputs[0]) != x) return std::nullopt;
      nodes_.insert(nodes_.end(), {m, times_x});
      out = times_x;
    } else {
      // Mul(0.5 * x, 1 + f).
      const ir::Node* half_x = node_of(b);
      if (!is_op(half_x, "Mul") || !is_scalar(other(*half_x, x), 0.5)) return std::nullopt;
      nodes_.insert(nodes_.end(), {half_x, m});
      out = m;
    }
    Result r;
    r.x = x;
    r.output = out->outputs[0];
    std::set<const ir::Node*> inside(nodes_.begin(), nodes_.end());
    for (const ir::Node* n : nodes_) {
      r.nodes.push_back(static_cast<int>(n - g_.nodes.data()));
      const std::string& o = n->outputs[0];
      if (o == r.output) continue;
      bool outside = index_.is_graph_output(o) || index_.is_read_by_subgraph(o);
      for (const Use& u : index_.uses(o)) outside = outside || !inside.count(&g_.nodes[u.node]);
      if (outside) {
        reason = "the intermediate value \"" + o + "\" is also read outside the pattern";
        return std::nullopt;
      }
    }
    return r;
  }

  const ir::Graph& g_;
  const GraphIndex& index_;
  std::vector<const ir::Node*> nodes_;
};

// "/encoder/layer.0/intermediate/intermediate_act_fn/Erf" -> ".../intermediate_act_fn/Gelu".
std::string fused_name(const ir::Node& anchor, const char* op) {
  size_t slash = anchor.name.rfind('/');
  std::string scope = slash == std::string::npos ? anchor.name + "/" : anchor.name.substr(0, slash + 1);
  return scope + op;
}

}  // namespace

bool fuse_gelu(ir::Graph& g, PassContext& ctx) {
  GraphIndex index(g);
  Matcher matcher(g, index);
  std::vector<bool> taken(g.nodes.size(), false);
  std::vector<int> removed;
  std::vector<ir::Node> fused;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const ir::Node& n = g.nodes[i];
    const bool erf = is_op(&n, "Erf");
    if ((!erf && !is_op(&n, "Tanh")) || taken[i]) continue;
    const char* op = erf ? "Gelu" : "FastGelu";
    std::string reason;
    std::optional<Matcher::Result> r = erf ? matcher.match_erf(n, reason) : matcher.match_tanh(n, reason);
    if (!r) {
      if (!reason.empty()) ctx.rejected(op, n, reason);
      continue;
    }
    bool overlaps = false;
    for (int k : r->nodes) overlaps = overlaps || taken[k];
    if (overlaps) continue;
    for (int k : r->nodes) taken[k] = true;
    removed.insert(removed.end(), r->nodes.begin(), r->nodes.end());
    ir::Node gelu;
    gelu.name = ctx.fresh_name(fused_name(n, op));
    gelu.op_type = op;
    gelu.domain = kContribDomain;
    gelu.inputs = {r->x};
    gelu.outputs = {r->output};
    fused.push_back(std::move(gelu));
    ctx.changed(op);
  }
  if (fused.empty()) return false;
  ctx.import_contrib_domain();
  remove_nodes(g, removed);
  for (auto& n : fused) g.nodes.push_back(std::move(n));
  return true;
}

}  // namespace kiln::passes

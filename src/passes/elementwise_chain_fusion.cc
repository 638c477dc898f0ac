// Chains of float32 elementwise ops become one ai.kiln.ElementwiseChain (target kiln), which runs them in
// one pass over memory (kernels/reference/elementwise_chain.h):
//
//   x -> Add(bias) -> Mul(gamma) -> Add(residual)        =>   x -> ElementwiseChain(bias, gamma, residual)
//   x -> Pow(2) -> Add(eps) -> Sqrt                      =>   x -> ElementwiseChain(eps)
//
// A chain is a run of steps, each reading the previous one's output as its only reader and keeping its
// shape (known, and equal to the chain input's): Add, Sub, Mul, Div with an operand that broadcasts into
// it (from outside the chain), Relu, Sigmoid, Tanh, Sqrt, Exp, Erf, Neg, Abs, Reciprocal, Log, Floor, Ceil,
// Round, Softplus, HardSwish, Pow by a constant scalar, Clip with constant bounds, LeakyRelu, Elu and
// HardSigmoid; at least two of them. Every step computes
// as the op it replaces, so the rewrite changes no result.
//
// It runs once, after the other passes have reached their fixed point (optimizer.cc), so that it never
// takes a node a fusion or the layout passes would have used.
#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "kernels/reference/elementwise_chain.h"
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln::passes {

namespace {

using ops::chain::StepKind;

// Inputs of the fused node past X; the fast kernel takes up to 7.
constexpr size_t kMostOperands = 7;

struct ChainStep {
  StepKind kind;
  std::string operand;  // binary steps
  float p0 = 0, p1 = 0;
};

// `v` as a float32 that is exactly the constant (Pow's exponent is read as a double by the reference).
std::optional<float> exact_float(std::optional<double> v) {
  if (!v || static_cast<double>(static_cast<float>(*v)) != *v) return std::nullopt;
  return static_cast<float>(*v);
}

class ChainMatcher {
 public:
  ChainMatcher(const ir::Graph& g, const GraphIndex& index, const analysis::InferredTypes& types, int64_t opset)
      : g_(g), index_(index), types_(types), opset_(opset) {}

  // Node n as a step on `value` (one of its inputs), or nothing.
  std::optional<ChainStep> step(const ir::Node& n, const std::string& value) const {
    if (!ir::is_default_domain(n.domain) || n.outputs.size() != 1 || n.inputs.empty()) return std::nullopt;
    if (!float_with_shape_of(n.outputs[0], value)) return std::nullopt;
    const std::string& op = n.op_type;
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
      if (n.inputs.size() != 2 || n.inputs[0] == n.inputs[1]) return std::nullopt;
      const int at = n.inputs[0] == value ? 0 : n.inputs[1] == value ? 1 : -1;
      if (at < 0) return std::nullopt;
      const std::string& other = n.inputs[1 - at];
      const ir::Type* t = tensor_type_with_shape(types_, other);
      if (!t || t->dtype != ir::DType::kFloat32) return std::nullopt;
      StepKind k = op == "Add" ? StepKind::kAdd : op == "Mul" ? StepKind::kMul : op == "Sub" ? StepKind::kSub : StepKind::kDiv;
      if (at == 1 && k == StepKind::kSub) k = StepKind::kSubFrom;
      if (at == 1 && k == StepKind::kDiv) k = StepKind::kDivInto;
      return ChainStep{k, other};
    }
    if (n.inputs[0] != value) return std::nullopt;
    static const std::pair<const char*, StepKind> kUnary[] = {
        {"Relu", StepKind::kRelu}, {"Sigmoid", StepKind::kSigmoid}, {"Tanh", StepKind::kTanh},
        {"Sqrt", StepKind::kSqrt}, {"Exp", StepKind::kExp},         {"Erf", StepKind::kErf},
        {"Neg", StepKind::kNeg},   {"Abs", StepKind::kAbs},         {"Reciprocal", StepKind::kReciprocal},
        {"Log", StepKind::kLog},   {"Floor", StepKind::kFloor},     {"Ceil", StepKind::kCeil},
        {"Round", StepKind::kRound}, {"Softplus", StepKind::kSoftplus}, {"HardSwish", StepKind::kHardSwish}};
    for (const auto& [name, kind] : kUnary)
      if (op == name) return n.inputs.size() == 1 ? std::optional<ChainStep>(ChainStep{kind, "", 0.0f, 0.0f}) : std::nullopt;
    if (op == "Pow" && n.inputs.size() == 2) {
      std::optional<float> e = exact_float(index_.scalar(n.inputs[1]));
      if (!e) return std::nullopt;
      return ChainStep{StepKind::kPow, "", *e};
    }
    if (op == "Clip") {
      float lo = -INFINITY, hi = INFINITY;
      if (opset_ < 11) {
        if (const ir::Attribute* a = n.find_attribute("min")) lo = a->f;
        if (const ir::Attribute* a = n.find_attribute("max")) hi = a->f;
      } else {
        for (size_t k = 1; k < n.inputs.size() && k < 3; ++k) {
          if (n.inputs[k].empty()) continue;
          std::optional<float> b = exact_float(index_.scalar(n.inputs[k]));
          if (!b) return std::nullopt;
          (k == 1 ? lo : hi) = *b;
        }
      }
      return ChainStep{StepKind::kClip, "", lo, hi};
    }
    if (op == "LeakyRelu" && n.inputs.size() == 1) {
      const ir::Attribute* a = n.find_attribute("alpha");
      return ChainStep{StepKind::kLeakyRelu, "", a ? a->f : 0.01f};
    }
    if (op == "Elu" && n.inputs.size() == 1) {
      const ir::Attribute* a = n.find_attribute("alpha");
      return ChainStep{StepKind::kElu, "", a ? a->f : 1.0f};
    }
    if (op == "HardSigmoid" && n.inputs.size() == 1) {
      const ir::Attribute* a = n.find_attribute("alpha");
      const ir::Attribute* b = n.find_attribute("beta");
      return ChainStep{StepKind::kHardSigmoid, "", a ? a->f : 0.2f, b ? b->f : 0.5f};
    }
    return std::nullopt;
  }

  // The value a chain starting at node n runs on: input 0, or for a binary op the input of the output's
  // shape (input 0 first).
  std::optional<std::string> chain_input(const ir::Node& n) const {
    if (n.inputs.empty() || n.outputs.size() != 1) return std::nullopt;
    for (size_t k = 0; k < n.inputs.size() && k < 2; ++k) {
      if (k == 1 && !(n.op_type == "Add" || n.op_type == "Sub" || n.op_type == "Mul" || n.op_type == "Div")) break;
      const std::string& v = n.inputs[k];
      if (!v.empty() && float_with_shape_of(v, n.outputs[0]) && step(n, v)) return v;
    }
    return std::nullopt;
  }

 private:
  // `value` is float32 with a known shape equal to `like`'s.
  bool float_with_shape_of(const std::string& value, const std::string& like) const {
    const ir::Type* a = tensor_type_with_shape(types_, value);
    const ir::Type* b = tensor_type_with_shape(types_, like);
    return a && b && a->dtype == ir::DType::kFloat32 && b->dtype == ir::DType::kFloat32 && known_and_equal(*a->shape, *b->shape);
  }

  const ir::Graph& g_;
  const GraphIndex& index_;
  const analysis::InferredTypes& types_;
  int64_t opset_;
};

ir::Attribute chain_attribute(const char* name, ir::Attribute::Kind kind) {
  ir::Attribute a;
  a.name = name;
  a.kind = kind;
  return a;
}

}  // namespace

bool fuse_elementwise_chains(ir::Graph& g, PassContext& ctx) {
  if (ctx.options().target != Target::kKiln) return false;
  GraphIndex index(g);
  const analysis::InferredTypes types = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
  ChainMatcher matcher(g, index, types, ctx.opset());
  std::vector<bool> taken(g.nodes.size(), false);
  std::vector<int> removed;
  std::vector<ir::Node> added;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    if (taken[i]) continue;
    const std::optional<std::string> x = matcher.chain_input(g.nodes[i]);
    if (!x) continue;
    std::vector<int> nodes;
    std::vector<ChainStep> steps;
    std::vector<std::string> operands;  // distinct, in first use
    std::set<std::string> inside;       // the chain's intermediate values
    std::string value = *x;
    int at = i;
    while (at >= 0 && !taken[at]) {
      std::optional<ChainStep> s = matcher.step(g.nodes[at], value);
      if (!s || inside.count(s->operand)) break;  // an operand from inside the chain: not a chain
      const bool new_operand =
          !s->operand.empty() && std::find(operands.begin(), operands.end(), s->operand) == operands.end();
      if (new_operand && operands.size() == kMostOperands) break;
      if (new_operand) operands.push_back(s->operand);
      nodes.push_back(at);
      steps.push_back(*s);
      value = g.nodes[at].outputs[0];
      inside.insert(value);
      at = index.only_consumer(value);
      if (index.is_read_by_subgraph(value)) break;
    }
    if (nodes.size() < 2) continue;
    // The last step's output is the chain's; the values between are read only inside it.
    ir::Node chain;
    chain.domain = kKilnDomain;
    chain.op_type = ops::chain::kChainOp;
    chain.name = ctx.fresh_name(scope_of(g.nodes[nodes.back()].name) + "ElementwiseChain");
    chain.inputs = {*x};
    chain.inputs.insert(chain.inputs.end(), operands.begin(), operands.end());
    chain.outputs = {value};
    ir::Attribute ops_attr = chain_attribute("ops", ir::Attribute::Kind::kStrings);
    ir::Attribute operands_attr = chain_attribute("operands", ir::Attribute::Kind::kInts);
    ir::Attribute params_attr = chain_attribute("params", ir::Attribute::Kind::kFloats);
    for (const ChainStep& s : steps) {
      ops_attr.strings.push_back(ops::chain::step_name(s.kind));
      int64_t operand = 0;
      if (!s.operand.empty())
        operand = 1 + (std::find(operands.begin(), operands.end(), s.operand) - operands.begin());
      operands_attr.ints.push_back(operand);
      params_attr.floats.push_back(s.p0);
      params_attr.floats.push_back(s.p1);
    }
    chain.attributes = {ops_attr, operands_attr, params_attr};
    for (int k : nodes) taken[k] = true;
    removed.insert(removed.end(), nodes.begin(), nodes.end());
    added.push_back(std::move(chain));
    ctx.changed("ElementwiseChain");
    ctx.changed("ops in elementwise chains", static_cast<int64_t>(nodes.size()));
  }
  if (removed.empty()) return false;
  remove_nodes(g, removed);
  for (ir::Node& n : added) g.nodes.push_back(std::move(n));
  ctx.import_kiln_domain();
  return true;
}

}  // namespace kiln::passes

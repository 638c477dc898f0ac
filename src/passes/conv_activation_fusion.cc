// Conv followed by an activation becomes one fused conv, so the activation runs on the convolution's
// output while it is still in cache:
//   Relu|Tanh|Sigmoid|LeakyRelu|Clip|HardSigmoid(Conv(x, W, B))
//       ->  com.microsoft.FusedConv(x, W, B, activation=..., activation_params=...)
//   HardSwish(Conv(x, W, B))                       ->  ai.kiln.FusedConv(x, W, B, activation="HardSwish")
//
//   x * Sigmoid(x) (SiLU) on the Conv output, the Mul's operands either way round, and the same with
//   HardSigmoid(alpha 1/6, beta 1/2) as the gate (HardSwish below opset 14):
//
//        Conv -----.
//          |       |
//       Sigmoid    |     ->     ai.kiln.FusedConv(x, W, B, activation="Silu")
//          |       |
//         Mul <----'
//
// The first six are the activations ONNX Runtime's FusedConv accepts, so they use its op whatever the
// target. HardSwish and SiLU use kiln's own ai.kiln.FusedConv, which ONNX Runtime cannot load: they fuse
// only with Target::kKiln, and with Target::kOnnxRuntime they are reported and left alone. Clip's bounds
// must be constants. For SiLU the Conv output must be read by exactly the Sigmoid and the Mul, and the
// Sigmoid output by the Mul only: any other reader still needs the unfused values.
#include <cmath>

#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln::passes {

namespace {

constexpr const char* kPattern = "Conv+activation";

float attr_or(const ir::Node& n, const char* name, float dflt) {
  const ir::Attribute* a = n.find_attribute(name);
  return a ? a->f : dflt;
}

// Both FusedConv ops take float32 only; the weight's element type tells the Conv's.
bool is_float32_conv(const ir::Graph& g, const ir::Node& conv) {
  if (conv.inputs.size() < 2) return false;
  if (const ir::Tensor* w = g.find_initializer(conv.inputs[1])) return w->dtype() == ir::DType::kFloat32;
  const ir::ValueInfo* in = g.find_input(conv.inputs[1]);
  return in && in->type.is_tensor() && in->type.dtype == ir::DType::kFloat32;
}

std::string not_for_ort(const std::string& what) {
  return what + " is not an activation ONNX Runtime's FusedConv supports (fused only for kiln: --target kiln)";
}

// What replaces the Conv: which fused op, which activation, and the nodes it absorbs besides the Conv.
struct Fusion {
  std::string domain;
  std::string activation;
  std::vector<float> params;
  std::vector<int> absorbed;  // the last one writes the fused node's output
};

// x * Sigmoid(x) (SiLU), or x * HardSigmoid(x) with alpha 1/6 and beta 1/2 (HardSwish, as fuse_hard_swish
// writes it below opset 14), on the Conv output `y`: the gate and the Mul, or nothing. Rejects (with a
// reason) one that other readers of its values keep from fusing.
std::optional<Fusion> match_gated(const ir::Graph& g, const GraphIndex& index, PassContext& ctx, const ir::Node& conv) {
  const std::string& y = conv.outputs[0];
  int gate = -1, mul = -1;
  for (const Use& u : index.uses(y)) {
    const ir::Node& n = g.nodes[u.node];
    if (n.outputs.empty()) continue;
    if (is_op(n, "HardSigmoid")) {
      if (std::abs(attr_or(n, "alpha", 0.2f) - 1.0f / 6.0f) > 1e-6f || std::abs(attr_or(n, "beta", 0.5f) - 0.5f) > 1e-6f)
        continue;
    } else if (!is_op(n, "Sigmoid")) {
      continue;
    }
    for (const Use& v : index.uses(n.outputs[0])) {
      const ir::Node& m = g.nodes[v.node];
      if (!is_op(m, "Mul") || m.inputs.size() != 2) continue;
      if (m.inputs[1 - v.input] == y) {
        gate = u.node;
        mul = v.node;
      }
    }
  }
  if (mul < 0) return std::nullopt;
  const bool silu = g.nodes[gate].op_type == "Sigmoid";
  const std::string gate_op = g.nodes[gate].op_type, what = "x * " + gate_op + "(x)";
  const std::string& s = g.nodes[gate].outputs[0];
  if (index.use_count(y) != 2) {
    ctx.rejected(kPattern, conv, what + ": the Conv output has readers besides the " + gate_op + " and the Mul");
    return std::nullopt;
  }
  if (index.only_consumer(s) != mul) {
    ctx.rejected(kPattern, conv, what + ": the " + gate_op + " output has readers besides the Mul");
    return std::nullopt;
  }
  if (ctx.options().target != Target::kKiln) {
    ctx.rejected(kPattern, conv, not_for_ort(what));
    return std::nullopt;
  }
  return Fusion{kKilnDomain, silu ? "Silu" : "HardSwish", {}, {gate, mul}};
}

// An activation that is the only reader of the Conv output, or nothing.
std::optional<Fusion> match_activation(const ir::Graph& g, const GraphIndex& index, PassContext& ctx,
                                       const ir::Node& conv) {
  int reader = index.only_consumer(conv.outputs[0]);
  if (reader < 0) return std::nullopt;
  const ir::Node& act = g.nodes[reader];
  if (!ir::is_default_domain(act.domain)) return std::nullopt;
  const std::string& op = act.op_type;
  Fusion f{kContribDomain, op, {}, {reader}};
  if (op == "Relu" || op == "Tanh" || op == "Sigmoid") return f;
  if (op == "LeakyRelu") {
    f.params = {attr_or(act, "alpha", 0.01f)};
    return f;
  }
  if (op == "HardSigmoid") {
    f.params = {attr_or(act, "alpha", 0.2f), attr_or(act, "beta", 0.5f)};
    return f;
  }
  if (op == "Clip") {
    float lo = -3.402823466e38f, hi = 3.402823466e38f;
    if (act.find_attribute("min") || act.find_attribute("max")) {  // opset < 11
      lo = attr_or(act, "min", lo);
      hi = attr_or(act, "max", hi);
    } else {
      auto bound = [&](size_t k, float dflt) -> std::optional<float> {
        if (k >= act.inputs.size() || act.inputs[k].empty()) return dflt;
        std::optional<double> v = index.scalar(act.inputs[k]);
        if (!v) return std::nullopt;
        return static_cast<float>(*v);
      };
      std::optional<float> a = bound(1, lo), b = bound(2, hi);
      if (!a || !b) {
        ctx.rejected(kPattern, conv, "Clip's bounds are not constants");
        return std::nullopt;
      }
      lo = *a;
      hi = *b;
    }
    f.params = {lo, hi};
    return f;
  }
  if (op == "HardSwish") {
    if (ctx.options().target != Target::kKiln) {
      ctx.rejected(kPattern, conv, not_for_ort(op));
      return std::nullopt;
    }
    f.domain = kKilnDomain;
    return f;
  }
  return std::nullopt;
}

}  // namespace

bool fuse_conv_activation(ir::Graph& g, PassContext& ctx) {
  bool changed = false;
  GraphIndex index(g);
  std::vector<int> removed;
  const size_t original = g.nodes.size();
  for (size_t i = 0; i < original; ++i) {
    if (!is_op(g.nodes[i], "Conv") || g.nodes[i].outputs.empty() || !is_float32_conv(g, g.nodes[i])) continue;
    std::optional<Fusion> f = match_activation(g, index, ctx, g.nodes[i]);
    if (!f) f = match_gated(g, index, ctx, g.nodes[i]);
    if (!f) continue;
    ir::Node fused = g.nodes[i];
    fused.domain = f->domain;
    fused.op_type = "FusedConv";
    fused.outputs = {g.nodes[f->absorbed.back()].outputs[0]};
    ir::Attribute a;
    a.name = "activation";
    a.kind = ir::Attribute::Kind::kString;
    a.s = f->activation;
    fused.attributes.push_back(a);
    if (!f->params.empty()) {
      ir::Attribute p;
      p.name = "activation_params";
      p.kind = ir::Attribute::Kind::kFloats;
      p.floats = f->params;
      fused.attributes.push_back(p);
    }
    if (f->domain == kKilnDomain)
      ctx.import_kiln_domain();
    else
      ctx.import_contrib_domain();
    ctx.changed("FusedConv " + f->activation);
    removed.push_back(static_cast<int>(i));
    removed.insert(removed.end(), f->absorbed.begin(), f->absorbed.end());
    g.nodes.push_back(std::move(fused));
    changed = true;
  }
  remove_nodes(g, removed);
  return changed;
}

}  // namespace kiln::passes

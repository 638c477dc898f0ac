// Conv followed by an activation becomes ONNX Runtime's com.microsoft.FusedConv, so the activation runs
// on the convolution's output while it is still in cache:
//   Relu|Tanh|Sigmoid|LeakyRelu|Clip|HardSigmoid(Conv(x, W, B))  ->  FusedConv(x, W, B, activation=...,
//   activation_params=...)
// These six are the activations ORT's FusedConv accepts; a Conv followed by anything else (HardSwish,
// x * Sigmoid(x)) is reported and left alone. Clip's bounds must be constants.
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"

namespace kiln::passes {

namespace {

float attr_or(const ir::Node& n, const char* name, float dflt) {
  const ir::Attribute* a = n.find_attribute(name);
  return a ? a->f : dflt;
}

}  // namespace

bool fuse_conv_activation(ir::Graph& g, PassContext& ctx) {
  bool changed = false;
  GraphIndex index(g);
  std::vector<int> removed;
  const size_t original = g.nodes.size();
  for (size_t i = 0; i < original; ++i) {
    if (!ir::is_default_domain(g.nodes[i].domain) || g.nodes[i].op_type != "Conv") continue;
    int reader = index.only_consumer(g.nodes[i].outputs[0]);
    if (reader < 0) continue;
    const ir::Node& act = g.nodes[reader];
    if (!ir::is_default_domain(act.domain)) continue;
    std::vector<float> params;
    const std::string& op = act.op_type;
    if (op == "LeakyRelu") {
      params = {attr_or(act, "alpha", 0.01f)};
    } else if (op == "HardSigmoid") {
      params = {attr_or(act, "alpha", 0.2f), attr_or(act, "beta", 0.5f)};
    } else if (op == "Clip") {
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
          ctx.rejected("Conv+activation", g.nodes[i], "Clip's bounds are not constants");
          continue;
        }
        lo = *a;
        hi = *b;
      }
      params = {lo, hi};
    } else if (op != "Relu" && op != "Tanh" && op != "Sigmoid") {
      if (op == "HardSwish" || op == "Mul")
        ctx.rejected("Conv+activation", g.nodes[i], op + " is not an activation ONNX Runtime's FusedConv supports");
      continue;
    }
    ir::Node fused = g.nodes[i];
    fused.domain = kContribDomain;
    fused.op_type = "FusedConv";
    fused.outputs = {act.outputs[0]};
    ir::Attribute a;
    a.name = "activation";
    a.kind = ir::Attribute::Kind::kString;
    a.s = op;
    fused.attributes.push_back(a);
    if (!params.empty()) {
      ir::Attribute p;
      p.name = "activation_params";
      p.kind = ir::Attribute::Kind::kFloats;
      p.floats = params;
      fused.attributes.push_back(p);
    }
    ctx.import_contrib_domain();
    ctx.changed("FusedConv " + op);
    removed.push_back(static_cast<int>(i));
    removed.push_back(reader);
    g.nodes.push_back(std::move(fused));
    changed = true;
  }
  remove_nodes(g, removed);
  return changed;
}

}  // namespace kiln::passes

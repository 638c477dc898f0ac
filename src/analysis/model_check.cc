#include "analysis/model_check.h"

#include "ops/registry.h"

namespace kiln::analysis {

namespace {

std::string domain_label(const std::string& d) { return ir::is_default_domain(d) ? "ai.onnx" : d; }

void check_nodes(const ir::Model& model, const ir::Graph& g, const std::string& where) {
  const auto& registry = ops::OpRegistry::instance();
  for (const auto& n : g.nodes) {
    const std::string at = n.name.empty() ? "" : " at node \"" + n.name + "\"";
    int64_t opset = model.opset(n.domain);
    if (!registry.knows_domain(n.domain)) {
      if (opset == 0 && !ir::is_default_domain(n.domain))
        fail(where, ": unknown domain \"", n.domain, "\" of op ", n.op_type, at, " (not imported by the model)");
      fail(where, ": unsupported domain \"", domain_label(n.domain), "\" of op ", n.op_type, at);
    }
    if (opset == 0)
      fail(where, ": op ", n.op_type, at, " uses domain \"", domain_label(n.domain),
           "\", which the model does not import");
    if (!registry.find(n.domain, n.op_type, opset)) {
      fail(where, ": unsupported op ", n.op_type, " (domain ", domain_label(n.domain), ", opset ", opset, ")", at);
    }
    for (const auto& a : n.attributes) {
      if (a.g) check_nodes(model, *a.g, where);
      for (const auto& sg : a.graphs) check_nodes(model, *sg, where);
    }
  }
}

}  // namespace

void check_supported(const ir::Model& model) {
  const std::string where = model.path.empty() ? "model" : model.path;
  for (const auto& [domain, version] : model.opset_imports) {
    if (ir::is_default_domain(domain)) {
      if (version < 1 || version > ops::kMaxOnnxOpset)
        fail(where, ": unsupported opset ", version, " for domain ai.onnx (kiln supports 1 to ", ops::kMaxOnnxOpset,
             ")");
    } else if (version < 1) {
      fail(where, ": invalid opset ", version, " for domain \"", domain, "\"");
    }
  }
  check_nodes(model, model.graph, where);
}

}  // namespace kiln::analysis

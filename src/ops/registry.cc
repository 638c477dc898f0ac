#include "ops/registry.h"

namespace kiln::ops {

namespace ml {
void register_ops(OpRegistry& r);  // kernels/reference/ml.cc: the ai.onnx.ml ops kiln covers
}  // namespace ml

namespace {
std::string canonical_domain(const std::string& d) { return ir::is_default_domain(d) ? "" : d; }
}  // namespace

const OpRegistry& OpRegistry::instance() {
  static const OpRegistry registry = [] {
    OpRegistry r;
    register_elementwise_ops(r);
    register_tensor_ops(r);
    register_reduction_ops(r);
    register_nn_ops(r);
    register_quantization_ops(r);
    register_recurrent_ops(r);
    register_misc_ops(r);
    register_control_flow_ops(r);
    register_sequence_ops(r);
    register_contrib_ops(r);
    ml::register_ops(r);
    return r;
  }();
  return registry;
}

void OpRegistry::add(OpDef def) {
  def.domain = canonical_domain(def.domain);
  defs_.push_back(std::move(def));
}

const OpDef* OpRegistry::find(const std::string& domain, const std::string& name, int64_t opset) const {
  std::string d = canonical_domain(domain);
  for (const auto& def : defs_)
    if (def.name == name && def.domain == d && opset >= def.min_opset && opset <= def.max_opset) return &def;
  return nullptr;
}

bool OpRegistry::knows(const std::string& domain, const std::string& name) const {
  std::string d = canonical_domain(domain);
  for (const auto& def : defs_)
    if (def.name == name && def.domain == d) return true;
  return false;
}

bool OpRegistry::knows_domain(const std::string& domain) const {
  std::string d = canonical_domain(domain);
  for (const auto& def : defs_)
    if (def.domain == d) return true;
  return false;
}

}  // namespace kiln::ops

#include "ir/graph.h"

namespace kiln::ir {

const Attribute* Node::find_attribute(const std::string& attr_name) const {
  for (const auto& a : attributes)
    if (a.name == attr_name) return &a;
  return nullptr;
}

std::string Node::label() const {
  std::string op = domain.empty() || domain == "ai.onnx" ? op_type : domain + "." + op_type;
  if (!name.empty()) return op + " node \"" + name + "\"";
  if (!outputs.empty() && !outputs[0].empty()) return op + " node writing \"" + outputs[0] + "\"";
  return op + " node";
}

void Graph::add_initializer(const std::string& value_name, Tensor t) {
  if (!initializers.count(value_name)) initializer_names.push_back(value_name);
  initializers[value_name] = std::move(t);
}

const Tensor* Graph::find_initializer(const std::string& value_name) const {
  auto it = initializers.find(value_name);
  return it == initializers.end() ? nullptr : &it->second;
}

const ValueInfo* Graph::find_input(const std::string& value_name) const {
  for (const auto& v : inputs)
    if (v.name == value_name) return &v;
  return nullptr;
}

int64_t Model::opset(const std::string& d) const {
  auto it = opset_imports.find(is_default_domain(d) ? "" : d);
  return it == opset_imports.end() ? 0 : it->second;
}

}  // namespace kiln::ir

#include "export/graph_builder.h"

namespace kiln::exporter {

int64_t ir_version_for(int64_t opset) {
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

ir::Attribute int_attr(const std::string& name, int64_t v) {
  ir::Attribute a;
  a.name = name;
  a.kind = ir::Attribute::Kind::kInt;
  a.i = v;
  return a;
}

ir::Attribute ints_attr(const std::string& name, std::vector<int64_t> v) {
  ir::Attribute a;
  a.name = name;
  a.kind = ir::Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}

ir::Attribute float_attr(const std::string& name, float v) {
  ir::Attribute a;
  a.name = name;
  a.kind = ir::Attribute::Kind::kFloat;
  a.f = v;
  return a;
}

ir::ValueInfo tensor_value(const std::string& name, ir::DType dtype, std::vector<ir::Dim> dims) {
  ir::ValueInfo v;
  v.name = name;
  v.type = ir::Type::tensor(dtype, ir::Shape(std::move(dims)));
  return v;
}

std::string GraphBuilder::node_name(const std::string& op) {
  std::string scope;
  for (const auto& s : scopes_) scope += "/" + s;
  std::string base = scope + "/" + op;
  int n = counts_[base]++;
  return n == 0 ? base : base + "_" + std::to_string(n);
}

std::string GraphBuilder::add(const std::string& op, std::vector<std::string> inputs,
                              std::vector<ir::Attribute> attributes) {
  ir::Node node;
  node.name = node_name(op);
  node.op_type = op;
  node.inputs = std::move(inputs);
  node.outputs = {node.name + "_output_0"};
  node.attributes = std::move(attributes);
  graph_.nodes.push_back(std::move(node));
  return graph_.nodes.back().outputs[0];
}

void GraphBuilder::add_named(const std::string& op, std::vector<std::string> inputs, const std::string& output,
                             std::vector<ir::Attribute> attributes) {
  add(op, std::move(inputs), std::move(attributes));
  graph_.nodes.back().outputs[0] = output;
}

std::string GraphBuilder::constant(ir::Tensor value) {
  ir::Attribute a;
  a.name = "value";
  a.kind = ir::Attribute::Kind::kTensor;
  a.t = std::move(value);
  return add("Constant", {}, {std::move(a)});
}

std::string GraphBuilder::initializer(const std::string& name, ir::Tensor value) {
  graph_.add_initializer(name, std::move(value));
  return name;
}

}  // namespace kiln::exporter

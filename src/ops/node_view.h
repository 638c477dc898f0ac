// Read access to a node's attributes with defaults and type checks, shared by shape inference and
// kernels. Errors name the node: `[Conv node "conv1"] attribute "pads" must have 4 values, got 3`.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace kiln::ops {

class NodeView {
 public:
  NodeView(const ir::Node& node, int64_t opset) : node_(&node), opset_(opset) {}

  const ir::Node& node() const { return *node_; }
  // Version of the node's domain imported by the model (for ai.onnx: the model's ai.onnx opset).
  int64_t opset() const { return opset_; }

  bool has_attr(const std::string& name) const { return node_->find_attribute(name) != nullptr; }
  int64_t attr_int(const std::string& name, int64_t dflt) const;
  int64_t attr_int(const std::string& name) const;  // required
  float attr_float(const std::string& name, float dflt) const;
  float attr_float(const std::string& name) const;
  std::string attr_string(const std::string& name, const std::string& dflt) const;
  std::string attr_string(const std::string& name) const;
  std::vector<int64_t> attr_ints(const std::string& name, std::vector<int64_t> dflt = {}) const;
  std::vector<float> attr_floats(const std::string& name, std::vector<float> dflt = {}) const;
  std::vector<std::string> attr_strings(const std::string& name, std::vector<std::string> dflt = {}) const;
  const ir::Tensor* attr_tensor(const std::string& name) const;  // nullptr when absent
  const ir::Graph* attr_graph(const std::string& name) const;    // nullptr when absent

  // `[Conv node "conv1"] ` followed by the message.
  template <class... Args>
  [[noreturn]] void fail(const Args&... args) const {
    ::kiln::fail("[", node_->label(), "] ", args...);
  }

 private:
  const ir::Attribute* find(const std::string& name, ir::Attribute::Kind kind) const;

  const ir::Node* node_;
  int64_t opset_;
};

}  // namespace kiln::ops

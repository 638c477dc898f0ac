// Appends nodes to a graph the way torch.onnx.export names them: a node is "/<scope>/<Op>" (then
// "<Op>_1", "<Op>_2", ... within the same scope) and its output is "<node>_output_0". Constants are
// Constant nodes, as torch writes them, so the optimizer sees the graph real exporters produce.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace kiln::exporter {

// The IR version ONNX pairs with an opset (onnx/helper.py's VERSION_TABLE), for a model's header.
int64_t ir_version_for(int64_t opset);

ir::Attribute int_attr(const std::string& name, int64_t v);
ir::Attribute ints_attr(const std::string& name, std::vector<int64_t> v);
ir::Attribute float_attr(const std::string& name, float v);
// A graph input or output of a tensor type.
ir::ValueInfo tensor_value(const std::string& name, ir::DType dtype, std::vector<ir::Dim> dims);

class GraphBuilder {
 public:
  explicit GraphBuilder(ir::Graph& graph) : graph_(graph) {}

  // Scopes nest: "/encoder" then "layer.0" gives "/encoder/layer.0". Use Scope for RAII.
  void push_scope(const std::string& part) { scopes_.push_back(part); }
  void pop_scope() { scopes_.pop_back(); }

  // Adds a node with one output and returns the output's name.
  std::string add(const std::string& op, std::vector<std::string> inputs, std::vector<ir::Attribute> attributes = {});
  // Adds a node whose output has a fixed name (a graph output).
  void add_named(const std::string& op, std::vector<std::string> inputs, const std::string& output,
                 std::vector<ir::Attribute> attributes = {});
  // A Constant node holding `value`.
  std::string constant(ir::Tensor value);
  std::string constant_float(float v) { return constant(ir::Tensor::scalar<float>(v)); }
  std::string constant_int(int64_t v) { return constant(ir::Tensor::scalar<int64_t>(v)); }
  std::string constant_ints(const std::vector<int64_t>& v) {
    return constant(ir::Tensor::from_vector<int64_t>(v, {static_cast<int64_t>(v.size())}));
  }
  // A named initializer (a weight); returns its name.
  std::string initializer(const std::string& name, ir::Tensor value);

  ir::Graph& graph() { return graph_; }

 private:
  std::string node_name(const std::string& op);

  ir::Graph& graph_;
  std::vector<std::string> scopes_;
  std::map<std::string, int> counts_;  // "<scope>/<op>" -> nodes so far
};

class Scope {
 public:
  Scope(GraphBuilder& b, const std::string& part) : b_(b) { b_.push_scope(part); }
  ~Scope() { b_.pop_scope(); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  GraphBuilder& b_;
};

}  // namespace kiln::exporter

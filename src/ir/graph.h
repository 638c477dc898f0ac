// The graph IR: plain structs that mirror ONNX's model, graph, node and attribute, with values named
// by strings as in ONNX. A Graph's nodes are kept in topological order once checked (see graph_check.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/shape.h"
#include "ir/tensor.h"

namespace kiln::ir {

struct Graph;

struct Attribute {
  // Numbered as ONNX's AttributeProto.AttributeType.
  enum class Kind {
    kUndefined = 0,
    kFloat = 1,
    kInt = 2,
    kString = 3,
    kTensor = 4,
    kGraph = 5,
    kFloats = 6,
    kInts = 7,
    kStrings = 8,
    kTensors = 9,
    kGraphs = 10,
    kSparseTensor = 11,
    kSparseTensors = 12,
    kTypeProto = 13,
    kTypeProtos = 14,
  };
  std::string name;
  Kind kind = Kind::kUndefined;
  float f = 0;
  int64_t i = 0;
  std::string s;  // also the bytes of a string attribute, which may be binary
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<std::shared_ptr<Graph>> graphs;
  std::vector<Type> types;  // kTypeProto / kTypeProtos
  // Inside a function body: the name of the calling node's attribute this one refers to.
  std::string ref_attr_name;
  std::string doc_string;
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;                // "" (or "ai.onnx") is the default ONNX domain
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;  // "" marks an omitted optional output
  std::vector<Attribute> attributes;
  std::string doc_string;

  const Attribute* find_attribute(const std::string& attr_name) const;
  // For messages: `Reshape node "bert/reshape_3"` (or `Reshape node #12` when unnamed).
  std::string label() const;
};

struct ValueInfo {
  std::string name;
  Type type;
  std::string doc_string;
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::vector<ValueInfo> value_info;                  // types of intermediate values, where known
  std::vector<std::string> initializer_names;         // in file order
  std::map<std::string, Tensor> initializers;         // by name
  std::vector<std::string> sparse_initializer_names;  // unsupported, kept for messages
  std::string doc_string;

  void add_initializer(const std::string& value_name, Tensor t);
  const Tensor* find_initializer(const std::string& value_name) const;
  const ValueInfo* find_input(const std::string& value_name) const;
};

// A model-local function (FunctionProto): a named subgraph that nodes call like an op.
struct Function {
  std::string name;
  std::string domain;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::vector<std::string> attributes;        // attribute names without defaults
  std::vector<Attribute> attribute_defaults;  // attributes with defaults (IR version >= 9)
  std::vector<Node> nodes;
  std::map<std::string, int64_t> opset_imports;
  std::string doc_string;
};

struct Model {
  int64_t ir_version = 8;
  std::map<std::string, int64_t> opset_imports;  // domain ("" for ai.onnx) -> version
  std::string producer_name = "kiln";
  std::string producer_version;
  std::string domain;
  int64_t model_version = 0;
  std::string doc_string;
  std::vector<std::pair<std::string, std::string>> metadata_props;
  Graph graph;
  std::vector<Function> functions;
  std::string path;  // the file it was read from, for messages; empty when built in memory

  // Opset version of a domain ("" and "ai.onnx" are the same); 0 when not imported.
  int64_t opset(const std::string& domain) const;
};

// "" and "ai.onnx" name the same domain.
inline bool is_default_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

}  // namespace kiln::ir

// Pieces the fusion passes share: op tests, shape checks on inferred types, the name scope a fused node
// inherits, and int32 versions of int64 inputs (ONNX Runtime's contrib ops take int32 ids and masks),
// made once per model.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"
#include "analysis/shape_inference.h"

namespace kiln::passes {

// A default-domain node of this op type (false for nullptr).
inline bool is_op(const ir::Node* n, const char* op) {
  return n && ir::is_default_domain(n->domain) && n->op_type == op;
}

inline bool is_op(const ir::Node& n, const char* op) { return is_op(&n, op); }

// The inferred tensor type of value v when its shape is known (rank at least), else nullptr.
const ir::Type* tensor_type_with_shape(const analysis::InferredTypes& types, const std::string& v);

// Same rank and every dim known (static or symbolic) and equal: symbolic dims compare by name.
bool known_and_equal(const ir::Shape& a, const ir::Shape& b);

// "/encoder/layer.0/attention/self/MatMul" -> "/encoder/layer.0/attention/self/"
std::string scope_of(const std::string& node_name);

// int32 views of values: the value itself when it is int32 already, an existing Cast to int32 of it, or
// a new Cast appended to `added` (and shared by every later request for the same value).
class Int32Casts {
 public:
  Int32Casts(const ir::Graph& g, const analysis::InferredTypes& types, PassContext& ctx);
  std::string of(const std::string& value, std::vector<ir::Node>& added);

 private:
  const analysis::InferredTypes& types_;
  PassContext& ctx_;
  std::map<std::string, std::string> cast_of_;
};

}  // namespace kiln::passes

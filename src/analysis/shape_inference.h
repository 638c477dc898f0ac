// Graph-level type and shape inference: walks the nodes in order, calls each op's inference function,
// and folds small all-constant subexpressions (shape arithmetic) by running the reference kernel, so
// that Reshape targets computed from Shape/Gather/Concat chains are known where the dims are static.
#pragma once

#include <string>
#include <unordered_map>

#include "ir/graph.h"
#include "ops/op_def.h"

namespace kiln::analysis {

struct InferredTypes {
  std::unordered_map<std::string, ir::Type> types;     // every value whose type is known
  std::unordered_map<std::string, ir::Tensor> values;  // values known before running
  // Shape-like int64 values known element by element as dims, some symbolic: Shape of a
  // [batch, sequence] tensor is {batch, sequence}; Gather, Unsqueeze, Concat ... carry them on, so that
  // a Reshape to (batch, sequence, 12, 64) keeps its symbols.
  std::unordered_map<std::string, std::vector<ir::Dim>> dim_values;
};

// `input_types` overrides the declared types of graph inputs (e.g. with concrete shapes of a request).
InferredTypes infer_types(const ir::Model& model, const ir::Graph& g,
                          const std::unordered_map<std::string, ir::Type>& input_types, const ops::Limits& limits);

// Fails when `actual` contradicts `inferred` (dtype, rank or a static dim); `what` names the value.
void check_matches_inferred(const ir::Type& inferred, const ir::Datum& actual, const std::string& what);

}  // namespace kiln::analysis

// Checks a model against what kiln supports: opset versions, domains and operators, in the main graph
// and in every subgraph. Messages name the node: `unsupported op Foo (domain ai.onnx, opset 14) at node "x"`.
#pragma once

#include "ir/graph.h"

namespace kiln::analysis {

void check_supported(const ir::Model& model);

}  // namespace kiln::analysis

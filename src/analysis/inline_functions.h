// Replaces calls to model-local functions (FunctionProto) by the function bodies, so that the rest of
// kiln sees only operators. Values inside a body get names unique to the call site.
#pragma once

#include "ir/graph.h"

namespace kiln::analysis {

// Inlines every call in the main graph and in subgraphs, recursively (calls inside function bodies
// too, up to a depth that catches recursion). Returns the number of calls inlined.
int inline_functions(ir::Model& model);

}  // namespace kiln::analysis

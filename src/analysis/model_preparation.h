// What every consumer of a loaded model does first, a Session and `kiln optimize` alike: function calls
// inlined, gradient ops expanded, ops checked against what kiln supports, the graph checked and sorted,
// and Constant nodes turned into initializers. Below passes/ and runtime/, so that neither needs the other
// for it.
#pragma once

#include "ir/graph.h"

namespace kiln::analysis {

// Prepares `model` in place; fails with a message naming `model.path` (or "model") and the node at fault.
void prepare_model(ir::Model& model);

}  // namespace kiln::analysis

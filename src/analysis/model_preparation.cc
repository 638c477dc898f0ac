#include "analysis/model_preparation.h"

#include "analysis/constant_nodes.h"
#include "analysis/gradient_expansion.h"
#include "analysis/inline_functions.h"
#include "analysis/model_check.h"
#include "common/error.h"
#include "ir/graph_check.h"

namespace kiln::analysis {

void prepare_model(ir::Model& m) {
  const std::string where = m.path.empty() ? "model" : m.path;
  inline_functions(m);
  expand_gradients(m);
  check_supported(m);
  ir::check_and_sort_graph(m.graph, {}, where);
  if (m.graph.nodes.empty() && m.graph.outputs.empty()) fail(where, ": the graph is empty (no nodes, no outputs)");
  // After the check, which names a Constant node at fault (a bad attribute, a clashing output) by its label.
  constants_to_initializers(m.graph);
}

}  // namespace kiln::analysis

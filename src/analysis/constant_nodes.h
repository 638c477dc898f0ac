// Constant nodes: the value a Constant node holds, and turning such nodes into initializers. Exporters
// differ in where they keep weights (torch.onnx writes initializers; paddle2onnx and some others write
// Constant nodes); once a model is prepared, weights are initializers whichever exporter wrote them, so
// that kernels which pack constant weights and the reports that count parameters see them all.
#pragma once

#include <optional>

#include "ir/graph.h"

namespace kiln::analysis {

// The tensor of a Constant node (value, value_float(s), value_int(s)); nullopt for another node, or for a
// Constant of a kind kept as a node (sparse_value, value_string(s)).
std::optional<ir::Tensor> constant_node_value(const ir::Node& n);

// Replaces every Constant node of `g` whose value constant_node_value reads by an initializer of the same
// name, in `g` and in its subgraphs. Returns the number of nodes replaced.
int constants_to_initializers(ir::Graph& g);

}  // namespace kiln::analysis

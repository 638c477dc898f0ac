// Structural checks of a graph, and topological sorting of its nodes. A model that fails gets one
// message naming the value or node at fault.
#pragma once

#include <string>
#include <unordered_set>

#include "ir/graph.h"

namespace kiln::ir {

// Checks that every node input is defined (graph input, initializer, earlier node output or a value of
// an enclosing graph in `outer_scope`), that no value is written twice, that graph outputs are defined,
// and that there is no cycle; then sorts the nodes topologically (stable: file order where free).
// Subgraphs (If/Loop/Scan bodies) are checked recursively. `where` prefixes messages (the file name).
void check_and_sort_graph(Graph& g, const std::unordered_set<std::string>& outer_scope, const std::string& where);

// Names of values a graph reads from enclosing scopes (inputs of its nodes, and of nested subgraphs,
// that it does not define itself).
std::unordered_set<std::string> outer_references(const Graph& g);

}  // namespace kiln::ir

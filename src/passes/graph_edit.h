// Small edits shared by the passes: redirecting the readers of a value, and dropping nodes.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/graph_index.h"

namespace kiln::passes {

// Makes every reader of `from` read `to` instead. Names are taken by value: callers often pass a node's own
// input or output, which the renaming rewrites. When `from` is a graph output, the value `to` is
// renamed to `from` (its producer writes the output name), which is only possible when `to` is a node
// output that is not itself a graph output; returns false (nothing changed) when it is not possible,
// or when a subgraph reads `from` by name.
bool redirect_value(ir::Graph& g, const GraphIndex& index, std::string from, std::string to);

// Removes the nodes whose indices are listed (any order, duplicates allowed).
void remove_nodes(ir::Graph& g, std::vector<int> indices);

}  // namespace kiln::passes

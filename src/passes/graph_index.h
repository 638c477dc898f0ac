// Who produces and who reads each value of a graph, and which values are constants: the questions every
// pass asks before it rewrites. Built from scratch when a pass starts (one linear walk); a pass that edits
// the graph rebuilds it rather than keeping it in sync.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"

namespace kiln::passes {

struct Use {
  int node;   // index into graph.nodes
  int input;  // input slot
};

class GraphIndex {
 public:
  explicit GraphIndex(const ir::Graph& g);

  // Index of the node writing `value`, or -1 (graph input, initializer, outer value).
  int producer(const std::string& value) const;
  const ir::Node* producer_node(const std::string& value) const;
  const std::vector<Use>& uses(const std::string& value) const;
  // Reads by nodes plus graph outputs plus reads from inside subgraphs.
  size_t use_count(const std::string& value) const;
  bool is_graph_output(const std::string& value) const { return graph_outputs_.count(value) > 0; }
  bool is_graph_input(const std::string& value) const { return graph_inputs_.count(value) > 0; }
  // Read by some subgraph (If/Loop/Scan body) of a node: renaming or removing it would break the body.
  bool is_read_by_subgraph(const std::string& value) const { return subgraph_reads_.count(value) > 0; }
  // The value of an initializer (that is not also a graph input) or of a Constant node's output.
  std::optional<ir::Tensor> constant(const std::string& value) const;
  // A constant with exactly one element, as a double.
  std::optional<double> scalar(const std::string& value) const;

  // The one node reading `value` when it has exactly one use and is not a graph output; else -1.
  int only_consumer(const std::string& value) const;

  const ir::Graph& graph() const { return g_; }

 private:
  const ir::Graph& g_;
  std::unordered_map<std::string, int> producer_;
  std::unordered_map<std::string, std::vector<Use>> uses_;
  std::unordered_set<std::string> graph_outputs_, graph_inputs_, subgraph_reads_;
  std::vector<Use> no_uses_;
};

}  // namespace kiln::passes

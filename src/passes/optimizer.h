// The optimizer: runs the passes of a level in the order passes/optimizer.cc lists them, and reports
// what each did. `kiln optimize` calls it; a Session calls it when it is created.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"

namespace kiln::passes {

struct OptimizationReport {
  Level level = Level::kAll;
  int64_t nodes_before = 0, nodes_after = 0;
  std::map<std::string, int64_t> ops_before, ops_after;  // "MatMul", "com.microsoft.Attention"
  std::vector<PassReport> passes;                        // in the order they ran, merged across rounds

  // Per pass: what changed and every candidate left alone with its reason; then the op histograms.
  std::string to_text() const;
  std::string to_json() const;
  // Total count of one kind of change over all passes ("Attention", "LayerNormalization").
  int64_t count(const std::string& kind) const;
};

// Rewrites `model` in place. The result computes the same outputs (within float rounding where a fusion
// reorders arithmetic) and is checked and topologically sorted.
OptimizationReport optimize(ir::Model& model, const OptimizeOptions& options = {});

// The passes of the pipeline, in order, for --help texts and tests.
const std::vector<Pass>& pipeline();
// The passes run once after the pipeline's fixed point, in order.
const std::vector<Pass>& finishing_passes();

// Op type counts of a graph's nodes, keyed "Op" or "domain.Op".
std::map<std::string, int64_t> op_histogram(const ir::Graph& g);

}  // namespace kiln::passes

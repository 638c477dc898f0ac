// Per-layer validation (`kiln validate --per-layer`) compares the intermediate values two graphs share by
// name: kiln's quantization keeps the names of the values it recomputes in lower precision (a quantized
// MatMul still writes "bert/layer.0/attention/self/query/MatMul_output_0"), so the reference's and the
// candidate's activations can be set side by side. A Session returns only graph outputs, so this graph
// edit makes each shared value one, in both models, before their sessions are built; it needs nothing from
// the runtime.
//
// A value exposed this way must be kept whole, so the optimizer cannot fuse it away: the per-layer run
// computes the same functions as the models as given, but with fewer fusions, and its figures come from a
// run of its own.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace kiln::validate {

struct SharedValue {
  std::string name;
  size_t order = 0;          // index in the reference's graph (prepared, in topological order) of its node
  std::string node;          // that node's name (its label when unnamed)
  std::string op;            // its op type ("MatMul", "com.microsoft.Attention")
  std::string candidate_op;  // the op type of the candidate's node that computes it
  // The nearest shared values upstream of it in the reference: what its node reads, looking through values
  // that are not shared. Its error minus theirs is what the node itself added.
  std::vector<std::string> sources;
};

// Prepares both models (analysis/model_preparation.h) and adds to the graph outputs of both every value
// computed by a node of each top-level graph under one name, floating-point in both (as inferred from the
// declared inputs), and depending on the graph inputs (a value computed from weights alone is a weight,
// which the optimizer folds). Returns them in the reference's graph order.
std::vector<SharedValue> expose_shared_values(ir::Model& reference, ir::Model& candidate);

}  // namespace kiln::validate

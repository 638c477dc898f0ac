// Pieces the int8 quantization passes share (dynamic_quantization.cc, static_quantization.cc): weights as
// symmetric int8 the way ONNX Runtime's quantizers store them, and the checks every candidate goes through.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/graph_index.h"
#include "passes/pass.h"

namespace kiln::passes {

// A 2-D float32 weight as symmetric int8, zero point 0: per group, scale = max|w| / 127 (1 for an all-zero
// group) and q = round_half_even(w / scale), the division in float32, clamped to [-127, 127].
struct SymmetricInt8 {
  std::vector<int8_t> values;  // in the weight's own layout
  std::vector<float> scales;   // one per group
};

// Groups: the whole tensor (axis -1), each row (axis 0) or each column (axis 1) of w [rows, cols].
SymmetricInt8 quantize_symmetric_int8(const ir::Tensor& w, int axis);

// An embedding table (a Gather of rows, along axis 0 and by computed indices, from a float32 constant
// [V, D] of at least kMinTableValues values) as ONNX Runtime's quantize_dynamic stores it: int8 rows,
// symmetric per tensor, gathered and then dequantized (Gather -> DequantizeLinear, the output keeping its
// name), so that only the rows read are ever float32. Smaller tables stay float32 (a token-type table of 2
// rows saves nothing).
inline constexpr int64_t kMinTableValues = 64 * 1024;

struct QuantizedTable {
  std::vector<ir::Node> nodes;  // the Gather of int8 rows, then their DequantizeLinear: in place of the Gather
  int64_t float_bytes = 0;      // the table, before
  int64_t int8_bytes = 0;       // and after (with its scale and zero point)
};

// For Gather `n` of such a table: its int8 rows, scale and zero point added to g's initializers, and the
// nodes to write in its place. Nothing (and no change) for any other node.
std::optional<QuantizedTable> quantize_embedding_table(ir::Graph& g, const GraphIndex& index, const ir::Node& n,
                                                       PassContext& ctx);

// Quantizing NaN or infinity has no meaning (and an infinite maximum would make every scale useless).
bool all_finite(const ir::Tensor& t);

// Whether `--exclude` names this node, by its name or its op type.
bool is_excluded(const ir::Node& n, const std::vector<std::string>& exclude);

}  // namespace kiln::passes

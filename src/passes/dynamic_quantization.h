// int8 dynamic quantization of a model's matrix products, in the format ONNX Runtime's quantize_dynamic
// writes (so that ORT runs the result too, and kiln runs ORT's): each MatMul or Gemm with constant float32
// weights becomes
//
//   DynamicQuantizeLinear(A) -> MatMulInteger(qA, qB, a_zp, b_zp) -> Cast(float) -> Mul(., a_scale * b_scale)
//
// (plus an Add of Gemm's C), the output keeping the original name; and each embedding table (a Gather
// from a float32 constant of at least 64 Ki values) becomes int8 rows, Gather -> DequantizeLinear. Weights are symmetric int8 in
// [-127, 127] (zero point 0), per tensor or per column of B; activations are uint8 with a scale and zero
// point computed on every call from the data's range. One DynamicQuantizeLinear serves every product of
// the same A (Q, K and V share theirs); shared weights are quantized once.
//
// At run time kiln folds each such subgraph into com.microsoft.DynamicQuantizeMatMul
// (passes/dynamic_quantize_matmul_fusion.cc), which its int8 kernel runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"

namespace kiln::passes {

struct DynamicQuantizeOptions {
  bool per_channel = false;          // a scale per column of B, else one per tensor
  std::vector<std::string> exclude;  // node names or op types left in float32
};

struct DynamicQuantizeReport {
  std::vector<std::string> quantized;  // node labels (products and embedding Gathers), in graph order
  int64_t tables = 0;                  // of them, embedding Gathers
  std::vector<Rejection> skipped;      // MatMul / Gemm nodes left in float32, and why
  int64_t float_weight_bytes = 0;      // of the quantized nodes' weights, before
  int64_t int8_weight_bytes = 0;       // and after (with scales and zero points)
};

// Rewrites `model` in place. Throws kiln::Error when the model's opset is below 11 (DynamicQuantizeLinear).
DynamicQuantizeReport quantize_dynamic(ir::Model& model, const DynamicQuantizeOptions& options);

}  // namespace kiln::passes

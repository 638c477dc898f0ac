// int8 static quantization of a model's matrix products, in the QDQ format ONNX Runtime's quantize_static
// writes (QuantFormat.QDQ), so that ORT runs the result too: each MatMul or Gemm with constant float32
// weights reads its activation A through a QuantizeLinear -> DequantizeLinear pair whose scale and zero
// point are constants from calibration, and its weights B through a DequantizeLinear of int8 constants:
//
//   A ──────────────────────────> MatMul ──> Y        A ─> QuantizeLinear(a_scale, a_zp) ─> DequantizeLinear ─┐
//   B (float32) ─────────────────────┘           =>   B_quantized (int8) ─> DequantizeLinear(b_scale, 0) ─> MatMul ──>
//   Y
//
// Activations are uint8, asymmetric: scale and zero point from the calibrated range [min, max] (extended
// to include 0, so that 0 is exact) by the rule DynamicQuantizeLinear uses per call (kernels/reference/
// dynamic_quantization.h), here once for all calls. Weights are symmetric int8 in [-127, 127] with zero
// point 0, per tensor or per output channel (DequantizeLinear's axis: 1 for MatMul's [K, N] and Gemm's
// [K, N], 0 for a transposed Gemm's [N, K]). One pair serves every product of the same A (Q, K and V
// share theirs); shared weights are quantized once. Products of two activations (attention's Q.K^T and
// its weights times V) stay float32, as with int8-dynamic: their operands change per call.
//
// Embedding tables (a Gather from a float32 constant of at least 64 Ki values) are stored as int8 rows,
// Gather -> DequantizeLinear, as int8-dynamic stores them (weight_quantization.h): only the rows read are
// ever float32, and they are exact to the table's int8 step, which no calibration would improve.
//
// The node itself, its bias (an Add, or Gemm's C) and every value name are unchanged, so a float32 model
// and its int8 version can be compared layer by layer (kiln validate --per-layer). At run time kiln folds
// each product with its pairs into QuantizeLinear -> com.microsoft.MatMulIntegerToFloat
// (passes/qdq_matmul_fusion.cc), which its int8 kernel runs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"

namespace kiln::passes {

struct StaticQuantizeOptions {
  bool per_channel = false;          // a scale per output channel of B, else one per tensor
  std::vector<std::string> exclude;  // node names or op types left in float32
};

// The range calibration measured for an activation: its smallest and largest value, or a narrower range
// that a method (percentile, entropy, mse) chose to clip outliers to.
struct ActivationRange {
  float min = 0.0f;
  float max = 0.0f;
};

// What calibration must measure: every A of the products quantize_static would rewrite.
struct StaticQuantizePlan {
  std::vector<std::string> activations;  // distinct A values, in graph order
  std::vector<Rejection> skipped;        // MatMul / Gemm nodes it leaves in float32, and why
};

struct StaticQuantizeReport {
  std::vector<std::string> quantized;  // node labels (products and embedding Gathers), in graph order
  int64_t tables = 0;                  // of them, embedding Gathers
  std::vector<Rejection> skipped;
  int64_t activations = 0;         // QuantizeLinear -> DequantizeLinear pairs written
  int64_t float_weight_bytes = 0;  // of the quantized nodes' weights, before
  int64_t int8_weight_bytes = 0;   // and after (with scales and zero points)
};

// Throws kiln::Error when the model's opset is below 10 (QuantizeLinear), or below 13 with per_channel
// (DequantizeLinear's axis).
StaticQuantizePlan plan_static_quantization(const ir::Model& model, const StaticQuantizeOptions& options);

// Rewrites `model` in place and tags it kiln.quantization = int8-static. `ranges` must hold every activation
// of plan_static_quantization (else kiln::Error, naming it).
StaticQuantizeReport quantize_static(ir::Model& model, const StaticQuantizeOptions& options,
                                     const std::map<std::string, ActivationRange>& ranges);

}  // namespace kiln::passes

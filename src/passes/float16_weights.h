// fp16 storage of a model's weights (`kiln quantize --mode fp16`): each float32 initializer is stored as
// float16 and read through a Cast back to float32, as ONNX Runtime's float16 converter writes it with
// keep_io_types, except that every computation stays float32:
//
//   W (float32 initializer) ─> readers             W_float16 (float16) ─> Cast(to float) ─> W ─> readers
//
// An embedding table (an initializer that only Gathers read, as their data) is gathered in float16 and
// only the rows read are cast, so that no float32 copy of the table is ever made:
//
//   Gather(W, ids) ─> y                            Gather(W_float16, ids) ─> Cast(to float) ─> y
//
// The graph's inputs, outputs and value names are unchanged, and the file is about half the size. ONNX
// Runtime runs it as written; kiln's constant folding turns each Cast of a weight back into a float32
// constant when a Session loads it, so fp16 buys a smaller file here, not speed (these CPUs multiply
// float16 no faster than float32; the matrix products run in float32 on the rounded weights).
//
// Left in float32, each with its reason: initializers of fewer than kMinFloat16Values values (they save
// nothing worth having, and small ones are often scalars the model needs exactly: an epsilon, a scale, a
// mask's fill value), ones holding a finite value beyond float16's range (|x| > 65504 would become
// infinity), ones float16 would change by more than kMaxFloat16Error (relative RMS error: values below
// float16's normal range, 6.1e-5, keep few bits or none), ones that are also graph inputs (a default the
// caller may replace), ones read inside a subgraph, and ones read by a node that options.exclude names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"

namespace kiln::passes {

inline constexpr int64_t kMinFloat16Values = 1024;
inline constexpr double kMaxFloat16Error = 1e-3;

struct Float16WeightsOptions {
  std::vector<std::string> exclude;  // node names or op types whose float32 inputs stay float32
};

struct Float16WeightsReport {
  std::vector<std::string> converted;  // initializer names, in file order
  int64_t tables = 0;                  // of them, embedding tables gathered in float16
  std::vector<Rejection> skipped;      // float32 initializers left, and why (node: the initializer's name)
  int64_t float_bytes = 0;             // of the converted initializers, before
  int64_t float16_bytes = 0;           // and after
};

// Rewrites `model` in place and tags it kiln.quantization = fp16 (when it converted anything).
Float16WeightsReport store_weights_in_float16(ir::Model& model, const Float16WeightsOptions& options);

}  // namespace kiln::passes

// What is in a model, for `kiln inspect`: inputs and outputs with symbolic shapes, opsets, op histogram,
// parameter count, size on disk, and an estimate of the FLOPs of one inference.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace kiln::analysis {

struct ModelSummary {
  int64_t ir_version = 0;
  std::string producer;
  std::map<std::string, int64_t> opsets;        // "ai.onnx" for the default domain
  std::vector<ir::ValueInfo> inputs;            // initializers excluded
  std::vector<ir::ValueInfo> outputs;           // with inferred types where known
  int64_t node_count = 0;                       // main graph
  std::map<std::string, int64_t> op_histogram;  // "MatMul", "com.microsoft.Attention"
  int64_t parameter_count = 0;                  // elements of all initializers and Constant nodes
  int64_t parameter_bytes = 0;
  int64_t file_bytes = 0;                       // size of the model file (external data not included)
  int64_t flops = -1;                           // -1 when shapes are not known enough
  std::map<std::string, int64_t> dims_assumed;  // symbolic dim values used for the FLOPs estimate
};

// `dims` gives values to symbolic dims for the FLOPs estimate; unlisted symbolic dims count as 1.
ModelSummary summarize(const ir::Model& model, const std::map<std::string, int64_t>& dims);

// FLOPs of the compute-heavy ops (MatMul, Gemm, Conv, ConvTranspose, fused attention, ...) given the
// value types; multiply-add counts as 2.
int64_t estimate_node_flops(const ir::Node& n, const std::vector<const ir::Type*>& inputs,
                            const std::vector<const ir::Type*>& outputs);

}  // namespace kiln::analysis

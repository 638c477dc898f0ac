// A Session compiles a model once (inline functions, check support and structure, infer types) and
// runs it many times. This is the reference path: every op runs its portable reference kernel.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"
#include "ops/op_def.h"
#include "passes/pass.h"
#include "runtime/executor.h"
#include "analysis/shape_inference.h"

namespace kiln::runtime {

// The precision of the matrix products with constant weights (MatMul, Gemm, Attention's projections).
enum class Precision {
  kModel,     // what the model's metadata asks for (kPrecisionMetadataKey), float32 without it
  kFloat32,
  kBfloat16,  // bfloat16 operands, float32 sums, where the CPU computes bfloat16 faster; float32 elsewhere
};

// The model metadata entry that records a precision for the runtime (`kiln quantize --mode bf16`): ONNX
// has no bfloat16 matrix product that ONNX Runtime's CPU provider runs, so the file keeps float32 weights
// and this tag tells kiln to multiply them in bfloat16.
inline constexpr const char* kPrecisionMetadataKey = "kiln.precision";

// "fp32", "bf16" (the names --precision and the metadata use; also "float32", "bfloat16"), or "model" for
// kModel. Throws kiln::Error naming the known ones.
Precision parse_precision(std::string_view name);

struct SessionOptions {
  ops::Limits limits;
  // After every node, check its outputs against the types inferred for this run's input shapes
  // (the conformance runner turns this on: inference must never disagree with execution). The check
  // runs with the kernels fast_kernels picks, so fast kernels are held to inference as well.
  bool verify_inference = false;
  // Graph passes applied when the session is created (passes/optimizer.h); kNone runs the model as given.
  passes::Level optimization = passes::Level::kAll;
  // Fast kernels (oneDNN, kiln's vectorized ones) where they cover a node; false runs the reference
  // kernels only, the ground truth the fast ones are tested against.
  bool fast_kernels = true;
  Precision precision = Precision::kModel;
};

class Session {
 public:
  explicit Session(ir::Model model, SessionOptions options = {});
  static Session load(const std::string& path, SessionOptions options = {});

  // Graph inputs a caller must feed (initializers excluded), with declared types.
  const std::vector<ir::ValueInfo>& inputs() const { return inputs_; }
  // Graph outputs with types inferred from the declared input types.
  const std::vector<ir::ValueInfo>& outputs() const { return outputs_; }
  // The model as the session runs it: checked, optimized and, with fast kernels, without the weights
  // they hold packed (Executor). Create the session with fast_kernels = false for the whole model.
  const ir::Model& model() const { return *model_; }
  // Nodes that run on a fast kernel where it covers the call (0 with options.fast_kernels off).
  size_t fast_kernel_count() const;
  // The precision asked for (options.precision, or the model's tag): never kModel.
  Precision precision() const { return precision_; }
  // Whether matrix products run in bfloat16: bf16 asked for, fast kernels on, and a CPU that computes
  // bfloat16 faster (else they run in float32, and this says false).
  bool computes_bf16() const;
  // The memory plans made so far (one per input-shape signature; Executor::PlanStats).
  Executor::PlanStats plan_stats() const { return executor_->plan_stats(); }
  // Times every node of the following runs into `profiler` (runtime/profiler.h), which must outlive its
  // use; nullptr stops. Not while a run is in progress, and one caller at a time while attached. Runs with
  // options.verify_inference (a checking executor of their own) are not profiled.
  void set_profiler(Profiler* profiler) { executor_->set_profiler(profiler); }

  // Runs the model; outputs come in graph order. Missing, unknown or mistyped inputs are refused with a
  // message naming the input.
  std::vector<ir::Datum> run(const std::unordered_map<std::string, ir::Datum>& feeds) const;
  // The same, writing the outputs into `outputs`. Pass the same vector from call to call: a tensor there of
  // the right type and shape that nothing else shares is overwritten in place, so that a steady-state run
  // (same input shapes as an earlier one) allocates no memory at all.
  void run(const std::unordered_map<std::string, ir::Datum>& feeds, std::vector<ir::Datum>& outputs) const;

 private:
  void check_feeds(const std::unordered_map<std::string, ir::Datum>& feeds) const;
  kernels::cpu::FastKernelOptions fast_kernel_options() const;

  std::unique_ptr<ir::Model> model_;  // stable address: the executor keeps references into it
  SessionOptions options_;
  Precision precision_ = Precision::kFloat32;
  std::vector<ir::ValueInfo> inputs_;
  std::vector<ir::ValueInfo> outputs_;
  // Per input and dim: the index of its symbol in symbols_ (-1: none), for check_feeds.
  std::vector<std::vector<int>> symbol_of_dim_;
  std::vector<std::string> symbols_;
  std::unique_ptr<Executor> executor_;
};

}  // namespace kiln::runtime

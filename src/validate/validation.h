// `kiln validate`'s work: run a reference model and a candidate (its optimized, quantized or otherwise
// rewritten version) in kiln Sessions on the same inputs, and compare every output they share by name
// (validate/output_comparison.h says what each figure means). With per_layer, a second run of each model
// with their shared intermediate values exposed (validate/shared_values.h) finds where the error grows.
// Validation reports numbers; it does not judge them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "passes/pass.h"
#include "runtime/session.h"
#include "validate/input_samples.h"
#include "validate/output_comparison.h"

namespace kiln::validate {

struct ValidationOptions {
  std::string reference;
  std::string candidate;
  // A folder of NAME.npy files, or of subfolders of them (validate/input_samples.h); empty: generated samples,
  // or text samples when text.file is given.
  std::string inputs_dir;
  TextInputs text;
  int64_t samples = 8;  // generated samples, from seeds seed .. seed + samples - 1
  uint64_t seed = 0;
  int64_t batch = 1;  // sizes of the generated samples' batch and sequence dims
  int64_t seq = 128;
  bool per_layer = false;
  int threads = 1;
  passes::Level level = passes::Level::kAll;  // both sessions' graph optimization
  // The reference's instead, when set: kiln pipeline compares each variant with the model as given (kNone).
  std::optional<passes::Level> reference_level;
  // The candidate's matrix products (kModel: its kiln.precision tag); the reference always runs float32.
  runtime::Precision candidate_precision = runtime::Precision::kModel;
};

// One intermediate value of a per-layer run.
struct LayerFigures {
  std::string value;
  size_t order = 0;  // index of its node in the reference's graph
  std::string node;  // the reference's node that computes it, and that node's op
  std::string op;
  std::string candidate_op;  // the op of the candidate's node that computes it
  // Its relative L2 error minus the largest among its sources (the shared values upstream of its node):
  // the error this node added.
  double growth = 0;
  OutputFigures figures;
};

struct ValidationReport {
  ValidationOptions options;
  std::string inputs;                        // InputSamples::description()
  std::string candidate_precision = "fp32";  // what the candidate's matrix products computed in: fp32, bf16
  int64_t samples = 0;
  std::vector<std::string> notes;
  std::vector<OutputFigures> outputs;  // in the reference's output order
  std::vector<LayerFigures> layers;    // per_layer: every shared value, in the reference's graph order
};

// Progress for a terminal: `transient` lines (one per sample) may be overwritten by the next.
using Progress = std::function<void(const std::string& text, bool transient)>;

// Fails (kiln::Error) with one sentence on a missing or unreadable model, inputs that do not fit, an output
// of one model that the other lacks, or no output in common.
ValidationReport run_validation(const ValidationOptions& options, const Progress& progress = {});

// The `count` layers whose error grows most (growth > 0, the larger first, ties to the lower cosine), listed
// in graph order.
std::vector<const LayerFigures*> layers_where_error_grows(const ValidationReport& report, size_t count);
// The compared layer with the lowest cosine over all samples, or null when every one's is 1.
const LayerFigures* layer_with_lowest_cosine(const ValidationReport& report);

}  // namespace kiln::validate

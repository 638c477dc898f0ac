// Calibration for int8 static quantization: runs the float32 model (kiln's Session, fast kernels) on
// sample inputs and measures the activations quantize_static will quantize, one histogram each
// (activation_histogram.h), then the range each method chooses. The samples are validate::InputSamples:
// a folder of sample folders of .npy files (`--calibration DIR`, as `kiln validate --inputs` reads them)
// or generated ones (`--calibration-random N`, as `kiln bench` makes them), one read at a time.
//
// The activations are made graph outputs of a copy of the model, so that the session returns them; the
// optimizer keeps a graph output whole, so calibration runs with fewer fusions than the model itself
// would, and measures exactly the values that the quantized file's QuantizeLinear nodes will read.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/static_quantization.h"
#include "quantize/activation_histogram.h"
#include "validate/input_samples.h"

namespace kiln::quantize {

// Progress: a line to show, and whether the next one may replace it (one per sample).
using CalibrationProgress = std::function<void(const std::string& text, bool transient)>;

// The generated samples of `--calibration-random count`: batch 1, sequence kCalibrationSeq, seeds from
// kCalibrationSeed on (not 0, `kiln validate`'s first seed, so that validating the result measures it on
// samples calibration did not see). Fails, naming the input, when the model's inputs cannot be generated.
inline constexpr int64_t kCalibrationSeq = 128;
inline constexpr uint64_t kCalibrationSeed = 1000;
validate::InputSamples generated_calibration_samples(const ir::Model& model, int64_t count);

// The samples of `--calibration DIR`: a folder of NAME.npy per input (one sample) or of sample folders of
// them. Fails with one line naming the folder and the input at fault ("--calibration DIR: ...").
validate::InputSamples calibration_samples_from_folder(const ir::Model& model, const std::string& dir);

// Runs `model` (prepared, float32) on every sample and returns the range `method` chooses for each of
// `activations`. A sample whose file has the wrong dtype or shape fails, naming the file and the input.
std::map<std::string, passes::ActivationRange> calibrate(const ir::Model& model,
                                                         const std::vector<std::string>& activations,
                                                         const validate::InputSamples& samples,
                                                         CalibrationMethod method,
                                                         const CalibrationProgress& progress = {});

}  // namespace kiln::quantize

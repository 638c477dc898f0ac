// `kiln quantize --mode auto`: make each precision of the model this CPU can run, measure its speed (kiln
// bench) and its accuracy against the float32 model (kiln validate) here, and keep the fastest within the
// accuracy bound. Measured, not assumed: on a CPU without VNNI an int8 model runs slower than float32
// (kernels/cpu/int8_matmul.h), and so auto does not choose it there; bf16 is left out where the CPU has
// no faster bfloat16 (it would run as float32: the same speed, less accuracy).
//
// Modes are tried in the order given, highest precision first. A later one is chosen over the one chosen
// so far only when it is within the bound and at least kMinGain faster at p50: a noisy 2-core machine must
// not trade accuracy for a difference it cannot measure.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "bench/benchmark.h"
#include "quantize/accuracy_bound.h"
#include "validate/validation.h"

namespace kiln::quantize {

inline constexpr double kMinGain = 0.03;

struct PrecisionCandidate {
  std::string mode;     // "fp32", "bf16", "int8-dynamic", "int8-static"
  std::string path;     // the file made for it
  std::string skipped;  // why it was not measured; empty when it was
  double p50_ms = 0, p99_ms = 0, size_mb = 0;
  BoundCheck check;     // against the bound (fp32: the reference itself, which holds it)
};

struct PrecisionChoice {
  std::vector<PrecisionCandidate> candidates;  // in the order tried
  int chosen = -1;                             // index into candidates; -1: none measured
};

// Writes `mode`'s model to `path`; returns empty, or why the mode does not apply to this model (nothing to
// quantize, no calibration data, ...). Throws kiln::Error on a failure that should stop the choice.
using MakeMode = std::function<std::string(const std::string& mode, const std::string& path)>;

// `validation` names the float32 reference and the inputs; `bench` the shapes, threads and calls (its
// model is set per candidate). Files go to scratch_dir/<mode>.onnx; fp32 is the reference itself.
PrecisionChoice choose_precision(const std::vector<std::string>& modes, const MakeMode& make,
                                 const std::string& scratch_dir, validate::ValidationOptions validation,
                                 const AccuracyBound& bound, bench::BenchOptions bench,
                                 const validate::Progress& progress);

// The table chosen from, one line per mode, the chosen one marked, and why.
std::string format_precision_choice(const PrecisionChoice& choice, const AccuracyBound& bound);

}  // namespace kiln::quantize

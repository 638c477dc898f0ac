#include "quantize/calibration.h"

#include <chrono>
#include <cstdio>
#include <set>

#include "bench/bench_inputs.h"
#include "common/error.h"
#include "runtime/session.h"

namespace kiln::quantize {

namespace {

// The graph inputs a caller feeds (initializers excluded).
std::vector<ir::ValueInfo> calibration_inputs(const ir::Graph& g) {
  std::vector<ir::ValueInfo> out;
  for (const auto& in : g.inputs)
    if (!g.initializers.count(in.name)) out.push_back(in);
  return out;
}

// validate::InputSamples names the folder or file at fault after kiln validate's option, --inputs; here
// it came from --calibration.
[[noreturn]] void rethrow_as_calibration(const Error& e) {
  const std::string message = e.what();
  const std::string prefix = "--inputs ";
  if (message.compare(0, prefix.size(), prefix) == 0) fail("--calibration ", message.substr(prefix.size()));
  throw e;
}

}  // namespace

validate::InputSamples generated_calibration_samples(const ir::Model& model, int64_t count) {
  for (const auto& v : calibration_inputs(model.graph)) {
    if (!v.type.is_tensor())
      fail("--calibration-random: input \"", v.name, "\" is not a tensor; give samples with --calibration DIR");
    if (!v.type.shape)
      fail("--calibration-random: input \"", v.name, "\" has no declared shape; give samples with --calibration DIR");
  }
  return validate::InputSamples::generated(bench::plan_inputs(model.graph), count, kCalibrationSeed, 1,
                                           kCalibrationSeq);
}

validate::InputSamples calibration_samples_from_folder(const ir::Model& model, const std::string& dir) {
  try {
    return validate::InputSamples::from_folder(calibration_inputs(model.graph), dir);
  } catch (const Error& e) {
    rethrow_as_calibration(e);
  }
}

std::map<std::string, passes::ActivationRange> calibrate(const ir::Model& model,
                                                         const std::vector<std::string>& activations,
                                                         const validate::InputSamples& samples,
                                                         CalibrationMethod method,
                                                         const CalibrationProgress& progress) {
  ir::Model exposed = model;
  std::set<std::string> outputs;
  for (const auto& o : exposed.graph.outputs) outputs.insert(o.name);
  for (const auto& a : activations)
    if (outputs.insert(a).second) exposed.graph.outputs.push_back({a, ir::Type(), ""});
  runtime::SessionOptions options;
  options.precision = runtime::Precision::kFloat32;  // the float32 ranges, whatever the model's kiln.precision
  const runtime::Session session(std::move(exposed), options);
  std::vector<size_t> slot;  // each activation's index among the session's outputs
  for (const auto& a : activations)
    for (size_t i = 0; i < session.outputs().size(); ++i)
      if (session.outputs()[i].name == a) slot.push_back(i);
  KILN_CHECK(slot.size() == activations.size(), "calibration: an activation is missing from the session's outputs");

  std::vector<ActivationHistogram> histograms(activations.size());
  std::vector<ir::Datum> values;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t k = 0; k < samples.size(); ++k) {
    if (progress) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      char elapsed[32];
      std::snprintf(elapsed, sizeof elapsed, "%.1f s", s);
      progress(str("calibrating: sample ", k + 1, "/", samples.size(), " (", elapsed, ")"), true);
    }
    validate::Feeds feeds;
    try {
      feeds = samples.sample(k);
    } catch (const Error& e) {
      rethrow_as_calibration(e);
    }
    session.run(feeds, values);
    for (size_t j = 0; j < activations.size(); ++j) {
      const ir::Datum& d = values[slot[j]];
      if (!d.is_tensor() || d.tensor.dtype() != ir::DType::kFloat32)
        fail("calibration: activation \"", activations[j], "\" is not a float32 tensor");
      histograms[j].add(d.tensor.data<float>(), d.tensor.numel());
    }
  }
  std::map<std::string, passes::ActivationRange> ranges;
  for (size_t j = 0; j < activations.size(); ++j) ranges[activations[j]] = histograms[j].range(method);
  return ranges;
}

}  // namespace kiln::quantize

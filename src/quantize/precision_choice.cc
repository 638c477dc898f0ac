#include "quantize/precision_choice.h"

#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "kernels/cpu/onednn_matmul.h"

namespace kiln::quantize {

namespace {

// Why bf16 would gain nothing here, or empty.
std::string bf16_unavailable() {
  if (kernels::cpu::bf16_products_run()) return "";
  return kernels::cpu::bf16_matmul_is_fast()
             ? "KILN_GEMM=panel runs float32 products only"
             : "this CPU computes bfloat16 no faster than float32 (no AVX512-BF16 or AMX): it would run as fp32";
}

}  // namespace

PrecisionChoice choose_precision(const std::vector<std::string>& modes, const MakeMode& make,
                                 const std::string& scratch_dir, validate::ValidationOptions validation,
                                 const AccuracyBound& bound, bench::BenchOptions bench,
                                 const validate::Progress& progress) {
  PrecisionChoice choice;
  auto say = [&](const std::string& line) {
    if (progress) progress(line, false);
  };
  for (const std::string& mode : modes) {
    PrecisionCandidate c;
    c.mode = mode;
    if (mode == "fp32") {
      c.path = validation.reference;
    } else {
      c.path = (std::filesystem::path(scratch_dir) / (mode + ".onnx")).string();
      c.skipped = mode == "bf16" ? bf16_unavailable() : "";
      if (c.skipped.empty()) {
        say("auto: making " + mode);
        c.skipped = make(mode, c.path);
      }
    }
    if (!c.skipped.empty()) {
      say("auto: " + mode + " left out: " + c.skipped);
      choice.candidates.push_back(std::move(c));
      continue;
    }
    if (mode == "fp32") {
      const bool cosine = bound.metric == AccuracyBound::Metric::kCosine;
      c.check = BoundCheck{true, "fp32, the reference", cosine ? 1.0 : 100.0, cosine ? 1.0 - bound.max_drop : 100.0 - bound.max_drop};
    } else {
      say("auto: validating " + mode);
      validation.candidate = c.path;
      validation.per_layer = false;
      c.check = check_bound(validate::run_validation(validation, progress), bound);
    }
    say("auto: measuring " + mode);
    bench.model = c.path;
    const bench::BenchReport r = bench::run_benchmark(bench, progress);
    KILN_CHECK(!r.configs.empty(), "auto: kiln bench measured nothing for ", mode);
    c.p50_ms = r.configs.front().kiln.summary.p50_ms;
    c.p99_ms = r.configs.front().kiln.summary.p99_ms;
    c.size_mb = r.model_size_mb;
    char buf[160];
    std::snprintf(buf, sizeof buf, "auto: %s: p50 %.2f ms, %s", mode.c_str(), c.p50_ms, c.check.describe().c_str());
    say(buf);
    choice.candidates.push_back(std::move(c));
    const PrecisionCandidate& added = choice.candidates.back();
    if (!added.check.holds) continue;
    if (choice.chosen < 0 ||
        added.p50_ms < choice.candidates[static_cast<size_t>(choice.chosen)].p50_ms * (1.0 - kMinGain))
      choice.chosen = static_cast<int>(choice.candidates.size() - 1);
  }
  return choice;
}

std::string format_precision_choice(const PrecisionChoice& choice, const AccuracyBound& bound) {
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-3s %-13s %10s %10s %10s  %s\n", "", "mode", "p50 ms", "p99 ms", "size MB",
                ("accuracy (--max-drop " + bound.text + ")").c_str());
  out += buf;
  for (size_t i = 0; i < choice.candidates.size(); ++i) {
    const PrecisionCandidate& c = choice.candidates[i];
    const char* mark = static_cast<int>(i) == choice.chosen ? "->" : "";
    if (!c.skipped.empty()) {
      std::snprintf(buf, sizeof buf, "%-3s %-13s %10s %10s %10s  left out: %s\n", mark, c.mode.c_str(), "-", "-", "-",
                    c.skipped.c_str());
    } else {
      std::snprintf(buf, sizeof buf, "%-3s %-13s %10.2f %10.2f %10.1f  %s%s\n", mark, c.mode.c_str(), c.p50_ms,
                    c.p99_ms, c.size_mb, c.check.describe().c_str(), c.check.holds ? "" : "  OUT OF BOUND");
    }
    out += buf;
  }
  return out;
}

}  // namespace kiln::quantize

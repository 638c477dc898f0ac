// quantize/precision_choice (kiln quantize --mode auto) on the torch-exported BERT: every mode made,
// validated and measured, or left out with its reason; the choice within the bound; the table it prints.
// Which mode wins is the machine's business (speed is never asserted), so the test checks the rule instead.
#include "quantize/precision_choice.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "kernels/cpu/onednn_matmul.h"
#include "onnx/model_io.h"
#include "passes/dynamic_quantization.h"
#include "runtime/session.h"
#include "test_util.h"

// Named, so that in a unity build its helpers meet no other test file's.
namespace kiln::quantize::precision_choice_test {
namespace {

namespace fs = std::filesystem;

TEST(PrecisionChoice, MeasuresEachModeAndKeepsTheFastestWithinTheBound) {
  const std::string reference = testing::source_path("tests/data/bert-tiny/model.onnx");
  const fs::path dir = fs::temp_directory_path() / ("kiln-precision-choice-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto make = [&](const std::string& mode, const std::string& path) -> std::string {
    ir::Model m = onnx_io::load_model(reference);
    if (mode == "int8-dynamic") passes::quantize_dynamic(m, {});
    if (mode == "bf16") m.metadata_props.emplace_back(runtime::kPrecisionMetadataKey, "bf16");
    if (mode == "int8-static") return "no calibration samples (--calibration DIR)";
    onnx_io::save_model(m, path);
    return "";
  };
  validate::ValidationOptions v;
  v.reference = reference;
  v.samples = 2;
  v.seq = 16;
  bench::BenchOptions b;
  b.seqs = {16};
  b.warmup = 1;
  b.iterations = 3;
  const AccuracyBound bound = parse_accuracy_bound("cosine=0.01");
  const PrecisionChoice c =
      choose_precision({"fp32", "bf16", "int8-dynamic", "int8-static"}, make, dir.string(), v, bound, b, {});
  ASSERT_EQ(c.candidates.size(), 4u);
  EXPECT_EQ(c.candidates[0].path, reference);
  EXPECT_TRUE(c.candidates[0].check.holds);
  const bool bf16_here = kernels::cpu::bf16_products_run();
  EXPECT_EQ(c.candidates[1].skipped.empty(), bf16_here) << c.candidates[1].skipped;
  EXPECT_TRUE(c.candidates[2].skipped.empty());
  EXPECT_GT(c.candidates[2].check.value, 0.99);  // int8 on bert-tiny: cosine ~0.9999
  EXPECT_LT(c.candidates[2].size_mb, c.candidates[0].size_mb * 0.5);
  EXPECT_EQ(c.candidates[3].skipped, "no calibration samples (--calibration DIR)");
  for (const PrecisionCandidate& m : c.candidates)
    if (m.skipped.empty()) {
      EXPECT_GT(m.p50_ms, 0) << m.mode;
    }
  // The rule: the chosen mode holds the bound, and no measured mode within it is kMinGain faster.
  ASSERT_GE(c.chosen, 0);
  const PrecisionCandidate& chosen = c.candidates[static_cast<size_t>(c.chosen)];
  EXPECT_TRUE(chosen.check.holds);
  for (const PrecisionCandidate& m : c.candidates)
    if (m.skipped.empty() && m.check.holds) {
      EXPECT_GE(m.p50_ms, chosen.p50_ms * (1 - kMinGain)) << m.mode << " is faster than the chosen " << chosen.mode;
    }
  const std::string table = format_precision_choice(c, bound);
  EXPECT_NE(table.find("->  " + chosen.mode), std::string::npos) << table;
  EXPECT_NE(table.find("left out: no calibration samples"), std::string::npos) << table;
  std::printf("%s", table.c_str());
  // A bound nothing but float32 meets leaves fp32 chosen.
  const PrecisionChoice strict = choose_precision({"fp32", "int8-dynamic"}, make, dir.string(), v,
                                                  parse_accuracy_bound("cosine=0"), b, {});
  EXPECT_EQ(strict.chosen, 0);
  EXPECT_NE(format_precision_choice(strict, parse_accuracy_bound("cosine=0")).find("OUT OF BOUND"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kiln::quantize::precision_choice_test

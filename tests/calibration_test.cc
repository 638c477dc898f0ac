// Calibration for int8 static quantization (quantize/activation_histogram.h, quantize/calibration.h): the
// range each method chooses on distributions whose right answer is known, the histogram growing over
// samples, and the measurement of a model's activations over samples from a folder, with its errors.
#include "quantize/calibration.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "contrib_test_util.h"
#include "io/npy.h"
#include "kernels/reference/dynamic_quantization.h"
#include "test_util.h"

// Named, so that in a unity build its helpers meet no other test file's.
namespace kiln::calibration_test {
namespace {

using quantize::ActivationHistogram;
using quantize::CalibrationMethod;
using testing::contrib::Random;
using testing::contrib::TestGraph;

std::string range_text(const passes::ActivationRange& r) {
  return "[" + std::to_string(r.min) + ", " + std::to_string(r.max) + "]";
}

// The sum of squared errors of x quantized to uint8 over range r (the rule quantize_static uses).
double squared_error(const std::vector<float>& x, const passes::ActivationRange& r) {
  const ops::DynamicQuantization q = ops::dynamic_quantization(r.min, r.max);
  double sum = 0;
  for (float v : x) {
    const double back = (static_cast<double>(ops::quantize_u8(v, q)) - q.zero_point) * q.scale;
    sum += (back - v) * (back - v);
  }
  return sum;
}

// N(0, 1) with two outliers: minmax keeps them; the others clip them and keep the bulk (|x| < ~4.4).
TEST(ActivationHistogram, MethodsClipTheOutliersOfAGaussian) {
  std::mt19937 gen(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(200000);
  for (float& v : x) v = normal(gen);
  x[10] = 40.0f;
  x[150000] = -35.0f;
  ActivationHistogram h;
  h.add(x.data(), 100000);  // two samples: the second grows the range
  h.add(x.data() + 100000, 100000);
  EXPECT_EQ(h.count(), 200000);
  const passes::ActivationRange minmax = h.range(CalibrationMethod::kMinMax);
  EXPECT_EQ(minmax.min, -35.0f);
  EXPECT_EQ(minmax.max, 40.0f);
  // 99.999 %: one value in 200,000 clipped at each end, i.e. the outliers (and the next few).
  const passes::ActivationRange percentile = h.range(CalibrationMethod::kPercentile);
  EXPECT_GT(percentile.max, 3.5f) << range_text(percentile);
  EXPECT_LT(percentile.max, 5.5f) << range_text(percentile);
  EXPECT_LT(percentile.min, -3.5f) << range_text(percentile);
  EXPECT_GT(percentile.min, -5.5f) << range_text(percentile);
  // entropy and mse shrink both ends by one factor. Entropy keeps the bulk's shape: a few standard
  // deviations. mse weighs each outlier's squared clipping error against 200,000 values' rounding error, so
  // it clips less; what it chooses must have a smaller squared error on the data than either other range.
  const passes::ActivationRange entropy = h.range(CalibrationMethod::kEntropy);
  EXPECT_GT(entropy.max, 2.5f) << range_text(entropy);
  EXPECT_LT(entropy.max, 10.0f) << range_text(entropy);
  const passes::ActivationRange mse = h.range(CalibrationMethod::kMse);
  EXPECT_LT(mse.max, minmax.max) << range_text(mse);
  for (const passes::ActivationRange& r : {entropy, mse}) EXPECT_NEAR(r.min / r.max, -35.0f / 40.0f, 1e-3);
  const double mse_error = squared_error(x, mse);
  EXPECT_LT(mse_error, squared_error(x, minmax)) << range_text(mse);
  EXPECT_LT(mse_error, squared_error(x, percentile)) << range_text(mse);
  EXPECT_LT(mse_error, squared_error(x, entropy)) << range_text(mse);
}

// A one-sided uniform distribution (a ReLU's output) has nothing to clip: every method keeps about all of
// it, and none reaches below 0.
TEST(ActivationHistogram, MethodsKeepAUniformRange) {
  std::mt19937 gen(2);
  std::uniform_real_distribution<float> uniform(0.0f, 6.0f);
  std::vector<float> x(100000);
  for (float& v : x) v = uniform(gen);
  ActivationHistogram h;
  h.add(x.data(), static_cast<int64_t>(x.size()));
  for (CalibrationMethod m : {CalibrationMethod::kMinMax, CalibrationMethod::kPercentile, CalibrationMethod::kEntropy,
                              CalibrationMethod::kMse}) {
    const passes::ActivationRange r = h.range(m);
    SCOPED_TRACE(quantize::calibration_method_name(m) + (" " + range_text(r)));
    EXPECT_GE(r.min, 0.0f);
    EXPECT_LT(r.min, 0.01f);
    EXPECT_GT(r.max, 5.7f);
    EXPECT_LE(r.max, 6.0f);
  }
}

TEST(ActivationHistogram, SkipsNonFiniteValuesAndWaitsOutZeros) {
  ActivationHistogram h;
  EXPECT_EQ(h.range(CalibrationMethod::kEntropy).max, 0.0f);  // nothing seen
  const float zeros[] = {0.0f, 0.0f, std::nanf("")};
  h.add(zeros, 3);
  EXPECT_EQ(h.count(), 2);
  EXPECT_EQ(h.range(CalibrationMethod::kPercentile).max, 0.0f);
  const float values[] = {0.5f, -std::numeric_limits<float>::infinity(), 0.25f};
  h.add(values, 3);
  const float more[] = {-100.0f, 3.0f};
  h.add(more, 2);
  EXPECT_EQ(h.count(), 6);
  EXPECT_EQ(h.min(), -100.0f);
  EXPECT_EQ(h.max(), 3.0f);
  EXPECT_EQ(h.range(CalibrationMethod::kMinMax).min, -100.0f);
  EXPECT_THROW(quantize::parse_calibration_method("kl"), Error);
  EXPECT_EQ(quantize::parse_calibration_method("mse"), CalibrationMethod::kMse);
}

// x [1, 4] -> Relu -> r -> MatMul W -> y; calibrated over two samples from sample folders.
TEST(Calibration, MeasuresEachActivationOverEverySample) {
  Random rng(3);
  TestGraph g(17);
  g.input("x", rng.floats({1, 4}));
  g.node("Relu", {"x"}, {"r"});
  g.node("MatMul", {"r", g.constant("W", rng.floats({4, 3}))}, {"y"});
  g.output("y");
  const ir::Model m = g.model();
  testing::TempDir dir("kiln_calibration");
  std::filesystem::create_directories(dir.path() / "s1");
  std::filesystem::create_directories(dir.path() / "s2");
  io::write_npy(dir.file("s1/x.npy"), ir::Tensor::from_vector<float>({-2.0f, 0.5f, 1.0f, 0.0f}, {1, 4}));
  io::write_npy(dir.file("s2/x.npy"), ir::Tensor::from_vector<float>({0.1f, 3.0f, -0.5f, 0.2f}, {1, 4}));
  std::vector<std::string> lines;
  const auto ranges =
      quantize::calibrate(m, {"x", "r"}, quantize::calibration_samples_from_folder(m, dir.path()),
                          CalibrationMethod::kMinMax, [&](const std::string& text, bool) { lines.push_back(text); });
  EXPECT_EQ(ranges.at("x").min, -2.0f);
  EXPECT_EQ(ranges.at("x").max, 3.0f);
  EXPECT_EQ(ranges.at("r").min, 0.0f);
  EXPECT_EQ(ranges.at("r").max, 3.0f);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].rfind("calibrating: sample 2/2", 0), 0u) << lines[1];

  auto error_of = [&](const std::string& folder) -> std::string {
    try {
      const validate::InputSamples s = quantize::calibration_samples_from_folder(m, folder);
      quantize::calibrate(m, {"x"}, s, CalibrationMethod::kMinMax);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(error_of(dir.file("missing")), "--calibration " + dir.file("missing") + ": no such folder");
  std::filesystem::create_directories(dir.path() / "s3");
  EXPECT_EQ(error_of(dir.path().string()), "--calibration " + dir.file("s3") + ": no x.npy for input \"x\"");
  io::write_npy(dir.file("s3/x.npy"), ir::Tensor::from_vector<int64_t>({1, 2, 3, 4}, {1, 4}));
  const std::string wrong = error_of(dir.path().string());
  EXPECT_NE(wrong.find("s3/x.npy: input \"x\" must be"), std::string::npos) << wrong;
}

}  // namespace
}  // namespace kiln::calibration_test

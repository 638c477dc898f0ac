// What calibration learns about one activation: the values it took over every sample, as a histogram, and
// the range [min, max] its uint8 quantization should cover, chosen by one of four methods (the ones ONNX
// Runtime's quantize_static offers):
//
//   minmax      the smallest and largest value seen: nothing is clipped, but one outlier stretches the
//               scale for every other value;
//   percentile  the values between the kPercentile / 2 tails of the histogram on each side (99.999 %:
//               0.0005 % of the values are clipped at each end, ORT's default);
//   entropy     the clipped range whose 255-step quantization of the histogram is closest to it in
//               Kullback-Leibler divergence (TensorRT's calibration; ORT's "Entropy");
//   mse         the clipped range with the smallest expected squared error: step^2 / 12 for each value
//               inside it, the distance to the nearer end squared for each value outside.
//
// entropy and mse choose among ranges [t * lo, t * hi] (0 < t <= 1) of the histogram's own range
// [lo, hi], which always includes 0: both ends shrink toward 0 by the same factor, so a one-sided
// activation (after a ReLU) stays one-sided. The histogram has kBins bins over a range that grows by
// doubling when a later sample exceeds it (adjacent bins merge), so samples are never kept and never
// read twice.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "passes/static_quantization.h"

namespace kiln::quantize {

enum class CalibrationMethod { kMinMax, kPercentile, kEntropy, kMse };

// "minmax", "percentile", "entropy", "mse".
const char* calibration_method_name(CalibrationMethod method);
// Throws kiln::Error naming the known ones.
CalibrationMethod parse_calibration_method(const std::string& name);

inline constexpr double kPercentile = 99.999;

class ActivationHistogram {
 public:
  static constexpr int kBins = 2048;

  // Adds `count` values; NaN and infinities are skipped (they have no place in a range).
  void add(const float* x, int64_t count);

  int64_t count() const { return count_; }
  // The smallest and largest value added (0 and 0 before any).
  float min() const { return min_; }
  float max() const { return max_; }

  // The range to quantize to. Before any value was added: [0, 0].
  passes::ActivationRange range(CalibrationMethod method) const;

 private:
  // The histogram's range is [lo_, lo_ + width_ * kBins), which includes 0.
  int bin_of(float x) const;
  void grow_to(float lo, float hi);
  double edge(int bin) const { return lo_ + width_ * bin; }
  passes::ActivationRange percentile_range() const;
  passes::ActivationRange best_clipped_range(CalibrationMethod method) const;

  std::vector<double> counts_ = std::vector<double>(kBins, 0.0);
  double lo_ = 0.0, width_ = 0.0;  // width_ 0: no nonzero value yet, so no range
  int64_t count_ = 0;
  float min_ = 0.0f, max_ = 0.0f;
};

}  // namespace kiln::quantize

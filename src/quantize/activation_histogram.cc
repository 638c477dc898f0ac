#include "quantize/activation_histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace kiln::quantize {

namespace {

// The clipped ranges entropy and mse choose among: t = k / kClipSteps of the full range, k = 1 .. kClipSteps.
constexpr int kClipSteps = 512;
// uint8: 256 values, 255 steps between the ends of the range.
constexpr int kUint8Steps = 255;

}  // namespace

const char* calibration_method_name(CalibrationMethod method) {
  switch (method) {
    case CalibrationMethod::kMinMax:
      return "minmax";
    case CalibrationMethod::kPercentile:
      return "percentile";
    case CalibrationMethod::kEntropy:
      return "entropy";
    case CalibrationMethod::kMse:
      return "mse";
  }
  return "?";
}

CalibrationMethod parse_calibration_method(const std::string& name) {
  for (CalibrationMethod m : {CalibrationMethod::kMinMax, CalibrationMethod::kPercentile, CalibrationMethod::kEntropy,
                              CalibrationMethod::kMse})
    if (name == calibration_method_name(m)) return m;
  fail("unknown calibration method '", name, "' (known: minmax, percentile, entropy, mse)");
}

int ActivationHistogram::bin_of(float x) const {
  const double i = std::floor((static_cast<double>(x) - lo_) / width_);
  return static_cast<int>(std::clamp(i, 0.0, static_cast<double>(kBins - 1)));
}

void ActivationHistogram::grow_to(float lo, float hi) {
  // Each doubling keeps the bins' edges: pairs of bins merge into one, in the half of the new range on
  // the side that did not grow.
  while (lo < lo_ || hi > lo_ + width_ * kBins) {
    const bool up = hi > lo_ + width_ * kBins;
    std::vector<double> merged(kBins, 0.0);
    const int offset = up ? 0 : kBins / 2;
    for (int i = 0; i < kBins / 2; ++i) merged[offset + i] = counts_[2 * i] + counts_[2 * i + 1];
    if (!up) lo_ -= width_ * kBins;
    width_ *= 2;
    counts_ = std::move(merged);
  }
}

void ActivationHistogram::add(const float* x, int64_t count) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  int64_t finite = 0;
  for (int64_t i = 0; i < count; ++i)
    if (std::isfinite(x[i])) {
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
      ++finite;
    }
  if (finite == 0) return;
  min_ = count_ == 0 ? lo : std::min(min_, lo);
  max_ = count_ == 0 ? hi : std::max(max_, hi);
  count_ += finite;
  if (width_ == 0.0) {
    // The first values other than 0 set the range (it includes 0); zeros before them wait in bin 0.
    const double range_lo = std::min(0.0f, min_), range_hi = std::max(0.0f, max_);
    if (range_hi == range_lo) {
      counts_[0] += static_cast<double>(finite);  // all zeros so far: moved to 0's bin below
      return;
    }
    const double zeros = counts_[0];
    counts_[0] = 0.0;
    lo_ = range_lo;
    width_ = (range_hi - range_lo) / kBins;
    counts_[bin_of(0.0f)] += zeros;
  } else {
    grow_to(lo, hi);
  }
  for (int64_t i = 0; i < count; ++i)
    if (std::isfinite(x[i])) counts_[bin_of(x[i])] += 1.0;
}

passes::ActivationRange ActivationHistogram::range(CalibrationMethod method) const {
  if (width_ == 0.0) return {0.0f, 0.0f};
  switch (method) {
    case CalibrationMethod::kMinMax:
      return {min_, max_};
    case CalibrationMethod::kPercentile:
      return percentile_range();
    case CalibrationMethod::kEntropy:
    case CalibrationMethod::kMse:
      return best_clipped_range(method);
  }
  return {min_, max_};
}

passes::ActivationRange ActivationHistogram::percentile_range() const {
  double total = 0;
  for (double c : counts_) total += c;
  const double cut = total * (100.0 - kPercentile) / 200.0;
  // The first bin from the left, and from the right, where the values passed exceed the cut.
  int left = 0, right = kBins - 1;
  for (double seen = 0; left < kBins - 1 && (seen += counts_[left]) <= cut;) ++left;
  for (double seen = 0; right > 0 && (seen += counts_[right]) <= cut;) --right;
  const auto lo = static_cast<float>(std::max<double>(edge(left), min_));
  const auto hi = static_cast<float>(std::min<double>(edge(right + 1), max_));
  return {std::min(lo, 0.0f), std::max(hi, 0.0f)};
}

passes::ActivationRange ActivationHistogram::best_clipped_range(CalibrationMethod method) const {
  const double full_lo = std::min(0.0f, min_), full_hi = std::max(0.0f, max_);
  std::vector<double> centers(kBins);
  for (int i = 0; i < kBins; ++i) centers[i] = edge(i) + width_ / 2;
  double best_t = 1.0, best = std::numeric_limits<double>::infinity();
  std::vector<double> p, q;
  for (int k = kClipSteps; k >= 1; --k) {
    const double t = static_cast<double>(k) / kClipSteps, a = t * full_lo, b = t * full_hi;
    double cost = 0;
    if (method == CalibrationMethod::kMse) {
      const double step = (b - a) / kUint8Steps;
      for (int i = 0; i < kBins; ++i) {
        if (counts_[i] == 0) continue;
        const double c = centers[i];
        const double outside = c < a ? a - c : c > b ? c - b : 0.0;
        cost += counts_[i] * (outside > 0 ? outside * outside : step * step / 12);
      }
    } else {
      // P: the bins inside [a, b], the values outside added to the end bins (what clipping does to them).
      // Q: P's inside part quantized to kUint8Steps steps (each step's count spread evenly over its nonempty
      // bins), which knows nothing of the clipped values: clipping many costs divergence.
      int first = 0, last = kBins - 1;
      while (first < kBins && centers[first] < a) ++first;
      while (last >= 0 && centers[last] > b) --last;
      const int n = last - first + 1;
      if (n < kUint8Steps) break;  // narrower ranges have fewer bins than steps: nothing to compare
      p.assign(counts_.begin() + first, counts_.begin() + last + 1);
      for (int i = 0; i < first; ++i) p.front() += counts_[i];
      for (int i = last + 1; i < kBins; ++i) p.back() += counts_[i];
      q.assign(n, 0.0);
      const int per_level = n / kUint8Steps;
      for (int level = 0; level < kUint8Steps; ++level) {
        const int begin = level * per_level, end = level == kUint8Steps - 1 ? n : begin + per_level;
        double sum = 0;
        int nonempty = 0;
        for (int i = begin; i < end; ++i) {
          sum += counts_[first + i];
          nonempty += p[i] != 0;
        }
        for (int i = begin; i < end; ++i)
          if (p[i] != 0) q[i] = sum / nonempty;
      }
      double p_total = 0, q_total = 0;
      for (int i = 0; i < n; ++i) {
        p_total += p[i];
        q_total += q[i];
      }
      if (p_total == 0 || q_total == 0) continue;
      // A bin Q leaves empty where P is not (all its step's values were clipped ones) gets a small
      // probability instead of an infinite divergence, as TensorRT smooths it.
      constexpr double kFloor = 1e-4;
      for (int i = 0; i < n; ++i) {
        if (p[i] == 0) continue;
        const double pi = p[i] / p_total, qi = std::max(q[i] / q_total, kFloor / n);
        cost += pi * std::log(pi / qi);
      }
    }
    if (cost < best) {
      best = cost;
      best_t = t;
    }
  }
  return {static_cast<float>(best_t * full_lo), static_cast<float>(best_t * full_hi)};
}

}  // namespace kiln::quantize

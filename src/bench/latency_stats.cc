#include "bench/latency_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kiln::bench {

double percentile(const std::vector<double>& sorted, double p) {
  const auto n = static_cast<int64_t>(sorted.size());
  auto rank = static_cast<int64_t>(std::ceil(p / 100.0 * static_cast<double>(n)));
  return sorted[static_cast<size_t>(std::clamp<int64_t>(rank, 1, n) - 1)];
}

LatencyStats summarize(const std::vector<double>& latencies_ms) {
  LatencyStats s;
  if (latencies_ms.empty()) return s;
  std::vector<double> sorted = latencies_ms;
  std::sort(sorted.begin(), sorted.end());
  s.count = static_cast<int64_t>(sorted.size());
  s.min_ms = sorted.front();
  s.max_ms = sorted.back();
  s.mean_ms = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(sorted.size());
  s.p50_ms = percentile(sorted, 50);
  s.p90_ms = percentile(sorted, 90);
  s.p95_ms = percentile(sorted, 95);
  s.p99_ms = percentile(sorted, 99);
  return s;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace kiln::bench

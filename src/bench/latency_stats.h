// Latency statistics for `kiln bench`, one definition for every engine: ONNX Runtime's figures are
// computed here too, from the per-call latencies its peer script returns.
//
// Percentiles are nearest-rank: the p-th percentile of n sorted samples is sample ceil(p/100 * n)
// (1-based), clamped to [1, n]. It is always a measured value; with few samples p99 is the maximum.
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::bench {

struct LatencyStats {
  int64_t count = 0;
  double min_ms = 0, mean_ms = 0, p50_ms = 0, p90_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
};

// Nearest-rank percentile of `sorted` (ascending, non-empty), p in [0, 100].
double percentile(const std::vector<double>& sorted, double p);
// Statistics of `latencies_ms` (any order); all zero when empty.
LatencyStats summarize(const std::vector<double>& latencies_ms);
// The median (mean of the two middle values for an even count); 0 when empty. Summaries across
// rounds are medians of the per-round figures.
double median(std::vector<double> values);

}  // namespace kiln::bench

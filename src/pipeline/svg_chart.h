// Small inline-SVG charts for the pipeline's report.html: horizontal bars and latency distributions,
// drawn by kiln so that the page needs no script, no network and no chart library. Each function returns
// one complete <svg> element (with data-chart="<kind>", so a test can count the charts) that scales to its
// container's width. Every label goes through xml_escape; values that were not measured are std::nullopt
// and draw as "n/a" instead of a bar.
//
//   horizontal_bar_chart                      distribution_chart
//   baseline   |█████ 1.00×                   baseline  ·  ·|·[██▌]·  ◆  ·
//   int8       |████████████████ 3.38×        int8      ·[█]◆ ·
//              |    ¦ (reference line)                  0    20   40   60 ms
//              0    1    2    3
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kiln::pipeline::svg {

// Escapes & < > " ' for XML/HTML text and attribute values.
std::string xml_escape(const std::string& text);

// "Nice" round axis ticks covering [lo, hi]: steps of 1, 2 or 5 times a power of ten, about `target`
// intervals. `values` runs from first (<= lo) to last (>= hi) inclusive.
struct Ticks {
  double first = 0, last = 1, step = 1;
  std::vector<double> values;
};
Ticks nice_ticks(double lo, double hi, int target = 5);
// A tick label with as many decimals as the step needs: 0, 20, 40 or 0.5, 1.0, 1.5 or 0.02, 0.04.
std::string format_tick(double value, double step);

struct BarRow {
  std::string label;
  std::optional<double> value;  // nullopt: drawn as "n/a", no bar
  std::string color;            // CSS colour of the bar
  std::string value_text;       // printed after the bar; empty: the value with format_tick's decimals
  bool emphasize = false;       // bold label (the chosen variant)
  std::string tooltip;          // <title> of the row; empty: label and value_text
};

struct BarChartOptions {
  std::string kind;                 // data-chart attribute, e.g. "speedup", "size"
  std::string aria_label;           // what the chart shows, for screen readers
  std::string axis_label;           // e.g. "speed-up over the baseline (×)", "MB"
  std::optional<double> reference;  // a dashed vertical line, e.g. 1.0 for the baseline
  std::string reference_label;      // its label, e.g. "baseline"
  int width = 560;                  // the viewBox width; the svg scales to its container
};
std::string horizontal_bar_chart(const std::vector<BarRow>& rows, const BarChartOptions& options);

struct DistributionRow {
  std::string label;
  std::string color;
  std::optional<double> min, p50, p90, p99, max;
  std::vector<double> samples;  // every measured value, drawn as faint dots
  bool emphasize = false;
  std::string value_text;  // printed at the right, e.g. "p50 33.7 ms"
};

struct DistributionOptions {
  std::string kind = "latency";
  std::string aria_label;
  std::string unit = "ms";
  int width = 1000;
};
// One row per engine: a line from min to max, a box from p50 to p90 with a bold p50 mark, a diamond at p99
// and a dot per sample, on a linear axis starting at 0 with round ticks.
std::string distribution_chart(const std::vector<DistributionRow>& rows, const DistributionOptions& options);

}  // namespace kiln::pipeline::svg

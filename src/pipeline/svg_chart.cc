#include "pipeline/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace kiln::pipeline::svg {

// Named, not anonymous: the sanitizer build compiles kiln_core as a unity build, where anonymous helpers of
// neighbouring files would collide.
namespace svg_chart_detail {

constexpr const char* kFont =
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, 'Liberation Sans', sans-serif";
constexpr const char* kInk = "#1f2328";
constexpr const char* kMuted = "#6e7781";
constexpr const char* kGrid = "#e6e8eb";
constexpr const char* kAxis = "#b8bec6";
// Average advance of a 12px sans-serif character, to size the label columns without measuring text.
constexpr double kCharWidth = 7.6;  // bold DejaVu Sans, the widest likely font

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Counts UTF-8 code points, so that "×" or "–" takes one column.
size_t text_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// At most `max_chars` code points, ending in "…" when cut; never splits a UTF-8 sequence.
std::string clip(const std::string& s, size_t max_chars) {
  if (text_length(s) <= max_chars) return s;
  size_t chars = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (chars == max_chars - 1) break;
      ++chars;
    }
  }
  return s.substr(0, i) + "…";
}

double label_column(const std::vector<std::string>& labels, double lo, double hi) {
  size_t longest = 0;
  for (const auto& l : labels) longest = std::max(longest, text_length(l));
  return std::clamp(static_cast<double>(longest) * kCharWidth + 18.0, lo, hi);
}

std::string svg_open(const std::string& kind, const std::string& aria_label, int width, double height) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" data-chart=\"" + xml_escape(kind) +
         "\" viewBox=\"0 0 " + std::to_string(width) + " " + num(height) +
         "\" width=\"100%\" style=\"max-width:" + std::to_string(width) + "px\" role=\"img\" aria-label=\"" +
         xml_escape(aria_label) + "\" font-family=\"" + kFont + "\" font-size=\"12\">";
}

std::string text(double x, double y, const std::string& content, const std::string& anchor = "start",
                 const std::string& fill = kInk, bool bold = false) {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\" fill=\"" + fill + "\"" +
         (bold ? " font-weight=\"600\"" : "") + ">" + xml_escape(content) + "</text>";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& stroke, double width,
                 const std::string& extra = "") {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) + "\" stroke=\"" +
         stroke + "\" stroke-width=\"" + num(width) + "\"" + extra + "/>";
}

// Vertical grid lines at the ticks and the tick labels under the plot, plus the axis caption.
std::string x_axis(const Ticks& ticks, double left, double plot_w, double top, double bottom,
                   const std::string& caption) {
  std::string out;
  const double span = ticks.last - ticks.first;
  for (double t : ticks.values) {
    const double x = left + (t - ticks.first) / span * plot_w;
    out += line(x, top, x, bottom, kGrid, 1);
    out += text(x, bottom + 15, format_tick(t, ticks.step), "middle", kMuted);
  }
  out += line(left, bottom, left + plot_w, bottom, kAxis, 1);
  if (!caption.empty()) out += text(left + plot_w / 2, bottom + 31, caption, "middle", kMuted);
  return out;
}

}  // namespace svg_chart_detail

using namespace svg_chart_detail;

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Ticks nice_ticks(double lo, double hi, int target) {
  Ticks t;
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo < 1e-12) hi = lo + (lo == 0 ? 1.0 : std::abs(lo) * 0.1);
  target = std::max(target, 1);
  const double raw = (hi - lo) / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / magnitude;
  const double nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 2.5 ? 2.5 : fraction <= 5 ? 5 : 10;
  t.step = nice * magnitude;
  t.first = std::floor(lo / t.step + 1e-9) * t.step;
  t.last = std::ceil(hi / t.step - 1e-9) * t.step;
  const int count = static_cast<int>(std::lround((t.last - t.first) / t.step));
  for (int i = 0; i <= count; ++i) t.values.push_back(t.first + i * t.step);
  return t;
}

std::string format_tick(double value, double step) {
  int decimals = 0;
  // Enough decimals that the step shows: 2.5 needs 1, 0.25 needs 2, 0.02 needs 2.
  for (double s = step; decimals < 6 && std::abs(s - std::round(s)) > 1e-6 * std::max(1.0, std::abs(s)); s *= 10)
    ++decimals;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, std::abs(value) < 1e-12 ? 0.0 : value);
  return buf;
}

std::string horizontal_bar_chart(const std::vector<BarRow>& rows, const BarChartOptions& o) {
  constexpr double kRow = 26, kBar = 15;
  std::vector<std::string> labels;
  double hi = o.reference.value_or(0);
  for (const auto& r : rows) {
    labels.push_back(r.label);
    if (r.value && std::isfinite(*r.value)) hi = std::max(hi, *r.value);
  }
  const Ticks ticks = nice_ticks(0, hi > 0 ? hi : 1, 5);
  std::vector<std::string> value_texts;
  for (const auto& r : rows)
    value_texts.push_back(!r.value               ? "n/a"
                          : r.value_text.empty() ? format_tick(*r.value, ticks.step / 10)
                                                 : r.value_text);
  const double left = label_column(labels, 70, 200);
  const double right = label_column(value_texts, 56, 170);
  const double plot_w = o.width - left - right;
  const double top = o.reference ? 22 : 8;
  const double bottom = top + kRow * static_cast<double>(rows.size()) + 4;
  const double height = bottom + (o.axis_label.empty() ? 24 : 40);
  auto x_of = [&](double v) {
    return left + std::clamp(v - ticks.first, 0.0, ticks.last - ticks.first) / (ticks.last - ticks.first) * plot_w;
  };

  std::string out = svg_open(o.kind, o.aria_label, o.width, height);
  out += x_axis(ticks, left, plot_w, top, bottom, o.axis_label);
  for (size_t i = 0; i < rows.size(); ++i) {
    const BarRow& r = rows[i];
    const double y = top + kRow * static_cast<double>(i) + 4;
    const double mid = y + kBar / 2 + 4;
    out += "<g><title>" + xml_escape(r.tooltip.empty() ? r.label + ": " + value_texts[i] : r.tooltip) + "</title>";
    out += text(left - 8, mid, clip(r.label, 28), "end", kInk, r.emphasize);
    if (r.value && std::isfinite(*r.value)) {
      const double w = std::max(x_of(*r.value) - left, 1.0);
      out += "<rect x=\"" + num(left) + "\" y=\"" + num(y) + "\" width=\"" + num(w) + "\" height=\"" + num(kBar) +
             "\" rx=\"2\" fill=\"" + xml_escape(r.color) + "\"/>";
      out += text(left + w + 5, mid, value_texts[i], "start", kInk, r.emphasize);
    } else {
      out += text(left + 5, mid, "n/a", "start", kMuted);
    }
    out += "</g>";
  }
  if (o.reference) {
    const double x = x_of(*o.reference);
    out += line(x, top - 4, x, bottom, kInk, 1.2, " stroke-dasharray=\"4 3\"");
    out += text(x, top - 8, o.reference_label, "middle", kInk);
  }
  return out + "</svg>";
}

std::string distribution_chart(const std::vector<DistributionRow>& rows, const DistributionOptions& o) {
  constexpr double kRow = 36, kBox = 10;
  std::vector<std::string> labels, values;
  double hi = 0;
  for (const auto& r : rows) {
    labels.push_back(r.label);
    values.push_back(r.value_text);
    for (const auto& v : {r.min, r.p50, r.p90, r.p99, r.max})
      if (v && std::isfinite(*v)) hi = std::max(hi, *v);
    for (double s : r.samples)
      if (std::isfinite(s)) hi = std::max(hi, s);
  }
  const Ticks ticks = nice_ticks(0, hi > 0 ? hi : 1, 8);
  const double left = label_column(labels, 80, 200);
  const double right = label_column(values, 40, 190) + 12;
  const double plot_w = o.width - left - right;
  const double top = 8;
  const double bottom = top + kRow * static_cast<double>(rows.size()) + 4;
  const double legend_y = bottom + 54;
  const double height = legend_y + 10;
  auto x_of = [&](double v) {
    return left + std::clamp(v - ticks.first, 0.0, ticks.last - ticks.first) / (ticks.last - ticks.first) * plot_w;
  };

  std::string out = svg_open(o.kind, o.aria_label, o.width, height);
  out += x_axis(ticks, left, plot_w, top, bottom, "latency per call (" + o.unit + ")");
  for (size_t i = 0; i < rows.size(); ++i) {
    const DistributionRow& r = rows[i];
    // The summary (whisker, box, p50, p99) on the row's middle line, the calls as a strip of dots under it.
    const double mid = top + kRow * static_cast<double>(i) + kRow / 2 - 3;
    const std::string color = xml_escape(r.color);
    auto fig = [&](const char* name, const std::optional<double>& v) {
      return std::string(name) + " " + (v ? format_tick(*v, 0.01) : std::string("n/a"));
    };
    out += "<g><title>" +
           xml_escape(r.label + ": " + fig("min", r.min) + ", " + fig("p50", r.p50) + ", " + fig("p90", r.p90) + ", " +
                      fig("p99", r.p99) + ", " + fig("max", r.max) + " " + o.unit + ", " +
                      std::to_string(r.samples.size()) + " calls") +
           "</title>";
    out += text(left - 8, mid + 4, clip(r.label, 28), "end", kInk, r.emphasize);
    const bool any = r.min || r.p50 || r.p90 || r.p99 || r.max || !r.samples.empty();
    if (!any) {
      out += text(left + 5, mid + 4, "not measured", "start", kMuted);
      out += "</g>";
      continue;
    }
    if (r.min && r.max) out += line(x_of(*r.min), mid, x_of(*r.max), mid, color, 1.5);
    for (size_t s = 0; s < r.samples.size(); ++s) {
      if (!std::isfinite(r.samples[s])) continue;
      // Two lanes, so that equal latencies do not hide each other completely.
      const double dy = kBox / 2 + 5 + static_cast<double>(s % 2) * 3.5;
      out += "<circle cx=\"" + num(x_of(r.samples[s])) + "\" cy=\"" + num(mid + dy) + "\" r=\"2.2\" fill=\"" + color +
             "\" fill-opacity=\"0.5\"/>";
    }
    if (r.p50 && r.p90) {
      const double x0 = x_of(std::min(*r.p50, *r.p90)), x1 = x_of(std::max(*r.p50, *r.p90));
      out += "<rect x=\"" + num(x0) + "\" y=\"" + num(mid - kBox / 2) + "\" width=\"" + num(std::max(x1 - x0, 2.0)) +
             "\" height=\"" + num(kBox) + "\" rx=\"1.5\" fill=\"" + color + "\" fill-opacity=\"0.85\"/>";
    }
    if (r.p50) out += line(x_of(*r.p50), mid - kBox / 2 - 3, x_of(*r.p50), mid + kBox / 2 + 3, kInk, 2);
    if (r.p99) {
      const double x = x_of(*r.p99);
      out += "<path d=\"M" + num(x) + " " + num(mid - 5) + "L" + num(x + 5) + " " + num(mid) + "L" + num(x) + " " +
             num(mid + 5) + "L" + num(x - 5) + " " + num(mid) + "Z\" fill=\"#fff\" stroke=\"" + color +
             "\" stroke-width=\"1.5\"/>";
    }
    if (!r.value_text.empty()) out += text(o.width - right + 10, mid + 4, r.value_text, "start", kInk, r.emphasize);
    out += "</g>";
  }
  // Legend: what each mark means.
  double x = left;
  const std::string c = "#8c959f";
  out += "<g fill=\"" + std::string(kMuted) + "\">";
  out += "<circle cx=\"" + num(x + 4) + "\" cy=\"" + num(legend_y - 4) + "\" r=\"2.2\" fill=\"" + c +
         "\" fill-opacity=\"0.6\"/>";
  out += text(x + 12, legend_y, "one call", "start", kMuted);
  x += 80;
  out += line(x, legend_y - 4, x + 22, legend_y - 4, c, 1.5);
  out += text(x + 28, legend_y, "min – max", "start", kMuted);
  x += 100;
  out += "<rect x=\"" + num(x) + "\" y=\"" + num(legend_y - 10) + "\" width=\"22\" height=\"12\" rx=\"1.5\" fill=\"" +
         c + "\"/>";
  out += line(x, legend_y - 13, x, legend_y + 5, kInk, 2);
  out += text(x + 28, legend_y, "p50 (bar) to p90", "start", kMuted);
  x += 140;
  out += "<path d=\"M" + num(x + 5) + " " + num(legend_y - 9) + "l5 5l-5 5l-5 -5Z\" fill=\"#fff\" stroke=\"" + c +
         "\" stroke-width=\"1.5\"/>";
  out += text(x + 16, legend_y, "p99", "start", kMuted);
  out += "</g>";
  return out + "</svg>";
}

}  // namespace kiln::pipeline::svg

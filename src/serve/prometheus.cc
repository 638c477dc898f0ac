#include "serve/prometheus.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>

#include "common/error.h"

namespace kiln::serve {

// Named rather than anonymous: the sanitizer build compiles src/ as a unity build.
namespace prometheus_detail {

bool is_metric_name(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Names starting with "__" are Prometheus's own.
bool is_label_name(const std::string& name) {
  if (name.empty() || name.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// HELP text escapes backslash and newline; label values also the double quote.
void append_escaped(std::string& out, const std::string& text, bool quote) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// {a="1",b="2"} with `le` last when given; nothing for no labels at all.
void append_labels(std::string& out, const MetricLabels& labels, const std::string* le) {
  if (labels.empty() && le == nullptr) return;
  out += '{';
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += key;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  }
  if (le != nullptr) {
    if (!first) out += ',';
    out += "le=\"";
    out += *le;
    out += '"';
  }
  out += '}';
}

std::string bounds_text(const std::vector<double>& bounds) {
  std::string text = "[";
  for (size_t i = 0; i < bounds.size(); ++i) text += (i ? ", " : "") + format_metric_value(bounds[i]);
  return text + "]";
}

}  // namespace prometheus_detail

struct MetricsRegistry::Series {
  double value = 0;                     // counter, gauge
  std::vector<uint64_t> bucket_counts;  // histogram: per bucket, not cumulative; the last is +Inf's
  double sum = 0;
  uint64_t count = 0;
};

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  Type type;
  std::vector<double> upper_bounds;
  // Keyed by the labels sorted by name, so that std::map's order is the rendering order.
  std::map<MetricLabels, Series> series;
};

std::string format_metric_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == 0) return "0";  // also -0
  char buf[64];
  // Integers in full ("1000000", where the shortest form would be "1e+06"), up to where doubles still
  // hold every integer; everything else in the shortest form that reads back to the same double.
  const bool integral = std::trunc(value) == value && std::fabs(value) < 1e15;
  const auto result =
      std::to_chars(buf, buf + sizeof buf, value, integral ? std::chars_format::fixed : std::chars_format::general);
  return std::string(buf, result.ptr);
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  KILN_CHECK(start > 0 && std::isfinite(start), "exponential_buckets: start must be > 0, got ", start);
  KILN_CHECK(factor > 1 && std::isfinite(factor), "exponential_buckets: factor must be > 1, got ", factor);
  KILN_CHECK(count >= 1, "exponential_buckets: count must be >= 1, got ", count);
  std::vector<double> bounds;
  bounds.reserve(count);
  double bound = start;
  for (int i = 0; i < count; ++i) {
    KILN_CHECK(std::isfinite(bound), "exponential_buckets: bound ", i, " overflows (start ", start, ", factor ", factor,
               ")");
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

const char* MetricsRegistry::type_name(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      break;
  }
  return "histogram";
}

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::counter_family(const std::string& name, const std::string& help) {
  declare(name, help, Type::kCounter, {});
}

void MetricsRegistry::gauge_family(const std::string& name, const std::string& help) {
  declare(name, help, Type::kGauge, {});
}

void MetricsRegistry::histogram_family(const std::string& name, const std::string& help,
                                       std::vector<double> upper_bounds) {
  declare(name, help, Type::kHistogram, std::move(upper_bounds));
}

void MetricsRegistry::declare(const std::string& name, const std::string& help, Type type,
                              std::vector<double> upper_bounds) {
  KILN_CHECK(prometheus_detail::is_metric_name(name), "metric family name \"", name,
             "\" is not valid: expected [a-zA-Z_:][a-zA-Z0-9_:]*");
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    KILN_CHECK(std::isfinite(upper_bounds[i]) && (i == 0 || upper_bounds[i] > upper_bounds[i - 1]), "metric family \"",
               name, "\": bucket bounds must be finite and strictly ascending (+Inf is implicit), got ",
               prometheus_detail::bounds_text(upper_bounds));
  }
  std::lock_guard lock(mutex_);
  if (const auto it = by_name_.find(name); it != by_name_.end()) {
    const Family& existing = *it->second;
    KILN_CHECK(existing.type == type, "metric family \"", name, "\" is already declared as a ",
               type_name(existing.type), ", not a ", type_name(type));
    KILN_CHECK(existing.upper_bounds == upper_bounds, "metric family \"", name,
               "\" is already declared with the bucket bounds ", prometheus_detail::bounds_text(existing.upper_bounds),
               ", not ", prometheus_detail::bounds_text(upper_bounds));
    return;
  }
  auto family = std::make_unique<Family>();
  family->name = name;
  family->help = help;
  family->type = type;
  family->upper_bounds = std::move(upper_bounds);
  by_name_.emplace(name, family.get());
  families_.push_back(std::move(family));
}

MetricsRegistry::Family& MetricsRegistry::family_of(const std::string& name, Type type, const char* what) {
  const auto it = by_name_.find(name);
  if (it == by_name_.end()) fail("metric family \"", name, "\" is not declared (", what, ")");
  Family& family = *it->second;
  KILN_CHECK(family.type == type, "metric family \"", name, "\" is a ", type_name(family.type), ": ", what,
             " is for a ", type_name(type));
  return family;
}

MetricsRegistry::Series& MetricsRegistry::series_of(Family& family, const MetricLabels& labels) {
  MetricLabels key = labels;
  std::sort(key.begin(), key.end());
  if (const auto it = family.series.find(key); it != family.series.end()) return it->second;
  // A new series: its labels are checked once, here.
  for (size_t i = 0; i < key.size(); ++i) {
    const std::string& label = key[i].first;
    KILN_CHECK(prometheus_detail::is_label_name(label), "metric family \"", family.name, "\": label name \"", label,
               "\" is not valid: expected [a-zA-Z_][a-zA-Z0-9_]*, not starting with __");
    KILN_CHECK(i == 0 || label != key[i - 1].first, "metric family \"", family.name, "\": label \"", label,
               "\" is given twice");
    KILN_CHECK(family.type != Type::kHistogram || label != "le", "metric family \"", family.name,
               "\": label \"le\" is the histogram's own");
  }
  Series& series = family.series[std::move(key)];
  if (family.type == Type::kHistogram) series.bucket_counts.assign(family.upper_bounds.size() + 1, 0);
  return series;
}

void MetricsRegistry::inc(const std::string& name, const MetricLabels& labels, double by) {
  std::lock_guard lock(mutex_);
  Family& family = family_of(name, Type::kCounter, "inc");
  KILN_CHECK(by >= 0, "metric family \"", name, "\": inc by ", format_metric_value(by), ": a counter only goes up");
  series_of(family, labels).value += by;
}

void MetricsRegistry::set(const std::string& name, const MetricLabels& labels, double value) {
  std::lock_guard lock(mutex_);
  series_of(family_of(name, Type::kGauge, "set"), labels).value = value;
}

void MetricsRegistry::add(const std::string& name, const MetricLabels& labels, double delta) {
  std::lock_guard lock(mutex_);
  series_of(family_of(name, Type::kGauge, "add"), labels).value += delta;
}

void MetricsRegistry::observe(const std::string& name, const MetricLabels& labels, double value) {
  std::lock_guard lock(mutex_);
  Family& family = family_of(name, Type::kHistogram, "observe");
  Series& series = series_of(family, labels);
  const auto& bounds = family.upper_bounds;
  // The first bound >= value: `le` is inclusive. NaN compares false with every bound, so it goes to +Inf.
  const size_t bucket =
      std::isnan(value) ? bounds.size() : std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin();
  ++series.bucket_counts[bucket];
  series.sum += value;
  ++series.count;
}

void MetricsRegistry::remove_series(const std::string& key, const std::string& value) {
  std::lock_guard lock(mutex_);
  const std::pair<std::string, std::string> label(key, value);
  for (auto& family : families_) {
    std::erase_if(family->series, [&](const auto& entry) {
      return std::find(entry.first.begin(), entry.first.end(), label) != entry.first.end();
    });
  }
}

void MetricsRegistry::render_family(const Family& family, std::string& out) {
  out += "# HELP ";
  out += family.name;
  if (!family.help.empty()) {
    out += ' ';
    prometheus_detail::append_escaped(out, family.help, false);
  }
  out += "\n# TYPE ";
  out += family.name;
  out += ' ';
  out += type_name(family.type);
  out += '\n';
  for (const auto& [labels, series] : family.series) {
    if (family.type != Type::kHistogram) {
      out += family.name;
      prometheus_detail::append_labels(out, labels, nullptr);
      out += ' ';
      out += format_metric_value(series.value);
      out += '\n';
      continue;
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i < series.bucket_counts.size(); ++i) {
      cumulative += series.bucket_counts[i];
      const std::string le = i < family.upper_bounds.size() ? format_metric_value(family.upper_bounds[i]) : "+Inf";
      out += family.name;
      out += "_bucket";
      prometheus_detail::append_labels(out, labels, &le);
      out += ' ';
      out += std::to_string(cumulative);
      out += '\n';
    }
    out += family.name;
    out += "_sum";
    prometheus_detail::append_labels(out, labels, nullptr);
    out += ' ';
    out += format_metric_value(series.sum);
    out += '\n';
    out += family.name;
    out += "_count";
    prometheus_detail::append_labels(out, labels, nullptr);
    out += ' ';
    out += std::to_string(series.count);
    out += '\n';
  }
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& family : families_) render_family(*family, out);
  return out;
}

}  // namespace kiln::serve

// Metrics for `kiln serve`'s /metrics: counters, gauges and histograms in labelled series, rendered in the
// Prometheus text exposition format 0.0.4 (Debian 12 packages no prometheus-cpp).
//
//   registry.counter_family("kiln_requests_total", "Inference requests, by model and outcome.");
//   registry.inc("kiln_requests_total", {{"model", "bert"}, {"status", "ok"}});
//   registry.render()  ->  # HELP kiln_requests_total Inference requests, by model and outcome.
//                          # TYPE kiln_requests_total counter
//                          kiln_requests_total{model="bert",status="ok"} 1
//
// A family is declared once, then its series are created by their first update. A series is named by its
// set of labels: the order the caller lists them in does not matter (they are kept sorted by name), and
// a label name may not appear twice. Every misuse (an undeclared family, the wrong type's method, a bad
// name) throws kiln::Error naming the family: these are programming errors, found by the first request.
//
// Thread-safe under one mutex: the server updates at most a few thousand times a second, and a scrape
// renders a few hundred lines.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kiln::serve {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// The Content-Type of render()'s text.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Declares a family once; declaring the same name again with the same type (and, for a histogram, the
  // same bounds) is a no-op, with another type or other bounds it throws. Names match
  // [a-zA-Z_:][a-zA-Z0-9_:]*.
  void counter_family(const std::string& name, const std::string& help);
  void gauge_family(const std::string& name, const std::string& help);
  // `upper_bounds`: finite and strictly ascending; the +Inf bucket is implicit.
  void histogram_family(const std::string& name, const std::string& help, std::vector<double> upper_bounds);

  // Label names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with "__"; a histogram's series may not
  // carry "le". An update creates its series if it is new (inc(name, labels, 0) shows a counter at 0).
  void inc(const std::string& name, const MetricLabels& labels, double by = 1);     // counter; by >= 0
  void set(const std::string& name, const MetricLabels& labels, double value);      // gauge
  void add(const std::string& name, const MetricLabels& labels, double delta);      // gauge
  void observe(const std::string& name, const MetricLabels& labels, double value);  // histogram

  // Drops every series of every family carrying label `key` = `value`; the families stay declared. (kiln
  // serve does not call it on unload: a model's counters keep their history.)
  void remove_series(const std::string& key, const std::string& value);

  // Families in declaration order, each as "# HELP" and "# TYPE" lines and then its series sorted by
  // their labels (series of one family share label names, so in effect by label values). Integral values
  // print without a decimal point ("3"), others in the fewest digits that read back to the same double.
  std::string render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series;
  struct Family;

  void declare(const std::string& name, const std::string& help, Type type, std::vector<double> upper_bounds);
  // The family `name`, which must be of type `type`; `what` names the method for the error message.
  Family& family_of(const std::string& name, Type type, const char* what);
  // The series of `family` labelled `labels` (checked and sorted by name), created if new.
  static Series& series_of(Family& family, const MetricLabels& labels);
  static const char* type_name(Type type);
  static void render_family(const Family& family, std::string& out);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;  // in declaration order
  std::unordered_map<std::string, Family*> by_name_;
};

// `count` bounds: start, start * factor, start * factor^2, ... (start > 0, factor > 1, count >= 1), e.g.
// exponential_buckets(0.0005, 2, 16) for latencies from 0.5 ms to 16 s.
std::vector<double> exponential_buckets(double start, double factor, int count);

// A sample value as the exposition format writes it: "3", "0.25", "1e-07", "+Inf", "-Inf", "NaN".
std::string format_metric_value(double value);

}  // namespace kiln::serve

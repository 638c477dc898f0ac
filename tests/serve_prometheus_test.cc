// serve/prometheus: the exposition text compared whole, line for line, with what Prometheus's text format
// 0.0.4 asks for; every misuse thrown as a kiln::Error naming the family; concurrent updates not lost.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "serve/prometheus.h"
#include "test_util.h"

// Named, so that in a unity build its helpers meet no other test file's.
namespace serve_prometheus_test {

using kiln::serve::exponential_buckets;
using kiln::serve::format_metric_value;
using kiln::serve::MetricLabels;
using kiln::serve::MetricsRegistry;

using kiln::testing::error_of;

TEST(PrometheusRegistry, EmptyFamiliesRenderHelpAndTypeOnlyInDeclarationOrder) {
  MetricsRegistry registry;
  registry.gauge_family("zeta_gauge", "Declared first.");
  registry.counter_family("alpha_total", "Declared second.");
  registry.histogram_family("mid_seconds", "Declared third.", {0.1, 1});
  EXPECT_EQ(registry.render(),
            "# HELP zeta_gauge Declared first.\n"
            "# TYPE zeta_gauge gauge\n"
            "# HELP alpha_total Declared second.\n"
            "# TYPE alpha_total counter\n"
            "# HELP mid_seconds Declared third.\n"
            "# TYPE mid_seconds histogram\n");
  EXPECT_EQ(MetricsRegistry().render(), "");
}

TEST(PrometheusRegistry, CounterSeriesSortedByLabelValues) {
  MetricsRegistry registry;
  registry.counter_family("kiln_requests_total", "Inference requests.");
  registry.inc("kiln_requests_total", {{"model", "resnet"}, {"status", "ok"}});
  registry.inc("kiln_requests_total", {{"model", "bert"}, {"status", "ok"}}, 2);
  registry.inc("kiln_requests_total", {{"model", "bert"}, {"status", "error"}});
  registry.inc("kiln_requests_total", {{"model", "bert"}, {"status", "ok"}});
  // The same label set listed in another order is the same series.
  registry.inc("kiln_requests_total", {{"status", "ok"}, {"model", "resnet"}}, 0.5);
  // inc by 0 shows a series at 0.
  registry.inc("kiln_requests_total", {{"model", "albert"}, {"status", "ok"}}, 0);
  EXPECT_EQ(registry.render(),
            "# HELP kiln_requests_total Inference requests.\n"
            "# TYPE kiln_requests_total counter\n"
            "kiln_requests_total{model=\"albert\",status=\"ok\"} 0\n"
            "kiln_requests_total{model=\"bert\",status=\"error\"} 1\n"
            "kiln_requests_total{model=\"bert\",status=\"ok\"} 3\n"
            "kiln_requests_total{model=\"resnet\",status=\"ok\"} 1.5\n");
}

TEST(PrometheusRegistry, GaugeSetAndAddWithoutLabels) {
  MetricsRegistry registry;
  registry.gauge_family("kiln_queue_depth", "Requests waiting.");
  registry.gauge_family("kiln_models_loaded", "Models ready.");
  registry.set("kiln_queue_depth", {}, 7);
  registry.add("kiln_queue_depth", {}, -2);
  registry.add("kiln_models_loaded", {{"repository", "main"}}, 1);
  registry.add("kiln_models_loaded", {{"repository", "main"}}, 1);
  EXPECT_EQ(registry.render(),
            "# HELP kiln_queue_depth Requests waiting.\n"
            "# TYPE kiln_queue_depth gauge\n"
            "kiln_queue_depth 5\n"
            "# HELP kiln_models_loaded Models ready.\n"
            "# TYPE kiln_models_loaded gauge\n"
            "kiln_models_loaded{repository=\"main\"} 2\n");
  registry.set("kiln_queue_depth", {}, -0.25);
  EXPECT_NE(registry.render().find("\nkiln_queue_depth -0.25\n"), std::string::npos);
}

TEST(PrometheusRegistry, HistogramBucketsAreCumulativeAndInclusive) {
  MetricsRegistry registry;
  registry.histogram_family("kiln_latency_seconds", "Request latency.", {0.001, 0.01, 0.1});
  const MetricLabels bert = {{"model", "bert"}};
  registry.observe("kiln_latency_seconds", bert, 0.001);  // on a bound: counts in le="0.001"
  registry.observe("kiln_latency_seconds", bert, 0.0005);
  registry.observe("kiln_latency_seconds", bert, 0.05);
  registry.observe("kiln_latency_seconds", bert, 2.5);  // above every bound: only +Inf
  registry.observe("kiln_latency_seconds", {}, 0.1);    // on the last bound
  EXPECT_EQ(registry.render(),
            "# HELP kiln_latency_seconds Request latency.\n"
            "# TYPE kiln_latency_seconds histogram\n"
            "kiln_latency_seconds_bucket{le=\"0.001\"} 0\n"
            "kiln_latency_seconds_bucket{le=\"0.01\"} 0\n"
            "kiln_latency_seconds_bucket{le=\"0.1\"} 1\n"
            "kiln_latency_seconds_bucket{le=\"+Inf\"} 1\n"
            "kiln_latency_seconds_sum 0.1\n"
            "kiln_latency_seconds_count 1\n"
            "kiln_latency_seconds_bucket{model=\"bert\",le=\"0.001\"} 2\n"
            "kiln_latency_seconds_bucket{model=\"bert\",le=\"0.01\"} 2\n"
            "kiln_latency_seconds_bucket{model=\"bert\",le=\"0.1\"} 3\n"
            "kiln_latency_seconds_bucket{model=\"bert\",le=\"+Inf\"} 4\n"
            "kiln_latency_seconds_sum{model=\"bert\"} 2.5515\n"
            "kiln_latency_seconds_count{model=\"bert\"} 4\n");
}

TEST(PrometheusRegistry, HistogramWithIntegerBoundsAndNoBounds) {
  MetricsRegistry registry;
  registry.histogram_family("kiln_batch_size", "Rows per batch.", {1, 2, 4, 8});
  registry.histogram_family("kiln_only_inf", "Only the implicit bucket.", {});
  registry.observe("kiln_batch_size", {}, 4);
  registry.observe("kiln_batch_size", {}, 3);
  registry.observe("kiln_only_inf", {}, 12);
  EXPECT_EQ(registry.render(),
            "# HELP kiln_batch_size Rows per batch.\n"
            "# TYPE kiln_batch_size histogram\n"
            "kiln_batch_size_bucket{le=\"1\"} 0\n"
            "kiln_batch_size_bucket{le=\"2\"} 0\n"
            "kiln_batch_size_bucket{le=\"4\"} 2\n"
            "kiln_batch_size_bucket{le=\"8\"} 2\n"
            "kiln_batch_size_bucket{le=\"+Inf\"} 2\n"
            "kiln_batch_size_sum 7\n"
            "kiln_batch_size_count 2\n"
            "# HELP kiln_only_inf Only the implicit bucket.\n"
            "# TYPE kiln_only_inf histogram\n"
            "kiln_only_inf_bucket{le=\"+Inf\"} 1\n"
            "kiln_only_inf_sum 12\n"
            "kiln_only_inf_count 1\n");
}

TEST(PrometheusRegistry, EscapesHelpAndLabelValues) {
  MetricsRegistry registry;
  registry.counter_family("kiln_odd_total", "A \"quoted\" back\\slash\nand a second line.");
  registry.inc("kiln_odd_total", {{"path", "C:\\models\\\"bert\"\nv2"}});
  registry.gauge_family("kiln_no_help", "");
  EXPECT_EQ(registry.render(),
            "# HELP kiln_odd_total A \"quoted\" back\\\\slash\\nand a second line.\n"
            "# TYPE kiln_odd_total counter\n"
            "kiln_odd_total{path=\"C:\\\\models\\\\\\\"bert\\\"\\nv2\"} 1\n"
            "# HELP kiln_no_help\n"
            "# TYPE kiln_no_help gauge\n");
}

TEST(PrometheusRegistry, FormatsIntegersWithoutPointAndFractionsToRoundTrip) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(-0.0), "0");
  EXPECT_EQ(format_metric_value(3), "3");
  EXPECT_EQ(format_metric_value(-42), "-42");
  EXPECT_EQ(format_metric_value(100), "100");
  EXPECT_EQ(format_metric_value(1000000), "1000000");
  EXPECT_EQ(format_metric_value(123456789012345), "123456789012345");
  EXPECT_EQ(format_metric_value(0.5), "0.5");
  EXPECT_EQ(format_metric_value(0.001), "0.001");
  EXPECT_EQ(format_metric_value(1234.5), "1234.5");
  EXPECT_EQ(format_metric_value(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
  // Whatever the form, it reads back to the same double.
  for (const double v : {1e-7, 1.0 / 3, 2.0 / 3e10, 1e300, 123456.789, 4.35, 1e15, 9007199254740993.0}) {
    EXPECT_EQ(std::stod(format_metric_value(v)), v) << format_metric_value(v);
  }
  MetricsRegistry registry;
  registry.gauge_family("g", "");
  registry.set("g", {{"k", "int"}}, 3);
  registry.set("g", {{"k", "third"}}, 1.0 / 3);
  EXPECT_EQ(registry.render(),
            "# HELP g\n"
            "# TYPE g gauge\n"
            "g{k=\"int\"} 3\n"
            "g{k=\"third\"} 0.3333333333333333\n");
}

TEST(PrometheusRegistry, ExponentialBuckets) {
  EXPECT_EQ(exponential_buckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  const auto latency = exponential_buckets(0.0005, 2, 16);
  ASSERT_EQ(latency.size(), 16u);
  EXPECT_EQ(format_metric_value(latency.front()), "0.0005");
  EXPECT_EQ(format_metric_value(latency[1]), "0.001");
  EXPECT_EQ(format_metric_value(latency.back()), "16.384");
  EXPECT_NE(error_of([] { exponential_buckets(0, 2, 4); }).find("start must be > 0"), std::string::npos);
  EXPECT_NE(error_of([] { exponential_buckets(1, 1, 4); }).find("factor must be > 1"), std::string::npos);
  EXPECT_NE(error_of([] { exponential_buckets(1, 2, 0); }).find("count must be >= 1"), std::string::npos);
}

TEST(PrometheusRegistry, RemoveSeriesDropsEveryFamilysSeriesWithTheLabel) {
  MetricsRegistry registry;
  registry.counter_family("kiln_requests_total", "Requests.");
  registry.histogram_family("kiln_latency_seconds", "Latency.", {1});
  registry.gauge_family("kiln_up", "Up.");
  registry.inc("kiln_requests_total", {{"model", "bert"}, {"status", "ok"}});
  registry.inc("kiln_requests_total", {{"model", "bert"}, {"status", "error"}});
  registry.inc("kiln_requests_total", {{"model", "resnet"}, {"status", "ok"}});
  registry.observe("kiln_latency_seconds", {{"model", "bert"}}, 0.5);
  registry.set("kiln_up", {}, 1);
  // A label value "bert" under another key stays.
  registry.set("kiln_up", {{"alias", "bert"}}, 1);
  registry.remove_series("model", "bert");
  registry.remove_series("model", "no-such-model");
  EXPECT_EQ(registry.render(),
            "# HELP kiln_requests_total Requests.\n"
            "# TYPE kiln_requests_total counter\n"
            "kiln_requests_total{model=\"resnet\",status=\"ok\"} 1\n"
            "# HELP kiln_latency_seconds Latency.\n"
            "# TYPE kiln_latency_seconds histogram\n"
            "# HELP kiln_up Up.\n"
            "# TYPE kiln_up gauge\n"
            "kiln_up 1\n"
            "kiln_up{alias=\"bert\"} 1\n");
  // The family is still declared: a series of the model can come back, starting again from zero.
  registry.inc("kiln_requests_total", {{"model", "bert"}, {"status", "ok"}});
  EXPECT_NE(registry.render().find("kiln_requests_total{model=\"bert\",status=\"ok\"} 1\n"), std::string::npos);
}

TEST(PrometheusRegistry, RedeclaringTheSameFamilyIsANoOp) {
  MetricsRegistry registry;
  registry.counter_family("c_total", "First help.");
  registry.inc("c_total", {});
  registry.counter_family("c_total", "Other help is ignored.");
  registry.histogram_family("h", "", {1, 2});
  registry.histogram_family("h", "", {1, 2});
  EXPECT_EQ(registry.render(),
            "# HELP c_total First help.\n"
            "# TYPE c_total counter\n"
            "c_total 1\n"
            "# HELP h\n"
            "# TYPE h histogram\n");
}

TEST(PrometheusRegistryErrors, MisuseThrowsNamingTheFamily) {
  MetricsRegistry registry;
  registry.counter_family("kiln_requests_total", "");
  registry.gauge_family("kiln_queue_depth", "");
  registry.histogram_family("kiln_latency_seconds", "", {0.5, 1});

  EXPECT_EQ(error_of([&] { registry.inc("kiln_missing_total", {}); }),
            "metric family \"kiln_missing_total\" is not declared (inc)");
  EXPECT_EQ(error_of([&] { registry.observe("kiln_missing", {}, 1); }),
            "metric family \"kiln_missing\" is not declared (observe)");
  EXPECT_EQ(error_of([&] { registry.set("kiln_requests_total", {}, 1); }),
            "metric family \"kiln_requests_total\" is a counter: set is for a gauge");
  EXPECT_EQ(error_of([&] { registry.inc("kiln_queue_depth", {}); }),
            "metric family \"kiln_queue_depth\" is a gauge: inc is for a counter");
  EXPECT_EQ(error_of([&] { registry.add("kiln_latency_seconds", {}, 1); }),
            "metric family \"kiln_latency_seconds\" is a histogram: add is for a gauge");
  EXPECT_EQ(error_of([&] { registry.observe("kiln_queue_depth", {}, 1); }),
            "metric family \"kiln_queue_depth\" is a gauge: observe is for a histogram");
  EXPECT_EQ(error_of([&] { registry.inc("kiln_requests_total", {}, -1); }),
            "metric family \"kiln_requests_total\": inc by -1: a counter only goes up");
  EXPECT_EQ(error_of([&] { registry.inc("kiln_requests_total", {}, std::nan("")); }),
            "metric family \"kiln_requests_total\": inc by NaN: a counter only goes up");

  EXPECT_EQ(error_of([&] { registry.counter_family("1st_total", ""); }),
            "metric family name \"1st_total\" is not valid: expected [a-zA-Z_:][a-zA-Z0-9_:]*");
  EXPECT_EQ(error_of([&] { registry.gauge_family("kiln-queue", ""); }),
            "metric family name \"kiln-queue\" is not valid: expected [a-zA-Z_:][a-zA-Z0-9_:]*");
  EXPECT_EQ(error_of([&] { registry.gauge_family("", ""); }),
            "metric family name \"\" is not valid: expected [a-zA-Z_:][a-zA-Z0-9_:]*");
  EXPECT_EQ(error_of([&] { registry.gauge_family("kiln_requests_total", ""); }),
            "metric family \"kiln_requests_total\" is already declared as a counter, not a gauge");
  EXPECT_EQ(error_of([&] { registry.histogram_family("kiln_queue_depth", "", {1}); }),
            "metric family \"kiln_queue_depth\" is already declared as a gauge, not a histogram");
  EXPECT_EQ(error_of([&] {
              registry.histogram_family("kiln_latency_seconds", "", {0.5, 2});
            }),
            "metric family \"kiln_latency_seconds\" is already declared with the bucket bounds [0.5, 1], not [0.5, 2]");
  EXPECT_EQ(error_of([&] {
              registry.histogram_family("kiln_h", "", {1, 1});
            }),
            "metric family \"kiln_h\": bucket bounds must be finite and strictly ascending (+Inf is implicit), got "
            "[1, 1]");
  EXPECT_EQ(error_of([&] {
              registry.histogram_family("kiln_h", "", {1, std::numeric_limits<double>::infinity()});
            }),
            "metric family \"kiln_h\": bucket bounds must be finite and strictly ascending (+Inf is implicit), got "
            "[1, +Inf]");

  EXPECT_EQ(error_of([&] {
              registry.inc("kiln_requests_total", {{"__name", "x"}});
            }),
            "metric family \"kiln_requests_total\": label name \"__name\" is not valid: expected "
            "[a-zA-Z_][a-zA-Z0-9_]*, not starting with __");
  EXPECT_EQ(error_of([&] {
              registry.set("kiln_queue_depth", {{"a:b", "x"}}, 1);
            }),
            "metric family \"kiln_queue_depth\": label name \"a:b\" is not valid: expected "
            "[a-zA-Z_][a-zA-Z0-9_]*, not starting with __");
  EXPECT_EQ(error_of([&] {
              registry.set("kiln_queue_depth", {{"model", "a"}, {"model", "b"}}, 1);
            }),
            "metric family \"kiln_queue_depth\": label \"model\" is given twice");
  EXPECT_EQ(error_of([&] {
              registry.observe("kiln_latency_seconds", {{"le", "1"}}, 1);
            }),
            "metric family \"kiln_latency_seconds\": label \"le\" is the histogram's own");

  // Nothing above left a family or a series behind.
  EXPECT_EQ(registry.render(),
            "# HELP kiln_requests_total\n"
            "# TYPE kiln_requests_total counter\n"
            "# HELP kiln_queue_depth\n"
            "# TYPE kiln_queue_depth gauge\n"
            "# HELP kiln_latency_seconds\n"
            "# TYPE kiln_latency_seconds histogram\n");
}

TEST(PrometheusRegistryConcurrency, IncFromFourThreadsSumsExactly) {
  MetricsRegistry registry;
  registry.counter_family("kiln_requests_total", "");
  registry.histogram_family("kiln_latency_seconds", "", {0.5});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&registry, t] {
      const MetricLabels mine = {{"thread", std::to_string(t)}};
      for (int i = 0; i < kPerThread; ++i) {
        registry.inc("kiln_requests_total", {});
        registry.inc("kiln_requests_total", mine, 2);
        registry.observe("kiln_latency_seconds", {}, i % 2 ? 1.0 : 0.25);
        if (i % 1000 == 0) registry.render();  // a scrape meanwhile
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(registry.render(),
            "# HELP kiln_requests_total\n"
            "# TYPE kiln_requests_total counter\n"
            "kiln_requests_total 80000\n"
            "kiln_requests_total{thread=\"0\"} 40000\n"
            "kiln_requests_total{thread=\"1\"} 40000\n"
            "kiln_requests_total{thread=\"2\"} 40000\n"
            "kiln_requests_total{thread=\"3\"} 40000\n"
            "# HELP kiln_latency_seconds\n"
            "# TYPE kiln_latency_seconds histogram\n"
            "kiln_latency_seconds_bucket{le=\"0.5\"} 40000\n"
            "kiln_latency_seconds_bucket{le=\"+Inf\"} 80000\n"
            "kiln_latency_seconds_sum 50000\n"
            "kiln_latency_seconds_count 80000\n");
}

}  // namespace serve_prometheus_test

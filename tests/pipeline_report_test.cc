// `kiln pipeline`'s report renderers, from report.json alone: report.html (its charts counted and read,
// every string escaped, null figures, reports without peers, without a chosen variant, with several
// configurations, without a sequence dim) and report.md (its table rows with the sample's numbers). The
// sample is tests/data/pipeline/report.json; the page in a real browser is pipeline_report_render_test.cc.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "pipeline/report_html.h"
#include "pipeline/report_markdown.h"
#include "pipeline/svg_chart.h"
#include "test_util.h"

namespace kiln::pipeline_report_test {
namespace {

using nlohmann::json;

json sample() { return json::parse(testing::read_file(testing::source_path("tests/data/pipeline/report.json"))); }

// The sample as a model without a sequence dim (a ViT) would make it.
json without_sequence_dim(json report) {
  report["settings"]["seqs"] = json::array();
  for (auto& v : report["variants"])
    for (auto& r : v["results"]) r["seq"] = nullptr;
  for (auto& p : report["peers"])
    for (auto& r : p["results"]) r["seq"] = nullptr;
  return report;
}

size_t count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The <svg> element with data-chart="<kind>", the `index`-th of its kind; "" when there is none.
std::string chart(const std::string& html, const std::string& kind, size_t index = 0) {
  size_t at = 0;
  for (size_t i = 0; i <= index; ++i) {
    at = html.find("data-chart=\"" + kind + "\"", i == 0 ? 0 : at + 1);
    if (at == std::string::npos) return "";
  }
  const size_t begin = html.rfind("<svg", at);
  const size_t end = html.find("</svg>", at);
  return html.substr(begin, end + 6 - begin);
}

// The <table> that follows `marker` in `html`.
std::string table_after(const std::string& html, const std::string& marker) {
  const size_t at = html.find(marker);
  if (at == std::string::npos) return "";
  const size_t begin = html.find("<table", at);
  return html.substr(begin, html.find("</table>", begin) + 8 - begin);
}

// A second configuration (batch 8) for every variant and peer that has a batch-1 result.
json with_batch_8(json report) {
  report["settings"]["batches"] = {1, 8};
  auto add = [](json& engine) {
    if (engine["results"].empty()) return;
    json r = engine["results"][0];
    r["batch"] = 8;
    for (const char* key : {"min_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"})
      r[key] = r[key].get<double>() * 6.0;
    for (auto& l : r["latencies_ms"]) l = l.get<double>() * 6.0;
    engine["results"].push_back(r);
  };
  for (auto& v : report["variants"]) add(v);
  for (auto& p : report["peers"]) add(p);
  return report;
}

// ---- axis ticks ----

TEST(PipelineReportSvg, TicksAreRoundAndCoverTheRange) {
  const pipeline::svg::Ticks ms = pipeline::svg::nice_ticks(0, 128.83, 8);
  EXPECT_DOUBLE_EQ(ms.step, 20);
  EXPECT_DOUBLE_EQ(ms.first, 0);
  EXPECT_DOUBLE_EQ(ms.last, 140);
  EXPECT_EQ(ms.values.size(), 8u);

  const pipeline::svg::Ticks speedup = pipeline::svg::nice_ticks(0, 3.378, 5);
  EXPECT_DOUBLE_EQ(speedup.step, 1);
  EXPECT_DOUBLE_EQ(speedup.last, 4);

  const pipeline::svg::Ticks small = pipeline::svg::nice_ticks(0, 0.9, 5);
  EXPECT_DOUBLE_EQ(small.step, 0.2);
  EXPECT_DOUBLE_EQ(small.last, 1.0);

  // A range of nothing still has an axis.
  const pipeline::svg::Ticks empty = pipeline::svg::nice_ticks(0, 0, 5);
  EXPECT_GT(empty.last, empty.first);
  EXPECT_GE(empty.values.size(), 2u);

  EXPECT_EQ(pipeline::svg::format_tick(40, 20), "40");
  EXPECT_EQ(pipeline::svg::format_tick(0.4, 0.2), "0.4");
  EXPECT_EQ(pipeline::svg::format_tick(7.5, 2.5), "7.5");
  EXPECT_EQ(pipeline::svg::format_tick(0.05, 0.025), "0.050");
}

TEST(PipelineReportSvg, BarsWithoutAValueSayNotAvailable) {
  pipeline::svg::BarChartOptions o;
  o.kind = "size";
  pipeline::svg::BarRow missing, present;
  missing.label = "a<b";
  missing.color = "#000";
  present.label = "c";
  present.value = 2.0;
  present.color = "#111";
  present.value_text = "2 MB";
  const std::string svg = pipeline::svg::horizontal_bar_chart({missing, present}, o);
  EXPECT_EQ(count(svg, "<rect"), 1u);
  EXPECT_TRUE(contains(svg, ">n/a<"));
  EXPECT_TRUE(contains(svg, ">a&lt;b<"));
  EXPECT_TRUE(contains(svg, ">2 MB<"));
}

// ---- report.html ----

TEST(PipelineReportHtml, SampleHasItsChartsAndLoadsNothing) {
  const std::string html = pipeline::render_report_html(sample());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count(html, "data-chart=\"latency\""), 1u);
  EXPECT_EQ(count(html, "data-chart=\"speedup\""), 1u);
  EXPECT_EQ(count(html, "data-chart=\"size\""), 1u);
  EXPECT_EQ(count(html, "<svg"), 3u);
  // Self-contained: no script, no stylesheet or image from elsewhere; the only URL is SVG's namespace.
  EXPECT_FALSE(contains(html, "<script"));
  EXPECT_FALSE(contains(html, "<link"));
  EXPECT_FALSE(contains(html, "<img"));
  EXPECT_EQ(count(html, "http://") + count(html, "https://"), count(html, "http://www.w3.org/2000/svg"));
  EXPECT_TRUE(contains(html, "default-src 'none'"));
}

TEST(PipelineReportHtml, HeadlineUseThisAndMachine) {
  const std::string html = pipeline::render_report_html(sample());
  EXPECT_TRUE(contains(html, "<h1>int8-dynamic: 3.4x faster than the baseline, cosine 0.99712</h1>"));
  EXPECT_TRUE(contains(html, "Use this: <code>out/model.int8-dynamic.onnx</code>"));
  EXPECT_TRUE(contains(html, "<b>3.38×</b>"));         // over the baseline
  EXPECT_TRUE(contains(html, "<b>2.02×</b>"));         // over onnxruntime
  EXPECT_TRUE(contains(html, "26% of the baseline"));  // 108.4 of 417.7 MB
  EXPECT_TRUE(contains(html, "<dd>AMD EPYC 9R14 96-Core Processor</dd>"));
  EXPECT_TRUE(contains(html, "<dt>kernel tier</dt><dd>avx512</dd>"));
  EXPECT_TRUE(contains(html, "<span class=\"chip\">avx512_vnni</span>"));
  EXPECT_TRUE(contains(html, "<dt>GEMM</dt><dd>onednn</dd>"));
  EXPECT_TRUE(contains(html, "<dt>threads</dt><dd>2</dd>"));
}

TEST(PipelineReportHtml, LatencyChartDrawsEveryCallOfEveryMeasuredEngine) {
  const std::string svg = chart(pipeline::render_report_html(sample()), "latency");
  ASSERT_FALSE(svg.empty());
  for (const char* label : {">baseline<", ">optimized<", ">bf16<", ">int8-dynamic (chosen)<", ">onnxruntime<"})
    EXPECT_TRUE(contains(svg, label)) << label;
  EXPECT_FALSE(contains(svg, "int8-static"));  // skipped: nothing to draw
  // 20 calls for each of 4 variants and 1 peer; the legend's dot is drawn fainter.
  EXPECT_EQ(count(svg, "fill-opacity=\"0.5\""), 100u);
  EXPECT_TRUE(contains(svg, ">p50 113.9 ms<"));
  EXPECT_TRUE(contains(svg, ">p50 33.73 ms<"));
  // Round ticks in ms up to the slowest call (128.83 ms), and the axis caption.
  for (const char* tick : {">0<", ">20<", ">60<", ">120<", ">140<"}) EXPECT_TRUE(contains(svg, tick)) << tick;
  EXPECT_TRUE(contains(svg, "latency per call (ms)"));
  // Kiln's variants and the peer in their two colour families.
  EXPECT_TRUE(contains(svg, "#c4502a"));
  EXPECT_TRUE(contains(svg, "#3b6ea5"));
}

TEST(PipelineReportHtml, SpeedupAndSizeCharts) {
  const std::string html = pipeline::render_report_html(sample());
  const std::string speedup = chart(html, "speedup");
  EXPECT_EQ(count(speedup, "<rect"), 5u);
  EXPECT_TRUE(contains(speedup, ">baseline 1×<"));
  EXPECT_TRUE(contains(speedup, "stroke-dasharray"));
  for (const char* v : {">1.00×<", ">1.58×<", ">2.33×<", ">3.38×<", ">1.67×<"}) EXPECT_TRUE(contains(speedup, v)) << v;

  const std::string size = chart(html, "size");
  EXPECT_EQ(count(size, "<rect"), 4u);  // the skipped int8-static has no file
  EXPECT_TRUE(contains(size, ">417.7 MB · 100%<"));
  EXPECT_TRUE(contains(size, ">108.4 MB · 26%<"));
  EXPECT_FALSE(contains(size, "onnxruntime"));
}

TEST(PipelineReportHtml, LatencyTableHasEveryFigure) {
  const std::string table = table_after(pipeline::render_report_html(sample()), "data-chart=\"speedup\"");
  EXPECT_EQ(count(table, "<tr data-engine="), 5u);
  EXPECT_TRUE(contains(table, "<tr data-engine=\"int8-dynamic\" class=\"chosen\">"));
  // int8-dynamic: p50, p90, p99, throughput, load, first call, peak RSS, size, speed-up.
  EXPECT_TRUE(contains(table,
                       "<td>33.73</td><td>34.68</td><td>36.44</td><td>29.82/s</td><td>590.2</td>"
                       "<td>45.90</td><td>236.4 MB</td><td>108.4 MB</td><td>3.38×</td>"));
}

TEST(PipelineReportHtml, AccuracyTableHasARowPerVariantAndOutput) {
  json report = sample();
  std::string html = pipeline::render_report_html(report);
  EXPECT_EQ(count(html, "data-output=\""), 6u);  // optimized, bf16, int8-dynamic x 2 outputs
  EXPECT_TRUE(contains(html,
                       "<tr data-variant=\"int8-dynamic\" data-output=\"last_hidden_state\"><td class=\"l\">"
                       "int8-dynamic</td><td class=\"l\">last_hidden_state</td><td>0.99712</td>"
                       "<td>0.99655</td><td>0.129</td>"));
  EXPECT_TRUE(contains(html, "<td>100.0%</td>"));  // pooler_output's retrieval
  EXPECT_FALSE(contains(html, "class=\"fails\""));
  EXPECT_EQ(count(html, "<span class=\"ok\">holds</span>"), 6u);

  // A variant outside its bound: both its rows marked.
  report["variants"][2]["accuracy"]["holds"] = false;
  html = pipeline::render_report_html(report);
  EXPECT_EQ(count(html, "<tr data-variant=\"bf16\" data-output=\"last_hidden_state\" class=\"fails\">"), 1u);
  EXPECT_EQ(count(html, "class=\"fails\""), 2u);
  EXPECT_EQ(count(html, "<span class=\"bad\">fails</span>"), 2u);
}

TEST(PipelineReportHtml, FusionSummarySkippedNotesAndCommands) {
  const std::string html = pipeline::render_report_html(sample());
  EXPECT_TRUE(contains(html, "Nodes: <b>836</b> → <b>76</b> (-91%)"));
  EXPECT_TRUE(contains(html, "<td class=\"l\">attention_fusion</td><td class=\"l\">Attention</td><td>12</td>"));
  EXPECT_TRUE(contains(html, "<td class=\"l\">MatMul</td><td>96</td><td>24</td>"));
  EXPECT_TRUE(contains(html, "<td class=\"l\">com.microsoft.SkipLayerNormalization</td><td>–</td><td>24</td>"));
  EXPECT_TRUE(contains(html, "<li data-variant=\"int8-static\"><b>int8-static</b>"));
  EXPECT_TRUE(contains(html, "no calibration data: int8-static needs representative inputs (--calibration DIR)"));
  EXPECT_TRUE(contains(html, "<li>int8-static was skipped: no --calibration folder was given.</li>"));
  EXPECT_TRUE(contains(html, "<pre><code>kiln pipeline --preset bert-base --batch 1 --seq 128 --vs ort -o out\n"));
}

TEST(PipelineReportHtml, EscapesEveryString) {
  json report = sample();
  const std::string evil = "<b>opt&\"imized</b>";
  report["variants"][1]["name"] = evil;
  report["chosen"]["variant"] = evil;
  report["headline"] = evil + " wins";
  report["model"]["source"] = "<script>alert(1)</script>";
  report["machine"]["cpu"] = "Fast & <Cheap>";
  report["variants"][1]["accuracy"]["outputs"][0]["name"] = "out<1>";
  report["notes"] = {"a < b & c"};
  report["commands"] = {"echo \"<x>\" && ls"};
  report["peers"][0]["name"] = "ort'<peer>";
  const std::string html = pipeline::render_report_html(report);
  EXPECT_FALSE(contains(html, "<b>opt"));
  EXPECT_FALSE(contains(html, "<script>"));
  EXPECT_FALSE(contains(html, "<Cheap>"));
  EXPECT_FALSE(contains(html, "<peer>"));
  EXPECT_FALSE(contains(html, "out<1>"));
  EXPECT_TRUE(contains(html, "&lt;b&gt;opt&amp;&quot;imized&lt;/b&gt;"));
  EXPECT_TRUE(contains(html, "data-variant=\"&lt;b&gt;opt&amp;&quot;imized&lt;/b&gt;\""));
  EXPECT_TRUE(contains(html, "Fast &amp; &lt;Cheap&gt;"));
  EXPECT_TRUE(contains(html, "<li>a &lt; b &amp; c</li>"));
  EXPECT_TRUE(contains(html, "echo &quot;&lt;x&gt;&quot; &amp;&amp; ls"));
  EXPECT_TRUE(contains(chart(html, "latency"), "ort&#39;&lt;peer&gt;"));
}

TEST(PipelineReportHtml, NullFiguresPrintAsDashes) {
  json report = sample();
  json& optimized = report["variants"][1];
  for (const char* key : {"p90_ms", "p99_ms", "throughput_items_per_s", "speedup"})
    optimized["results"][0][key] = nullptr;
  optimized["results"][0].erase("latencies_ms");
  report["variants"][2]["size_mb"] = nullptr;
  report["variants"][3]["accuracy"]["outputs"][0]["cosine"] = nullptr;
  report["machine"]["cores"] = nullptr;
  report["machine"]["features"] = nullptr;
  report["optimization"]["nodes_before"] = nullptr;
  report["chosen"]["speedup"] = nullptr;
  std::string html;
  ASSERT_NO_THROW(html = pipeline::render_report_html(report));
  EXPECT_TRUE(contains(html, "<tr data-engine=\"optimized\"><td class=\"l\">"));
  EXPECT_TRUE(contains(table_after(html, "data-chart=\"speedup\""),
                       "<td>71.95</td><td>–</td><td>–</td><td>–</td><td>412.8</td>"));
  EXPECT_TRUE(contains(chart(html, "speedup"), ">n/a<"));  // optimized's bar
  EXPECT_TRUE(contains(chart(html, "size"), ">n/a<"));     // bf16's bar
  EXPECT_TRUE(contains(html, "<dt>cores</dt><dd>–</dd>"));
  EXPECT_TRUE(contains(html, "Nodes: <b>–</b> → <b>76</b>"));
  EXPECT_TRUE(contains(html, "<td class=\"l\">last_hidden_state</td><td>–</td>"));
  EXPECT_TRUE(contains(html, "<b>–</b><span>faster than the baseline (p50)</span>"));
  // The latency chart still draws the optimized variant from its percentiles alone.
  EXPECT_EQ(count(chart(html, "latency"), "fill-opacity=\"0.5\""), 80u);
}

TEST(PipelineReportHtml, MalformedOrEmptyReportsStillRender) {
  for (const json& report : {json(), json::object(), json::array(), json{{"variants", "x"}, {"peers", 3}},
                             json{{"variants", {{{"name", "baseline"}, {"results", {{{"batch", "one"}}}}}}}}}) {
    std::string html, markdown;
    ASSERT_NO_THROW(html = pipeline::render_report_html(report)) << report.dump();
    ASSERT_NO_THROW(markdown = pipeline::render_report_markdown(report)) << report.dump();
    EXPECT_TRUE(contains(html, "</html>"));
    EXPECT_TRUE(contains(html, "No variant met the accuracy bound"));
    EXPECT_TRUE(contains(markdown, "# kiln pipeline report"));
  }
}

TEST(PipelineReportHtml, NoPeersAndNoChosenVariant) {
  json report = sample();
  report["peers"] = json::array();
  report["settings"]["peers"] = json::array();
  report["chosen"] = nullptr;
  report["headline"] = "no variant met cosine=0.01: keep the baseline";
  const std::string html = pipeline::render_report_html(report);
  EXPECT_EQ(count(html, "<svg"), 3u);
  EXPECT_FALSE(contains(chart(html, "latency"), "onnxruntime"));
  EXPECT_EQ(count(chart(html, "speedup"), "<rect"), 4u);
  EXPECT_TRUE(contains(html, "<h1>no variant met cosine=0.01: keep the baseline</h1>"));
  EXPECT_TRUE(contains(html,
                       "No variant met the accuracy bound <code>cosine=0.01</code>: keep the baseline, "
                       "<code>out/model.baseline.onnx</code>."));
  EXPECT_FALSE(contains(html, "class=\"kpis\""));
  EXPECT_FALSE(contains(html, "(chosen)"));
  EXPECT_TRUE(contains(html, "<dt>peers</dt><dd>none</dd>"));
}

TEST(PipelineReportHtml, OneLatencyAndSpeedupChartPerConfiguration) {
  const std::string html = pipeline::render_report_html(with_batch_8(sample()));
  EXPECT_EQ(count(html, "data-chart=\"latency\""), 2u);
  EXPECT_EQ(count(html, "data-chart=\"speedup\""), 2u);
  EXPECT_EQ(count(html, "data-chart=\"size\""), 1u);
  EXPECT_TRUE(contains(html, "<h3>batch 1 · sequence 128</h3>"));
  EXPECT_TRUE(contains(html, "<h3>batch 8 · sequence 128</h3>"));
  EXPECT_LT(html.find("batch 1 · sequence 128</h3>"), html.find("batch 8 · sequence 128</h3>"));
  // The second chart holds batch 8's latencies: 6 x 113.93 ms.
  EXPECT_TRUE(contains(chart(html, "latency", 1), ">p50 683.6 ms<"));
  EXPECT_TRUE(contains(chart(html, "latency", 1), ">800<"));
}

TEST(PipelineReportHtml, ModelWithoutSequenceDim) {
  const json report = without_sequence_dim(sample());
  const std::string html = pipeline::render_report_html(report);
  EXPECT_TRUE(contains(html, "<h3>batch 1</h3>"));
  EXPECT_TRUE(contains(html, "data-seq=\"none\""));
  EXPECT_EQ(count(html, "data-chart=\"latency\""), 1u);
  EXPECT_EQ(count(chart(html, "latency"), "fill-opacity=\"0.5\""), 100u);
  EXPECT_TRUE(contains(html, "<dt>sequences</dt><dd>none (no sequence dim)</dd>"));
}

// ---- report.md ----

TEST(PipelineReportMarkdown, LatencyTableRows) {
  const std::string md = pipeline::render_report_markdown(sample());
  EXPECT_TRUE(contains(md,
                       "## Latency, batch 1 · sequence 128\n\n"
                       "| engine | precision | p50 ms | p90 ms | p99 ms | throughput | load ms | peak RSS | size "
                       "| speed-up |\n"
                       "| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |\n"
                       "| baseline | fp32 | 113.9 | 116.1 | 128.8 | 8.71/s | 350.1 | 520.3 MB | 417.7 MB | 1.00x |\n"
                       "| optimized | fp32 | 71.95 | 73.16 | 79.35 | 13.86/s | 412.8 | 489.1 MB | 417.6 MB | 1.58x |\n"
                       "| bf16 | bf16 | 48.91 | 50.08 | 54.11 | 20.33/s | 655.4 | 402.7 MB | 209.1 MB | 2.33x |\n"
                       "| **int8-dynamic** (chosen) | int8 | 33.73 | 34.68 | 36.44 | 29.82/s | 590.2 | 236.4 MB "
                       "| 108.4 MB | 3.38x |\n"
                       "| onnxruntime (peer) | 1.31.1, f32 | 68.27 | 69.58 | 76.63 | 14.59/s | 1210 | 611.8 MB | "
                       "– | 1.67x |\n\n"))
      << md;
  EXPECT_FALSE(contains(md, "| int8-static |"));
}

TEST(PipelineReportMarkdown, HeadlineMachineAccuracyFusionSkippedNotesCommands) {
  const std::string md = pipeline::render_report_markdown(sample());
  EXPECT_EQ(
      md.rfind("# kiln pipeline report\n\n**int8-dynamic: 3.4x faster than the baseline, cosine 0.99712**\n\n", 0), 0u);
  EXPECT_TRUE(contains(md,
                       "Use this: `out/model.int8-dynamic.onnx` (int8-dynamic: optimized, int8 weights, "
                       "activations quantized per call) — 3.38x faster than the baseline, 2.02x vs onnxruntime, "
                       "cosine 0.99712.\n"));
  EXPECT_TRUE(contains(md, "| CPU | AMD EPYC 9R14 96-Core Processor |\n"));
  EXPECT_TRUE(contains(md, "| kernel tier | avx512 |\n"));
  EXPECT_TRUE(contains(md, "| cores / threads | 2 / 2 |\n"));
  EXPECT_TRUE(contains(md,
                       "| bf16 | last_hidden_state | 0.99962 | 0.99951 | 0.0412 | – | – | – | 0.99962 | 0.99951 "
                       "| `cosine=0.01` holds |\n"));
  EXPECT_TRUE(contains(md,
                       "| optimized | pooler_output | 0.99999990 | 0.99999980 | 3e-05 | – | – | 100.0% | – | – "
                       "| `cosine=0.01` holds |\n"));
  EXPECT_TRUE(contains(md, "Nodes: 836 → 76 (-91%).\n"));
  EXPECT_TRUE(contains(md, "| attention_fusion | Attention | 12 |\n"));
  EXPECT_TRUE(contains(md, "| MatMul | 96 | 24 |\n"));
  EXPECT_TRUE(contains(md,
                       "## Skipped\n\n- **int8-static** (optimized, int8 weights and calibrated activations): "
                       "no calibration data: int8-static needs representative inputs (--calibration DIR)\n"));
  EXPECT_TRUE(contains(md, "## Notes\n\n- int8-static was skipped: no --calibration folder was given.\n"));
  EXPECT_TRUE(contains(md,
                       "## Reproduce\n\n```sh\nkiln pipeline --preset bert-base --batch 1 --seq 128 --vs ort -o "
                       "out\n"));
}

TEST(PipelineReportMarkdown, FailingBoundNoChosenSeveralConfigurationsAndEscaping) {
  json report = with_batch_8(sample());
  report["chosen"] = nullptr;
  report["headline"] = nullptr;
  report["variants"][3]["accuracy"]["holds"] = false;
  report["variants"][1]["name"] = "a|b<c>";
  report["peers"] = json::array();
  const std::string md = pipeline::render_report_markdown(report);
  EXPECT_TRUE(contains(md,
                       "**No variant met the accuracy bound**\n\n"
                       "No variant met the accuracy bound `cosine=0.01`: keep the baseline, "
                       "`out/model.baseline.onnx`.\n"));
  EXPECT_TRUE(contains(md, "## Latency, batch 1 · sequence 128\n"));
  EXPECT_TRUE(contains(md, "## Latency, batch 8 · sequence 128\n"));
  EXPECT_TRUE(contains(md, "| a\\|b&lt;c&gt; | fp32 | 431.7 |"));  // 6 x 71.95 ms
  EXPECT_EQ(count(md, "`cosine=0.01` **fails** |"), 2u);
  EXPECT_FALSE(contains(md, "(chosen)"));
  EXPECT_FALSE(contains(md, "onnxruntime (peer)"));
}

TEST(PipelineReportMarkdown, ModelWithoutSequenceDim) {
  const json report = without_sequence_dim(sample());
  const std::string md = pipeline::render_report_markdown(report);
  EXPECT_TRUE(contains(md, "## Latency, batch 1\n\n"));
  EXPECT_TRUE(contains(md, "| sequences | none (no sequence dim) |\n"));
  EXPECT_TRUE(contains(md, "| baseline | fp32 | 113.9 |"));
}

}  // namespace
}  // namespace kiln::pipeline_report_test

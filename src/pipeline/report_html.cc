#include "pipeline/report_html.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/report_figures.h"
#include "pipeline/svg_chart.h"

namespace kiln::pipeline {

// Named, not anonymous: the sanitizer build compiles kiln_core as a unity build (see svg_chart.cc).
namespace report_html_detail {

using nlohmann::json;
namespace fig = report_figures;
using svg::xml_escape;

// kiln's variants in one warm family, light (baseline) to deep; the peers in a blue family.
constexpr const char* kKilnColors[] = {"#d9a877", "#e07b39", "#c4502a", "#9a3a1e", "#6e2914", "#b8683f"};
constexpr const char* kPeerColors[] = {"#3b6ea5", "#7aa3cf", "#26466b", "#5c8f8a"};

std::string color_of(const fig::Engine& e) {
  if (e.peer) return kPeerColors[e.family_index % std::size(kPeerColors)];
  return kKilnColors[e.family_index % std::size(kKilnColors)];
}

const char* kStyle = R"css(
:root { --ink:#1f2328; --muted:#656d76; --line:#d8dee4; --soft:#eaeef2; --bg:#f5f6f8; --kiln:#c4502a;
  --peer:#3b6ea5; --ok:#1a7f37; --bad:#cf222e; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans",
  "DejaVu Sans", sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 24px 40px; }
header.hero { background: linear-gradient(135deg, #ffffff 0%, #fbf0e8 100%); border: 1px solid var(--line);
  border-left: 6px solid var(--kiln); border-radius: 10px; padding: 20px 26px 22px; }
.eyebrow { text-transform: uppercase; letter-spacing: .07em; font-size: 12px; color: var(--muted); }
h1 { font-size: 26px; line-height: 1.25; margin: 6px 0 10px; }
.use { font-size: 15px; margin: 0; }
.use.none { color: var(--bad); }
.sub { color: var(--muted); font-size: 13px; margin: 6px 0 0; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin-top: 16px; }
.kpi { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; }
.kpi b { display: block; font-size: 20px; font-variant-numeric: tabular-nums; }
.kpi span { color: var(--muted); font-size: 12px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 22px 18px;
  margin-top: 18px; }
h2 { font-size: 18px; margin: 0 0 10px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.grid3 { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 22px; }
.pair { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 22px; align-items: start; }
@media (max-width: 900px) { .grid3, .pair { grid-template-columns: 1fr; } }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 3px 14px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.chip { display: inline-block; padding: 0 7px; margin: 1px 2px 1px 0; border-radius: 10px; background: #eef1f4;
  font-size: 12px; }
.tablewrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 7px; border-bottom: 1px solid var(--soft); text-align: right; white-space: nowrap; }
th { color: var(--muted); font-weight: 600; background: #fafbfc; white-space: normal; vertical-align: bottom; }
th.l, td.l { text-align: left; }
tr.chosen td { background: #fdf4ee; }
tr.fails td { background: #fff0ee; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.ok { color: var(--ok); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
figure { margin: 6px 0 14px; }
figcaption { color: var(--muted); font-size: 12.5px; margin-bottom: 2px; }
svg.chart { display: block; height: auto; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace;
  font-size: 12.5px; }
pre { background: #14191f; color: #e6edf3; padding: 12px 16px; border-radius: 8px; overflow-x: auto;
  margin: 0; line-height: 1.6; }
ul { margin: 4px 0; padding-left: 20px; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 18px; }
)css";

// ---- small builders ----

std::string tag(const std::string& name, const std::string& content, const std::string& attributes = "") {
  return "<" + name + (attributes.empty() ? "" : " " + attributes) + ">" + content + "</" + name + ">";
}

std::string th(const std::string& text, bool left = false) {
  return tag("th", xml_escape(text), left ? "class=\"l\"" : "");
}
// `html` is already escaped markup.
std::string td_html(const std::string& html, bool left = false) { return tag("td", html, left ? "class=\"l\"" : ""); }
std::string td(const std::string& text, bool left = false) { return td_html(xml_escape(text), left); }

std::string fact(const std::string& name, const std::string& value_html) {
  return tag("dt", xml_escape(name)) + tag("dd", value_html.empty() ? fig::kMissing : value_html);
}

std::string code(const std::string& text) { return tag("code", xml_escape(text)); }

std::string swatch(const std::string& color) {
  return "<span class=\"swatch\" style=\"background:" + xml_escape(color) + "\"></span>";
}

std::string yes_no(const json& parent, const char* key) {
  const json& v = parent.is_object() && parent.contains(key) ? parent[key] : json();
  return v.is_boolean() ? (v.get<bool>() ? "yes" : "no") : fig::kMissing;
}

// A JSON array of scalars as "a, b, c"; kMissing when empty.
std::string joined(const json& values, const std::string& separator = ", ") {
  std::string out;
  for (const json& v : values) out += (out.empty() ? "" : separator) + fig::scalar_text(v);
  return out.empty() ? fig::kMissing : out;
}

const json* variant_named(const json& report, const std::string& name) {
  for (const json& v : fig::array(report, "variants"))
    if (fig::text(v, "name") == name) return &v;
  return nullptr;
}

std::optional<double> baseline_size(const json& report) {
  const json& variants = fig::array(report, "variants");
  if (!variants.empty())
    if (auto s = fig::number(variants[0], "size_mb")) return s;
  return fig::number(fig::object(report, "model"), "size_mb");
}

// ---- sections ----

std::string hero(const json& report) {
  const json& chosen = fig::object(report, "chosen");
  const json& model = fig::object(report, "model");
  const json& settings = fig::object(report, "settings");
  std::string headline = fig::text(report, "headline");
  const std::string variant = fig::text(chosen, "variant");
  if (headline.empty())
    headline = variant.empty() ? "No variant met the accuracy bound" : variant + " is the variant to use";

  std::string out = "<header class=\"hero\">";
  const std::string source = fig::text(model, "source");
  out += tag("div", "kiln pipeline report" + (source.empty() ? "" : " · " + xml_escape(source)), "class=\"eyebrow\"");
  out += tag("h1", xml_escape(headline));
  if (!variant.empty()) {
    const json* v = variant_named(report, variant);
    const std::string label = v ? fig::text(*v, "label") : "";
    out += tag("p",
               "Use this: " + code(fig::text(chosen, "file").empty() ? variant : fig::text(chosen, "file")) + " — " +
                   xml_escape(variant) + (label.empty() ? "" : " (" + xml_escape(label) + ")"),
               "class=\"use\"");
  } else {
    const std::string bound = fig::text(settings, "max_drop");
    const std::string file = fig::text(model, "path");
    out += tag("p",
               "No variant met the accuracy bound" + (bound.empty() ? "" : " " + code(bound)) + ": keep the baseline" +
                   (file.empty() ? "" : ", " + code(file)) + ".",
               "class=\"use none\"");
  }
  std::string sub;
  if (!fig::text(model, "path").empty()) sub += "model " + code(fig::text(model, "path"));
  if (auto s = fig::number(model, "size_mb")) sub += (sub.empty() ? "" : " · ") + xml_escape(fig::megabytes(s));
  if (!fig::text(report, "created").empty())
    sub += (sub.empty() ? "" : " · ") + std::string("measured ") + xml_escape(fig::text(report, "created"));
  if (!sub.empty()) out += tag("p", sub, "class=\"sub\"");

  if (!variant.empty()) {
    std::string kpis;
    auto kpi = [&](const std::string& value, const std::string& caption) {
      kpis += tag("div", tag("b", xml_escape(value)) + tag("span", xml_escape(caption)), "class=\"kpi\"");
    };
    kpi(fig::speedup(fig::number(chosen, "speedup")), "faster than the baseline (p50)");
    const json& vs = fig::object(chosen, "speedup_vs_peers");
    if (vs.is_object())
      for (const auto& [peer, value] : vs.items())
        kpi(fig::speedup(value.is_number() ? std::optional<double>(value.get<double>()) : std::nullopt), "vs " + peer);
    if (!fig::text(chosen, "accuracy").empty()) kpi(fig::text(chosen, "accuracy"), "accuracy against the baseline");
    if (const json* v = variant_named(report, variant)) {
      const std::optional<double> size = fig::number(*v, "size_mb"), base = baseline_size(report);
      std::string caption = "file size";
      if (size && base && *base > 0) caption += ", " + fig::fixed(100.0 * *size / *base, 0) + "% of the baseline";
      kpi(fig::megabytes(size), caption);
      const json& results = fig::array(*v, "results");
      if (!results.empty()) {
        fig::Configuration first{0, std::nullopt};
        const auto configs = fig::configurations(report);
        if (!configs.empty()) first = configs.front();
        for (const json& r : results)
          if (first.matches(r)) kpi(fig::ms(fig::number(r, "p50_ms")) + " ms", "p50 latency, " + first.title());
      }
    }
    out += tag("div", kpis, "class=\"kpis\"");
  }
  return out + "</header>";
}

std::string environment(const json& report) {
  const json& machine = fig::object(report, "machine");
  const json& model = fig::object(report, "model");
  const json& settings = fig::object(report, "settings");

  std::string features;
  for (const json& f : fig::array(machine, "features"))
    features += tag("span", xml_escape(fig::scalar_text(f)), "class=\"chip\"");
  std::string m;
  m += fact("CPU", xml_escape(fig::text(machine, "cpu")));
  m += fact("kernel tier", xml_escape(fig::text(machine, "isa")));
  m += fact("features", features);
  m += fact("GEMM", xml_escape(fig::text(machine, "gemm")));
  m += fact("faster bf16", yes_no(machine, "bf16"));
  m += fact("faster int8", yes_no(machine, "int8"));
  m += fact("cores", xml_escape(fig::fixed(fig::number(machine, "cores"), 0)));
  m += fact("threads", xml_escape(fig::fixed(fig::number(machine, "threads"), 0)));

  std::string inputs;
  for (const json& i : fig::array(model, "inputs"))
    inputs += (inputs.empty() ? "" : "<br>") + code(fig::scalar_text(i));
  std::string md;
  md += fact("file", fig::text(model, "path").empty() ? "" : code(fig::text(model, "path")));
  md += fact("source", xml_escape(fig::text(model, "source")));
  md += fact("size", xml_escape(fig::megabytes(fig::number(model, "size_mb"))));
  md += fact("inputs", inputs);

  std::string s;
  s += fact("batches", xml_escape(joined(fig::array(settings, "batches"))));
  const json& seqs = fig::array(settings, "seqs");
  s += fact("sequences", seqs.empty() ? "none (no sequence dim)" : xml_escape(joined(seqs)));
  s += fact("threads", xml_escape(fig::fixed(fig::number(settings, "threads"), 0)));
  s += fact("timing", xml_escape(fig::fixed(fig::number(settings, "warmup"), 0) + " warm-up, " +
                                 fig::fixed(fig::number(settings, "iterations"), 0) + " timed × " +
                                 fig::fixed(fig::number(settings, "rounds"), 0) + " rounds"));
  s += fact("accuracy bound", fig::text(settings, "max_drop").empty() ? "" : code(fig::text(settings, "max_drop")));
  s += fact("validation", xml_escape(fig::text(settings, "validation_inputs")));
  const json& peers = fig::array(settings, "peers");
  s += fact("peers", peers.empty() ? "none" : xml_escape(joined(peers)));

  return "<section id=\"environment\"><div class=\"grid3\">" +
         tag("div", tag("h2", "Machine") + tag("dl", m, "class=\"facts\"")) +
         tag("div", tag("h2", "Model") + tag("dl", md, "class=\"facts\"")) +
         tag("div", tag("h2", "Settings") + tag("dl", s, "class=\"facts\"")) + "</div></section>";
}

std::string engine_label(const fig::Engine& e) { return e.name.empty() ? std::string("(unnamed)") : e.name; }

std::string latency_table(const std::vector<fig::Engine>& engines) {
  std::string out = "<div class=\"tablewrap\"><table><thead><tr>" + th("engine", true) + th("precision", true) +
                    th("p50 ms") + th("p90 ms") + th("p99 ms") + th("throughput") + th("load ms") +
                    th("first call ms") + th("peak RSS") + th("size") + th("speed-up") + "</tr></thead><tbody>";
  for (const auto& e : engines) {
    const json& r = e.result ? *e.result : json();
    std::string row = td_html(swatch(color_of(e)) + xml_escape(engine_label(e)) + (e.chosen ? " <b>(chosen)</b>" : "") +
                                  (e.peer ? " <span class=\"muted\">peer</span>" : ""),
                              true);
    row += td(e.detail.empty() ? fig::kMissing : e.detail, true);
    for (const char* key : {"p50_ms", "p90_ms", "p99_ms"}) row += td(fig::ms(fig::number(r, key)));
    row += td(fig::throughput(fig::number(r, "throughput_items_per_s")));
    row += td(fig::ms(fig::number(r, "load_ms")));
    row += td(fig::ms(fig::number(r, "first_ms")));
    row += td(fig::megabytes(fig::number(r, "peak_rss_mb")));
    row += td(e.peer ? fig::kMissing : fig::megabytes(e.size_mb));
    row += td(fig::speedup(fig::number(r, "speedup")));
    out += tag("tr", row,
               std::string("data-engine=\"") + xml_escape(e.name) + "\"" + (e.chosen ? " class=\"chosen\"" : ""));
  }
  return out + "</tbody></table></div>";
}

std::string configuration_block(const json& report, const fig::Configuration& config) {
  const std::vector<fig::Engine> engines = fig::engines(report, config);
  std::vector<svg::DistributionRow> dist;
  std::vector<svg::BarRow> bars;
  for (const auto& e : engines) {
    const json& r = e.result ? *e.result : json();
    const std::string label = engine_label(e) + (e.chosen ? " (chosen)" : "");
    svg::DistributionRow d;
    d.label = label;
    d.color = color_of(e);
    d.min = fig::number(r, "min_ms");
    d.p50 = fig::number(r, "p50_ms");
    d.p90 = fig::number(r, "p90_ms");
    d.p99 = fig::number(r, "p99_ms");
    d.max = fig::number(r, "max_ms");
    for (const json& s : fig::array(r, "latencies_ms"))
      if (s.is_number()) d.samples.push_back(s.get<double>());
    d.emphasize = e.chosen;
    d.value_text = d.p50 ? "p50 " + fig::ms(d.p50) + " ms" : "";
    dist.push_back(std::move(d));

    svg::BarRow b;
    b.label = label;
    b.value = fig::number(r, "speedup");
    b.color = color_of(e);
    b.value_text = b.value ? fig::speedup(b.value) : "";
    b.emphasize = e.chosen;
    bars.push_back(std::move(b));
  }
  const std::string title = config.title();
  svg::DistributionOptions d_opt;
  d_opt.aria_label = "Latency distribution per engine, " + title;
  svg::BarChartOptions b_opt;
  b_opt.kind = "speedup";
  b_opt.aria_label = "Speed-up over the baseline, " + title;
  b_opt.axis_label = "speed-up over the baseline's p50 (×)";
  b_opt.reference = 1.0;
  b_opt.reference_label = "baseline 1×";
  b_opt.width = 720;

  std::string out = "<div class=\"configuration\" data-batch=\"" + std::to_string(config.batch) + "\" data-seq=\"" +
                    (config.seq ? std::to_string(*config.seq) : std::string("none")) + "\">";
  out += tag("h3", xml_escape(title));
  out += tag("figure", tag("figcaption",
                           "Latency of every timed call (lower is better); kiln's variants in orange, "
                           "other engines in blue") +
                           svg::distribution_chart(dist, d_opt));
  out +=
      tag("figure", tag("figcaption", "Speed-up: the baseline's p50 divided by each engine's p50 (higher is better)") +
                        svg::horizontal_bar_chart(bars, b_opt));
  out += latency_table(engines);
  return out + "</div>";
}

std::string latency_section(const json& report) {
  const auto configs = fig::configurations(report);
  std::string out = "<section id=\"latency\">" + tag("h2", "Latency and speed-up");
  if (configs.empty()) return out + tag("p", "Nothing was measured.", "class=\"muted\"") + "</section>";
  for (const auto& c : configs) out += configuration_block(report, c);
  return out + "</section>";
}

std::string size_section(const json& report) {
  const std::optional<double> base = baseline_size(report);
  std::vector<svg::BarRow> bars;
  const fig::Configuration none{0, std::nullopt};
  for (const auto& e : fig::engines(report, none)) {
    if (e.peer) continue;
    svg::BarRow b;
    b.label = engine_label(e) + (e.chosen ? " (chosen)" : "");
    b.value = e.size_mb;
    b.color = color_of(e);
    b.emphasize = e.chosen;
    if (e.size_mb) {
      b.value_text = fig::megabytes(e.size_mb);
      if (base && *base > 0) b.value_text += " · " + fig::fixed(100.0 * *e.size_mb / *base, 0) + "%";
    }
    bars.push_back(std::move(b));
  }
  svg::BarChartOptions o;
  o.kind = "size";
  o.aria_label = "File size per variant";
  o.axis_label = "file size (MB)";
  o.width = 720;
  return "<section id=\"size\">" + tag("h2", "File size") +
         tag("figure", tag("figcaption",
                           "Size of each variant's .onnx file with its weights, and its share of the "
                           "baseline's") +
                           svg::horizontal_bar_chart(bars, o)) +
         "</section>";
}

std::string accuracy_section(const json& report) {
  std::string rows;
  int index = 0;
  int measured = 0;
  for (const json& v : fig::array(report, "variants")) {
    const bool first = index++ == 0;
    if (!fig::text(v, "skipped").empty()) continue;
    const std::string name = fig::text(v, "name");
    const json& acc = fig::object(v, "accuracy");
    if (!acc.is_object()) {
      if (first) continue;  // the baseline: the reference every other variant is compared with
      rows +=
          tag("tr",
              td(name, true) + td_html("<span class=\"muted\">not validated</span>", true) + "<td colspan=\"9\"></td>",
              "data-variant=\"" + xml_escape(name) + "\"");
      continue;
    }
    const json& holds_v = acc.contains("holds") ? acc["holds"] : json();
    const bool fails = holds_v.is_boolean() && !holds_v.get<bool>();
    const std::string bound = fig::text(acc, "bound");
    std::string verdict = holds_v.is_boolean()
                              ? (fails ? "<span class=\"bad\">fails</span>" : "<span class=\"ok\">holds</span>")
                              : std::string(fig::kMissing);
    if (!bound.empty()) verdict = xml_escape(bound) + " · " + verdict;
    const json& outputs = fig::array(acc, "outputs");
    if (outputs.empty()) {
      rows +=
          tag("tr",
              td(name, true) + td(fig::text(acc, "summary"), true) + "<td colspan=\"8\"></td>" + td_html(verdict, true),
              "data-variant=\"" + xml_escape(name) + "\"" + (fails ? " class=\"fails\"" : ""));
      continue;
    }
    for (const json& o : outputs) {
      ++measured;
      std::string row = td(name, true) + td(fig::text(o, "name"), true);
      row += td(fig::cosine(fig::number(o, "cosine")));
      row += td(fig::cosine(fig::number(o, "min_cosine")));
      row += td(fig::error(fig::number(o, "max_abs_error")));
      for (const char* key : {"top1", "top5", "retrieval"}) row += td(fig::percent(fig::number(o, key)));
      row += td(fig::cosine(fig::number(o, "embedding_cosine_mean")));
      row += td(fig::cosine(fig::number(o, "embedding_cosine_min")));
      row += td_html(verdict, true);
      rows += tag("tr", row,
                  "data-variant=\"" + xml_escape(name) + "\" data-output=\"" + xml_escape(fig::text(o, "name")) + "\"" +
                      (fails ? " class=\"fails\"" : ""));
    }
  }
  std::string out = "<section id=\"accuracy\">" + tag("h2", "Accuracy against the baseline");
  if (rows.empty()) return out + tag("p", "No variant was validated.", "class=\"muted\"") + "</section>";
  const std::string validation = fig::text(fig::object(report, "settings"), "validation_inputs");
  out += tag("p",
             "Each variant's outputs compared with the baseline's" +
                 (validation.empty() ? std::string() : " on " + xml_escape(validation)) +
                 ". Rows of a variant outside its bound are shaded red. Top-1/top-5/retrieval: % agreement.",
             "class=\"muted\"");
  out += "<div class=\"tablewrap\"><table><thead><tr>" + th("variant", true) + th("output", true) + th("cosine") +
         th("min cosine") + th("max abs error") + th("top-1") + th("top-5") + th("retrieval") +
         th("embedding cos mean") + th("embedding cos min") + th("bound", true) + "</tr></thead><tbody>" + rows +
         "</tbody></table></div>";
  return out + "</section>";
}

std::string optimization_section(const json& report) {
  const json& opt = fig::object(report, "optimization");
  std::string out = "<section id=\"optimization\">" + tag("h2", "Graph optimization");
  if (!opt.is_object()) return out + tag("p", "Not run.", "class=\"muted\"") + "</section>";
  const std::optional<double> before = fig::number(opt, "nodes_before"), after = fig::number(opt, "nodes_after");
  std::string summary =
      "Nodes: <b>" + xml_escape(fig::fixed(before, 0)) + "</b> → <b>" + xml_escape(fig::fixed(after, 0)) + "</b>";
  if (before && after && *before > 0)
    summary += " (" + xml_escape(fig::fixed(100.0 * (*after - *before) / *before, 0)) + "%)";
  out += tag("p", summary);

  std::string changes;
  for (const json& c : fig::array(opt, "changes"))
    changes += tag("tr", td(fig::text(c, "pass"), true) + td(fig::text(c, "kind"), true) +
                             td(fig::fixed(fig::number(c, "count"), 0)));
  std::string left = tag("h3", "What the passes changed");
  left += changes.empty() ? tag("p", "No pass changed the graph.", "class=\"muted\"")
                          : "<table><thead><tr>" + th("pass", true) + th("into", true) + th("count") +
                                "</tr></thead><tbody>" + changes + "</tbody></table>";

  // The ops with the most nodes before or after, largest first.
  const std::vector<fig::OpCount> sorted = fig::op_counts(opt);
  constexpr size_t kTopOps = 14;
  std::string op_rows;
  for (size_t i = 0; i < sorted.size() && i < kTopOps; ++i)
    op_rows +=
        tag("tr", td(sorted[i].op, true) + td(fig::fixed(sorted[i].before, 0)) + td(fig::fixed(sorted[i].after, 0)));
  std::string right = tag("h3", "Op counts before and after");
  if (op_rows.empty()) {
    right += tag("p", "Not recorded.", "class=\"muted\"");
  } else {
    right += "<table><thead><tr>" + th("op", true) + th("before") + th("after") + "</tr></thead><tbody>" + op_rows +
             "</tbody></table>";
    if (sorted.size() > kTopOps)
      right += tag("p", std::to_string(sorted.size() - kTopOps) + " more op types in report.json.", "class=\"muted\"");
  }
  return out + tag("div", tag("div", left) + tag("div", right), "class=\"pair\"") + "</section>";
}

std::string skipped_section(const json& report) {
  const auto skipped = fig::skipped_variants(report);
  if (skipped.empty()) return "";
  std::string items;
  for (const json* v : skipped) {
    const std::string label = fig::text(*v, "label");
    items += tag("li",
                 "<b>" + xml_escape(fig::text(*v, "name")) + "</b>" +
                     (label.empty() ? "" : " <span class=\"muted\">(" + xml_escape(label) + ")</span>") + ": " +
                     xml_escape(fig::text(*v, "skipped")),
                 "data-variant=\"" + xml_escape(fig::text(*v, "name")) + "\"");
  }
  return "<section id=\"skipped\">" + tag("h2", "Skipped") + tag("ul", items) + "</section>";
}

std::string notes_section(const json& report) {
  std::string items;
  for (const json& n : fig::array(report, "notes")) items += tag("li", xml_escape(fig::scalar_text(n)));
  if (items.empty()) return "";
  return "<section id=\"notes\">" + tag("h2", "Notes") + tag("ul", items) + "</section>";
}

std::string commands_section(const json& report) {
  std::string lines;
  for (const json& c : fig::array(report, "commands")) lines += xml_escape(fig::scalar_text(c)) + "\n";
  if (lines.empty()) return "";
  return "<section id=\"commands\">" + tag("h2", "Reproduce") + "<pre><code>" + lines + "</code></pre></section>";
}

std::string render(const json& report) {
  std::string headline = fig::text(report, "headline");
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      // Self-contained by construction: the page may load nothing, run nothing.
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
      "img-src data:\">\n"
      "<title>kiln pipeline" +
      (headline.empty() ? std::string() : " · " + xml_escape(headline)) + "</title>\n<style>" + kStyle +
      "</style>\n</head>\n<body>\n<main>\n";
  out += hero(report) + "\n";
  out += environment(report) + "\n";
  out += latency_section(report) + "\n";
  out += size_section(report) + "\n";
  out += accuracy_section(report) + "\n";
  out += optimization_section(report) + "\n";
  out += skipped_section(report);
  out += notes_section(report);
  out += commands_section(report) + "\n";
  std::string footer = "kiln";
  if (!fig::text(report, "kiln_version").empty()) footer += " " + xml_escape(fig::text(report, "kiln_version"));
  if (!fig::text(report, "schema").empty()) footer += " · " + xml_escape(fig::text(report, "schema"));
  if (!fig::text(report, "created").empty()) footer += " · " + xml_escape(fig::text(report, "created"));
  out += tag("footer", footer + " · every figure is in report.json") + "\n</main>\n</body>\n</html>\n";
  return out;
}

}  // namespace report_html_detail

std::string render_report_html(const nlohmann::json& report) { return report_html_detail::render(report); }

}  // namespace kiln::pipeline

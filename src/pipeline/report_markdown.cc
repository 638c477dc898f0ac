#include "pipeline/report_markdown.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/report_figures.h"

namespace kiln::pipeline {

// Named, not anonymous: the sanitizer build compiles kiln_core as a unity build (see svg_chart.cc).
namespace report_markdown_detail {

using nlohmann::json;
namespace fig = report_figures;

// Text for a table cell or a line: "|" would end the cell, "<" and ">" could open HTML, a newline would
// end the row.
std::string md(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '|':
        out += "\\|";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\n':
      case '\r':
        out += ' ';
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A code span that survives backticks in the text (a longer fence) and "|" in a table.
std::string code(const std::string& text) {
  size_t longest = 0, run = 0;
  for (char c : text) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  const std::string fence(longest + 1, '`');
  std::string body;
  for (char c : text) body += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
  const bool pad = !body.empty() && (body.front() == '`' || body.back() == '`');
  return fence + (pad ? " " : "") + body + (pad ? " " : "") + fence;
}

std::string or_missing(const std::string& text) { return text.empty() ? fig::kMissing : text; }

// `cells` already escaped; `right` says which columns hold figures.
std::string table(const std::vector<std::string>& header, const std::vector<bool>& right,
                  const std::vector<std::vector<std::string>>& rows) {
  std::string out = "|";
  for (const auto& h : header) out += " " + h + " |";
  out += "\n|";
  for (size_t c = 0; c < header.size(); ++c) out += c < right.size() && right[c] ? " --: |" : " --- |";
  out += "\n";
  for (const auto& r : rows) {
    out += "|";
    for (const auto& cell : r) out += " " + cell + " |";
    out += "\n";
  }
  return out + "\n";
}

std::string joined(const json& values) {
  std::string out;
  for (const json& v : values) out += (out.empty() ? "" : ", ") + fig::scalar_text(v);
  return out;
}

std::string yes_no(const json& parent, const char* key) {
  const json& v = parent.is_object() && parent.contains(key) ? parent[key] : json();
  return v.is_boolean() ? (v.get<bool>() ? "yes" : "no") : fig::kMissing;
}

const json* variant_named(const json& report, const std::string& name) {
  for (const json& v : fig::array(report, "variants"))
    if (fig::text(v, "name") == name) return &v;
  return nullptr;
}

std::string headline(const json& report) {
  const json& chosen = fig::object(report, "chosen");
  const json& model = fig::object(report, "model");
  const std::string variant = fig::text(chosen, "variant");
  std::string out = "# kiln pipeline report\n\n";
  std::string line = fig::text(report, "headline");
  if (line.empty()) line = variant.empty() ? "No variant met the accuracy bound" : variant + " is the variant to use";
  out += "**" + md(line) + "**\n\n";
  if (!variant.empty()) {
    const json* v = variant_named(report, variant);
    const std::string label = v ? fig::text(*v, "label") : "";
    std::string use = "Use this: " + code(or_missing(fig::text(chosen, "file"))) + " (" + md(variant) +
                      (label.empty() ? "" : ": " + md(label)) + ")";
    std::vector<std::string> facts;
    if (auto s = fig::number(chosen, "speedup")) facts.push_back(fig::speedup(s, "x") + " faster than the baseline");
    const json& vs = fig::object(chosen, "speedup_vs_peers");
    if (vs.is_object())
      for (const auto& [peer, value] : vs.items())
        if (value.is_number()) facts.push_back(fig::speedup(value.get<double>(), "x") + " vs " + md(peer));
    if (!fig::text(chosen, "accuracy").empty()) facts.push_back(md(fig::text(chosen, "accuracy")));
    for (size_t i = 0; i < facts.size(); ++i) use += (i ? ", " : " — ") + facts[i];
    out += use + ".\n\n";
  } else {
    const std::string bound = fig::text(fig::object(report, "settings"), "max_drop");
    out += "No variant met the accuracy bound" + (bound.empty() ? "" : " " + code(bound)) + ": keep the baseline" +
           (fig::text(model, "path").empty() ? "" : ", " + code(fig::text(model, "path"))) + ".\n\n";
  }
  std::string about = "Model: " + code(or_missing(fig::text(model, "path")));
  if (!fig::text(model, "source").empty()) about += " (" + md(fig::text(model, "source")) + ")";
  if (auto s = fig::number(model, "size_mb")) about += ", " + fig::megabytes(s);
  if (!fig::text(report, "created").empty()) about += "; measured " + md(fig::text(report, "created"));
  if (!fig::text(report, "kiln_version").empty()) about += " with kiln " + md(fig::text(report, "kiln_version"));
  return out + about + ".\n\n";
}

std::string machine(const json& report) {
  const json& m = fig::object(report, "machine");
  const json& s = fig::object(report, "settings");
  std::string features;
  for (const json& f : fig::array(m, "features")) features += (features.empty() ? "" : " ") + fig::scalar_text(f);
  std::vector<std::vector<std::string>> rows = {
      {"CPU", md(or_missing(fig::text(m, "cpu")))},
      {"kernel tier", md(or_missing(fig::text(m, "isa")))},
      {"features", md(or_missing(features))},
      {"GEMM", md(or_missing(fig::text(m, "gemm")))},
      {"faster bf16 / int8", yes_no(m, "bf16") + " / " + yes_no(m, "int8")},
      {"cores / threads", fig::fixed(fig::number(m, "cores"), 0) + " / " + fig::fixed(fig::number(m, "threads"), 0)},
  };
  std::string out = "## Machine\n\n" + table({"", ""}, {}, rows);
  const json& seqs = fig::array(s, "seqs");
  const json& peers = fig::array(s, "peers");
  std::vector<std::vector<std::string>> settings = {
      {"batches", md(or_missing(joined(fig::array(s, "batches"))))},
      {"sequences", seqs.empty() ? "none (no sequence dim)" : md(joined(seqs))},
      {"timing", fig::fixed(fig::number(s, "warmup"), 0) + " warm-up, " + fig::fixed(fig::number(s, "iterations"), 0) +
                     " timed × " + fig::fixed(fig::number(s, "rounds"), 0) + " rounds, " +
                     fig::fixed(fig::number(s, "threads"), 0) + " threads"},
      {"accuracy bound", fig::text(s, "max_drop").empty() ? fig::kMissing : code(fig::text(s, "max_drop"))},
      {"validation", md(or_missing(fig::text(s, "validation_inputs")))},
      {"peers", peers.empty() ? "none" : md(joined(peers))},
  };
  return out + "## Settings\n\n" + table({"", ""}, {}, settings);
}

std::string latency(const json& report) {
  std::string out;
  const auto configs = fig::configurations(report);
  if (configs.empty()) return "## Latency\n\nNothing was measured.\n\n";
  for (const auto& c : configs) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : fig::engines(report, c)) {
      const json& r = e.result ? *e.result : json();
      std::string name = md(e.name);
      if (e.chosen) name = "**" + name + "** (chosen)";
      if (e.peer) name += " (peer)";
      rows.push_back({name, md(or_missing(e.detail)), fig::ms(fig::number(r, "p50_ms")),
                      fig::ms(fig::number(r, "p90_ms")), fig::ms(fig::number(r, "p99_ms")),
                      fig::throughput(fig::number(r, "throughput_items_per_s")), fig::ms(fig::number(r, "load_ms")),
                      fig::megabytes(fig::number(r, "peak_rss_mb")), e.peer ? fig::kMissing : fig::megabytes(e.size_mb),
                      fig::speedup(fig::number(r, "speedup"), "x")});
    }
    out += "## Latency, " + c.title() + "\n\n";
    out += table(
        {"engine", "precision", "p50 ms", "p90 ms", "p99 ms", "throughput", "load ms", "peak RSS", "size", "speed-up"},
        {false, false, true, true, true, true, true, true, true, true}, rows);
  }
  return out;
}

std::string accuracy(const json& report) {
  std::vector<std::vector<std::string>> rows;
  int index = 0;
  for (const json& v : fig::array(report, "variants")) {
    const bool first = index++ == 0;
    if (!fig::text(v, "skipped").empty()) continue;
    const std::string name = md(fig::text(v, "name"));
    const json& acc = fig::object(v, "accuracy");
    if (!acc.is_object()) {
      if (!first) rows.push_back({name, "not validated", "", "", "", "", "", "", "", "", ""});
      continue;
    }
    const json& holds = acc.contains("holds") ? acc["holds"] : json();
    std::string verdict = holds.is_boolean() ? (holds.get<bool>() ? "holds" : "**fails**") : fig::kMissing;
    if (!fig::text(acc, "bound").empty()) verdict = code(fig::text(acc, "bound")) + " " + verdict;
    const json& outputs = fig::array(acc, "outputs");
    if (outputs.empty())
      rows.push_back({name, md(or_missing(fig::text(acc, "summary"))), "", "", "", "", "", "", "", "", verdict});
    for (const json& o : outputs)
      rows.push_back({name, md(or_missing(fig::text(o, "name"))), fig::cosine(fig::number(o, "cosine")),
                      fig::cosine(fig::number(o, "min_cosine")), fig::error(fig::number(o, "max_abs_error")),
                      fig::percent(fig::number(o, "top1")), fig::percent(fig::number(o, "top5")),
                      fig::percent(fig::number(o, "retrieval")), fig::cosine(fig::number(o, "embedding_cosine_mean")),
                      fig::cosine(fig::number(o, "embedding_cosine_min")), verdict});
  }
  if (rows.empty()) return "## Accuracy against the baseline\n\nNo variant was validated.\n\n";
  return "## Accuracy against the baseline\n\n" +
         table({"variant", "output", "cosine", "min cosine", "max abs error", "top-1", "top-5", "retrieval",
                "embedding cos mean", "embedding cos min", "bound"},
               {false, false, true, true, true, true, true, true, true, true, false}, rows);
}

std::string optimization(const json& report) {
  const json& opt = fig::object(report, "optimization");
  std::string out = "## Graph optimization\n\n";
  if (!opt.is_object()) return out + "Not run.\n\n";
  const std::optional<double> before = fig::number(opt, "nodes_before"), after = fig::number(opt, "nodes_after");
  out += "Nodes: " + fig::fixed(before, 0) + " → " + fig::fixed(after, 0);
  if (before && after && *before > 0) out += " (" + fig::fixed(100.0 * (*after - *before) / *before, 0) + "%)";
  out += ".\n\n";
  std::vector<std::vector<std::string>> changes;
  for (const json& c : fig::array(opt, "changes"))
    changes.push_back({md(fig::text(c, "pass")), md(fig::text(c, "kind")), fig::fixed(fig::number(c, "count"), 0)});
  out += changes.empty() ? "No pass changed the graph.\n\n"
                         : table({"pass", "into", "count"}, {false, false, true}, changes);

  const std::vector<fig::OpCount> sorted = fig::op_counts(opt);
  if (sorted.empty()) return out;
  std::vector<std::vector<std::string>> rows;
  for (const fig::OpCount& c : sorted) rows.push_back({md(c.op), fig::fixed(c.before, 0), fig::fixed(c.after, 0)});
  return out + table({"op", "before", "after"}, {false, true, true}, rows);
}

std::string bullets(const std::string& title, const std::vector<std::string>& items) {
  if (items.empty()) return "";
  std::string out = "## " + title + "\n\n";
  for (const auto& i : items) out += "- " + i + "\n";
  return out + "\n";
}

std::string commands(const json& report) {
  std::string lines;
  for (const json& c : fig::array(report, "commands")) lines += fig::scalar_text(c) + "\n";
  if (lines.empty()) return "";
  // A fence longer than any run of backticks in the commands.
  size_t longest = 0, run = 0;
  for (char c : lines) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  const std::string fence(std::max<size_t>(3, longest + 1), '`');
  return "## Reproduce\n\n" + fence + "sh\n" + lines + fence + "\n";
}

std::string render(const json& report) {
  std::vector<std::string> skipped, notes;
  for (const json* v : fig::skipped_variants(report)) {
    const std::string label = fig::text(*v, "label");
    skipped.push_back("**" + md(fig::text(*v, "name")) + "**" + (label.empty() ? "" : " (" + md(label) + ")") + ": " +
                      md(fig::text(*v, "skipped")));
  }
  for (const json& n : fig::array(report, "notes")) notes.push_back(md(fig::scalar_text(n)));
  return headline(report) + machine(report) + latency(report) + accuracy(report) + optimization(report) +
         bullets("Skipped", skipped) + bullets("Notes", notes) + commands(report);
}

}  // namespace report_markdown_detail

std::string render_report_markdown(const nlohmann::json& report) { return report_markdown_detail::render(report); }

}  // namespace kiln::pipeline

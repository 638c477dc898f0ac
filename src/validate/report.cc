#include "validate/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/atomic_file.h"
#include "common/cpu_model_name.h"
#include "common/error.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/onednn_matmul.h"
#include "runtime/threads.h"

namespace kiln::validate {

namespace {

// An error figure: three significant digits, exponent where needed; exact zeros stay "0".
std::string error_text(double v) {
  if (std::isinf(v)) return "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

std::string cosine_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

std::string agreement_text(const Agreement& a) {
  if (a.state == Agreement::State::kNotApplicable) return "-";
  if (a.state == Agreement::State::kUnavailable) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", a.percent());
  return buf;
}

std::string pad(const std::string& text, size_t width, bool right = false) {
  if (text.size() >= width) return text;
  const std::string fill(width - text.size(), ' ');
  return right ? fill + text : text + fill;
}

// Columns of one table: a header and rows of cells; the first `left` columns are left-aligned text, the
// rest right-aligned figures.
std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                  size_t left) {
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size() && c < width.size(); ++c) width[c] = std::max(width[c], r[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      // A row with fewer cells (an output not compared) runs its last cell to the end of the line.
      const bool last = c + 1 == cells.size();
      out += (c ? "  " : "") + (last && cells.size() < header.size() ? cells[c] : pad(cells[c], width[c], c >= left));
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(header);
  for (const auto& r : rows) out += line(r);
  return out;
}

std::string machine_line(const ValidationReport& report) {
  return str("cpu ", cpu_model_name(), "; kiln kernels: ", kernels::cpu::isa_name(kernels::cpu::selected_isa()),
             " (KILN_CPU_ISA), matmuls: ", kernels::cpu::gemm_engine_name(kernels::cpu::auto_gemm_engine()),
             " (KILN_GEMM); OpenMP wait: ", runtime::omp_wait_policy(), "\n", report.options.threads,
             " thread(s), graph optimization level ", passes::level_name(report.options.level),
             " for both models; the candidate's products in ", report.candidate_precision, "\n");
}

std::string outputs_table(const ValidationReport& report) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& f : report.outputs) {
    if (!f.compared()) {
      rows.push_back({f.name, f.reference_type, "not compared: " + f.not_compared});
      continue;
    }
    const bool embedding = f.has_embedding_cosines();
    rows.push_back({f.name, f.reference_type, error_text(f.max_abs_error), error_text(f.max_rel_error),
                    error_text(f.mean_abs_error), cosine_text(f.min_cosine), cosine_text(f.cosine),
                    agreement_text(f.top1), agreement_text(f.top5),
                    embedding ? cosine_text(f.embedding_cosine_mean()) : "-",
                    embedding ? cosine_text(f.embedding_cosine_min()) : "-", agreement_text(f.retrieval)});
  }
  return table({"output", "shape", "max abs", "max rel", "mean abs", "cos min", "cosine", "top-1 %", "top-5 %",
                "emb cos", "emb cos min", "retrieval %"},
               rows, 2);
}

// Lines under the table for what its cells cannot say: n/a reasons, mixed dtypes, non-finite values.
std::string output_remarks(const ValidationReport& report) {
  std::string out;
  for (const auto& f : report.outputs) {
    if (!f.compared()) continue;
    if (f.candidate_type != f.reference_type)
      out += str(f.name, ": the candidate's is ", f.candidate_type, ", compared in double\n");
    if (f.nonfinite_mismatches)
      out += str(f.name, ": ", f.nonfinite_mismatches,
                 " element(s) not finite on one side only (NaN or infinity); left out of mean abs and cosine\n");
    for (const Agreement* a : {&f.top5, &f.retrieval})
      if (a->state == Agreement::State::kUnavailable)
        out += str(f.name, ": ", a == &f.top5 ? "top-5" : "retrieval", " n/a: ", a->why, "\n");
  }
  return out;
}

std::string layers_text(const ValidationReport& report) {
  std::string out = "\n";
  const size_t compared = static_cast<size_t>(std::count_if(
      report.layers.begin(), report.layers.end(), [](const LayerFigures& l) { return l.figures.compared(); }));
  if (report.layers.empty())
    return out + "per layer: the two graphs share no floating-point intermediate value by name\n";
  out += str("per layer: ", report.layers.size(), " floating-point values the two graphs share by name, ", compared,
             " compared over ", report.samples, " sample(s)\n");
  const std::vector<const LayerFigures*> grown = layers_where_error_grows(report, kLayerRows);
  if (grown.empty()) {
    const bool exact = std::all_of(report.layers.begin(), report.layers.end(), [](const LayerFigures& l) {
      return !l.figures.compared() || l.figures.max_abs_error == 0;
    });
    out += exact ? "every shared value is the same in both models (max abs 0)\n"
                 : "no value's error grows beyond the error of the values its node reads\n";
  } else {
    out += str("where the error grows most (the ", grown.size(),
               " largest growths, in graph order; rel L2 = ||cand - ref|| / ||ref||, growth = its rel L2 minus the "
               "largest rel L2 among the shared values its node reads):\n");
    std::vector<std::vector<std::string>> rows;
    for (const LayerFigures* l : grown) {
      const std::string op = l->candidate_op == l->op ? l->op : l->op + " -> " + l->candidate_op;
      rows.push_back({l->node, op, l->value, error_text(l->figures.rel_l2_error), error_text(l->growth),
                      cosine_text(l->figures.cosine), error_text(l->figures.max_abs_error)});
    }
    out += table({"node", "op (reference -> candidate)", "value", "rel L2", "growth", "cosine", "max abs"}, rows, 3);
  }
  if (const LayerFigures* low = layer_with_lowest_cosine(report))
    // 1 - cosine too: six decimals round a cosine of 0.9999999 to 1.
    out +=
        str("lowest cosine: ", cosine_text(low->figures.cosine), " (1 - cosine = ", error_text(1 - low->figures.cosine),
            ") at \"", low->value, "\" (", low->op, " node \"", low->node, "\")\n");
  for (const auto& l : report.layers)
    if (!l.figures.compared()) out += str("not compared: \"", l.value, "\": ", l.figures.not_compared, "\n");
  return out;
}

// JSON has no infinity: an infinite figure (a non-finite mismatch) is null.
nlohmann::json figure(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json agreement_json(const Agreement& a) {
  if (a.state == Agreement::State::kNotApplicable) return nullptr;
  if (a.state == Agreement::State::kUnavailable) return {{"percent", nullptr}, {"why", a.why}};
  return {{"percent", a.percent()}, {"agreeing", a.agreeing}, {"rows", a.rows}};
}

nlohmann::json figures_json(const OutputFigures& f, bool task_figures) {
  nlohmann::json j = {{"name", f.name},
                      {"reference_type", f.reference_type},
                      {"candidate_type", f.candidate_type},
                      {"compared", f.compared()}};
  if (!f.compared()) {
    j["not_compared"] = f.not_compared;
    return j;
  }
  nlohmann::json cosines = nlohmann::json::array(), max_abs = nlohmann::json::array();
  for (double v : f.sample_cosines) cosines.push_back(v);
  for (double v : f.sample_max_abs_errors) max_abs.push_back(figure(v));
  j.update({{"samples", f.samples},
            {"elements", f.elements},
            {"max_abs_error", figure(f.max_abs_error)},
            {"max_rel_error", figure(f.max_rel_error)},
            {"mean_abs_error", f.mean_abs_error},
            {"rel_l2_error", figure(f.rel_l2_error)},
            {"cosine_min", f.min_cosine},
            {"cosine", f.cosine},
            {"nonfinite_mismatches", f.nonfinite_mismatches},
            {"per_sample", {{"cosine", cosines}, {"max_abs_error", max_abs}}}});
  if (task_figures) {
    j["top1"] = agreement_json(f.top1);
    j["top5"] = agreement_json(f.top5);
    j["retrieval"] = agreement_json(f.retrieval);
    j["embedding_cosine"] = nullptr;
    if (f.has_embedding_cosines())
      j["embedding_cosine"] = {{"mean", f.embedding_cosine_mean()},
                               {"min", f.embedding_cosine_min()},
                               {"rows", f.embedding_cosines.size()},
                               {"per_row", f.embedding_cosines}};
  }
  return j;
}

}  // namespace

std::string format_table(const ValidationReport& report) {
  const ValidationOptions& o = report.options;
  std::string out = str("reference  ", o.reference, "\ncandidate  ", o.candidate, "\ninputs     ", report.inputs, "\n");
  out += machine_line(report);
  for (const auto& n : report.notes) out += "note: " + n + "\n";
  out += "\n" + outputs_table(report) + output_remarks(report);
  if (o.per_layer) out += layers_text(report);
  return out;
}

nlohmann::json to_json(const ValidationReport& report) {
  const ValidationOptions& o = report.options;
  nlohmann::json j = {{"reference", o.reference},
                      {"candidate", o.candidate},
                      {"inputs", report.inputs},
                      {"inputs_dir", o.inputs_dir.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.inputs_dir)},
                      {"samples", report.samples},
                      {"threads", o.threads},
                      {"level", passes::level_name(o.level)},
                      {"candidate_precision", report.candidate_precision},
                      {"cpu", cpu_model_name()},
                      {"cpu_isa", kernels::cpu::isa_name(kernels::cpu::selected_isa())},
                      {"gemm", kernels::cpu::gemm_engine_name(kernels::cpu::auto_gemm_engine())},
                      {"omp_wait", runtime::omp_wait_policy()},
                      {"relative_error_floor", kRelativeErrorFloor},
                      {"notes", report.notes}};
  if (!o.text.file.empty())
    j.update(
        {{"text", o.text.file}, {"vocab", o.text.vocab}, {"max_length", o.text.max_length}, {"cased", o.text.cased}});
  else if (o.inputs_dir.empty())
    j.update({{"seed", o.seed}, {"batch", o.batch}, {"seq", o.seq}});
  nlohmann::json outputs = nlohmann::json::array();
  for (const auto& f : report.outputs) outputs.push_back(figures_json(f, true));
  j["outputs"] = std::move(outputs);
  if (o.per_layer) {
    nlohmann::json values = nlohmann::json::array();
    for (const auto& l : report.layers) {
      nlohmann::json v = figures_json(l.figures, false);
      v.update({{"node", l.node}, {"op", l.op}, {"candidate_op", l.candidate_op}, {"graph_order", l.order}});
      if (l.figures.compared()) v["growth"] = figure(l.growth);
      values.push_back(std::move(v));
    }
    nlohmann::json grown = nlohmann::json::array();
    for (const LayerFigures* l : layers_where_error_grows(report, kLayerRows)) grown.push_back(l->value);
    const LayerFigures* low = layer_with_lowest_cosine(report);
    j["per_layer"] = {{"values", std::move(values)},
                      {"where_error_grows", std::move(grown)},
                      {"lowest_cosine", low ? nlohmann::json(low->value) : nlohmann::json(nullptr)}};
  }
  return j;
}

void write_json(const ValidationReport& report, const std::string& path) {
  write_file_atomically(path, to_json(report).dump(2) + "\n", "--json");
}

}  // namespace kiln::validate

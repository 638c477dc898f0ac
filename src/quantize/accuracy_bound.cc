#include "quantize/accuracy_bound.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "common/error.h"

namespace kiln::quantize {
namespace {

struct MetricName {
  std::string_view name;
  AccuracyBound::Metric metric;
};
constexpr MetricName kMetrics[] = {{"cosine", AccuracyBound::Metric::kCosine},
                                   {"top1", AccuracyBound::Metric::kTop1},
                                   {"top5", AccuracyBound::Metric::kTop5},
                                   {"retrieval", AccuracyBound::Metric::kRetrieval}};

std::string_view metric_name(AccuracyBound::Metric m) {
  for (const MetricName& n : kMetrics)
    if (n.metric == m) return n.name;
  return "?";
}

// The output's figure for the metric, or none when it does not measure it.
std::optional<double> figure(const validate::OutputFigures& f, AccuracyBound::Metric m) {
  if (!f.compared()) return std::nullopt;
  switch (m) {
    case AccuracyBound::Metric::kCosine:
      return f.min_cosine;
    case AccuracyBound::Metric::kTop1:
      return f.top1.measured() ? std::optional<double>(f.top1.percent()) : std::nullopt;
    case AccuracyBound::Metric::kTop5:
      return f.top5.measured() ? std::optional<double>(f.top5.percent()) : std::nullopt;
    case AccuracyBound::Metric::kRetrieval:
      return f.retrieval.measured() ? std::optional<double>(f.retrieval.percent()) : std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

AccuracyBound parse_accuracy_bound(std::string_view text) {
  const size_t eq = text.find('=');
  std::string_view name = text.substr(0, eq);
  std::string output;
  if (const size_t colon = name.find(':'); colon != std::string_view::npos) {
    output = std::string(name.substr(colon + 1));
    name = name.substr(0, colon);
  }
  const MetricName* known = nullptr;
  for (const MetricName& n : kMetrics)
    if (n.name == name) known = &n;
  if (eq == std::string_view::npos || !known)
    fail("--max-drop ", text, ": expected METRIC[:OUTPUT]=VALUE with METRIC one of cosine, top1, top5, retrieval ",
         "(e.g. cosine=0.01: every output's cosine to float32 at least 0.99)");
  const std::string value(text.substr(eq + 1));
  double drop = 0;
  size_t used = 0;
  try {
    drop = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const bool cosine = known->metric == AccuracyBound::Metric::kCosine;
  if (used != value.size() || value.empty() || !(drop >= 0) || drop > (cosine ? 1.0 : 100.0))
    fail("--max-drop ", text, ": ", name, " takes a drop between 0 and ", cosine ? "1 (in cosine)" : "100 (in percent points)");
  return {known->metric, drop, output, std::string(text)};
}

std::string BoundCheck::describe() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g (>= %.6g needed)", value, limit);
  return output + ": " + buf;
}

BoundCheck check_bound(const validate::ValidationReport& report, const AccuracyBound& bound) {
  const bool cosine = bound.metric == AccuracyBound::Metric::kCosine;
  const double limit = cosine ? 1.0 - bound.max_drop : 100.0 - bound.max_drop;
  std::optional<BoundCheck> worst;
  bool named_found = false;
  for (const validate::OutputFigures& f : report.outputs) {
    if (!bound.output.empty() && f.name != bound.output) continue;
    named_found = true;
    std::optional<double> v = figure(f, bound.metric);
    // A NaN or infinity where the reference has none is left out of the sums behind every figure: such an
    // output fails the bound whatever its figure says.
    if (v && f.nonfinite_mismatches > 0) v = -1.0;
    if (!v || (worst && *v >= worst->value)) continue;
    worst = BoundCheck{*v >= limit, f.name + " " + std::string(metric_name(bound.metric)), *v, limit};
  }
  if (!bound.output.empty() && !named_found) fail("--max-drop ", bound.text, ": the models have no output \"", bound.output, "\"");
  if (!worst)
    fail("--max-drop ", bound.text, ": no output of this model has a ", metric_name(bound.metric),
         " figure (top1 and top5 need classifier-like outputs, retrieval embedding-like ones; see kiln validate)");
  return *worst;
}

std::vector<std::string> node_names(const ir::Graph& g, const std::vector<std::string>& labels) {
  std::map<std::string, std::string> name_of;
  for (const ir::Node& n : g.nodes)
    if (!n.name.empty()) name_of.emplace(n.label(), n.name);
  std::vector<std::string> names;
  for (const std::string& l : labels)
    if (auto it = name_of.find(l); it != name_of.end()) names.push_back(it->second);
  return names;
}

BoundSearch keep_float_until_bound_holds(const MakeCandidate& make, const std::string& scratch_path,
                                         validate::ValidationOptions validation, const AccuracyBound& bound,
                                         const validate::Progress& progress) {
  BoundSearch search;
  validation.candidate = scratch_path;
  auto say = [&](const std::string& line) {
    if (progress) progress(line, false);
  };

  // The candidate as asked, with per-layer figures to rank its products by.
  validation.per_layer = true;
  const std::vector<std::string> lowered = make({}, scratch_path);
  search.report = validate::run_validation(validation, progress);
  search.check = check_bound(search.report, bound);
  search.steps = 1;
  search.products = lowered.size();
  say("max-drop: every product lowered: " + search.check.describe());
  if (search.check.holds) {
    search.held = true;
    return search;
  }

  // Products by the error they add, the largest first; those the per-layer run did not see (their output
  // fused away or not shared) after them, in graph order.
  const std::set<std::string> lowered_set(lowered.begin(), lowered.end());
  std::vector<const validate::LayerFigures*> grown;
  for (const auto& l : search.report.layers)
    if (l.figures.compared() && lowered_set.count(l.node)) grown.push_back(&l);
  std::stable_sort(grown.begin(), grown.end(), [](const auto* a, const auto* b) { return a->growth > b->growth; });
  std::vector<std::string> ranked;
  std::set<std::string> seen;
  for (const auto* l : grown)
    if (seen.insert(l->node).second) ranked.push_back(l->node);
  for (const std::string& name : lowered)
    if (seen.insert(name).second) ranked.push_back(name);
  search.products = ranked.size();

  // Keeping the first k in float32: grow k until the bound holds, then bisect.
  validation.per_layer = false;
  std::map<size_t, std::pair<validate::ValidationReport, BoundCheck>> tried;
  size_t last_made = 0;
  auto attempt = [&](size_t k) {
    const std::vector<std::string> keep(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(k));
    make(keep, scratch_path);
    last_made = k;
    validate::ValidationReport r = validate::run_validation(validation, progress);
    BoundCheck c = check_bound(r, bound);
    ++search.steps;
    say("max-drop: " + std::to_string(k) + " of " + std::to_string(ranked.size()) + " products kept in float32: " +
        c.describe());
    const bool holds = c.holds;
    tried[k] = {std::move(r), std::move(c)};
    return holds;
  };
  size_t fails = 0, holds = 0;
  for (size_t k = 1;; k *= 2) {
    k = std::min(k, ranked.size());
    if (attempt(k)) {
      holds = k;
      break;
    }
    fails = k;
    if (k == ranked.size()) break;
  }
  if (holds == 0) {  // every ranked product in float32 and still not within the bound
    search.kept_float = ranked;
    std::tie(search.report, search.check) = tried[fails];
    return search;
  }
  while (holds - fails > 1) {
    const size_t mid = fails + (holds - fails) / 2;
    (attempt(mid) ? holds : fails) = mid;
  }
  search.held = true;
  search.kept_float.assign(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(holds));
  std::tie(search.report, search.check) = tried[holds];
  if (last_made != holds) make(search.kept_float, scratch_path);  // leave the chosen one at scratch_path
  return search;
}

}  // namespace kiln::quantize

// `kiln quantize --max-drop METRIC=VALUE`: how much accuracy a lower precision may cost, measured as
// `kiln validate` measures it (validate/validation.h) against the float32 model, and the search that
// returns the most sensitive products to float32 until the bound holds.
//
// Metrics, each over every output the two models share (the worst output decides):
//   cosine=D      the lowest per-sample cosine is at least 1 - D      (cosine=0.01: >= 0.99)
//   top1=P        top-1 agreement drops by at most P percent points   (classifier-like outputs)
//   top5=P        top-5 agreement, the same
//   retrieval=P   retrieval agreement, the same                       (embedding-like outputs)
// METRIC:OUTPUT=VALUE bounds that one output only (retrieval:last_hidden_state=2: a text encoder's sentence
// embedding, when its other outputs are not what it is used for). An output with values that are not
// finite where the reference's are fails any bound (its figure reads -1). A metric that no output measures (top1
// on a text encoder) is refused: a bound that cannot be checked must not read as one that holds.
//
// The search: the candidate quantized as asked is validated with per-layer figures; if the bound fails,
// its quantized products are ranked by the error each adds (LayerFigures::growth, the largest first) and
// the first k are kept in float32, for k = 1, 2, 4, ... until the bound holds, then the smallest such k is
// found by bisection between the last two. Each step quantizes again and validates; at most about
// 2 log2(products) steps.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "validate/validation.h"

namespace kiln::quantize {

struct AccuracyBound {
  enum class Metric { kCosine, kTop1, kTop5, kRetrieval };
  Metric metric = Metric::kCosine;
  double max_drop = 0;  // cosine: in cosine; the agreements: in percent points
  std::string output;   // the one output bounded; empty: every output
  std::string text;     // as given, for messages
};

// Parses "cosine=0.01", "top1=1", "top5=0.5", "retrieval=2", each optionally with ":OUTPUT" after the
// metric. Throws kiln::Error with the known metrics.
AccuracyBound parse_accuracy_bound(std::string_view text);

// Where a validated candidate stands against a bound.
struct BoundCheck {
  bool holds = false;
  std::string output;  // the worst output, with the metric: "logits top1"
  double value = 0;    // its figure: a cosine, or an agreement in percent
  double limit = 0;    // the lowest the figure may be
  std::string describe() const;  // "sentence_embedding cosine: 0.9712 (>= 0.99 needed)"
};

// Throws kiln::Error when no compared output (or not the bound's output) has the metric.
BoundCheck check_bound(const validate::ValidationReport& report, const AccuracyBound& bound);

// Writes the candidate to `path` with the products named in `keep_float` left in float32 (as --exclude
// does), and returns the names of the products it lowered (node_names turns a pass report's labels into
// them). Called once per step of the search.
using MakeCandidate = std::function<std::vector<std::string>(const std::vector<std::string>& keep_float,
                                                             const std::string& path)>;

// The names of the nodes of `g` whose labels (ir::Node::label(), as pass reports list nodes) are given, in
// their order; an unnamed node is left out (--exclude, and so the search, names nodes).
std::vector<std::string> node_names(const ir::Graph& g, const std::vector<std::string>& labels);

struct BoundSearch {
  bool held = false;                     // false: even with every ranked product in float32 it failed
  std::vector<std::string> kept_float;   // products returned to float32, the most sensitive first
  size_t products = 0;                   // products the mode lowers (the most that can be kept)
  validate::ValidationReport report;     // of the candidate chosen (or the last tried)
  BoundCheck check;
  int steps = 0;                         // candidates made and validated
};

// Runs the search with candidates written to `scratch_path` (the last one chosen is left there).
// `validation` names the reference and the inputs; its candidate and per_layer are set here. Progress
// lines name each step.
BoundSearch keep_float_until_bound_holds(const MakeCandidate& make, const std::string& scratch_path,
                                         validate::ValidationOptions validation, const AccuracyBound& bound,
                                         const validate::Progress& progress);

}  // namespace kiln::quantize

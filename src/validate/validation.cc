#include "validate/validation.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "bench/bench_inputs.h"
#include "common/error.h"
#include "onnx/model_io.h"
#include "runtime/session.h"
#include "runtime/threads.h"
#include "validate/input_samples.h"
#include "validate/shared_values.h"

namespace kiln::validate {

namespace {

ir::Model load(const std::string& path, const char* role) {
  try {
    return onnx_io::load_model(path);
  } catch (const Error& e) {
    fail(role, " model ", e.what());  // "reference model x.onnx: no such file"
  }
}

std::vector<ir::ValueInfo> fed_inputs(const ir::Graph& g) {
  std::vector<ir::ValueInfo> out;
  for (const auto& v : g.inputs)
    if (!g.initializers.count(v.name)) out.push_back(v);
  return out;
}

std::string join_names(const std::vector<ir::ValueInfo>& values) {
  std::string out;
  for (const auto& v : values) out += (out.empty() ? "" : ", ") + v.name;
  return out.empty() ? "none" : out;
}

bool has_value(const std::vector<ir::ValueInfo>& values, const std::string& name) {
  return std::any_of(values.begin(), values.end(), [&](const ir::ValueInfo& v) { return v.name == name; });
}

// The outputs both models have, in the reference's order; fails on one that only one model has.
std::vector<std::string> shared_outputs(const ir::Model& ref, const ir::Model& cand, const ValidationOptions& o) {
  const auto &ro = ref.graph.outputs, &co = cand.graph.outputs;
  std::vector<std::string> shared;
  for (const auto& v : ro)
    if (has_value(co, v.name)) shared.push_back(v.name);
  if (shared.empty())
    fail(o.reference, " and ", o.candidate, " share no output name (reference outputs: ", join_names(ro),
         "; candidate outputs: ", join_names(co), ")");
  for (const auto& v : ro)
    if (!has_value(co, v.name))
      fail("candidate ", o.candidate, " has no output \"", v.name, "\" (an output of the reference ", o.reference, ")");
  for (const auto& v : co)
    if (!has_value(ro, v.name))
      fail("reference ", o.reference, " has no output \"", v.name, "\" (an output of the candidate ", o.candidate, ")");
  return shared;
}

// Both models take the reference's inputs: the candidate may leave some unread, but may not want others.
void check_inputs(const ir::Model& ref, const ir::Model& cand, const ValidationOptions& o) {
  const std::vector<ir::ValueInfo> ri = fed_inputs(ref.graph);
  for (const auto& v : fed_inputs(cand.graph))
    if (!has_value(ri, v.name))
      fail("candidate ", o.candidate, " has an input \"", v.name, "\" that the reference ", o.reference,
           " does not (reference inputs: ", join_names(ri), "); both are fed the same inputs");
}

InputSamples make_samples(const ir::Model& ref, const ValidationOptions& o, std::vector<std::string>& notes) {
  if (!o.inputs_dir.empty() && !o.text.file.empty()) fail("give the inputs with --inputs DIR or --text FILE, not both");
  if (o.text.file.empty() && !o.text.vocab.empty()) fail("--vocab is used with --text FILE; give the text to tokenize");
  if (!o.inputs_dir.empty()) return InputSamples::from_folder(fed_inputs(ref.graph), o.inputs_dir);
  if (!o.text.file.empty()) return InputSamples::from_text(fed_inputs(ref.graph), o.text);
  for (const auto& v : fed_inputs(ref.graph)) {
    if (!v.type.is_tensor())
      fail("input \"", v.name, "\" of ", o.reference,
           " is not a tensor: generated samples are tensors; give the inputs with --inputs DIR");
    if (!v.type.shape)
      fail("input \"", v.name, "\" of ", o.reference, " has no declared shape; give the inputs with --inputs DIR");
  }
  bench::InputPlan plan = bench::plan_inputs(ref.graph);
  if (plan.batch_dim.empty())
    notes.push_back("the model's inputs have no dynamic dims: --batch and --seq are ignored");
  else if (!plan.has_seq())
    notes.push_back("the model has no sequence dim: --seq is ignored");
  for (const auto& in : plan.inputs)
    if (in.vocab_guessed)
      notes.push_back(str("input \"", in.info.name,
                          "\": no embedding table found for its ids; token ids are drawn from [0, ",
                          bench::kFallbackVocabSize, ")"));
  return InputSamples::generated(std::move(plan), o.samples, o.seed, o.batch, o.seq);
}

// Index of each name among a session's outputs.
std::vector<size_t> output_indices(const runtime::Session& s, const std::vector<std::string>& names) {
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < s.outputs().size(); ++i) index.emplace(s.outputs()[i].name, i);
  std::vector<size_t> out;
  for (const auto& n : names) out.push_back(index.at(n));
  return out;
}

// Runs both sessions on every sample and compares the outputs named `names`.
std::vector<OutputFigures> compare_runs(const runtime::Session& ref, const runtime::Session& cand,
                                        const std::vector<std::string>& names, bool task_figures,
                                        const InputSamples& samples, const std::string& stage,
                                        const Progress& progress) {
  std::vector<OutputComparer> comparers;
  for (const auto& n : names) comparers.emplace_back(n, task_figures);
  const std::vector<size_t> ri = output_indices(ref, names), ci = output_indices(cand, names);
  std::unordered_set<std::string> cand_inputs;
  for (const auto& v : cand.inputs()) cand_inputs.insert(v.name);
  std::vector<ir::Datum> ro, co;
  for (int64_t k = 0; k < samples.size(); ++k) {
    if (progress) progress(str(stage, "sample ", k + 1, "/", samples.size()), true);
    Feeds feeds = samples.sample(k);
    // Pools a text encoder's token outputs into sentence embeddings without the padding (OutputComparer).
    std::optional<ir::Tensor> token_mask;
    if (auto it = feeds.find(kTokenMaskInput); it != feeds.end() && it->second.is_tensor())
      token_mask = it->second.tensor;  // aliases: the candidate's feeds may drop it below
    ref.run(feeds, ro);
    std::erase_if(feeds, [&](const auto& item) { return !cand_inputs.count(item.first); });
    cand.run(feeds, co);
    for (size_t j = 0; j < names.size(); ++j)
      comparers[j].add(ro[ri[j]], co[ci[j]], token_mask ? &*token_mask : nullptr);
  }
  std::vector<OutputFigures> out;
  for (const auto& c : comparers) out.push_back(c.figures());
  return out;
}

std::vector<LayerFigures> per_layer(const ValidationOptions& o, const InputSamples& samples,
                                    const runtime::SessionOptions& so, const runtime::SessionOptions& cand_so,
                                    const Progress& progress) {
  auto say = [&](const std::string& text) {
    if (progress) progress(text, false);
  };
  say("per layer: loading both models again, their shared values exposed");
  ir::Model ref = load(o.reference, "reference"), cand = load(o.candidate, "candidate");
  const std::vector<SharedValue> values = expose_shared_values(ref, cand);
  std::vector<std::string> names;
  for (const auto& v : values) names.push_back(v.name);
  const runtime::Session ref_session(std::move(ref), so), cand_session(std::move(cand), cand_so);
  std::vector<OutputFigures> figures =
      compare_runs(ref_session, cand_session, names, false, samples, "per layer: ", progress);

  std::unordered_map<std::string, double> error;
  for (const auto& f : figures)
    if (f.compared()) error[f.name] = f.rel_l2_error;
  std::vector<LayerFigures> layers;
  for (size_t i = 0; i < values.size(); ++i) {
    const SharedValue& v = values[i];
    LayerFigures l{v.name, v.order, v.node, v.op, v.candidate_op, 0.0, std::move(figures[i])};
    if (l.figures.compared()) {
      double upstream = 0;
      for (const auto& s : v.sources)
        if (auto it = error.find(s); it != error.end()) upstream = std::max(upstream, it->second);
      const double own = l.figures.rel_l2_error;
      l.growth = std::isinf(own) && std::isinf(upstream) ? 0.0 : own - upstream;
    }
    layers.push_back(std::move(l));
  }
  return layers;
}

}  // namespace

ValidationReport run_validation(const ValidationOptions& o, const Progress& progress) {
  if (o.threads < 1) fail("--threads must be >= 1 (got ", o.threads, ")");
  auto say = [&](const std::string& text) {
    if (progress) progress(text, false);
  };
  ValidationReport report;
  report.options = o;
  runtime::set_intra_op_threads(o.threads);

  say("loading " + o.reference);
  ir::Model ref = load(o.reference, "reference");
  say("loading " + o.candidate);
  ir::Model cand = load(o.candidate, "candidate");
  const std::vector<std::string> outputs = shared_outputs(ref, cand, o);
  check_inputs(ref, cand, o);
  const InputSamples samples = make_samples(ref, o, report.notes);
  report.inputs = samples.description();
  report.samples = samples.size();

  runtime::SessionOptions so;
  so.optimization = o.level;
  // The reference is the float32 ground truth, whatever its file's tag; the candidate runs at its own
  // precision (a runtime setting such as bf16 changes its numerics without changing its file).
  runtime::SessionOptions cand_so = so;
  so.precision = runtime::Precision::kFloat32;
  cand_so.precision = o.candidate_precision;
  if (o.reference_level) so.optimization = *o.reference_level;
  say("creating the sessions");
  {
    const runtime::Session ref_session(std::move(ref), so), cand_session(std::move(cand), cand_so);
    if (cand_session.computes_bf16()) report.candidate_precision = "bf16";
    report.outputs = compare_runs(ref_session, cand_session, outputs, true, samples, "", progress);
  }
  if (o.per_layer) {
    report.layers = per_layer(o, samples, so, cand_so, progress);
    report.notes.push_back(
        "per layer: a second run of each model with the values the two graphs share exposed as outputs (which "
        "keeps kiln from fusing across them); the outputs' figures are from the models as given");
  }
  return report;
}

std::vector<const LayerFigures*> layers_where_error_grows(const ValidationReport& report, size_t count) {
  std::vector<const LayerFigures*> grown;
  for (const auto& l : report.layers)
    if (l.figures.compared() && l.growth > 0) grown.push_back(&l);
  std::stable_sort(grown.begin(), grown.end(), [](const LayerFigures* a, const LayerFigures* b) {
    if (a->growth != b->growth) return a->growth > b->growth;
    return a->figures.cosine < b->figures.cosine;
  });
  if (grown.size() > count) grown.resize(count);
  // report.layers is in graph order: pointers into it sort that way.
  std::sort(grown.begin(), grown.end());
  return grown;
}

const LayerFigures* layer_with_lowest_cosine(const ValidationReport& report) {
  const LayerFigures* lowest = nullptr;
  for (const auto& l : report.layers)
    if (l.figures.compared() && l.figures.cosine < 1 && (!lowest || l.figures.cosine < lowest->figures.cosine))
      lowest = &l;
  return lowest;
}

}  // namespace kiln::validate

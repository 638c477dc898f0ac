#include "validate/shared_values.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "analysis/model_preparation.h"
#include "analysis/shape_inference.h"

namespace kiln::validate {

namespace {

// What one graph says about its node outputs.
struct ValueFacts {
  std::unordered_map<std::string, const ir::Node*> producer;
  std::unordered_set<std::string> from_inputs;  // computed, through any path, from a graph input
  analysis::InferredTypes types;
};

ValueFacts facts_of(const ir::Model& m) {
  ValueFacts f;
  f.types = analysis::infer_types(m, m.graph, {}, ops::Limits{});
  for (const auto& in : m.graph.inputs)
    if (!m.graph.initializers.count(in.name)) f.from_inputs.insert(in.name);
  for (const ir::Node& n : m.graph.nodes) {
    const bool live = std::any_of(n.inputs.begin(), n.inputs.end(),
                                  [&](const std::string& v) { return !v.empty() && f.from_inputs.count(v); });
    for (const auto& o : n.outputs) {
      if (o.empty()) continue;
      f.producer[o] = &n;
      if (live) f.from_inputs.insert(o);
    }
  }
  return f;
}

bool float_value(const ValueFacts& f, const std::string& v) {
  auto it = f.types.types.find(v);
  return it != f.types.types.end() && it->second.is_tensor() && ir::is_float(it->second.dtype);
}

// Computed per run from the inputs, and floating-point.
bool comparable(const ValueFacts& f, const std::string& v) {
  return f.producer.count(v) && f.from_inputs.count(v) && !f.types.values.count(v) && float_value(f, v);
}

std::string op_name(const ir::Node& n) {
  return ir::is_default_domain(n.domain) ? n.op_type : n.domain + "." + n.op_type;
}

void add_graph_outputs(ir::Model& m, const ValueFacts& f, const std::vector<SharedValue>& values) {
  std::unordered_set<std::string> outputs;
  for (const auto& o : m.graph.outputs) outputs.insert(o.name);
  for (const auto& v : values)
    if (outputs.insert(v.name).second) m.graph.outputs.push_back({v.name, f.types.types.at(v.name), ""});
}

}  // namespace

std::vector<SharedValue> expose_shared_values(ir::Model& reference, ir::Model& candidate) {
  analysis::prepare_model(reference);
  analysis::prepare_model(candidate);
  const ValueFacts ref = facts_of(reference), cand = facts_of(candidate);
  auto shared = [&](const std::string& v) { return comparable(ref, v) && comparable(cand, v); };

  std::vector<SharedValue> values;
  // For a value that is not shared: the shared values upstream of it, so that a node's sources look
  // through what cannot be compared.
  std::unordered_map<std::string, std::vector<std::string>> upstream_of;
  for (size_t i = 0; i < reference.graph.nodes.size(); ++i) {
    const ir::Node& n = reference.graph.nodes[i];
    std::vector<std::string> sources;
    for (const auto& in : n.inputs) {
      if (in.empty()) continue;
      if (shared(in)) {
        sources.push_back(in);
      } else if (auto it = upstream_of.find(in); it != upstream_of.end()) {
        sources.insert(sources.end(), it->second.begin(), it->second.end());
      }
    }
    std::sort(sources.begin(), sources.end());
    sources.erase(std::unique(sources.begin(), sources.end()), sources.end());
    for (const auto& o : n.outputs) {
      if (o.empty()) continue;
      if (!shared(o)) {
        upstream_of[o] = sources;
        continue;
      }
      SharedValue v;
      v.name = o;
      v.order = i;
      v.node = n.name.empty() ? n.label() : n.name;
      v.op = op_name(n);
      v.candidate_op = op_name(*cand.producer.at(o));
      v.sources = sources;
      values.push_back(std::move(v));
    }
  }
  add_graph_outputs(reference, ref, values);
  add_graph_outputs(candidate, cand, values);
  return values;
}

}  // namespace kiln::validate

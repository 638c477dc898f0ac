#include "analysis/inline_functions.h"

#include <unordered_map>

namespace kiln::analysis {

namespace {

constexpr int kMaxDepth = 32;

const ir::Function* find_function(const ir::Model& m, const ir::Node& n) {
  for (const auto& f : m.functions)
    if (f.name == n.op_type &&
        (f.domain == n.domain || (ir::is_default_domain(f.domain) && ir::is_default_domain(n.domain))))
      return &f;
  return nullptr;
}

void rename_in_subgraph(ir::Graph& g, const std::unordered_map<std::string, std::string>& names) {
  for (auto& n : g.nodes) {
    for (auto& i : n.inputs) {
      auto it = names.find(i);
      if (it != names.end()) i = it->second;
    }
    for (auto& a : n.attributes) {
      if (a.g) rename_in_subgraph(*a.g, names);
      for (auto& sg : a.graphs) rename_in_subgraph(*sg, names);
    }
  }
  for (auto& o : g.outputs) {
    auto it = names.find(o.name);
    if (it != names.end()) o.name = it->second;
  }
}

// Substitutes attribute references (ref_attr_name) of a body node with the caller's attributes.
std::vector<ir::Attribute> bind_attributes(const std::vector<ir::Attribute>& body_attrs, const ir::Node& call,
                                           const ir::Function& f) {
  std::vector<ir::Attribute> out;
  for (const auto& a : body_attrs) {
    if (a.ref_attr_name.empty()) {
      out.push_back(a);
      continue;
    }
    const ir::Attribute* given = call.find_attribute(a.ref_attr_name);
    if (!given)
      for (const auto& d : f.attribute_defaults)
        if (d.name == a.ref_attr_name) given = &d;
    if (!given) continue;  // optional attribute not given: the body op uses its own default
    ir::Attribute bound = *given;
    bound.name = a.name;
    bound.ref_attr_name.clear();
    out.push_back(std::move(bound));
  }
  return out;
}

void inline_in_nodes(const ir::Model& model, std::vector<ir::Node>& nodes, int depth, int& counter, int& inlined);

void inline_in_graph(const ir::Model& model, ir::Graph& g, int depth, int& counter, int& inlined) {
  inline_in_nodes(model, g.nodes, depth, counter, inlined);
}

void inline_in_nodes(const ir::Model& model, std::vector<ir::Node>& nodes, int depth, int& counter, int& inlined) {
  std::vector<ir::Node> out;
  for (auto& n : nodes) {
    for (auto& a : n.attributes) {
      if (a.g) inline_in_graph(model, *a.g, depth, counter, inlined);
      for (auto& sg : a.graphs) inline_in_graph(model, *sg, depth, counter, inlined);
    }
    const ir::Function* f = find_function(model, n);
    if (!f) {
      out.push_back(std::move(n));
      continue;
    }
    if (depth >= kMaxDepth) fail("function \"", f->name, "\" calls itself recursively (depth ", kMaxDepth, ")");
    ++inlined;
    std::string prefix = "__" + f->name + "_" + std::to_string(counter++) + "/";
    std::unordered_map<std::string, std::string> names;
    for (size_t i = 0; i < f->inputs.size(); ++i) names[f->inputs[i]] = i < n.inputs.size() ? n.inputs[i] : "";
    for (size_t i = 0; i < f->outputs.size(); ++i)
      names[f->outputs[i]] = i < n.outputs.size() && !n.outputs[i].empty() ? n.outputs[i] : prefix + f->outputs[i];
    auto mapped = [&](const std::string& v) -> std::string {
      if (v.empty()) return v;
      auto it = names.find(v);
      if (it != names.end()) return it->second;
      return prefix + v;
    };
    std::vector<ir::Node> body;
    for (const auto& bn : f->nodes) {
      ir::Node c = bn;
      c.name = prefix + bn.name;
      for (auto& i : c.inputs) i = mapped(i);
      for (auto& o : c.outputs) o = mapped(o);
      c.attributes = bind_attributes(bn.attributes, n, *f);
      std::unordered_map<std::string, std::string> sub_names;
      for (const auto& bn2 : f->nodes)
        for (const auto& o : bn2.outputs)
          if (!o.empty()) sub_names[o] = mapped(o);
      for (const auto& [k, v] : names) sub_names[k] = v;
      for (auto& a : c.attributes) {
        if (a.g) {
          a.g = std::make_shared<ir::Graph>(*a.g);
          rename_in_subgraph(*a.g, sub_names);
        }
        for (auto& sg : a.graphs) {
          sg = std::make_shared<ir::Graph>(*sg);
          rename_in_subgraph(*sg, sub_names);
        }
      }
      body.push_back(std::move(c));
    }
    inline_in_nodes(model, body, depth + 1, counter, inlined);
    for (auto& b : body) out.push_back(std::move(b));
  }
  nodes = std::move(out);
}

}  // namespace

int inline_functions(ir::Model& model) {
  if (model.functions.empty()) return 0;
  int counter = 0, inlined = 0;
  inline_in_graph(model, model.graph, 0, counter, inlined);
  return inlined;
}

}  // namespace kiln::analysis

#include "passes/pass.h"

#include "common/error.h"

namespace kiln::passes {

namespace {

void collect_names(const ir::Graph& g, std::unordered_set<std::string>& names) {
  for (const auto& v : g.inputs) names.insert(v.name);
  for (const auto& v : g.outputs) names.insert(v.name);
  for (const auto& [name, t] : g.initializers) names.insert(name);
  for (const auto& n : g.nodes) {
    names.insert(n.name);
    for (const auto& o : n.outputs) names.insert(o);
    for (const auto& a : n.attributes) {
      if (a.g) collect_names(*a.g, names);
      for (const auto& sub : a.graphs) collect_names(*sub, names);
    }
  }
}

}  // namespace

Level parse_level(const std::string& text) {
  if (text == "none") return Level::kNone;
  if (text == "basic") return Level::kBasic;
  if (text == "extended") return Level::kExtended;
  if (text == "all") return Level::kAll;
  fail("unknown optimization level \"", text, "\" (none, basic, extended or all)");
}

const char* level_name(Level level) {
  switch (level) {
    case Level::kNone:
      return "none";
    case Level::kBasic:
      return "basic";
    case Level::kExtended:
      return "extended";
    case Level::kAll:
      return "all";
  }
  return "?";
}

Target parse_target(const std::string& text) {
  if (text == "ort") return Target::kOnnxRuntime;
  if (text == "kiln") return Target::kKiln;
  fail("unknown optimization target \"", text, "\" (ort or kiln)");
}

const char* target_name(Target target) {
  switch (target) {
    case Target::kOnnxRuntime:
      return "ort";
    case Target::kKiln:
      return "kiln";
  }
  return "?";
}

std::string PassContext::fresh_name(const std::string& base) {
  if (!names_ready_) {
    collect_names(model_.graph, names_);
    names_ready_ = true;
  }
  std::string name = base;
  for (int i = 1; names_.count(name); ++i) name = base + "_" + std::to_string(i);
  names_.insert(name);
  return name;
}

void PassContext::import_contrib_domain() {
  if (model_.opset(kContribDomain) == 0) model_.opset_imports[kContribDomain] = 1;
}

void PassContext::import_kiln_domain() {
  if (model_.opset(kKilnDomain) == 0) model_.opset_imports[kKilnDomain] = 1;
}

}  // namespace kiln::passes

#include "passes/model_metadata.h"

#include <algorithm>

namespace kiln::passes {

void set_model_metadata(ir::Model& model, const std::string& key, const std::string& value) {
  auto& props = model.metadata_props;
  auto first = std::find_if(props.begin(), props.end(), [&](const auto& p) { return p.first == key; });
  if (first == props.end()) {
    props.emplace_back(key, value);
    return;
  }
  first->second = value;
  props.erase(std::remove_if(first + 1, props.end(), [&](const auto& p) { return p.first == key; }), props.end());
}

std::string model_metadata(const ir::Model& model, const std::string& key) {
  for (const auto& [k, v] : model.metadata_props)
    if (k == key) return v;
  return "";
}

}  // namespace kiln::passes

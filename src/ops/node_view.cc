#include "ops/node_view.h"

namespace kiln::ops {

const ir::Attribute* NodeView::find(const std::string& name, ir::Attribute::Kind kind) const {
  const ir::Attribute* a = node_->find_attribute(name);
  if (!a) return nullptr;
  if (a->kind != kind)
    fail("attribute \"", name, "\" has the wrong type (", static_cast<int>(a->kind), ", expected ",
         static_cast<int>(kind), ")");
  return a;
}

int64_t NodeView::attr_int(const std::string& name, int64_t dflt) const {
  const ir::Attribute* a = find(name, ir::Attribute::Kind::kInt);
  return a ? a->i : dflt;
}
int64_t NodeView::attr_int(const std::string& name) const {
  const ir::Attribute* a = find(name, ir::Attribute::Kind::kInt);
  if (!a) fail("missing required attribute \"", name, "\"");
  return a->i;
}
float NodeView::attr_float(const std::string& name, float dflt) const {
  const ir::Attribute* a = find(name, ir::Attribute::Kind::kFloat);
  return a ? a->f : dflt;
}
float NodeView::attr_float(const std::string& name) const {
  const ir::Attribute* a = find(name, ir::Attribute::Kind::kFloat);
  if (!a) fail("missing required attribute \"", name, "\"");
  return a->f;
}
std::string NodeView::attr_string(const std::string& name, const std::string& dflt) const {
  const ir::Attribute* a = find(name, ir::Attribute::Kind::kString);
  return a ? a->s : dflt;
}
std::string NodeView::attr_string(const std::string& name) const {
  const ir::Attribute* a = find(name, ir::Attribute::Kind::kString);
  if (!a) fail("missing required attribute \"", name, "\"");
  return a->s;
}
std::vector<int64_t> NodeView::attr_ints(const std::string& name, std::vector<int64_t> dflt) const {
  const ir::Attribute* a = find(name, ir::Attribute::Kind::kInts);
  return a ? a->ints : dflt;
}
std::vector<float> NodeView::attr_floats(const std::string& name, std::vector<float> dflt) const {
  const ir::Attribute* a = find(name, ir::Attribute::Kind::kFloats);
  return a ? a->floats : dflt;
}
std::vector<std::string> NodeView::attr_strings(const std::string& name, std::vector<std::string> dflt) const {
  const ir::Attribute* a = find(name, ir::Attribute::Kind::kStrings);
  return a ? a->strings : dflt;
}
const ir::Tensor* NodeView::attr_tensor(const std::string& name) const {
  const ir::Attribute* a = find(name, ir::Attribute::Kind::kTensor);
  return a ? &a->t : nullptr;
}
const ir::Graph* NodeView::attr_graph(const std::string& name) const {
  const ir::Attribute* a = find(name, ir::Attribute::Kind::kGraph);
  return a ? a->g.get() : nullptr;
}

}  // namespace kiln::ops

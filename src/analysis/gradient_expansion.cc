#include "analysis/gradient_expansion.h"

#include <functional>
#include <set>
#include <unordered_map>

namespace kiln::analysis {

namespace {

constexpr const char* kTrainingDomain = "ai.onnx.preview.training";

class BackwardBuilder {
 public:
  BackwardBuilder(std::vector<ir::Node>& out, std::string prefix) : out_(out), prefix_(std::move(prefix)) {}

  std::string add(const std::string& op, std::vector<std::string> inputs, std::vector<ir::Attribute> attrs = {}) {
    ir::Node n;
    n.op_type = op;
    n.name = prefix_ + op + "_" + std::to_string(counter_);
    n.inputs = std::move(inputs);
    n.outputs = {prefix_ + "v" + std::to_string(counter_++)};
    n.attributes = std::move(attrs);
    out_.push_back(n);
    return n.outputs[0];
  }

  // A tensor of ones shaped and typed like `like`: x^0 is 1 for every x (NaN and inf included), and
  // Pow keeps the base's type in every opset that has Gradient.
  std::string ones_like(const std::string& like) {
    ir::Attribute v;
    v.name = "value";
    v.kind = ir::Attribute::Kind::kTensor;
    v.t = ir::Tensor::scalar<float>(0.0f);
    return add("Pow", {like, add("Constant", {}, {v})});
  }
  std::string zeros_like(const std::string& like) {
    std::string one = ones_like(like);
    return add("Sub", {one, one});
  }

 private:
  std::vector<ir::Node>& out_;
  std::string prefix_;
  int counter_ = 0;
};

}  // namespace

int expand_gradients(ir::Model& model) {
  ir::Graph& g = model.graph;
  int expanded = 0;
  std::vector<ir::Node> result;
  std::unordered_map<std::string, const ir::Node*> producer;
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs)
      if (!o.empty()) producer[o] = &n;

  for (const auto& n : g.nodes) {
    if (n.op_type != "Gradient" || n.domain != kTrainingDomain) {
      result.push_back(n);
      continue;
    }
    const ir::Attribute* xs_attr = n.find_attribute("xs");
    const ir::Attribute* y_attr = n.find_attribute("y");
    if (!xs_attr || !y_attr) fail("[", n.label(), "] needs attributes xs and y");
    const std::vector<std::string>& xs = xs_attr->strings;
    const std::string& y = y_attr->s;
    std::set<std::string> leaves(xs.begin(), xs.end());

    // Forward nodes between xs and y, in topological order (post-order DFS from y).
    std::vector<const ir::Node*> order;
    std::set<const ir::Node*> seen;
    std::function<void(const std::string&)> visit = [&](const std::string& v) {
      if (leaves.count(v)) return;
      auto it = producer.find(v);
      if (it == producer.end() || seen.count(it->second)) return;
      seen.insert(it->second);
      for (const auto& in : it->second->inputs)
        if (!in.empty()) visit(in);
      order.push_back(it->second);
    };
    visit(y);

    BackwardBuilder b(result, "__gradient" + std::to_string(expanded) + "/");
    std::unordered_map<std::string, std::string> grad;
    auto accumulate = [&](const std::string& v, const std::string& dv) {
      auto it = grad.find(v);
      grad[v] = it == grad.end() ? dv : b.add("Add", {it->second, dv});
    };
    grad[y] = b.ones_like(y);
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      const ir::Node& f = **it;
      auto gi = grad.find(f.outputs.empty() ? "" : f.outputs[0]);
      if (gi == grad.end()) continue;
      const std::string dy = gi->second;
      const std::string& op = f.op_type;
      if (!ir::is_default_domain(f.domain)) fail("[", n.label(), "] cannot differentiate through ", f.label());
      if (op == "Add") {
        accumulate(f.inputs[0], dy);
        accumulate(f.inputs[1], dy);
      } else if (op == "Sub") {
        accumulate(f.inputs[0], dy);
        accumulate(f.inputs[1], b.add("Neg", {dy}));
      } else if (op == "Mul") {
        accumulate(f.inputs[0], b.add("Mul", {dy, f.inputs[1]}));
        accumulate(f.inputs[1], b.add("Mul", {dy, f.inputs[0]}));
      } else if (op == "Div") {
        accumulate(f.inputs[0], b.add("Div", {dy, f.inputs[1]}));
        std::string num = b.add("Mul", {dy, f.inputs[0]});
        std::string den = b.add("Mul", {f.inputs[1], f.inputs[1]});
        accumulate(f.inputs[1], b.add("Neg", {b.add("Div", {num, den})}));
      } else if (op == "Neg") {
        accumulate(f.inputs[0], b.add("Neg", {dy}));
      } else if (op == "Identity") {
        accumulate(f.inputs[0], dy);
      } else {
        fail("[", n.label(), "] unsupported: no gradient rule for ", f.label());
      }
    }
    for (size_t i = 0; i < n.outputs.size() && i < xs.size(); ++i) {
      if (n.outputs[i].empty()) continue;
      auto gx = grad.find(xs[i]);
      std::string value = gx != grad.end() ? gx->second : b.zeros_like(xs[i]);
      ir::Node id;
      id.op_type = "Identity";
      id.name = n.name + "/" + xs[i];
      id.inputs = {value};
      id.outputs = {n.outputs[i]};
      result.push_back(std::move(id));
    }
    ++expanded;
  }
  if (expanded) g.nodes = std::move(result);
  return expanded;
}

}  // namespace kiln::analysis

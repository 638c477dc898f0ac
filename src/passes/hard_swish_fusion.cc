// HardSwish, as exporters spell it out, becomes one op, x * HardSigmoid(x) with alpha 1/6 and beta 1/2:
//
//   x -> Add(3) -> Clip(0, 6) -> Mul(x) -> Div(6)          =>   x -> HardSwish              (opset >= 14)
//   |                              ^
//   +------------------------------+                       =>   x -> HardSigmoid(1/6, 1/2) -> Mul(x)
//                                                                                         (opset < 14)
//
// (paddle2onnx writes every hard-swish of PP-LCNet, PP-OCR and PicoDet so: the op came in opset 14.) The
// scale by 1/6 may come last (Div by 6, or Mul by 1/6 once canonicalized) or first, on the Clip's output;
// commutative operands in either order; Clip's bounds as inputs (opset 11 on) or attributes. And at opset
// 14 on, Mul(x, HardSigmoid(x, 1/6, 1/2)) (torch's export before opset 14) becomes HardSwish too. Below 14
// the two-node form is kept, which fuse_conv_activation takes as HardSwish after a Conv.
//
// Each intermediate value must be read only inside the pattern. Constants match within 1e-6 relative.
// Numerics: clip(x + 3, 0, 6) / 6 and clip(x / 6 + 1/2, 0, 1) round differently (a few ulps).
#include <cmath>
#include <optional>

#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln::passes {

namespace {

bool near(double v, double want) { return std::abs(v - want) <= 1e-6 * std::max(1.0, std::abs(want)); }

// Clip's lower and upper bound, when constants (absent: unbounded on that side).
std::optional<std::pair<double, double>> clip_bounds(const ir::Node& clip, const GraphIndex& index) {
  double lo = -INFINITY, hi = INFINITY;
  if (const ir::Attribute* a = clip.find_attribute("min")) lo = a->f;
  if (const ir::Attribute* a = clip.find_attribute("max")) hi = a->f;
  for (size_t k = 1; k < clip.inputs.size() && k < 3; ++k) {
    if (clip.inputs[k].empty()) continue;
    std::optional<double> v = index.scalar(clip.inputs[k]);
    if (!v) return std::nullopt;
    (k == 1 ? lo : hi) = *v;
  }
  return std::pair{lo, hi};
}

// For a binary node reading `value` at one operand: the other operand.
const std::string* other_operand(const ir::Node& n, const std::string& value) {
  if (n.inputs.size() != 2) return nullptr;
  if (n.inputs[0] == value) return &n.inputs[1];
  if (n.inputs[1] == value) return &n.inputs[0];
  return nullptr;
}

// `n` scales `value` by 1/6: Div(value, 6) or Mul(value, 1/6) in either order.
bool is_sixth_of(const ir::Node& n, const std::string& value, const GraphIndex& index) {
  if (is_op(n, "Div") && n.inputs.size() == 2 && n.inputs[0] == value) {
    std::optional<double> c = index.scalar(n.inputs[1]);
    return c && near(*c, 6.0);
  }
  if (!is_op(n, "Mul")) return false;
  const std::string* other = other_operand(n, value);
  if (!other) return false;
  std::optional<double> c = index.scalar(*other);
  return c && near(*c, 1.0 / 6.0);
}

struct Match {
  std::string x, output;
  std::vector<int> nodes;
};

// The Clip-spelled form around `clip_index`, or nothing.
std::optional<Match> match_clip_form(const ir::Graph& g, const GraphIndex& index, int clip_index) {
  const ir::Node& clip = g.nodes[clip_index];
  if (clip.outputs.empty() || clip.inputs.empty()) return std::nullopt;
  std::optional<std::pair<double, double>> bounds = clip_bounds(clip, index);
  if (!bounds || bounds->first != 0.0 || !near(bounds->second, 6.0)) return std::nullopt;
  const int add_index = index.producer(clip.inputs[0]);
  if (add_index < 0 || !is_op(g.nodes[add_index], "Add") || index.only_consumer(clip.inputs[0]) != clip_index)
    return std::nullopt;
  const ir::Node& add = g.nodes[add_index];
  std::string x;
  for (int k = 0; k < 2 && add.inputs.size() == 2; ++k) {
    std::optional<double> c = index.scalar(add.inputs[k]);
    if (c && near(*c, 3.0)) x = add.inputs[1 - k];
  }
  if (x.empty()) return std::nullopt;

  const std::string& c = clip.outputs[0];
  const int next_index = index.only_consumer(c);
  if (next_index < 0) return std::nullopt;
  const ir::Node& next = g.nodes[next_index];
  // x * clip, then / 6.
  if (is_op(next, "Mul")) {
    const std::string* other = other_operand(next, c);
    if (other && *other == x && !next.outputs.empty()) {
      const int last = index.only_consumer(next.outputs[0]);
      if (last >= 0 && is_sixth_of(g.nodes[last], next.outputs[0], index) && !g.nodes[last].outputs.empty())
        return Match{x, g.nodes[last].outputs[0], {add_index, clip_index, next_index, last}};
    }
  }
  // clip / 6, then x *.
  if (is_sixth_of(next, c, index) && !next.outputs.empty()) {
    const int last = index.only_consumer(next.outputs[0]);
    if (last >= 0 && is_op(g.nodes[last], "Mul") && !g.nodes[last].outputs.empty()) {
      const std::string* other = other_operand(g.nodes[last], next.outputs[0]);
      if (other && *other == x) return Match{x, g.nodes[last].outputs[0], {add_index, clip_index, next_index, last}};
    }
  }
  return std::nullopt;
}

// Mul(x, HardSigmoid(x, 1/6, 1/2)) around the HardSigmoid at `hs_index`, or nothing.
std::optional<Match> match_hard_sigmoid_form(const ir::Graph& g, const GraphIndex& index, int hs_index) {
  const ir::Node& hs = g.nodes[hs_index];
  if (hs.inputs.size() != 1 || hs.outputs.empty()) return std::nullopt;
  const ir::Attribute* alpha = hs.find_attribute("alpha");
  const ir::Attribute* beta = hs.find_attribute("beta");
  if (!alpha || !near(alpha->f, 1.0 / 6.0) || (beta && !near(beta->f, 0.5))) return std::nullopt;
  const int mul = index.only_consumer(hs.outputs[0]);
  if (mul < 0 || !is_op(g.nodes[mul], "Mul") || g.nodes[mul].outputs.empty()) return std::nullopt;
  const std::string* other = other_operand(g.nodes[mul], hs.outputs[0]);
  if (!other || *other != hs.inputs[0]) return std::nullopt;
  return Match{hs.inputs[0], g.nodes[mul].outputs[0], {hs_index, mul}};
}

ir::Attribute float_attr(const char* name, float v) {
  ir::Attribute a;
  a.name = name;
  a.kind = ir::Attribute::Kind::kFloat;
  a.f = v;
  return a;
}

}  // namespace

bool fuse_hard_swish(ir::Graph& g, PassContext& ctx) {
  const bool has_hard_swish = ctx.opset() >= 14;
  GraphIndex index(g);
  std::vector<int> removed;
  std::vector<ir::Node> added;
  std::vector<bool> taken(g.nodes.size(), false);
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    std::optional<Match> m;
    if (is_op(g.nodes[i], "Clip"))
      m = match_clip_form(g, index, i);
    else if (has_hard_swish && is_op(g.nodes[i], "HardSigmoid"))
      m = match_hard_sigmoid_form(g, index, i);
    if (!m) continue;
    bool free = true;
    for (int k : m->nodes) free &= !taken[k];
    if (!free) continue;
    for (int k : m->nodes) taken[k] = true;
    removed.insert(removed.end(), m->nodes.begin(), m->nodes.end());
    const ir::Node& anchor = g.nodes[m->nodes.back()];
    if (has_hard_swish) {
      ir::Node hs;
      hs.op_type = "HardSwish";
      hs.name = ctx.fresh_name(scope_of(anchor.name) + "HardSwish");
      hs.inputs = {m->x};
      hs.outputs = {m->output};
      added.push_back(std::move(hs));
    } else {
      ir::Node hs, mul;
      hs.op_type = "HardSigmoid";
      hs.name = ctx.fresh_name(scope_of(anchor.name) + "HardSwish_gate");
      hs.inputs = {m->x};
      hs.outputs = {ctx.fresh_name(hs.name + "_output")};
      hs.attributes = {float_attr("alpha", 1.0f / 6.0f), float_attr("beta", 0.5f)};
      mul.op_type = "Mul";
      mul.name = ctx.fresh_name(scope_of(anchor.name) + "HardSwish");
      mul.inputs = {m->x, hs.outputs[0]};
      mul.outputs = {m->output};
      added.push_back(std::move(hs));
      added.push_back(std::move(mul));
    }
    ctx.changed(has_hard_swish ? "HardSwish" : "HardSwish as x * HardSigmoid(x)");
  }
  if (removed.empty()) return false;
  // New nodes go at the end; the optimizer sorts the graph after each pass.
  remove_nodes(g, removed);
  for (ir::Node& n : added) g.nodes.push_back(std::move(n));
  return true;
}

}  // namespace kiln::passes

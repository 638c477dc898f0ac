// A squeeze-and-excitation gate moved into the convolution after it: a Mul of channels-last X [N, H, W, C]
// by a per-image, per-channel scale S [N, 1, 1, C], read only by a channels-last 1x1 ai.kiln.FusedConv
// (stride 1, no padding, one group), becomes that FusedConv's fifth input:
//
//     x --------.
//                Mul -> FusedConv(W, B, Z)   =>   FusedConv(x, W, B, Z, S = s)
//     s [N,1,1,C]'
//
// FusedConv then computes activation(Conv(X * S, W, B) + Z) (kernels/reference/contrib_fused_conv.cc),
// and kiln's pointwise kernel scales its blocks of weights by S instead, so that X * S (the size of X) is
// never written out and read back: EfficientNet's and MobileNetV3's blocks each have one, whose Mul ran at
// memory speed on the block's largest tensor. For target kiln only (ai.kiln's op), after the layout
// passes have made the convolutions channels-last. Only where C <= kMostScaledChannels: with more input
// channels (the late blocks: 7x7 or 14x14 planes, 480 to 1152 channels), oneDNN's convolution and the
// Mul together were faster than kiln's kernel (EfficientNet-B0's 7x7 1152 -> 192: 0.12 ms against 0.22;
// its 56x56 144 -> 24: 0.149 + 0.016 against 0.140; AMD EPYC Zen 4, avx512, 2 threads).
#include <optional>

#include "analysis/shape_inference.h"
#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"

namespace kiln::passes {

namespace {

constexpr const char* kPattern = "Mul+FusedConv";
constexpr int64_t kMostScaledChannels = 256;

int64_t int_attribute(const ir::Node& n, const char* name, int64_t fallback) {
  const ir::Attribute* a = n.find_attribute(name);
  return a ? a->i : fallback;
}

// A channels-last 1x1 FusedConv, stride 1, no padding, one group, at most kMostScaledChannels input
// channels, without S: what kiln's pointwise kernel runs well.
bool is_pointwise_conv(const ir::Node& n, const GraphIndex& index) {
  if (n.op_type != "FusedConv" || n.domain != kKilnDomain || n.inputs.size() < 2 || n.inputs.size() > 4) return false;
  if (int_attribute(n, "channels_last", 0) != 1 || int_attribute(n, "group", 1) != 1) return false;
  for (const char* name : {"strides", "pads", "dilations"}) {
    if (const ir::Attribute* a = n.find_attribute(name))
      for (int64_t v : a->ints)
        if (v != (std::string(name) == "pads" ? 0 : 1)) return false;
  }
  if (const ir::Attribute* a = n.find_attribute("auto_pad"); a && a->s != "NOTSET" && a->s != "VALID") return false;
  std::optional<ir::Tensor> w = index.constant(n.inputs[1]);
  if (!w || w->dtype() != ir::DType::kFloat32 || w->rank() < 3 || w->dim(1) > kMostScaledChannels) return false;
  for (size_t i = 2; i < w->rank(); ++i)
    if (w->dim(i) != 1) return false;
  return true;
}

// s's shape is [N, 1..., C] for x's [N, spatial..., C], every dim known: N equal, C static and equal.
bool is_channel_scale(const ir::Shape& s, const ir::Shape& x) {
  if (s.rank() != x.rank() || x.rank() < 3) return false;
  const size_t last = x.rank() - 1;
  if (!known_and_equal(ir::Shape(std::vector<ir::Dim>{s[0]}), ir::Shape(std::vector<ir::Dim>{x[0]}))) return false;
  if (!s[last].is_static() || !x[last].is_static() || s[last].value != x[last].value) return false;
  for (size_t i = 1; i < last; ++i)
    if (!s[i].is_static() || s[i].value != 1) return false;
  return true;
}

}  // namespace

bool fuse_channel_scale_into_conv(ir::Graph& g, PassContext& ctx) {
  if (ctx.options().target != Target::kKiln) return false;
  GraphIndex index(g);
  std::optional<analysis::InferredTypes> types;
  std::vector<int> removed;
  bool changed = false;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& mul = g.nodes[i];
    if (!is_op(mul, "Mul") || mul.inputs.size() != 2 || mul.outputs.size() != 1) continue;
    const int c = index.only_consumer(mul.outputs[0]);
    if (c < 0 || !is_pointwise_conv(g.nodes[c], index) || g.nodes[c].inputs[0] != mul.outputs[0]) continue;
    if (index.is_graph_output(mul.outputs[0])) continue;
    if (!types) types = analysis::infer_types(ctx.model(), g, {}, ctx.options().limits);
    const ir::Type* a = tensor_type_with_shape(*types, mul.inputs[0]);
    const ir::Type* b = tensor_type_with_shape(*types, mul.inputs[1]);
    if (!a || !b || a->dtype != ir::DType::kFloat32 || b->dtype != ir::DType::kFloat32) continue;
    int gate = -1;
    if (is_channel_scale(*b->shape, *a->shape))
      gate = 1;
    else if (is_channel_scale(*a->shape, *b->shape))
      gate = 0;
    if (gate < 0) {
      ctx.rejected(kPattern, g.nodes[c], "the Mul is not of X [N, spatial..., C] by a scale [N, 1..., C]");
      continue;
    }
    ir::Node& conv = g.nodes[c];
    conv.inputs.resize(4);  // an absent bias or Z stays ""; S is the fifth input
    conv.inputs[0] = mul.inputs[1 - gate];
    conv.inputs.push_back(mul.inputs[gate]);
    removed.push_back(static_cast<int>(i));
    ctx.changed("FusedConv Mul+FusedConv");
    changed = true;
  }
  remove_nodes(g, removed);
  return changed;
}

}  // namespace kiln::passes

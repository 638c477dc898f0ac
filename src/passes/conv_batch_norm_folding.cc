// Folds per-channel affine ops that follow a Conv into its weights and bias (constants only):
//   BatchNormalization(Conv(x, W, B), s, b, m, v)  -> Conv(x, W * k, (B - m) * k + b)   with k = s / sqrt(v + eps)
//   Mul(Conv(x, W, B), c)                           -> Conv(x, W * c, B * c)   c scalar or one value per channel
//   Add(Conv(x, W, B), c)                           -> Conv(x, W, B + c)       c scalar or one value per channel
// and the same after a ConvTranspose, whose weights are [C_in, C_out/group, k...] (paddle2onnx's text
// detectors end in ConvTranspose -> Add(bias) -> BatchNormalization -> Relu -> ConvTranspose -> Add(bias)).
// The Conv's output must have the folded op as its only reader; new weights are new initializers (the old
// ones may be shared). float32 only.
#include <cmath>

#include "passes/graph_edit.h"
#include "passes/graph_index.h"
#include "passes/passes.h"

namespace kiln::passes {

namespace {

// Per-output-channel values of a constant that broadcasts against [N, C, ...] only along C: a scalar,
// [C], [C,1,...,1] or [1,C,1,...,1] (its rank no more than the Conv output's).
std::optional<std::vector<float>> per_channel(const ir::Tensor& t, int64_t channels, size_t out_rank) {
  if (t.dtype() != ir::DType::kFloat32) return std::nullopt;
  if (t.numel() == 1) return std::vector<float>(channels, t.data<float>()[0]);
  if (t.numel() != channels || t.rank() > out_rank) return std::nullopt;
  // The channel dim of the output is out_rank - 2 from the end; t's dims align from the right.
  const int64_t channel_axis = static_cast<int64_t>(t.rank()) - static_cast<int64_t>(out_rank - 1);
  for (int64_t d = 0; d < static_cast<int64_t>(t.rank()); ++d)
    if (t.dim(d) != (d == channel_axis ? channels : 1)) return std::nullopt;
  return std::vector<float>(t.data<float>(), t.data<float>() + channels);
}

// Multiplies each output channel's weights by scale[c]: W is [C_out, C_in/group, k...] for a Conv and
// [C_in, C_out/group, k...] for a ConvTranspose.
void scale_output_channels(ir::Tensor& w, const std::vector<float>& scale, bool transposed, int64_t group) {
  float* d = w.data<float>();
  if (!transposed) {
    const int64_t channels = w.dim(0), per = w.numel() / channels;
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t k = 0; k < per; ++k) d[c * per + k] *= scale[c];
    return;
  }
  const int64_t in = w.dim(0), out_per_group = w.dim(1), in_per_group = in / group;
  const int64_t taps = w.numel() / (in * out_per_group);
  for (int64_t ci = 0; ci < in; ++ci)
    for (int64_t j = 0; j < out_per_group; ++j) {
      const float s = scale[(ci / in_per_group) * out_per_group + j];
      float* row = d + (ci * out_per_group + j) * taps;
      for (int64_t k = 0; k < taps; ++k) row[k] *= s;
    }
}

}  // namespace

bool fold_conv_batch_norm(ir::Graph& g, PassContext& ctx) {
  bool changed = false;
  for (bool again = true; again;) {
    again = false;
    GraphIndex index(g);
    for (int i = 0; i < static_cast<int>(g.nodes.size()) && !again; ++i) {
      const ir::Node& conv = g.nodes[i];
      const bool transposed = conv.op_type == "ConvTranspose";
      if (!ir::is_default_domain(conv.domain) || !(conv.op_type == "Conv" || transposed) || conv.inputs.size() < 2)
        continue;
      int reader = index.only_consumer(conv.outputs[0]);
      if (reader < 0) continue;
      const ir::Node& next = g.nodes[reader];
      const bool bn = next.op_type == "BatchNormalization", mul = next.op_type == "Mul", add = next.op_type == "Add";
      if (!ir::is_default_domain(next.domain) || !(bn || mul || add)) continue;
      std::optional<ir::Tensor> w = index.constant(conv.inputs[1]);
      if (!w || w->dtype() != ir::DType::kFloat32 || w->rank() < 3) continue;
      const ir::Attribute* group_attr = conv.find_attribute("group");
      const int64_t group = group_attr ? group_attr->i : 1;
      if (group < 1 || w->dim(0) % group != 0) continue;
      const int64_t channels = transposed ? w->dim(1) * group : w->dim(0);
      const size_t out_rank = w->rank();
      std::vector<float> bias(channels, 0.0f);
      if (conv.inputs.size() > 2 && !conv.inputs[2].empty()) {
        std::optional<ir::Tensor> b = index.constant(conv.inputs[2]);
        if (!b || b->dtype() != ir::DType::kFloat32 || b->numel() != channels) continue;
        bias.assign(b->data<float>(), b->data<float>() + channels);
      }
      std::vector<float> scale(channels, 1.0f), shift(channels, 0.0f);
      const char* kind = "";
      if (bn) {
        // Only Y may be read (training-mode outputs make the node something else).
        if (next.outputs.size() > 1) {
          bool extra = false;
          for (size_t k = 1; k < next.outputs.size(); ++k) extra |= !next.outputs[k].empty();
          if (extra) continue;
        }
        std::vector<std::vector<float>> p;
        for (int k = 1; k <= 4; ++k) {
          std::optional<ir::Tensor> t =
              k < static_cast<int>(next.inputs.size()) ? index.constant(next.inputs[k]) : std::nullopt;
          // BatchNormalization parameters are 1-D [C]: as if broadcast against a rank-2 [N, C].
          std::optional<std::vector<float>> v = t ? per_channel(*t, channels, 2) : std::nullopt;
          if (!v) break;
          p.push_back(*v);
        }
        if (p.size() != 4) continue;
        const ir::Attribute* eps_attr = next.find_attribute("epsilon");
        const double eps = eps_attr ? eps_attr->f : 1e-5;
        for (int64_t c = 0; c < channels; ++c) {
          double k = p[0][c] / std::sqrt(static_cast<double>(p[3][c]) + eps);
          scale[c] = static_cast<float>(k);
          shift[c] = static_cast<float>(p[1][c] - p[2][c] * k);
        }
        kind = transposed ? "BatchNormalization folded into ConvTranspose" : "BatchNormalization folded into Conv";
      } else {
        const std::string& other = next.inputs[0] == conv.outputs[0] ? next.inputs[1] : next.inputs[0];
        std::optional<ir::Tensor> t = index.constant(other);
        std::optional<std::vector<float>> v = t ? per_channel(*t, channels, out_rank) : std::nullopt;
        if (!v) continue;
        if (mul)
          scale = *v;
        else
          shift = *v;
        kind = transposed ? (mul ? "Mul folded into ConvTranspose" : "Add folded into ConvTranspose")
                          : (mul ? "Mul folded into Conv" : "Add folded into Conv");
      }
      ir::Tensor new_w = w->clone();
      scale_output_channels(new_w, scale, transposed, group);
      ir::Tensor new_b(ir::DType::kFloat32, {channels});
      for (int64_t c = 0; c < channels; ++c) new_b.data<float>()[c] = bias[c] * scale[c] + shift[c];
      ir::Node fused = conv;
      fused.inputs.resize(3);
      fused.inputs[1] = ctx.fresh_name(conv.inputs[1] + "_folded");
      fused.inputs[2] = ctx.fresh_name(
          (conv.inputs.size() > 2 && !conv.inputs[2].empty() ? conv.inputs[2] : conv.name + "_bias") + "_folded");
      g.add_initializer(fused.inputs[1], new_w);
      g.add_initializer(fused.inputs[2], new_b);
      fused.outputs[0] = next.outputs[0];
      const int conv_index = i;
      remove_nodes(g, {conv_index, reader});
      g.nodes.push_back(std::move(fused));
      ctx.changed(kind);
      again = changed = true;
    }
  }
  return changed;
}

}  // namespace kiln::passes

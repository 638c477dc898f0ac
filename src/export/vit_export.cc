// ViTModel: patch embedding (Conv with stride = patch size, flattened and transposed), a class token and
// position embeddings, pre-norm encoder layers, a final LayerNorm and the pooler.
#include "export/encoder_layers.h"
#include "export/exporter.h"

namespace kiln::exporter {

void write_vit_graph(const TransformerConfig& c, WeightSource& w, const ExportOptions& options, ir::Graph& graph,
                     bool pooler) {
  GraphBuilder b(graph);
  EncoderWriter enc(b, w, c, options.opset);
  const int64_t h = c.hidden_size, p = c.patch_size;
  graph.inputs.push_back(tensor_value(
      "pixel_values", ir::DType::kFloat32,
      {ir::Dim::symbolic("batch"), ir::Dim(c.num_channels), ir::Dim(c.image_size), ir::Dim(c.image_size)}));

  std::string x;
  {
    Scope scope(b, "embeddings");
    std::string patches;
    {
      Scope s(b, "patch_embeddings/projection");
      std::string kernel = b.initializer(
          "embeddings.patch_embeddings.projection.weight",
          w.get("embeddings.patch_embeddings.projection.weight", {h, c.num_channels, p, p}, WeightKind::kMatrix));
      std::string bias = b.initializer("embeddings.patch_embeddings.projection.bias",
                                       w.get("embeddings.patch_embeddings.projection.bias", {h}, WeightKind::kBias));
      patches = b.add("Conv", {"pixel_values", kernel, bias},
                      {ints_attr("dilations", {1, 1}), int_attr("group", 1), ints_attr("kernel_shape", {p, p}),
                       ints_attr("pads", {0, 0, 0, 0}), ints_attr("strides", {p, p})});
    }
    {
      Scope s(b, "patch_embeddings");
      // flatten(2): [B, hidden, h, w] -> [B, hidden, h*w], then transpose(1, 2).
      std::string shape = b.add("Shape", {patches});
      std::string lead = b.add("Slice", {shape, b.constant_ints({0}), b.constant_ints({2}), b.constant_ints({0})});
      std::string target = b.add("Concat", {lead, b.constant_ints({-1})}, {int_attr("axis", 0)});
      patches = b.add("Reshape", {patches, target}, {int_attr("allowzero", 0)});
      patches = b.add("Transpose", {patches}, {ints_attr("perm", {0, 2, 1})});
    }
    // cls_token.expand(batch, -1, -1), concatenated in front of the patches.
    std::string cls =
        b.initializer("embeddings.cls_token", w.get("embeddings.cls_token", {1, 1, h}, WeightKind::kMatrix));
    std::string batch = enc.unsqueeze(enc.dim("pixel_values", 0), {0});
    std::string expand_shape = b.add("Concat", {batch, b.constant_ints({1, 1})}, {int_attr("axis", 0)});
    std::string cls_tokens = b.add("Expand", {cls, expand_shape});
    x = b.add("Concat", {cls_tokens, patches}, {int_attr("axis", 1)});
    std::string pos =
        b.initializer("embeddings.position_embeddings",
                      w.get("embeddings.position_embeddings", {1, c.num_patches() + 1, h}, WeightKind::kMatrix));
    x = b.add("Add", {x, pos});
  }
  for (int64_t i = 0; i < c.num_layers; ++i) {
    x = enc.pre_norm_layer(x, layer_params(c.family, i));
    if (options.progress) options.progress(i + 1, c.num_layers);
  }
  x = enc.layer_norm(x, "layernorm");
  graph.nodes.back().outputs[0] = "last_hidden_state";
  graph.outputs.push_back(tensor_value("last_hidden_state", ir::DType::kFloat32,
                                       {ir::Dim::symbolic("batch"), ir::Dim(c.num_patches() + 1), ir::Dim(h)}));
  if (pooler) {
    enc.pooler("last_hidden_state", "pooler.dense", "pooler_output");
    graph.outputs.push_back(
        tensor_value("pooler_output", ir::DType::kFloat32, {ir::Dim::symbolic("batch"), ir::Dim(h)}));
  }
}

}  // namespace kiln::exporter

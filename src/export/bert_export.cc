// BertModel and DistilBertModel: embeddings (word + token type + position, then LayerNorm), post-norm
// encoder layers with an additive attention mask, and BertPooler.
#include <limits>

#include "export/encoder_layers.h"
#include "export/exporter.h"

namespace kiln::exporter {

namespace {

ir::ValueInfo token_input(const std::string& name) {
  return tensor_value(name, ir::DType::kInt64, {ir::Dim::symbolic("batch"), ir::Dim::symbolic("sequence")});
}

}  // namespace

void write_bert_graph(const TransformerConfig& c, WeightSource& w, const ExportOptions& options, ir::Graph& graph,
                      bool pooler) {
  GraphBuilder b(graph);
  EncoderWriter enc(b, w, c, options.opset);
  const int64_t h = c.hidden_size;
  const bool token_types = c.type_vocab_size > 0;
  graph.inputs.push_back(token_input("input_ids"));
  graph.inputs.push_back(token_input("attention_mask"));
  if (token_types) graph.inputs.push_back(token_input("token_type_ids"));

  // Additive mask [batch, 1, 1, sequence]: 0 where attended, the lowest float where masked (as
  // transformers >= 4.30 writes it; older versions used -10000).
  std::string mask = enc.unsqueeze("attention_mask", {1});
  mask = enc.unsqueeze(mask, {2});
  mask = b.add("Cast", {mask}, {int_attr("to", static_cast<int64_t>(ir::DType::kFloat32))});
  mask = b.add("Sub", {b.constant_float(1.0f), mask});
  mask = b.add("Mul", {mask, b.constant_float(std::numeric_limits<float>::lowest())});

  std::string x;
  {
    Scope scope(b, "embeddings");
    // position_ids = arange(max_position_embeddings)[None, :sequence], a buffer sliced to the input length.
    std::string seq = enc.dim("input_ids", 1);
    std::vector<int64_t> positions(c.max_position_embeddings);
    for (int64_t i = 0; i < c.max_position_embeddings; ++i) positions[i] = i;
    std::string position_ids = b.constant(ir::Tensor::from_vector(positions, {1, c.max_position_embeddings}));
    std::string sliced = b.add("Slice", {position_ids, b.constant_ints({0}), enc.unsqueeze(seq, {0}),
                                         b.constant_ints({1}), b.constant_ints({1})});
    std::string word_w =
        b.initializer("embeddings.word_embeddings.weight",
                      w.get("embeddings.word_embeddings.weight", {c.vocab_size, h}, WeightKind::kMatrix));
    std::string pos_w = b.initializer(
        "embeddings.position_embeddings.weight",
        w.get("embeddings.position_embeddings.weight", {c.max_position_embeddings, h}, WeightKind::kMatrix));
    std::string words;
    {
      Scope s(b, "word_embeddings");
      words = b.add("Gather", {word_w, "input_ids"});
    }
    x = words;
    if (token_types) {
      std::string type_w =
          b.initializer("embeddings.token_type_embeddings.weight",
                        w.get("embeddings.token_type_embeddings.weight", {c.type_vocab_size, h}, WeightKind::kMatrix));
      std::string types;
      {
        Scope s(b, "token_type_embeddings");
        types = b.add("Gather", {type_w, "token_type_ids"});
      }
      x = b.add("Add", {x, types});
    }
    std::string pos;
    {
      Scope s(b, "position_embeddings");
      pos = b.add("Gather", {pos_w, sliced});
    }
    x = b.add("Add", {x, pos});
  }
  x = enc.layer_norm(x, "embeddings.LayerNorm");

  for (int64_t i = 0; i < c.num_layers; ++i) {
    x = enc.post_norm_layer(x, layer_params(c.family, i), mask);
    if (options.progress) options.progress(i + 1, c.num_layers);
  }
  // The last node's output becomes the graph output.
  graph.nodes.back().outputs[0] = "last_hidden_state";
  graph.outputs.push_back(tensor_value("last_hidden_state", ir::DType::kFloat32,
                                       {ir::Dim::symbolic("batch"), ir::Dim::symbolic("sequence"), ir::Dim(h)}));
  if (pooler) {
    enc.pooler("last_hidden_state", "pooler.dense", "pooler_output");
    graph.outputs.push_back(
        tensor_value("pooler_output", ir::DType::kFloat32, {ir::Dim::symbolic("batch"), ir::Dim(h)}));
  }
}

}  // namespace kiln::exporter

// The hyperparameters of an encoder-only transformer (BERT, DistilBERT, ViT), read from a Hugging Face
// config.json or taken from a named preset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::exporter {

enum class Family { kBert, kDistilBert, kVit };

struct TransformerConfig {
  Family family = Family::kBert;
  std::string name;  // preset name, or the config file it came from
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t intermediate_size = 0;
  std::string hidden_act = "gelu";  // gelu (erf), gelu_new / gelu_pytorch_tanh (tanh), relu
  double layer_norm_eps = 1e-12;
  // Text models.
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;  // 0: no token_type_ids input (DistilBERT)
  bool pooler = true;           // BertModel and ViTModel have one; DistilBertModel does not
  // Vision models.
  int64_t image_size = 224;
  int64_t patch_size = 16;
  int64_t num_channels = 3;
  bool qkv_bias = true;

  int64_t head_size() const { return hidden_size / num_heads; }
  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
  bool is_vision() const { return family == Family::kVit; }
  // Throws naming the field when a value is out of range or the sizes do not fit together.
  void validate() const;
};

// Reads config.json as Hugging Face writes it. `expected` is the family the command asked for (bert
// accepts model_type "bert" and "distilbert"); a required field that is missing is an error naming it.
TransformerConfig read_config(const std::string& path, Family expected);

// Presets: bert-tiny, bert-mini, bert-base, bert-large, distilbert, vit-tiny, vit-base.
TransformerConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();

const char* family_name(Family f);

}  // namespace kiln::exporter

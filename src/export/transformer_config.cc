#include "export/transformer_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"

namespace kiln::exporter {

namespace {

using nlohmann::json;

struct Preset {
  const char* name;
  TransformerConfig config;
};

TransformerConfig sized(Family family, int64_t hidden, int64_t layers, int64_t heads, int64_t inter) {
  TransformerConfig c;
  c.family = family;
  c.hidden_size = hidden;
  c.num_layers = layers;
  c.num_heads = heads;
  c.intermediate_size = inter;
  if (family != Family::kVit) c.vocab_size = 30522;
  return c;
}

TransformerConfig bert(int64_t hidden, int64_t layers, int64_t heads, int64_t inter) {
  return sized(Family::kBert, hidden, layers, heads, inter);
}

TransformerConfig vit(int64_t hidden, int64_t layers, int64_t heads, int64_t inter) {
  return sized(Family::kVit, hidden, layers, heads, inter);
}

TransformerConfig distilbert() {
  TransformerConfig c = bert(768, 6, 12, 3072);
  c.family = Family::kDistilBert;
  c.type_vocab_size = 0;
  c.pooler = false;
  return c;
}

// Sizes as Google's BERT release (tiny/mini/base/large), distilbert-base-uncased, DeiT-tiny and ViT-B/16.
const std::vector<Preset>& presets() {
  static const std::vector<Preset> p = {
      {"bert-tiny", bert(128, 2, 2, 512)},    {"bert-mini", bert(256, 4, 4, 1024)},
      {"bert-base", bert(768, 12, 12, 3072)}, {"bert-large", bert(1024, 24, 16, 4096)},
      {"distilbert", distilbert()},           {"vit-tiny", vit(192, 12, 3, 768)},
      {"vit-base", vit(768, 12, 12, 3072)},
  };
  return p;
}

class ConfigReader {
 public:
  ConfigReader(const json& j, const std::string& path) : j_(j), path_(path) {}

  int64_t required_int(const char* key) const {
    if (!j_.contains(key)) fail(path_, ": required field \"", key, "\" is missing");
    return as_int(key);
  }
  int64_t optional_int(const char* key, int64_t fallback) const { return j_.contains(key) ? as_int(key) : fallback; }
  double optional_double(const char* key, double fallback) const {
    if (!j_.contains(key)) return fallback;
    if (!j_[key].is_number()) fail(path_, ": field \"", key, "\" must be a number, got ", j_[key].dump());
    return j_[key].get<double>();
  }
  bool optional_bool(const char* key, bool fallback) const {
    if (!j_.contains(key)) return fallback;
    if (!j_[key].is_boolean()) fail(path_, ": field \"", key, "\" must be true or false, got ", j_[key].dump());
    return j_[key].get<bool>();
  }
  std::string optional_string(const char* key, const std::string& fallback) const {
    if (!j_.contains(key)) return fallback;
    if (!j_[key].is_string()) fail(path_, ": field \"", key, "\" must be a string, got ", j_[key].dump());
    return j_[key].get<std::string>();
  }

 private:
  int64_t as_int(const char* key) const {
    const json& v = j_[key];
    if (!v.is_number_integer()) fail(path_, ": field \"", key, "\" must be an integer, got ", v.dump());
    return v.get<int64_t>();
  }
  const json& j_;
  const std::string& path_;
};

}  // namespace

const char* family_name(Family f) {
  switch (f) {
    case Family::kBert:
      return "bert";
    case Family::kDistilBert:
      return "distilbert";
    case Family::kVit:
      return "vit";
  }
  return "?";
}

void TransformerConfig::validate() const {
  auto positive = [&](const char* field, int64_t v) {
    if (v <= 0) fail(name, ": ", field, " must be positive, got ", v);
  };
  positive("hidden_size", hidden_size);
  positive("num_hidden_layers", num_layers);
  positive("num_attention_heads", num_heads);
  positive("intermediate_size", intermediate_size);
  if (hidden_size % num_heads != 0)
    fail(name, ": hidden_size ", hidden_size, " is not a multiple of num_attention_heads ", num_heads);
  if (hidden_act != "gelu" && hidden_act != "gelu_new" && hidden_act != "gelu_pytorch_tanh" && hidden_act != "relu")
    fail(name, ": hidden_act \"", hidden_act, "\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)");
  if (!(layer_norm_eps > 0)) fail(name, ": layer_norm_eps must be positive, got ", layer_norm_eps);
  if (is_vision()) {
    positive("image_size", image_size);
    positive("patch_size", patch_size);
    positive("num_channels", num_channels);
    if (image_size % patch_size != 0)
      fail(name, ": image_size ", image_size, " is not a multiple of patch_size ", patch_size);
  } else {
    positive("vocab_size", vocab_size);
    positive("max_position_embeddings", max_position_embeddings);
    if (type_vocab_size < 0) fail(name, ": type_vocab_size must not be negative, got ", type_vocab_size);
  }
}

TransformerConfig read_config(const std::string& path, Family expected) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open the config file");
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(path, ": not valid JSON");
  if (!j.is_object()) fail(path, ": the config must be a JSON object");
  ConfigReader r(j, path);

  std::string model_type = r.optional_string("model_type", expected == Family::kVit ? "vit" : "bert");
  TransformerConfig c;
  c.name = path;
  if (expected == Family::kVit) {
    if (model_type != "vit" && model_type != "deit")
      fail(path, ": model_type \"", model_type, "\" is not a ViT model (expected \"vit\")");
    c.family = Family::kVit;
  } else if (model_type == "bert") {
    c.family = Family::kBert;
  } else if (model_type == "distilbert") {
    c.family = Family::kDistilBert;
  } else {
    fail(path, ": model_type \"", model_type, "\" is not a BERT model (expected \"bert\" or \"distilbert\")");
  }

  if (c.family == Family::kDistilBert) {
    // DistilBertConfig names its fields differently.
    c.hidden_size = r.required_int("dim");
    c.num_layers = r.required_int("n_layers");
    c.num_heads = r.required_int("n_heads");
    c.intermediate_size = r.required_int("hidden_dim");
    c.hidden_act = r.optional_string("activation", "gelu");
    c.layer_norm_eps = 1e-12;
    c.vocab_size = r.required_int("vocab_size");
    c.max_position_embeddings = r.optional_int("max_position_embeddings", 512);
    c.type_vocab_size = 0;
    c.pooler = false;
    if (r.optional_bool("sinusoidal_pos_embds", false))
      fail(path, ": sinusoidal_pos_embds is not supported (learned position embeddings only)");
  } else {
    c.hidden_size = r.required_int("hidden_size");
    c.num_layers = r.required_int("num_hidden_layers");
    c.num_heads = r.required_int("num_attention_heads");
    c.intermediate_size = r.required_int("intermediate_size");
    c.hidden_act = r.optional_string("hidden_act", "gelu");
    c.layer_norm_eps = r.optional_double("layer_norm_eps", 1e-12);
    if (c.family == Family::kBert) {
      c.vocab_size = r.required_int("vocab_size");
      c.max_position_embeddings = r.optional_int("max_position_embeddings", 512);
      c.type_vocab_size = r.optional_int("type_vocab_size", 2);
      std::string pos = r.optional_string("position_embedding_type", "absolute");
      if (pos != "absolute") fail(path, ": position_embedding_type \"", pos, "\" is not supported (absolute only)");
    } else {
      c.image_size = r.optional_int("image_size", 224);
      c.patch_size = r.optional_int("patch_size", 16);
      c.num_channels = r.optional_int("num_channels", 3);
      c.qkv_bias = r.optional_bool("qkv_bias", true);
    }
  }
  c.validate();
  return c;
}

TransformerConfig preset_config(const std::string& name) {
  for (const auto& p : presets())
    if (name == p.name) {
      TransformerConfig c = p.config;
      c.name = p.name;
      return c;
    }
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  fail("unknown preset \"", name, "\" (known: ", known, ")");
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& p : presets()) names.push_back(p.name);
  return names;
}

}  // namespace kiln::exporter

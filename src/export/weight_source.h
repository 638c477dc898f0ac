// Where an exporter's parameters come from: a Hugging Face checkpoint (safetensors), or seeded random
// numbers drawn the way Hugging Face initializes these models. Either way the exporter asks for each
// parameter by its Hugging Face name and shape and gets float32 back.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "export/transformer_config.h"
#include "ir/tensor.h"

namespace kiln::exporter {

// What a parameter is, which decides how a random one is drawn.
enum class WeightKind { kMatrix, kBias, kNormScale, kNormBias };

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The float32 parameter `name` (as BertModel / ViTModel names it, without a task prefix) with `shape`;
  // throws naming the parameter when it is missing, mis-shaped or not a float type.
  virtual ir::Tensor get(const std::string& name, const std::vector<int64_t>& shape, WeightKind kind) = 0;
  // Whether an optional part (the pooler) is present.
  virtual bool has(const std::string& name) const = 0;
  // Tensors of the checkpoint that the model did not use, such as a task head (after the export).
  virtual std::vector<std::string> unused() const { return {}; }
};

// Reads a safetensors checkpoint; tensors are memory-mapped. Names may carry the prefix a task-head
// checkpoint adds ("bert.", "distilbert.", "vit."); it is detected from the file.
std::unique_ptr<WeightSource> checkpoint_weights(const std::string& safetensors_path, Family family);

// Seeded random parameters: normal with std 0.02 as Hugging Face initializes them, but biases and
// LayerNorm parameters are drawn too (not zeros and ones) so that no bias or scale bug can hide. The
// values of a parameter depend only on the seed and its name.
std::unique_ptr<WeightSource> random_weights(uint64_t seed);

}  // namespace kiln::exporter

// The metadata entries kiln's quantization writes into a model (ONNX metadata_props), so that a file says
// what was done to it: "kiln.quantization" = "int8-dynamic", "int8-static" or "fp16" records how the
// weights were stored (the file runs as written in any runtime; the tag is for people and for refusing to
// quantize twice), and runtime::kPrecisionMetadataKey ("kiln.precision" = "bf16", `kiln quantize --mode
// bf16`) asks kiln's Session for a precision the file cannot express.
#pragma once

#include <string>

#include "ir/graph.h"

namespace kiln::passes {

inline constexpr const char* kQuantizationMetadataKey = "kiln.quantization";

// Sets `key` to `value`: the first entry of that key is replaced and any later duplicates dropped, so that
// a file never says two things about one key.
void set_model_metadata(ir::Model& model, const std::string& key, const std::string& value);

// The value of the first entry of `key`, or "" when there is none.
std::string model_metadata(const ir::Model& model, const std::string& key);

}  // namespace kiln::passes

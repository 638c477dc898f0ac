// Reading and writing ONNX files. This folder is the only code that knows protobuf; everything past it
// speaks ir::. Every error is a kiln::Error whose message names the file and the field at fault.
#pragma once

#include <cstddef>
#include <string>

#include "ir/graph.h"

namespace kiln::onnx_io {

// Reads a model file. External data is read relative to the model's folder; a location that escapes it
// (`..`, an absolute path, a symlink) or a range past the end of its file is refused.
ir::Model load_model(const std::string& path);
// Parses a model held in memory; `base_dir` is where external data is looked up ("" refuses external
// data), `label` names the model in messages.
ir::Model parse_model(const void* data, size_t size, const std::string& base_dir, const std::string& label);

struct SaveOptions {
  // Initializers of at least this many bytes go to an external data file when the model would not
  // fit in one protobuf message (2 GiB); -1 always keeps data inline, 0 always externalizes.
  int64_t external_data_threshold = 1024;
  bool force_external_data = false;  // externalize even small models (tests, large-model workflows)
};

// Writes a model: to a temporary name, renamed when complete. Large models get their initializers in
// an external data file `<name>.onnx.data` beside the model.
void save_model(const ir::Model& model, const std::string& path, const SaveOptions& options = {});
// The serialized bytes of a model with all data inline (fails beyond protobuf's 2 GiB limit).
std::string serialize_model(const ir::Model& model);

// Reads a serialized TensorProto, SequenceProto or OptionalProto file (ONNX test data: input_0.pb);
// `expected` (the graph input's declared type) says which one it is.
ir::Datum load_datum_pb(const std::string& path, const ir::Type& expected);

}  // namespace kiln::onnx_io

// What `kiln serve` serves: a model repository as Triton and KServe lay it out,
//
//     REPO/NAME/config.json          optional: how NAME is served (below)
//     REPO/NAME/VERSION/model.onnx   VERSION a positive integer; every version is served
//
// or a single MODEL.onnx, served as model NAME (the file's stem), version 1, with the default config.
//
// config.json (every field optional):
//   {"max_batch_size": 8,                       // 0: requests run one by one (no batching)
//    "dynamic_batching": {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": 2000,
//                         "max_queue_size": 64, "timeout_ms": 10000, "sequence_bucket": 8},
//    "instances": 1,
//    "optimization": {"level": "all", "precision": "fp32"},   // as kiln run's --level and --precision
//    "text": {"vocab": "vocab.txt", "input": "text", "max_length": 128, "lower_case": true}}
// sequence_bucket: with batching, a model whose input_ids and attention_mask share a named sequence dim
// takes requests of any length in one batch: their token inputs are padded (mask 0) to a multiple of it,
// and the outputs along that dim are cut back to each request's own length.
// "text" lets a BERT model take raw text: a BYTES input of that name (shape [n]: n texts) is tokenized with
// the WordPiece vocabulary (relative to the model folder) into the model's input_ids, attention_mask and
// token_type_ids.
// An unknown field is refused (a typo must not pass silently), naming the file and the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "passes/pass.h"
#include "runtime/session.h"

namespace kiln::serve {

struct DynamicBatching {
  std::vector<int64_t> preferred_batch_sizes;
  int64_t max_queue_delay_us = 0;
  int64_t max_queue_size = 64;
  int64_t timeout_ms = 0;  // 0: none
  int64_t sequence_bucket = 8;  // token inputs padded to a multiple of this (0 or 1: not padded)
};

struct TextInputConfig {
  std::string vocab;
  std::string input = "text";
  int64_t max_length = 128;
  bool lower_case = true;
};

struct ModelConfig {
  int64_t max_batch_size = 0;
  DynamicBatching batching;
  int64_t instances = 1;
  passes::Level level = passes::Level::kAll;
  runtime::Precision precision = runtime::Precision::kModel;
  std::optional<TextInputConfig> text;
};

struct ModelVersion {
  std::string version;  // "1"
  std::string path;     // its model.onnx
};

struct ModelEntry {
  std::string name;
  ModelConfig config;
  std::vector<ModelVersion> versions;  // ascending
};

// The repository at `path` (a folder as above, or one .onnx file). Fails (kiln::Error, one sentence naming
// the file or folder) on a missing path, a folder with no model, a bad version folder name or a bad config.
std::vector<ModelEntry> scan_model_repository(const std::string& path);

// The names of the models in the repository at `path`, without reading them (a file: its stem).
std::vector<std::string> list_repository_models(const std::string& path);
// One model of the repository, read again (for a load request); fails if it is not there or is bad.
ModelEntry scan_repository_model(const std::string& path, const std::string& name);

// Parses a config.json's text; `file` names it in errors.
ModelConfig parse_model_config(const std::string& text, const std::string& file);

}  // namespace kiln::serve

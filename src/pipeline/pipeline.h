// `kiln pipeline` as a library: the whole job on one model, ending in a report.
//
//   model (a file, an export of a checkpoint, a preset or the built-in bert-base)
//     -> baseline       the model as given, run with no graph optimization: where the user starts
//     -> optimized      kiln's graph passes (the file written for ONNX Runtime's ops; kiln adds its own at load)
//     -> bf16 / int8-dynamic / int8-static, each the CPU can speed up (or each asked for)
//   each variant benchmarked (bench/) on every batch x seq configuration, the peers (ONNX Runtime, OpenVINO)
//   on the baseline's file alongside it, and validated against the baseline (validate/); the fastest variant
//   within the accuracy bound is chosen.
//
// Every file is made in a staging folder inside the output folder and moved into place only when the whole
// run has succeeded (the chosen model, then report.json, report.md and report.html): a failed run leaves
// no half-written report. The variants' files are made before anything is measured, so that a precision the
// model cannot take, or a calibration folder that cannot be read, fails in seconds.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/peer_bench.h"

namespace kiln::pipeline {

inline constexpr const char* kDefaultBound = "cosine=0.01";
// The precisions a pipeline knows, after the baseline and optimized variants (which always run).
inline const std::vector<std::string> kPrecisions = {"bf16", "int8-dynamic", "int8-static"};

struct PipelineOptions {
  // Where the model comes from: one of a file, an export (family, config and weights) or a preset (seeded
  // random weights); none of them: the built-in bert-base (exporter/default_model.h).
  std::string model;
  std::string export_family;  // "bert" or "vit"
  std::string export_config;
  std::string export_weights;
  std::string preset;

  std::vector<int64_t> batches = {1};
  std::vector<int64_t> seqs = {128};
  // "fp32" (baseline and optimized only), "bf16", "int8-dynamic", "int8-static"; empty: auto, every
  // precision this CPU runs faster (int8-static when calibration samples are given).
  std::vector<std::string> precisions;
  std::string max_drop = kDefaultBound;  // quantize/accuracy_bound.h's METRIC[:OUTPUT]=VALUE
  std::vector<bench::PeerEngine> peers;
  std::string calibration_dir;     // int8-static's samples (quantize/calibration.h)
  int64_t calibration_random = 0;  // or this many generated ones
  std::string inputs_dir;          // validation samples; empty: `samples` generated ones
  int64_t samples = 8;
  std::string out_dir = "kiln-pipeline";
  int threads = 1;
  int warmup = 3;
  int iterations = 20;
  int rounds = 3;
  std::string command_line;  // as the user typed it, for the report's commands
};

struct PipelineResult {
  nlohmann::json report;  // pipeline/report_schema.md
  std::string out_dir;
  std::string chosen_file;  // empty when no variant met the bound
  std::string headline;
};

// Progress lines: `transient` ones (per call or sample) are worth showing only where they can be redrawn.
using Progress = std::function<void(const std::string& text, bool transient)>;

// Fails (kiln::Error, one sentence) on bad options, a missing model or checkpoint, an unreadable calibration
// folder or a precision the model cannot take, before measuring anything; nothing is left in out_dir then.
PipelineResult run_pipeline(const PipelineOptions& options, const Progress& progress = {});

// The precisions of a --precision list ("auto", or a comma-separated list of fp32 and kPrecisions); one
// sentence naming an unknown entry. "auto" gives an empty list.
std::vector<std::string> parse_precisions(const std::string& list);

}  // namespace kiln::pipeline

// The inputs `kiln validate` feeds both models, one sample at a time: generated ones (the generator
// `kiln bench` uses, bench/bench_inputs.h: token ids within the vocabulary, masks of ones, ...; sample k
// from seed + k), or the user's, from a folder of .npy files (file names as `kiln run` maps input names,
// io::npy_file_stem):
//
//   DIR/input_ids.npy, DIR/attention_mask.npy, ...           one sample
//   DIR/a/input_ids.npy, DIR/b/input_ids.npy, ...            one sample per subfolder, in name order
//
// A sample is made when asked for, so that many samples never sit in memory together.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/bench_inputs.h"
#include "ir/graph.h"

namespace kiln::validate {

using Feeds = std::unordered_map<std::string, ir::Datum>;

class InputSamples {
 public:
  // `count` samples for the inputs `plan` describes (bench::plan_inputs), seeds seed .. seed + count - 1,
  // with the batch and sequence dims at `batch` and `seq`.
  static InputSamples generated(bench::InputPlan plan, int64_t count, uint64_t seed, int64_t batch, int64_t seq);
  // Samples from `dir` for `inputs` (a graph's inputs that are not initializers). Fails, naming the folder
  // and the input, when DIR is not a folder or a sample lacks a file; a file whose dtype or shape
  // contradicts the input's declared type fails when its sample is read.
  static InputSamples from_folder(std::vector<ir::ValueInfo> inputs, const std::string& dir);

  int64_t size() const { return count_; }
  // Sample k: a tensor per input, by input name.
  Feeds sample(int64_t k) const;
  // For the report: "8 generated samples (seeds 0..7), batch 1, sequence 128", "3 samples from DIR".
  const std::string& description() const { return description_; }

 private:
  InputSamples() = default;

  int64_t count_ = 0;
  std::string description_;
  // Generated samples.
  bench::InputPlan plan_;
  uint64_t seed_ = 0;
  int64_t batch_ = 1, seq_ = 1;
  // Samples from a folder: one folder per sample.
  std::vector<ir::ValueInfo> inputs_;
  std::vector<std::filesystem::path> folders_;
};

// Fails, naming the input and `file`, when `t` contradicts the declared type of `input` (dtype, rank, or a
// static dim).
void check_input_tensor(const ir::ValueInfo& input, const ir::Tensor& t, const std::string& file);

}  // namespace kiln::validate

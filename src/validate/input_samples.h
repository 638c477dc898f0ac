// The inputs `kiln validate` feeds both models, one sample at a time: generated ones (the generator
// `kiln bench` uses, bench/bench_inputs.h: token ids within the vocabulary, masks of ones, ...; sample k
// from seed + k), the user's, from a folder of .npy files (file names as `kiln run` maps input names,
// io::npy_file_stem):
//
//   DIR/input_ids.npy, DIR/attention_mask.npy, ...           one sample
//   DIR/a/input_ids.npy, DIR/b/input_ids.npy, ...            one sample per subfolder, in name order
//
// or real text for a text encoder: each line of a file one sample of batch 1, tokenized by kiln's WordPiece
// tokenizer (text/wordpiece_tokenizer.h) into the input_ids / attention_mask / token_type_ids the model
// takes, at the line's own length (no padding, so that no figure depends on padded positions).
//
// A sample is made when asked for, so that many samples never sit in memory together (text keeps only its
// token ids).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/bench_inputs.h"
#include "ir/graph.h"

namespace kiln::validate {

// The input whose value, in a sample, marks a text encoder's real tokens (1) and its padding (0): validation
// pools token outputs into sentence embeddings by it (OutputComparer::add).
inline constexpr const char* kTokenMaskInput = "attention_mask";

// Text samples (`kiln validate --text FILE --vocab VOCAB`).
struct TextInputs {
  std::string file;          // one sample per line; blank lines are skipped
  std::string vocab;         // vocab.txt or a JSON token list (text::WordPieceTokenizer::from_file)
  int64_t max_length = 512;  // tokens per line, [CLS] and [SEP] included; longer lines are truncated
  bool cased = false;        // the vocabulary is cased: no lower-casing or accent stripping
};

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
  // One sample per non-blank line of text.file, tokenized with text.vocab, for `inputs` (a graph's inputs
  // that are not initializers): input_ids and, when the model takes them, attention_mask (ones) and
  // token_type_ids (zeros), [1, tokens] in each input's declared integer dtype. Fails with one sentence on
  // a missing or empty file, a missing vocabulary, a model without input_ids, or an input it cannot feed.
  static InputSamples from_text(std::vector<ir::ValueInfo> inputs, const TextInputs& text);

  int64_t size() const { return count_; }
  // Sample k: a tensor per input, by input name.
  Feeds sample(int64_t k) const;
  // For the report: "8 generated samples (seeds 0..7), batch 1, sequence 128", "3 samples from DIR".
  const std::string& description() const { return description_; }

 private:
  InputSamples() = default;

  enum class Source { kGenerated, kFolder, kText };

  Source source_ = Source::kGenerated;
  int64_t count_ = 0;
  std::string description_;
  // Generated samples.
  bench::InputPlan plan_;
  uint64_t seed_ = 0;
  int64_t batch_ = 1, seq_ = 1;
  // The inputs to feed (samples from a folder or text).
  std::vector<ir::ValueInfo> inputs_;
  // Samples from a folder: one folder per sample.
  std::vector<std::filesystem::path> folders_;
  // Text samples: each line's token ids, and "--text FILE line N" for error messages.
  std::vector<std::vector<int64_t>> token_ids_;
  std::vector<std::string> sources_;
};

// Fails, naming the input and `file`, when `t` contradicts the declared type of `input` (dtype, rank, or a
// static dim).
void check_input_tensor(const ir::ValueInfo& input, const ir::Tensor& t, const std::string& file);

}  // namespace kiln::validate

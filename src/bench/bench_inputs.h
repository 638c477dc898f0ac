// Inputs for `kiln bench`: which symbolic dims are the batch and the sequence, what kind of values each
// input takes, and generated tensors of the right dtype and shape for one (batch, seq) configuration.
//
//   - batch: the first symbolic dim met (inputs in order, dims in order) that is not the sequence dim;
//   - sequence: the first symbolic dim named like "seq"/"sequence"/"length", else the second symbolic
//     dim met (one named like height, width or channel is never taken for it). A model without one
//     (ViT: pixel_values [batch, 3, 224, 224]) ignores --seq. An unnamed dynamic dim counts as a
//     symbol of its own per axis.
//   - token ids (integer inputs not named like a mask, token type, segment or position): uniform in
//     [0, vocab). The vocabulary size is the row count of the embedding table that a Gather looks the
//     ids up in (through Cast/Reshape/Unsqueeze/...); when no such Gather is found it is 30522, BERT's
//     uncased vocabulary.
//   - masks (name contains "mask"): ones; token types / segments: zeros; position ids: 0, 1, 2, ...
//     along the last axis; bool inputs: true; float inputs: ~N(0, 1).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace kiln::bench {

inline constexpr int64_t kFallbackVocabSize = 30522;

enum class InputKind { kTokenIds, kMask, kTokenType, kPositionIds, kOther };

struct BenchInput {
  ir::ValueInfo info;
  InputKind kind = InputKind::kOther;
  int64_t vocab = 0;           // for token ids: the range of generated values
  bool vocab_guessed = false;  // no embedding table found: kFallbackVocabSize
};

struct InputPlan {
  std::vector<BenchInput> inputs;  // the graph's inputs that are not initializers, in order
  std::string batch_dim;           // key of the batch dim ("" when no input has a dynamic dim)
  std::string seq_dim;             // key of the sequence dim ("" when the model has none)
  bool has_seq() const { return !seq_dim.empty(); }
};

// Key of a dynamic dim for the rules above: its symbol, or "?<axis>" when unnamed.
std::string dim_key(const ir::Dim& d, size_t axis);

// Reads the inputs' declared types and the graph (for vocabulary sizes). Fails, naming the input, when
// an input is not a tensor or has no declared shape.
InputPlan plan_inputs(const ir::Graph& graph);

// Row count of the embedding table looked up with `input`'s values, or 0 when none is found.
int64_t vocab_size(const ir::Graph& graph, const std::string& input);

// The concrete shape of `input` for this configuration: batch dim -> batch, sequence dim -> seq,
// any other dynamic dim -> 1.
std::vector<int64_t> bench_shape(const InputPlan& plan, const BenchInput& input, int64_t batch, int64_t seq);

// One tensor per input, in plan order, deterministic for a seed.
std::vector<ir::Tensor> generate_inputs(const InputPlan& plan, int64_t batch, int64_t seq, uint64_t seed = 0);

// Tensors given by the user, one per input in plan order: from DIR/<name>.npy (names mapped to file
// names as `kiln run` does) or from an .npz archive written by np.savez (uncompressed; members
// <name>.npy). Fails naming the missing input or the bad file.
std::vector<ir::Tensor> read_input_dir(const InputPlan& plan, const std::string& dir);
std::vector<ir::Tensor> read_npz_inputs(const InputPlan& plan, const std::string& path);
// The members of an uncompressed .npz archive, by name without the ".npy" suffix.
std::map<std::string, ir::Tensor> read_npz(const std::string& path);

// The batch and sequence sizes that given tensors bind (batch 1 when the model has no batch dim;
// seq nullopt when it has no sequence dim). Fails when two inputs disagree on a dim.
std::pair<int64_t, std::optional<int64_t>> bound_sizes(const InputPlan& plan, const std::vector<ir::Tensor>& tensors);

}  // namespace kiln::bench

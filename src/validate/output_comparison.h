// How close a candidate model's output is to its reference's, over many samples: error figures for any
// numeric output, top-1 / top-5 agreement for classifier-like outputs, and nearest-neighbour retrieval
// agreement for embedding-like ones. `kiln validate` prints these per output, and per intermediate value
// with --per-layer.
//
// With a the reference's element and b the candidate's, in double:
//   max abs    max |a - b| over every element of every sample
//   max rel    max |a - b| / max(|a|, floor), floor = kRelativeErrorFloor x the largest |a| of that sample's
//              tensor: an element near zero is judged against the tensor's scale, so that the int8 rounding
//              of a 1e-6 activation does not read as a 100 % error (an all-zero reference: infinity unless
//              the candidate is all zeros too)
//   mean abs   the mean of |a - b| over every element of every sample (non-finite mismatches left out)
//   rel L2     ||a - b|| / ||a|| over all samples together (0 when both are all zeros)
//   cosine     a.b / (||a|| ||b||) over a whole tensor: per sample (min_cosine is the lowest) and over all
//              samples together; 1 when both are all zeros, 0 when only one is
// An element that is not finite on some side counts as no error when both sides hold the same value (the
// same infinity, or NaN and NaN); otherwise it is a non-finite mismatch: max abs and max rel become
// infinity and the sums leave it out.
//
// Classifier-like outputs (float on both sides, rank >= 2, last dim >= 2: logits [batch, classes]) have rows
// along their last axis:
//   top-1 agreement  % of rows whose argmax (the first one on ties) is the same on both sides
//   top-5 agreement  % of rows whose reference argmax is among the candidate's 5 largest values (ties count
//                    in its favour); needs >= 5 classes
// Embedding-like outputs (float on both sides, rank 2 [batch, D], or rank 3 [batch, seq, D] mean-pooled over
// seq to [batch, D]; D >= 2) give one row per batch item: a text encoder's sentence embedding. The mean over
// seq is weighted by the sample's token mask when one is given ([batch, seq], the model's attention_mask
// input): sentence-transformers' mean pooling, so that padding does not count. The rows of all samples are
// pooled; for each row:
//   embedding cosine     the cosine of its reference and candidate vectors: mean and min over the rows
//   retrieval agreement  % of rows whose nearest other row by cosine is the same one under both models
//                        (the reference's nearest neighbour found again); needs >= 3 rows
// The rules go by shape alone, so a rank-2 output counts as both kinds (a pooled embedding's top-1 is the
// argmax of its features; a classifier's retrieval compares its logit vectors): read the figure that fits.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ir/tensor.h"

namespace kiln::validate {

// The floor under |a| in max rel, as a fraction of the largest |a| in the tensor.
inline constexpr double kRelativeErrorFloor = 1e-3;
// Rows a retrieval figure needs: with two, each row's nearest other row is the only other one.
inline constexpr int64_t kMinRetrievalRows = 3;
inline constexpr int64_t kTopK = 5;

// A top-1, top-5 or retrieval figure.
struct Agreement {
  enum class State {
    kNotApplicable,  // the output is not of the kind the figure is for (table: "-")
    kUnavailable,    // it is, but there are too few rows or classes to say (table: "n/a"; `why` says)
    kMeasured,
  };
  State state = State::kNotApplicable;
  int64_t agreeing = 0;
  int64_t rows = 0;
  std::string why;

  bool measured() const { return state == State::kMeasured; }
  double percent() const { return rows ? 100.0 * static_cast<double>(agreeing) / static_cast<double>(rows) : 0.0; }
};

// Every figure of one output (or intermediate value), over the samples added so far.
struct OutputFigures {
  std::string name;
  std::string reference_type;  // of the first sample: "float32[1,128,768]"
  std::string candidate_type;
  // Why the output has no figures: a dtype or shape mismatch, or a value that is not a numeric tensor;
  // empty when it was compared.
  std::string not_compared;
  int64_t samples = 0;
  int64_t elements = 0;  // compared elements, over all samples (non-finite mismatches not counted)
  double max_abs_error = 0;
  double max_rel_error = 0;
  double mean_abs_error = 0;
  double rel_l2_error = 0;
  double min_cosine = 1;
  double cosine = 1;
  int64_t nonfinite_mismatches = 0;
  std::vector<double> sample_cosines;         // per sample, in order
  std::vector<double> sample_max_abs_errors;  // per sample, in order
  Agreement top1;
  Agreement top5;
  Agreement retrieval;
  // Embedding-like outputs: each pooled row's embedding cosine, rows of all samples in order (a sentence's
  // row per sample for text inputs of batch 1); empty for other outputs.
  std::vector<double> embedding_cosines;

  bool compared() const { return not_compared.empty(); }
  bool has_embedding_cosines() const { return !embedding_cosines.empty(); }
  double embedding_cosine_mean() const;
  double embedding_cosine_min() const;
};

// Accumulates one output's figures sample by sample.
class OutputComparer {
 public:
  // `task_figures` false leaves out top-1, top-5 and retrieval (per-layer values: they mean nothing there,
  // and retrieval would keep every sample's rows).
  explicit OutputComparer(std::string name, bool task_figures = true);

  // One sample of both sides. A dtype mismatch (two float types of different widths are compared), a shape
  // mismatch, or a value that is not a numeric tensor marks the output not compared, and later samples are
  // ignored. `token_mask`, the sample's attention mask [batch, seq] (any numeric dtype, 0 = padding), weights
  // the pooling of a rank-3 output of that batch and seq into embedding rows; null or of another shape: a
  // plain mean.
  void add(const ir::Datum& reference, const ir::Datum& candidate, const ir::Tensor* token_mask = nullptr);
  void add(const ir::Tensor& reference, const ir::Tensor& candidate, const ir::Tensor* token_mask = nullptr);

  // The figures so far (retrieval is computed here, over every row pooled so far).
  OutputFigures figures() const;

 private:
  void mark_not_compared(std::string why);
  void add_top_k(const ir::Tensor& reference, const ir::Tensor& candidate);
  void add_embedding_rows(const ir::Tensor& reference, const ir::Tensor& candidate, const ir::Tensor* token_mask);

  bool task_figures_;
  OutputFigures f_;
  // Sums over all samples, in double.
  double sum_abs_ = 0, sum_squared_error_ = 0, dot_ = 0, reference_squares_ = 0, candidate_squares_ = 0;
  // Embedding rows of every sample, `embedding_width_` values each.
  int64_t embedding_width_ = 0;
  std::vector<double> reference_rows_, candidate_rows_;
};

// Cosine similarity of two vectors of one length, in double: 1 when both are all zeros, 0 when only one is.
double cosine_similarity(std::span<const double> a, std::span<const double> b);

// Pools `t` (rank 2 [batch, D], or rank 3 [batch, seq, D]) into `batch` rows of D values, appended to `rows`:
// rank 2 as is; rank 3 by the mean over seq, weighted by `token_mask` when it is [batch, seq] (a row whose
// mask is all zeros stays zero, which is nobody's nearest neighbour).
void append_embedding_rows(const ir::Tensor& t, const ir::Tensor* token_mask, std::vector<double>& rows);

// Retrieval agreement of rows (row-major, `width` values each) under two models: for each row, whether its
// nearest other row by cosine (the first one on ties) is the same under both. kUnavailable below
// kMinRetrievalRows rows.
Agreement retrieval_agreement(std::span<const double> reference_rows, std::span<const double> candidate_rows,
                              int64_t width);

}  // namespace kiln::validate

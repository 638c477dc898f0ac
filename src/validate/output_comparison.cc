#include "validate/output_comparison.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "ir/shape.h"

namespace kiln::validate {

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// Calls f with a reader, i -> element i as double: a plain load for float32 and float64 (per-layer runs read
// every activation of both models), Tensor::as_double for the other types.
template <class F>
void with_reader(const ir::Tensor& t, F&& f) {
  if (t.dtype() == ir::DType::kFloat32) {
    const float* p = t.data<float>();
    f([p](int64_t i) { return static_cast<double>(p[i]); });
  } else if (t.dtype() == ir::DType::kFloat64) {
    const double* p = t.data<double>();
    f([p](int64_t i) { return p[i]; });
  } else {
    f([&t](int64_t i) { return t.as_double(i); });
  }
}

// The sums of one sample.
struct SampleSums {
  int64_t compared = 0;
  int64_t nonfinite_mismatches = 0;
  double max_abs = 0, max_rel = 0, sum_abs = 0, sum_squared_error = 0, dot = 0, a_squares = 0, b_squares = 0;
};

template <class ReadA, class ReadB>
SampleSums sum_sample(ReadA a_at, ReadB b_at, int64_t n) {
  double largest = 0;
  for (int64_t i = 0; i < n; ++i)
    if (const double a = std::fabs(a_at(i)); std::isfinite(a)) largest = std::max(largest, a);
  const double floor = kRelativeErrorFloor * largest;
  SampleSums s;
  for (int64_t i = 0; i < n; ++i) {
    const double a = a_at(i), b = b_at(i);
    if (!std::isfinite(a) || !std::isfinite(b)) {
      if (a == b || (std::isnan(a) && std::isnan(b)))
        ++s.compared;
      else
        ++s.nonfinite_mismatches;
      continue;
    }
    const double d = std::fabs(a - b);
    const double scale = std::max(std::fabs(a), floor);
    s.max_abs = std::max(s.max_abs, d);
    if (d > 0) s.max_rel = std::max(s.max_rel, scale > 0 ? d / scale : kInfinity);
    s.sum_abs += d;
    s.sum_squared_error += d * d;
    s.dot += a * b;
    s.a_squares += a * a;
    s.b_squares += b * b;
    ++s.compared;
  }
  return s;
}

double cosine_of_sums(double dot, double a_squares, double b_squares) {
  if (a_squares == 0 && b_squares == 0) return 1;
  if (a_squares == 0 || b_squares == 0) return 0;
  // Rounding can carry |cos| a hair past 1 for parallel vectors.
  return std::clamp(dot / std::sqrt(a_squares * b_squares), -1.0, 1.0);
}

bool numeric(ir::DType t) {
  return t != ir::DType::kString && t != ir::DType::kComplex64 && t != ir::DType::kComplex128 &&
         t != ir::DType::kUndefined;
}

std::string describe(const ir::Datum& d) {
  if (d.is_tensor()) return ir::to_string(ir::Type::tensor(d.tensor.dtype(), ir::Shape::of(d.tensor.shape())));
  if (d.is_sequence()) return "a sequence";
  return "an empty optional";
}

// Index of the largest value of a row (the first on ties; NaN never wins).
template <class Read>
int64_t argmax(Read at, int64_t begin, int64_t count) {
  int64_t best = 0;
  double best_value = -kInfinity;
  for (int64_t k = 0; k < count; ++k)
    if (const double v = at(begin + k); v > best_value) {
      best_value = v;
      best = k;
    }
  return best;
}

}  // namespace

OutputComparer::OutputComparer(std::string name, bool task_figures) : task_figures_(task_figures) {
  f_.name = std::move(name);
}

void OutputComparer::mark_not_compared(std::string why) {
  if (f_.compared()) f_.not_compared = std::move(why);
}

void OutputComparer::add(const ir::Datum& reference, const ir::Datum& candidate, const ir::Tensor* token_mask) {
  if (f_.samples == 0) {
    f_.reference_type = describe(reference);
    f_.candidate_type = describe(candidate);
  }
  if (!f_.compared()) return;
  if (!reference.is_tensor() || !candidate.is_tensor())
    return mark_not_compared(str("not a tensor: reference ", describe(reference), ", candidate ", describe(candidate)));
  add(reference.tensor, candidate.tensor, token_mask);
}

void OutputComparer::add(const ir::Tensor& reference, const ir::Tensor& candidate, const ir::Tensor* token_mask) {
  if (f_.samples == 0) {
    f_.reference_type = ir::to_string(ir::Type::tensor(reference.dtype(), ir::Shape::of(reference.shape())));
    f_.candidate_type = ir::to_string(ir::Type::tensor(candidate.dtype(), ir::Shape::of(candidate.shape())));
  }
  if (!f_.compared()) return;
  const ir::DType rt = reference.dtype(), ct = candidate.dtype();
  if (!numeric(rt) || !numeric(ct))
    return mark_not_compared(str("only numeric tensors are compared: reference ", rt, ", candidate ", ct));
  if (rt != ct && !(ir::is_float(rt) && ir::is_float(ct)))
    return mark_not_compared(str("dtype mismatch: reference ", rt, ", candidate ", ct));
  if (reference.shape() != candidate.shape())
    return mark_not_compared(str("shape mismatch: reference ", ir::to_string(reference.shape()), ", candidate ",
                                 ir::to_string(candidate.shape())));

  SampleSums s;
  with_reader(reference, [&](auto a_at) {
    with_reader(candidate, [&](auto b_at) { s = sum_sample(a_at, b_at, reference.numel()); });
  });
  ++f_.samples;
  f_.elements += s.compared;
  f_.nonfinite_mismatches += s.nonfinite_mismatches;
  const double sample_max_abs = s.nonfinite_mismatches ? kInfinity : s.max_abs;
  f_.max_abs_error = std::max(f_.max_abs_error, sample_max_abs);
  f_.max_rel_error = std::max(f_.max_rel_error, s.nonfinite_mismatches ? kInfinity : s.max_rel);
  f_.sample_max_abs_errors.push_back(sample_max_abs);
  const double sample_cosine = cosine_of_sums(s.dot, s.a_squares, s.b_squares);
  f_.sample_cosines.push_back(sample_cosine);
  f_.min_cosine = f_.samples == 1 ? sample_cosine : std::min(f_.min_cosine, sample_cosine);
  sum_abs_ += s.sum_abs;
  sum_squared_error_ += s.sum_squared_error;
  dot_ += s.dot;
  reference_squares_ += s.a_squares;
  candidate_squares_ += s.b_squares;

  if (!task_figures_ || !ir::is_float(rt) || !ir::is_float(ct)) return;
  add_top_k(reference, candidate);
  add_embedding_rows(reference, candidate, token_mask);
}

void OutputComparer::add_top_k(const ir::Tensor& reference, const ir::Tensor& candidate) {
  if (reference.rank() < 2 || reference.shape().back() < 2) return;
  const int64_t classes = reference.shape().back(), rows = reference.numel() / classes;
  f_.top1.state = Agreement::State::kMeasured;
  if (classes >= kTopK) {
    f_.top5.state = Agreement::State::kMeasured;
  } else {
    f_.top5.state = Agreement::State::kUnavailable;
    f_.top5.why = str(classes, " classes: top-", kTopK, " needs ", kTopK);
  }
  with_reader(reference, [&](auto a_at) {
    with_reader(candidate, [&](auto b_at) {
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t begin = r * classes;
        const int64_t want = argmax(a_at, begin, classes);
        f_.top1.agreeing += argmax(b_at, begin, classes) == want;
        ++f_.top1.rows;
        if (classes < kTopK) continue;
        // The reference's top-1 is in the candidate's top-5 when fewer than 5 values beat it there.
        const double held = b_at(begin + want);
        int64_t above = 0;
        for (int64_t k = 0; k < classes && above < kTopK; ++k) above += b_at(begin + k) > held;
        f_.top5.agreeing += !std::isnan(held) && above < kTopK;  // a NaN where the reference's top-1 is: no
        ++f_.top5.rows;
      }
    });
  });
}

void OutputComparer::add_embedding_rows(const ir::Tensor& reference, const ir::Tensor& candidate,
                                        const ir::Tensor* token_mask) {
  const size_t rank = reference.rank();
  if ((rank != 2 && rank != 3) || reference.shape().back() < 2) return;
  const int64_t width = reference.shape().back();
  if (f_.retrieval.state == Agreement::State::kUnavailable) return;
  if (embedding_width_ != 0 && embedding_width_ != width) {
    f_.retrieval.state = Agreement::State::kUnavailable;
    f_.retrieval.why = str("the embedding width changed between samples (", embedding_width_, ", then ", width, ")");
    reference_rows_.clear();
    candidate_rows_.clear();
    return;
  }
  embedding_width_ = width;
  f_.retrieval.state = Agreement::State::kMeasured;  // until figures() finds too few rows
  append_embedding_rows(reference, token_mask, reference_rows_);
  append_embedding_rows(candidate, token_mask, candidate_rows_);
}

OutputFigures OutputComparer::figures() const {
  OutputFigures f = f_;
  if (!f.compared()) return f;
  f.mean_abs_error = f.elements ? sum_abs_ / static_cast<double>(f.elements) : 0.0;
  f.rel_l2_error = reference_squares_ > 0    ? std::sqrt(sum_squared_error_ / reference_squares_)
                   : sum_squared_error_ == 0 ? 0.0
                                             : kInfinity;
  f.cosine = cosine_of_sums(dot_, reference_squares_, candidate_squares_);
  if (f.retrieval.state == Agreement::State::kMeasured)
    f.retrieval = retrieval_agreement(reference_rows_, candidate_rows_, embedding_width_);
  const size_t w = static_cast<size_t>(embedding_width_);
  for (size_t begin = 0; w && begin < reference_rows_.size(); begin += w)
    f.embedding_cosines.push_back(
        cosine_similarity(std::span(reference_rows_).subspan(begin, w), std::span(candidate_rows_).subspan(begin, w)));
  return f;
}

double OutputFigures::embedding_cosine_mean() const {
  double sum = 0;
  for (double c : embedding_cosines) sum += c;
  return embedding_cosines.empty() ? 1.0 : sum / static_cast<double>(embedding_cosines.size());
}

double OutputFigures::embedding_cosine_min() const {
  return embedding_cosines.empty() ? 1.0 : *std::min_element(embedding_cosines.begin(), embedding_cosines.end());
}

void append_embedding_rows(const ir::Tensor& t, const ir::Tensor* token_mask, std::vector<double>& rows) {
  KILN_CHECK((t.rank() == 2 || t.rank() == 3) && t.shape().back() >= 1, "append_embedding_rows: a ",
             ir::to_string(t.shape()), " tensor is not [batch, D] or [batch, seq, D]");
  const int64_t batch = t.dim(0), width = t.shape().back(), seq = t.rank() == 3 ? t.dim(1) : 1;
  const bool masked = t.rank() == 3 && token_mask && token_mask->rank() == 2 && token_mask->dim(0) == batch &&
                      token_mask->dim(1) == seq;
  with_reader(t, [&](auto at) {
    for (int64_t b = 0; b < batch; ++b) {
      const size_t row = rows.size();
      rows.resize(row + static_cast<size_t>(width), 0.0);
      double weights = 0;
      for (int64_t s = 0; s < seq; ++s) {
        const double weight = masked ? token_mask->as_double(b * seq + s) : 1.0;
        if (weight == 0) continue;
        weights += weight;
        for (int64_t k = 0; k < width; ++k)
          rows[row + static_cast<size_t>(k)] += weight * at((b * seq + s) * width + k);
      }
      if (weights > 0 && weights != 1)
        for (int64_t k = 0; k < width; ++k) rows[row + static_cast<size_t>(k)] /= weights;
    }
  });
}

double cosine_similarity(std::span<const double> a, std::span<const double> b) {
  KILN_CHECK(a.size() == b.size(), "cosine_similarity: vectors of ", a.size(), " and ", b.size(), " values");
  double dot = 0, a_squares = 0, b_squares = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += a[i] * b[i];
    a_squares += a[i] * a[i];
    b_squares += b[i] * b[i];
  }
  return cosine_of_sums(dot, a_squares, b_squares);
}

Agreement retrieval_agreement(std::span<const double> reference_rows, std::span<const double> candidate_rows,
                              int64_t width) {
  KILN_CHECK(width > 0 && reference_rows.size() == candidate_rows.size() &&
                 reference_rows.size() % static_cast<size_t>(width) == 0,
             "retrieval_agreement: ", reference_rows.size(), " and ", candidate_rows.size(), " values in rows of ",
             width);
  const size_t w = static_cast<size_t>(width), rows = reference_rows.size() / w;
  Agreement out;
  if (rows < static_cast<size_t>(kMinRetrievalRows)) {
    out.state = Agreement::State::kUnavailable;
    out.why = str(rows, " row", rows == 1 ? "" : "s", ": retrieval needs ", kMinRetrievalRows);
    return out;
  }
  // Each row's nearest other row under one model; rows scaled to unit length once, so a cosine is a dot.
  auto nearest = [&](std::span<const double> all) {
    std::vector<double> unit(all.begin(), all.end());
    for (size_t r = 0; r < rows; ++r) {
      double squares = 0;
      for (size_t k = 0; k < w; ++k) squares += unit[r * w + k] * unit[r * w + k];
      const double scale = squares > 0 ? 1.0 / std::sqrt(squares) : 0.0;  // a zero row: cosine 0 with all
      for (size_t k = 0; k < w; ++k) unit[r * w + k] *= scale;
    }
    std::vector<size_t> best(rows);
    for (size_t r = 0; r < rows; ++r) {
      best[r] = r == 0 ? 1 : 0;  // stays when every cosine is NaN
      double best_cosine = -kInfinity;
      for (size_t o = 0; o < rows; ++o) {
        if (o == r) continue;
        double dot = 0;
        for (size_t k = 0; k < w; ++k) dot += unit[r * w + k] * unit[o * w + k];
        if (dot > best_cosine) {
          best_cosine = dot;
          best[r] = o;
        }
      }
    }
    return best;
  };
  const std::vector<size_t> want = nearest(reference_rows), got = nearest(candidate_rows);
  out.state = Agreement::State::kMeasured;
  out.rows = static_cast<int64_t>(rows);
  for (size_t r = 0; r < rows; ++r) out.agreeing += want[r] == got[r];
  return out;
}

}  // namespace kiln::validate

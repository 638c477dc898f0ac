// com.microsoft normalizations that fuse what comes before a LayerNormalization, as ONNX Runtime defines
// them:
//   SkipLayerNormalization(input, skip, gamma, beta?, bias?)      s = input + skip (+ bias)
//       output = LayerNorm(s) over the last dim * gamma (+ beta); optional outputs mean and inv_std_var
//       (float32, the input's shape with the last dim 1) and input_skip_bias_sum = s.
//   SkipSimplifiedLayerNormalization(input, skip, gamma, bias?)   the same with RMS normalization:
//       output = s / sqrt(mean(s^2) + epsilon) * gamma; its mean output is 0, as ONNX Runtime reports it.
//   EmbedLayerNormalization(input_ids, segment_ids?, word_embedding, position_embedding,
//       segment_embedding?, gamma, beta, mask?, position_ids?)
//       e = word_embedding[id] + position_embedding[position] (+ segment_embedding[segment], row 0 when
//       segment_ids is absent, as ONNX Runtime does)
//       output = LayerNorm(e) * gamma + beta; mask_index[b] = count of ones in mask row b (zeros without a
//       mask); embedding_sum = e.
//   SimplifiedLayerNormalization(X, scale) (onnx domain, as ONNX Runtime declares it)   RMS normalization
//       over dims [axis, rank); optional output inv_std_var.
// Sums are formed in float32 as ONNX Runtime forms them; statistics are computed in double.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/contrib_common.h"

namespace kiln::ops::contrib {
namespace {

// ONNX Runtime's defaults (kDefaultSkipLayerNormEpsilon, kDefaultEmbedLayerNormEpsilon).
constexpr float kDefaultEpsilon = 1e-12f;

// Mean and 1/sqrt(variance + epsilon) of n floats (plain: centred; simplified: RMS, the mean taken as 0).
struct RowStats {
  double mean = 0;
  double inv = 0;
};

RowStats row_stats(const float* v, int64_t n, double epsilon, bool simplified) {
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < n; ++i) sum += v[i];
  RowStats s;
  s.mean = simplified ? 0.0 : sum / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    double d = v[i] - s.mean;
    sq += d * d;
  }
  s.inv = 1.0 / std::sqrt(sq / static_cast<double>(n) + epsilon);
  return s;
}

// ---------------------------------------------------------------------------------------------------
// SkipLayerNormalization and SkipSimplifiedLayerNormalization

struct SkipLayout {
  bool simplified;
  int beta_input;  // -1: none
  int bias_input;
};
constexpr SkipLayout kSkipLayerNorm{false, 3, 4};
constexpr SkipLayout kSkipSimplified{true, -1, 3};

bool same_dim(int64_t a, int64_t b) { return a == b; }
bool is_one(int64_t d) { return d == 1; }
// At inference time an unknown dim may be anything, so it never fails a check.
bool same_dim(const ir::Dim& a, const ir::Dim& b) { return !a.is_static() || !b.is_static() || a.value == b.value; }
bool is_one(const ir::Dim& d) { return !d.is_static() || d.value == 1; }

// ONNX Runtime's rule: skip has the input's shape, or (for a 3-D input) its last two dims with a batch
// of 1 or no batch dim, in which case one skip is added to every batch.
template <class Dims>
void check_skip_shapes(const NodeView& node, const Dims& in, const Dims& skip, const std::string& in_s,
                       const std::string& skip_s) {
  if (in.size() != 2 && in.size() != 3)
    node.fail("input must be 3-D (batch, sequence, hidden) or 2-D (tokens, hidden), got ", in_s);
  if (skip.size() != 2 && skip.size() != 3) node.fail("skip must be 2-D or 3-D, got ", skip_s);
  bool same = skip.size() == in.size();
  for (size_t i = 0; same && i < in.size(); ++i) same = same_dim(skip[i], in[i]);
  if (same) return;
  bool broadcast = in.size() == 3 && same_dim(skip[skip.size() - 1], in[2]) && same_dim(skip[skip.size() - 2], in[1]) &&
                   (skip.size() == 2 || is_one(skip[0]));
  if (!broadcast)
    node.fail("skip of shape ", skip_s, " must have the input's shape ", in_s,
              " or, for a 3-D input, (1, sequence, hidden) or (sequence, hidden)");
}

void infer_skip_layer_norm(InferenceContext& ctx, const SkipLayout& layout) {
  const char* names[] = {"input", "skip", "gamma", layout.simplified ? "bias" : "beta", "bias"};
  for (size_t i = 0; i < 5; ++i) require_float32_input(ctx, i, names[i]);
  const ir::Type& x = ctx.input_type(0);
  std::optional<ir::Shape> stat;
  auto skip = input_shape(ctx, 1);
  if (x.shape && skip) check_skip_shapes(ctx, x.shape->dims, skip->dims, ir::to_string(*x.shape), ir::to_string(*skip));
  if (x.shape) {
    if (x.shape->rank() != 2 && x.shape->rank() != 3)
      ctx.fail("input must be 3-D (batch, sequence, hidden) or 2-D (tokens, hidden), got ", ir::to_string(*x.shape));
    stat = *x.shape;
    stat->dims.back() = ir::Dim(1);
  }
  ctx.set_output_type(0, x);
  if (ctx.num_outputs() > 1) ctx.set_output(1, ir::DType::kFloat32, stat);
  if (ctx.num_outputs() > 2) ctx.set_output(2, ir::DType::kFloat32, stat);
  if (ctx.num_outputs() > 3) ctx.set_output_type(3, x);
}

void skip_layer_norm(KernelContext& ctx, const SkipLayout& layout) {
  const ir::Tensor& x = ctx.input(0);
  const ir::Tensor& skip = ctx.input(1);
  const ir::Tensor& gamma = ctx.input(2);
  require_float32(ctx, x.dtype(), "input");
  require_float32(ctx, skip.dtype(), "skip");
  require_float32(ctx, gamma.dtype(), "gamma");
  check_skip_shapes(ctx, x.shape(), skip.shape(), ir::to_string(x.shape()), ir::to_string(skip.shape()));
  int64_t hidden = x.shape().back();
  int64_t rows = hidden == 0 ? 0 : x.numel() / hidden;
  require_vector(ctx, gamma, hidden, "gamma");
  auto optional_param = [&](int index, const char* what) -> const float* {
    if (index < 0 || !ctx.has_input(static_cast<size_t>(index))) return nullptr;
    const ir::Tensor& t = ctx.input(static_cast<size_t>(index));
    require_float32(ctx, t.dtype(), what);
    require_vector(ctx, t, hidden, what);
    return t.data<float>();
  };
  const float* beta = optional_param(layout.beta_input, "beta");
  const float* bias = optional_param(layout.bias_input, "bias");
  double epsilon = ctx.attr_float("epsilon", kDefaultEpsilon);
  if (epsilon < 0) ctx.fail("epsilon must not be negative, got ", epsilon);

  std::vector<int64_t> stat_shape = x.shape();
  stat_shape.back() = 1;
  ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, x.shape());
  ir::Tensor sum_t = ctx.make_tensor(ir::DType::kFloat32, x.shape());
  ir::Tensor mean_t, inv_t;
  if (ctx.has_output(1)) mean_t = ctx.make_tensor(ir::DType::kFloat32, stat_shape);
  if (ctx.has_output(2)) inv_t = ctx.make_tensor(ir::DType::kFloat32, stat_shape);

  const float* in = x.data<float>();
  const float* sk = skip.data<float>();
  const float* g = gamma.data<float>();
  float* s = sum_t.data<float>();
  float* out = y.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = in + r * hidden;
    const float* kr = sk + (r * hidden) % skip.numel();  // a broadcast skip repeats every batch
    float* sr = s + r * hidden;
    for (int64_t h = 0; h < hidden; ++h) {
      float v = xr[h] + kr[h];
      if (bias) v += bias[h];
      sr[h] = v;
    }
    RowStats st = row_stats(sr, hidden, epsilon, layout.simplified);
    for (int64_t h = 0; h < hidden; ++h) {
      double v = (sr[h] - st.mean) * st.inv * g[h];
      if (beta) v += beta[h];
      out[r * hidden + h] = static_cast<float>(v);
    }
    if (mean_t.defined()) mean_t.data<float>()[r] = static_cast<float>(st.mean);
    if (inv_t.defined()) inv_t.data<float>()[r] = static_cast<float>(st.inv);
  }
  ctx.set_output(0, std::move(y));
  if (mean_t.defined()) ctx.set_output(1, std::move(mean_t));
  if (inv_t.defined()) ctx.set_output(2, std::move(inv_t));
  if (ctx.has_output(3)) ctx.set_output(3, std::move(sum_t));
}

// ---------------------------------------------------------------------------------------------------
// EmbedLayerNormalization

enum EmbedInput : size_t {
  kInputIds = 0,
  kSegmentIds = 1,
  kWordEmbedding = 2,
  kPositionEmbedding = 3,
  kSegmentEmbedding = 4,
  kGamma = 5,
  kBeta = 6,
  kMask = 7,
  kPositionIds = 8,
};

void infer_embed_layer_norm(InferenceContext& ctx) {
  require_int32_input(ctx, kInputIds, "input_ids");
  require_int32_input(ctx, kSegmentIds, "segment_ids");
  require_int32_input(ctx, kMask, "mask");
  require_int32_input(ctx, kPositionIds, "position_ids");
  require_float32_input(ctx, kWordEmbedding, "word_embedding");
  require_float32_input(ctx, kPositionEmbedding, "position_embedding");
  require_float32_input(ctx, kSegmentEmbedding, "segment_embedding");
  require_float32_input(ctx, kGamma, "gamma");
  require_float32_input(ctx, kBeta, "beta");
  if (ctx.has_input(kSegmentIds) && !ctx.has_input(kSegmentEmbedding))
    ctx.fail("segment_ids is given without segment_embedding");
  std::optional<ir::Shape> ids = input_shape(ctx, kInputIds);
  if (ids && ids->rank() != 2) ctx.fail("input_ids must be 2-D (batch, sequence), got ", ir::to_string(*ids));
  ir::Dim hidden;
  if (auto w = input_shape(ctx, kWordEmbedding)) {
    if (w->rank() != 2) ctx.fail("word_embedding must be 2-D (vocabulary, hidden), got ", ir::to_string(*w));
    hidden = (*w)[1];
  }
  std::optional<ir::Shape> out;
  if (ids) out = ir::Shape({(*ids)[0], (*ids)[1], hidden});
  ctx.set_output(0, ir::DType::kFloat32, out);
  if (ctx.num_outputs() > 1) {
    std::optional<ir::Shape> mask_index;
    if (ids) mask_index = ir::Shape({(*ids)[0]});
    ctx.set_output(1, ir::DType::kInt32, mask_index);
  }
  if (ctx.num_outputs() > 2) ctx.set_output(2, ir::DType::kFloat32, out);
}

// A 2-D (rows, hidden) float32 embedding table.
const ir::Tensor& embedding_table(const KernelContext& ctx, size_t input, const char* what, int64_t hidden) {
  const ir::Tensor& t = ctx.input(input);
  require_float32(ctx, t.dtype(), what);
  if (t.rank() != 2 || (hidden >= 0 && t.dim(1) != hidden))
    ctx.fail(what, " must be 2-D (rows, hidden=", hidden, "), got shape ", ir::to_string(t.shape()));
  return t;
}

// An int32 (batch, sequence) tensor of this shape.
const int32_t* id_tensor(const KernelContext& ctx, size_t input, const char* what, const ir::Dims& shape) {
  const ir::Tensor& t = ctx.input(input);
  require_int32(ctx, t.dtype(), what);
  if (t.shape() != shape)
    ctx.fail(what, " of shape ", ir::to_string(t.shape()), " must have input_ids' shape ", ir::to_string(shape));
  return t.data<int32_t>();
}

// Row `id` of a table, failing with the offending id and where it was read.
const float* lookup(const KernelContext& ctx, const ir::Tensor& table, int64_t id, const char* ids_name,
                    const char* table_name, int64_t b, int64_t s) {
  if (id < 0 || id >= table.dim(0))
    ctx.fail(ids_name, "[", b, ",", s, "] = ", id, " is out of range for ", table_name, " with ", table.dim(0),
             " rows");
  return table.data<float>() + id * table.dim(1);
}

void embed_layer_norm_kernel(KernelContext& ctx) {
  const ir::Tensor& ids_t = ctx.input(kInputIds);
  require_int32(ctx, ids_t.dtype(), "input_ids");
  if (ids_t.rank() != 2) ctx.fail("input_ids must be 2-D (batch, sequence), got shape ", ir::to_string(ids_t.shape()));
  const ir::Dims& ids_shape = ids_t.shape();
  int64_t batch = ids_shape[0], seq = ids_shape[1];
  const ir::Tensor& word = embedding_table(ctx, kWordEmbedding, "word_embedding", -1);
  int64_t hidden = word.dim(1);
  const ir::Tensor& position = embedding_table(ctx, kPositionEmbedding, "position_embedding", hidden);
  // As in ONNX Runtime, segment_embedding without segment_ids adds its row 0 to every token.
  const ir::Tensor* segment = nullptr;
  const int32_t* segment_ids = nullptr;
  if (ctx.has_input(kSegmentIds) && !ctx.has_input(kSegmentEmbedding))
    ctx.fail("segment_ids is given without segment_embedding");
  if (ctx.has_input(kSegmentEmbedding)) segment = &embedding_table(ctx, kSegmentEmbedding, "segment_embedding", hidden);
  if (ctx.has_input(kSegmentIds)) segment_ids = id_tensor(ctx, kSegmentIds, "segment_ids", ids_shape);
  const ir::Tensor& gamma = ctx.input(kGamma);
  const ir::Tensor& beta = ctx.input(kBeta);
  require_float32(ctx, gamma.dtype(), "gamma");
  require_float32(ctx, beta.dtype(), "beta");
  require_vector(ctx, gamma, hidden, "gamma");
  require_vector(ctx, beta, hidden, "beta");
  const int32_t* mask = ctx.has_input(kMask) ? id_tensor(ctx, kMask, "mask", ids_shape) : nullptr;
  // position_ids is (batch, sequence) or (1, sequence), one row for every batch.
  const int32_t* position_ids = nullptr;
  bool shared_positions = false;
  if (ctx.has_input(kPositionIds)) {
    const ir::Tensor& p = ctx.input(kPositionIds);
    require_int32(ctx, p.dtype(), "position_ids");
    shared_positions = p.rank() == 2 && p.dim(0) == 1 && p.dim(1) == seq && batch != 1;
    if (!shared_positions && p.shape() != ids_shape)
      ctx.fail("position_ids of shape ", ir::to_string(p.shape()), " must be (batch, sequence) ",
               ir::to_string(ids_shape), " or (1, sequence)");
    position_ids = p.data<int32_t>();
  }
  double epsilon = ctx.attr_float("epsilon", kDefaultEpsilon);

  ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, {batch, seq, hidden});
  ir::Tensor sum_t = ctx.make_tensor(ir::DType::kFloat32, {batch, seq, hidden});
  const int32_t* ids = ids_t.data<int32_t>();
  const float* g = gamma.data<float>();
  const float* bt = beta.data<float>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t s = 0; s < seq; ++s) {
      int64_t i = b * seq + s;
      const float* w = lookup(ctx, word, ids[i], "input_ids", "word_embedding", b, s);
      int64_t pos = position_ids ? position_ids[shared_positions ? s : i] : s;
      const float* p = lookup(ctx, position, pos, position_ids ? "position_ids" : "position (no position_ids)",
                              "position_embedding", b, s);
      const float* sg =
          segment ? lookup(ctx, *segment, segment_ids ? segment_ids[i] : 0, "segment_ids", "segment_embedding", b, s)
                  : nullptr;
      float* e = sum_t.data<float>() + i * hidden;
      for (int64_t h = 0; h < hidden; ++h) {
        e[h] = w[h] + p[h];
        if (sg) e[h] += sg[h];
      }
      RowStats st = row_stats(e, hidden, epsilon, false);
      float* out = y.data<float>() + i * hidden;
      for (int64_t h = 0; h < hidden; ++h) out[h] = static_cast<float>((e[h] - st.mean) * st.inv * g[h] + bt[h]);
    }
  }
  ctx.set_output(0, std::move(y));
  if (ctx.has_output(1)) {
    ir::Tensor mask_index = ctx.make_tensor(ir::DType::kInt32, {batch});
    for (int64_t b = 0; b < batch && mask; ++b) {
      int32_t count = 0;
      for (int64_t s = 0; s < seq; ++s) count += mask[b * seq + s] == 1 ? 1 : 0;
      mask_index.data<int32_t>()[b] = count;
    }
    ctx.set_output(1, std::move(mask_index));
  }
  if (ctx.has_output(2)) ctx.set_output(2, std::move(sum_t));
}

// ---------------------------------------------------------------------------------------------------
// SimplifiedLayerNormalization (ONNX Runtime declares it in the onnx domain, from version 1): RMS
// normalization over dims [axis, rank): Y = X / sqrt(mean(X^2) + epsilon) * scale, scale broadcasting to
// X; optional output inv_std_var with X's dims before axis and 1 after (float32).

int64_t norm_axis(const NodeView& node, int64_t rank) {
  if (rank == 0) node.fail("input X must have rank >= 1");
  return normalize_axis(node, node.attr_int("axis", -1), rank);
}

void infer_simplified_layer_norm(InferenceContext& ctx) {
  require_float32_input(ctx, 0, "input X");
  require_float32_input(ctx, 1, "scale");
  const ir::Type& x = ctx.input_type(0);
  ctx.set_output_type(0, x);
  std::optional<ir::Shape> stat;
  if (x.shape) {
    int64_t axis = norm_axis(ctx, static_cast<int64_t>(x.shape->rank()));
    stat = *x.shape;
    for (size_t i = static_cast<size_t>(axis); i < stat->rank(); ++i) stat->dims[i] = ir::Dim(1);
  }
  if (ctx.num_outputs() > 1) ctx.set_output(1, ir::DType::kFloat32, stat);
}

void simplified_layer_norm_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const ir::Tensor& scale = ctx.input(1);
  require_float32(ctx, x.dtype(), "input X");
  require_float32(ctx, scale.dtype(), "scale");
  int64_t axis = norm_axis(ctx, static_cast<int64_t>(x.rank()));
  bool fits = scale.rank() <= x.rank();
  for (size_t i = 0; fits && i < scale.rank(); ++i) {
    int64_t d = scale.dim(i), xd = x.dim(x.rank() - scale.rank() + i);
    fits = d == xd || d == 1;
  }
  if (!fits)
    ctx.fail("scale of shape ", ir::to_string(scale.shape()), " does not broadcast to X's shape ",
             ir::to_string(x.shape()));
  std::vector<int64_t> scale_off = broadcast_offsets(scale.shape(), x.shape());
  double epsilon = ctx.attr_float("epsilon", 1e-5f);
  int64_t inner = 1;
  for (size_t i = static_cast<size_t>(axis); i < x.rank(); ++i) inner *= x.dim(i);
  int64_t rows = inner == 0 ? 0 : x.numel() / inner;
  std::vector<int64_t> stat_shape = x.shape();
  for (size_t i = static_cast<size_t>(axis); i < stat_shape.size(); ++i) stat_shape[i] = 1;
  ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, x.shape());
  ir::Tensor inv_t = ctx.make_tensor(ir::DType::kFloat32, stat_shape);
  const float* in = x.data<float>();
  const float* sc = scale.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    RowStats st = row_stats(in + r * inner, inner, epsilon, true);
    for (int64_t k = 0; k < inner; ++k) {
      int64_t e = r * inner + k;
      y.data<float>()[e] = static_cast<float>(in[e] * st.inv * sc[scale_off[static_cast<size_t>(e)]]);
    }
    inv_t.data<float>()[r] = static_cast<float>(st.inv);
  }
  ctx.set_output(0, std::move(y));
  if (ctx.has_output(1)) ctx.set_output(1, std::move(inv_t));
}

}  // namespace

void register_normalization_ops(OpRegistry& r) {
  r.add(OpDef{kMsDomain, "SkipLayerNormalization", kMsMinOpset, kMsMaxOpset,
              [](InferenceContext& ctx) { infer_skip_layer_norm(ctx, kSkipLayerNorm); },
              [](KernelContext& ctx) { skip_layer_norm(ctx, kSkipLayerNorm); }});
  r.add(OpDef{kMsDomain, "SkipSimplifiedLayerNormalization", kMsMinOpset, kMsMaxOpset,
              [](InferenceContext& ctx) { infer_skip_layer_norm(ctx, kSkipSimplified); },
              [](KernelContext& ctx) { skip_layer_norm(ctx, kSkipSimplified); }});
  r.add(OpDef{"", "SimplifiedLayerNormalization", 1, kMaxOnnxOpset, infer_simplified_layer_norm,
              simplified_layer_norm_kernel});
  r.add(OpDef{kMsDomain, "EmbedLayerNormalization", kMsMinOpset, kMsMaxOpset, infer_embed_layer_norm,
              embed_layer_norm_kernel});
}

}  // namespace kiln::ops::contrib

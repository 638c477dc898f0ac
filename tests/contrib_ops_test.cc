// The com.microsoft contrib ops (ONNX Runtime's fused operators) against the same computation written as
// a graph of standard ONNX ops, both run by kiln's reference kernels on random inputs over odd shapes,
// every mask format and every FusedConv activation; then the errors each op must give.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "onnx/model_io.h"
#include "test_util.h"

namespace kiln::testing::contrib {
namespace {

constexpr double kTol = 1e-5;
constexpr double kAttentionTol = 1e-4;

void expect_close(const std::vector<ir::Tensor>& got, const std::vector<ir::Tensor>& want, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(ir::to_string(got[i].shape()), ir::to_string(want[i].shape())) << what << " output " << i;
    EXPECT_EQ(got[i].dtype(), want[i].dtype()) << what << " output " << i;
    EXPECT_LE(max_abs_diff(got[i], want[i]), tol) << what << " output " << i;
  }
}

void expect_error(const TestGraph& g, const std::vector<std::string>& parts) {
  std::string e = error_of(g);
  ASSERT_FALSE(e.empty()) << "expected an error containing \"" << parts.front() << "\"";
  for (const auto& p : parts) EXPECT_NE(e.find(p), std::string::npos) << "message: " << e << "\nmissing: " << p;
}

// ---- Gelu, FastGelu, BiasGelu ---------------------------------------------------------------------

// y = x * 0.5 * (1 + erf(x / sqrt(2))) in standard ops, reading x from `x`.
void add_erf_gelu(TestGraph& g, const std::string& x, const std::string& y) {
  g.node("Mul", {x, g.constant("inv_sqrt2", scalar(static_cast<float>(M_SQRT1_2)))}, {"g_scaled"});
  g.node("Erf", {"g_scaled"}, {"g_erf"});
  g.node("Add", {"g_erf", g.constant("one", scalar(1.0f))}, {"g_plus1"});
  g.node("Mul", {x, "g_plus1"}, {"g_xp"});
  g.node("Mul", {"g_xp", g.constant("half", scalar(0.5f))}, {y});
}

std::vector<std::vector<int64_t>> activation_shapes() { return {{2, 3, 5}, {7}, {1, 1, 9}, {4, 13}}; }

TEST(ContribOpsActivation, GeluMatchesErfFormula) {
  Random rng(1);
  for (const auto& shape : activation_shapes()) {
    ir::Tensor x = rng.floats(shape, -4, 4);
    TestGraph g;
    g.contrib("Gelu", {g.input("x", x)}, {"y"});
    g.output("y");
    TestGraph ref;
    add_erf_gelu(ref, ref.input("x", x), "y");
    ref.output("y");
    expect_close(g.run(), ref.run(), kTol, "Gelu " + ir::to_string(shape));
  }
}

TEST(ContribOpsActivation, FastGeluMatchesTanhFormulaWithAndWithoutBias) {
  Random rng(2);
  for (const auto& shape : activation_shapes()) {
    for (bool with_bias : {false, true}) {
      ir::Tensor x = rng.floats(shape, -4, 4);
      ir::Tensor bias = rng.floats({shape.back()});
      TestGraph g;
      g.contrib("FastGelu", {g.input("x", x), with_bias ? g.input("bias", bias) : ""}, {"y"});
      g.output("y");
      TestGraph ref;
      std::string v = ref.input("x", x);
      if (with_bias) {
        ref.node("Add", {v, ref.input("bias", bias)}, {"v"});
        v = "v";
      }
      ref.node("Mul", {v, v}, {"v2"});
      ref.node("Mul", {"v2", v}, {"v3"});
      ref.node("Mul", {"v3", ref.constant("c", scalar(0.044715f))}, {"cv3"});
      ref.node("Add", {v, "cv3"}, {"inner"});
      ref.node("Mul", {"inner", ref.constant("k", scalar(0.7978845608f))}, {"arg"});
      ref.node("Tanh", {"arg"}, {"t"});
      ref.node("Add", {"t", ref.constant("one", scalar(1.0f))}, {"t1"});
      ref.node("Mul", {v, "t1"}, {"vt"});
      ref.node("Mul", {"vt", ref.constant("half", scalar(0.5f))}, {"y"});
      ref.output("y");
      expect_close(g.run(), ref.run(), kTol, "FastGelu " + ir::to_string(shape) + (with_bias ? " bias" : ""));
    }
  }
}

TEST(ContribOpsActivation, BiasGeluIsGeluOfSum) {
  Random rng(3);
  for (const auto& shape : activation_shapes()) {
    ir::Tensor a = rng.floats(shape, -4, 4);
    ir::Tensor b = rng.floats({shape.back()});
    TestGraph g;
    g.contrib("BiasGelu", {g.input("a", a), g.input("b", b)}, {"y"});
    g.output("y");
    TestGraph ref;
    ref.node("Add", {ref.input("a", a), ref.input("b", b)}, {"s"});
    add_erf_gelu(ref, "s", "y");
    ref.output("y");
    expect_close(g.run(), ref.run(), kTol, "BiasGelu " + ir::to_string(shape));
  }
}

// ---- SkipLayerNormalization, SkipSimplifiedLayerNormalization ----------------------------------------

struct SkipCase {
  std::vector<int64_t> input;
  std::vector<int64_t> skip;
  bool beta = true;
  bool bias = true;
  std::optional<float> epsilon = std::nullopt;
  bool all_outputs = true;
};

std::vector<SkipCase> skip_cases() {
  return {
      {.input = {2, 3, 8}, .skip = {2, 3, 8}},
      {.input = {1, 1, 5}, .skip = {1, 1, 5}, .beta = false, .bias = false, .epsilon = 1e-5f},
      {.input = {3, 7, 13}, .skip = {7, 13}, .bias = false},
      {.input = {3, 7, 13}, .skip = {1, 7, 13}, .beta = false, .epsilon = 1e-3f},
      {.input = {4, 9}, .skip = {4, 9}, .all_outputs = false},
      {.input = {2, 1, 16}, .skip = {1, 16}},
  };
}

TEST(ContribOpsSkipLayerNorm, MatchesAddThenLayerNormalization) {
  Random rng(10);
  for (const SkipCase& c : skip_cases()) {
    int64_t hidden = c.input.back();
    ir::Tensor x = rng.floats(c.input, -2, 2), skip = rng.floats(c.skip, -2, 2);
    ir::Tensor gamma = rng.floats({hidden}, 0.5, 1.5), beta = rng.floats({hidden}), bias = rng.floats({hidden});
    float eps = c.epsilon.value_or(1e-12f);
    std::vector<ir::Attribute> attrs;
    if (c.epsilon) attrs.push_back(attr_float("epsilon", *c.epsilon));
    std::vector<std::string> outs =
        c.all_outputs ? std::vector<std::string>{"y", "mean", "inv", "sum"} : std::vector<std::string>{"y"};
    TestGraph g;
    g.contrib("SkipLayerNormalization",
              {g.input("x", x), g.input("skip", skip), g.input("gamma", gamma), c.beta ? g.input("beta", beta) : "",
               c.bias ? g.input("bias", bias) : ""},
              outs, attrs);
    for (const auto& o : outs) g.output(o);

    TestGraph ref;
    ref.node("Add", {ref.input("x", x), ref.input("skip", skip)}, {c.bias ? "xs" : "sum"});
    if (c.bias) ref.node("Add", {"xs", ref.input("bias", bias)}, {"sum"});
    std::vector<std::string> ln_in = {"sum", ref.input("gamma", gamma)};
    if (c.beta) ln_in.push_back(ref.input("beta", beta));
    ref.node("LayerNormalization", ln_in, {"y", "mean", "inv"}, {attr_int("axis", -1), attr_float("epsilon", eps)});
    for (const auto& o : outs) ref.output(o);
    expect_close(g.run(), ref.run(), kTol, "SkipLayerNormalization input " + ir::to_string(c.input));
  }
}

TEST(ContribOpsSkipLayerNorm, SimplifiedMatchesRmsNormalization) {
  Random rng(11);
  for (const SkipCase& c : skip_cases()) {
    int64_t hidden = c.input.back();
    ir::Tensor x = rng.floats(c.input, -2, 2), skip = rng.floats(c.skip, -2, 2);
    ir::Tensor gamma = rng.floats({hidden}, 0.5, 1.5), bias = rng.floats({hidden});
    float eps = c.epsilon.value_or(1e-12f);
    std::vector<ir::Attribute> attrs;
    if (c.epsilon) attrs.push_back(attr_float("epsilon", *c.epsilon));
    std::vector<std::string> outs =
        c.all_outputs ? std::vector<std::string>{"y", "mean", "inv", "sum"} : std::vector<std::string>{"y"};
    TestGraph g;
    g.contrib("SkipSimplifiedLayerNormalization",
              {g.input("x", x), g.input("skip", skip), g.input("gamma", gamma), c.bias ? g.input("bias", bias) : ""},
              outs, attrs);
    for (const auto& o : outs)
      if (!o.empty()) g.output(o);

    TestGraph ref;
    ref.node("Add", {ref.input("x", x), ref.input("skip", skip)}, {c.bias ? "xs" : "sum"});
    if (c.bias) ref.node("Add", {"xs", ref.input("bias", bias)}, {"sum"});
    ref.node("Mul", {"sum", "sum"}, {"sq"});
    ref.node("ReduceMean", {"sq"}, {"ms"}, {attr_ints("axes", {-1}), attr_int("keepdims", 1)});
    ref.node("Add", {"ms", ref.constant("eps", scalar(eps))}, {"mse"});
    ref.node("Sqrt", {"mse"}, {"rms"});
    ref.node("Reciprocal", {"rms"}, {"inv"});
    ref.node("Mul", {"sum", "inv"}, {"normed"});
    ref.node("Mul", {"normed", ref.input("gamma", gamma)}, {"y"});
    ref.node("Mul", {"ms", ref.constant("zero", scalar(0.0f))}, {"mean"});  // RMS normalization reports mean 0
    for (const auto& o : outs)
      if (!o.empty()) ref.output(o);
    expect_close(g.run(), ref.run(), kTol, "SkipSimplifiedLayerNormalization input " + ir::to_string(c.input));
  }
}

// SimplifiedLayerNormalization is ONNX Runtime's RMS normalization, declared in the onnx domain.
TEST(ContribOpsSimplifiedLayerNorm, MatchesRmsNormalizationOverTrailingDims) {
  struct Case {
    std::vector<int64_t> x, scale;
    int64_t axis;
    std::optional<float> epsilon;
  };
  std::vector<Case> cases = {{{2, 3, 8}, {8}, -1, std::nullopt},
                             {{2, 3, 4}, {3, 4}, 1, 1e-3f},
                             {{5, 13}, {13}, 1, 1e-6f},
                             {{1, 1, 7}, {1, 7}, 2, std::nullopt}};
  Random rng(12);
  for (const Case& c : cases) {
    ir::Tensor x = rng.floats(c.x, -2, 2), scale = rng.floats(c.scale, 0.5, 1.5);
    std::vector<ir::Attribute> attrs = {attr_int("axis", c.axis)};
    if (c.epsilon) attrs.push_back(attr_float("epsilon", *c.epsilon));
    TestGraph g;
    g.node("SimplifiedLayerNormalization", {g.input("x", x), g.input("scale", scale)}, {"y", "inv"}, attrs);
    g.output("y");
    g.output("inv");

    int64_t rank = static_cast<int64_t>(c.x.size()), axis = c.axis < 0 ? c.axis + rank : c.axis;
    std::vector<int64_t> axes;
    for (int64_t a = axis; a < rank; ++a) axes.push_back(a);
    TestGraph ref;
    std::string xi = ref.input("x", x);
    ref.node("Mul", {xi, xi}, {"sq"});
    ref.node("ReduceMean", {"sq"}, {"ms"}, {attr_ints("axes", axes), attr_int("keepdims", 1)});
    ref.node("Add", {"ms", ref.constant("eps", scalar(c.epsilon.value_or(1e-5f)))}, {"mse"});
    ref.node("Sqrt", {"mse"}, {"rms"});
    ref.node("Reciprocal", {"rms"}, {"inv"});
    ref.node("Mul", {xi, "inv"}, {"normed"});
    ref.node("Mul", {"normed", ref.input("scale", scale)}, {"y"});
    ref.output("y");
    ref.output("inv");
    expect_close(g.run(), ref.run(), kTol, "SimplifiedLayerNormalization " + ir::to_string(c.x));
  }
}

// ---- EmbedLayerNormalization -----------------------------------------------------------------------

struct EmbedCase {
  int64_t batch, seq, hidden, vocab, positions, segments;  // segments 0: no segment inputs
  bool mask = true;
  enum class Positions { kImplicit, kPerBatch, kShared } position_ids = Positions::kImplicit;
  bool embedding_sum = true;
  std::optional<float> epsilon = std::nullopt;
};

TEST(ContribOpsEmbedLayerNorm, MatchesGathersAddsAndLayerNormalization) {
  using P = EmbedCase::Positions;
  std::vector<EmbedCase> cases = {
      {2, 3, 8, 11, 5, 2, true, P::kImplicit, true, std::nullopt},
      {1, 1, 5, 3, 1, 0, false, P::kImplicit, false, 1e-5f},
      {3, 7, 13, 20, 9, 3, true, P::kPerBatch, true, std::nullopt},
      {2, 7, 13, 20, 12, 0, true, P::kShared, false, 1e-6f},
      {4, 2, 16, 9, 2, 2, false, P::kImplicit, true, std::nullopt},
  };
  Random rng(20);
  for (const EmbedCase& c : cases) {
    const std::string label = "EmbedLayerNormalization B=" + std::to_string(c.batch) + " S=" + std::to_string(c.seq);
    ir::Tensor ids = rng.ints({c.batch, c.seq}, 0, static_cast<int32_t>(c.vocab - 1));
    ir::Tensor segment_ids = rng.ints({c.batch, c.seq}, 0, static_cast<int32_t>(std::max<int64_t>(c.segments, 1) - 1));
    ir::Tensor word = rng.floats({c.vocab, c.hidden}), pos = rng.floats({c.positions, c.hidden});
    ir::Tensor seg = rng.floats({std::max<int64_t>(c.segments, 1), c.hidden});
    ir::Tensor gamma = rng.floats({c.hidden}, 0.5, 1.5), beta = rng.floats({c.hidden});
    ir::Tensor mask = rng.ints({c.batch, c.seq}, 0, 1);
    int64_t pos_rows = c.position_ids == P::kShared ? 1 : c.batch;
    ir::Tensor position_ids = rng.ints({pos_rows, c.seq}, 0, static_cast<int32_t>(c.positions - 1));
    float eps = c.epsilon.value_or(1e-12f);
    bool segments = c.segments > 0;

    TestGraph g;
    std::vector<std::string> in = {g.input("ids", ids),
                                   segments ? g.input("segment_ids", segment_ids) : "",
                                   g.input("word", word),
                                   g.input("pos", pos),
                                   segments ? g.input("seg", seg) : "",
                                   g.input("gamma", gamma),
                                   g.input("beta", beta),
                                   c.mask ? g.input("mask", mask) : ""};
    if (c.position_ids != P::kImplicit) in.push_back(g.input("position_ids", position_ids));
    std::vector<std::string> outs = {"y", "mask_index"};
    if (c.embedding_sum) outs.push_back("sum");
    std::vector<ir::Attribute> attrs;
    if (c.epsilon) attrs.push_back(attr_float("epsilon", *c.epsilon));
    g.contrib("EmbedLayerNormalization", in, outs, attrs);
    for (const auto& o : outs) g.output(o);

    TestGraph ref;
    ref.node("Gather", {ref.input("word", word), ref.input("ids", ids)}, {"w"});
    std::string pids;
    if (c.position_ids == P::kImplicit) {
      std::vector<int32_t> range(static_cast<size_t>(c.seq));
      std::iota(range.begin(), range.end(), 0);
      pids = ref.constant("range", int32s(range, {c.seq}));
    } else {
      pids = ref.input("position_ids", position_ids);
    }
    ref.node("Gather", {ref.input("pos", pos), pids}, {"p"});
    ref.node("Add", {"w", "p"}, {segments ? "wp" : "sum"});
    if (segments) {
      ref.node("Gather", {ref.input("seg", seg), ref.input("segment_ids", segment_ids)}, {"s"});
      ref.node("Add", {"wp", "s"}, {"sum"});
    }
    ref.node("LayerNormalization", {"sum", ref.input("gamma", gamma), ref.input("beta", beta)}, {"y"},
             {attr_int("axis", -1), attr_float("epsilon", eps)});
    if (c.mask) {
      ref.node("Equal", {ref.input("mask", mask), ref.constant("one", int32s({1}, {}))}, {"is_one"});
      ref.node("Cast", {"is_one"}, {"ones"}, {attr_int("to", 6)});
      ref.node("ReduceSum", {"ones", ref.constant("axis1", int64s({1}))}, {"mask_index"}, {attr_int("keepdims", 0)});
    } else {
      ref.node("Identity", {ref.constant("zeros", int32s(std::vector<int32_t>(c.batch, 0), {c.batch}))},
               {"mask_index"});
    }
    for (const auto& o : outs) ref.output(o);
    expect_close(g.run(), ref.run(), kTol, label);
  }
}

// As in ONNX Runtime, a segment_embedding without segment_ids adds its row 0 to every token.
TEST(ContribOpsEmbedLayerNorm, SegmentEmbeddingWithoutIdsAddsRowZero) {
  Random rng(21);
  ir::Tensor ids = rng.ints({2, 3}, 0, 4), zeros = int32s(std::vector<int32_t>(6, 0), {2, 3});
  ir::Tensor word = rng.floats({5, 6}), pos = rng.floats({3, 6}), seg = rng.floats({2, 6});
  ir::Tensor gamma = rng.floats({6}), beta = rng.floats({6});
  auto run_with = [&](bool segment_ids) {
    TestGraph g;
    g.contrib("EmbedLayerNormalization",
              {g.input("ids", ids), segment_ids ? g.input("segment_ids", zeros) : "", g.input("word", word),
               g.input("pos", pos), g.input("seg", seg), g.input("gamma", gamma), g.input("beta", beta)},
              {"y", "mask_index", "sum"});
    for (const char* o : {"y", "mask_index", "sum"}) g.output(o);
    return g.run();
  };
  expect_close(run_with(false), run_with(true), 0, "segment_embedding without segment_ids");
}

// ---- Attention ---------------------------------------------------------------------------------------

enum class MaskKind { kNone, kKeyLength, kEndStart, kRaw2D, kRaw3D, kDummy2D };

struct AttentionCase {
  int64_t batch, seq, in_hidden, heads, hidden, v_hidden;
  MaskKind mask = MaskKind::kNone;
  bool unidirectional = false;
  std::optional<float> scale = std::nullopt;
  std::optional<float> mask_filter_value = std::nullopt;
  std::vector<int64_t> attention_bias = {};  // shape; empty: none
  bool bias = true;
};

std::string describe(const AttentionCase& c) {
  return "Attention B=" + std::to_string(c.batch) + " S=" + std::to_string(c.seq) + " N=" + std::to_string(c.heads) +
         " D=" + std::to_string(c.hidden) + " Dv=" + std::to_string(c.v_hidden) +
         " mask=" + std::to_string(static_cast<int>(c.mask)) + (c.unidirectional ? " causal" : "");
}

// The mask_index input of a case; rows that mask every key are included on purpose.
std::optional<ir::Tensor> mask_input(const AttentionCase& c, Random& rng) {
  int64_t b = c.batch, s = c.seq;
  switch (c.mask) {
    case MaskKind::kNone:
      return std::nullopt;
    case MaskKind::kKeyLength: {
      ir::Tensor t = rng.ints({b}, 0, static_cast<int32_t>(s));
      t.data<int32_t>()[0] = 0;  // every key masked
      return t;
    }
    case MaskKind::kEndStart: {
      ir::Tensor t(ir::DType::kInt32, {2 * b});
      for (int64_t i = 0; i < b; ++i) {
        t.data<int32_t>()[i] = static_cast<int32_t>(s - (i % 2));  // end
        t.data<int32_t>()[b + i] = static_cast<int32_t>(i % 3);    // start
      }
      return t;
    }
    case MaskKind::kRaw2D: {
      ir::Tensor t = rng.ints({b, s}, 0, 1);
      if (b > 1)
        for (int64_t j = 0; j < s; ++j) t.data<int32_t>()[s + j] = 0;  // batch 1 masks every key
      return t;
    }
    case MaskKind::kRaw3D: {
      ir::Tensor t = rng.ints({b, s, s}, 0, 1);
      for (int64_t j = 0; j < s; ++j) t.data<int32_t>()[j] = 0;  // query 0 of batch 0 masks every key
      return t;
    }
    case MaskKind::kDummy2D:
      return rng.ints({b, 1}, 0, 1);
  }
  return std::nullopt;
}

// The additive mask (B, 1, S, S) ONNX Runtime's definition gives: mask_filter_value where a key is masked,
// the lowest float above the diagonal when unidirectional.
std::optional<ir::Tensor> additive_mask(const AttentionCase& c, const std::optional<ir::Tensor>& m) {
  bool causal = c.unidirectional && c.seq > 1;
  bool has_mask = m && c.mask != MaskKind::kDummy2D;
  if (!has_mask && !causal) return std::nullopt;
  int64_t b_n = c.batch, s = c.seq;
  float filter = c.mask_filter_value.value_or(-10000.0f);
  ir::Tensor t(ir::DType::kFloat32, {b_n, 1, s, s});
  for (int64_t b = 0; b < b_n; ++b)
    for (int64_t i = 0; i < s; ++i)
      for (int64_t j = 0; j < s; ++j) {
        bool attend = true;
        if (has_mask) {
          const int32_t* v = m->data<int32_t>();
          switch (c.mask) {
            case MaskKind::kKeyLength:
              attend = j < v[b];
              break;
            case MaskKind::kEndStart:
              attend = j < v[b] && j >= v[b_n + b];
              break;
            case MaskKind::kRaw2D:
              attend = v[b * s + j] > 0;
              break;
            case MaskKind::kRaw3D:
              attend = v[(b * s + i) * s + j] > 0;
              break;
            default:
              break;
          }
        }
        float add = attend ? 0.0f : filter;
        if (causal && j > i) add = std::numeric_limits<float>::lowest();
        t.data<float>()[((b * s) + i) * s + j] = add;
      }
  return t;
}

std::vector<AttentionCase> attention_cases() {
  using M = MaskKind;
  return {
      {.batch = 2, .seq = 7, .in_hidden = 12, .heads = 3, .hidden = 12, .v_hidden = 12},
      {.batch = 1,
       .seq = 1,
       .in_hidden = 8,
       .heads = 1,
       .hidden = 8,
       .v_hidden = 8,
       .mask = M::kKeyLength,
       .unidirectional = true},
      {.batch = 3,
       .seq = 5,
       .in_hidden = 10,
       .heads = 3,
       .hidden = 15,
       .v_hidden = 15,
       .mask = M::kEndStart,
       .scale = 0.3f},
      {.batch = 2,
       .seq = 7,
       .in_hidden = 9,
       .heads = 1,
       .hidden = 7,
       .v_hidden = 7,
       .mask = M::kRaw2D,
       .mask_filter_value = -1000.0f},
      {.batch = 2,
       .seq = 4,
       .in_hidden = 6,
       .heads = 2,
       .hidden = 6,
       .v_hidden = 6,
       .mask = M::kRaw3D,
       .unidirectional = true},
      {.batch = 2,
       .seq = 6,
       .in_hidden = 10,
       .heads = 3,
       .hidden = 9,
       .v_hidden = 6,
       .mask = M::kKeyLength,
       .attention_bias = {1, 3, 6, 6}},
      {.batch = 2,
       .seq = 3,
       .in_hidden = 4,
       .heads = 2,
       .hidden = 4,
       .v_hidden = 4,
       .mask = M::kDummy2D,
       .attention_bias = {2, 1, 3, 3},
       .bias = false},
      {.batch = 1,
       .seq = 7,
       .in_hidden = 5,
       .heads = 3,
       .hidden = 9,
       .v_hidden = 9,
       .unidirectional = true,
       .scale = 0.0f},
      {.batch = 3,
       .seq = 5,
       .in_hidden = 7,
       .heads = 1,
       .hidden = 5,
       .v_hidden = 5,
       .mask = M::kRaw2D,
       .unidirectional = true,
       .scale = 1.0f,
       .attention_bias = {3, 1, 5, 5}},
      {.batch = 2,
       .seq = 4,
       .in_hidden = 8,
       .heads = 4,
       .hidden = 8,
       .v_hidden = 8,
       .mask = M::kEndStart,
       .unidirectional = true,
       .attention_bias = {1, 1, 4, 4}},
  };
}

TEST(ContribOpsAttention, MatchesGraphOfStandardOps) {
  Random rng(30);
  for (const AttentionCase& c : attention_cases()) {
    const int64_t columns = 2 * c.hidden + c.v_hidden;
    const int64_t head = c.hidden / c.heads, v_head = c.v_hidden / c.heads;
    ir::Tensor x = rng.floats({c.batch, c.seq, c.in_hidden});
    ir::Tensor w = rng.floats({c.in_hidden, columns}), bias = rng.floats({columns});
    std::optional<ir::Tensor> mask = mask_input(c, rng);
    ir::Tensor attn_bias = c.attention_bias.empty() ? ir::Tensor() : rng.floats(c.attention_bias, -2, 2);

    std::vector<ir::Attribute> attrs = {attr_int("num_heads", c.heads)};
    if (c.unidirectional) attrs.push_back(attr_int("unidirectional", 1));
    if (c.scale) attrs.push_back(attr_float("scale", *c.scale));
    if (c.mask_filter_value) attrs.push_back(attr_float("mask_filter_value", *c.mask_filter_value));
    if (c.v_hidden != c.hidden) attrs.push_back(attr_ints("qkv_hidden_sizes", {c.hidden, c.hidden, c.v_hidden}));
    TestGraph g;
    std::vector<std::string> in = {g.input("x", x), g.input("w", w), c.bias ? g.input("bias", bias) : "",
                                   mask ? g.input("mask", *mask) : ""};
    if (attn_bias.defined()) {
      in.push_back("");  // past
      in.push_back(g.input("attn_bias", attn_bias));
    }
    g.contrib("Attention", in, {"y"}, attrs);
    g.output("y");

    float scale = c.scale && *c.scale != 0 ? *c.scale : static_cast<float>(1.0 / std::sqrt(double(head)));
    TestGraph ref;
    ref.node("MatMul", {ref.input("x", x), ref.input("w", w)}, {c.bias ? "xw" : "qkv"});
    if (c.bias) ref.node("Add", {"xw", ref.input("bias", bias)}, {"qkv"});
    auto slice = [&](const std::string& out, int64_t begin, int64_t end) {
      ref.node("Slice",
               {"qkv", ref.constant(out + "_b", int64s({begin})), ref.constant(out + "_e", int64s({end})),
                ref.constant(out + "_a", int64s({2}))},
               {out});
    };
    slice("q", 0, c.hidden);
    slice("k", c.hidden, 2 * c.hidden);
    slice("v", 2 * c.hidden, columns);
    auto heads = [&](const std::string& in_name, int64_t size, std::vector<int64_t> perm) {
      ref.node("Reshape", {in_name, ref.constant(in_name + "_shape", int64s({c.batch, c.seq, c.heads, size}))},
               {in_name + "_4d"});
      ref.node("Transpose", {in_name + "_4d"}, {in_name + "_h"}, {attr_ints("perm", perm)});
    };
    heads("q", head, {0, 2, 1, 3});
    heads("k", head, {0, 2, 3, 1});
    heads("v", v_head, {0, 2, 1, 3});
    ref.node("MatMul", {"q_h", "k_h"}, {"qk"});
    std::string scores = "scores";
    ref.node("Mul", {"qk", ref.constant("scale", scalar(scale))}, {scores});
    if (attn_bias.defined()) {
      ref.node("Add", {scores, ref.input("attn_bias", attn_bias)}, {"biased"});
      scores = "biased";
    }
    if (auto add = additive_mask(c, mask)) {
      ref.node("Add", {scores, ref.constant("mask_add", *add)}, {"masked"});
      scores = "masked";
    }
    ref.node("Softmax", {scores}, {"probs"}, {attr_int("axis", -1)});
    ref.node("MatMul", {"probs", "v_h"}, {"ctx"});
    ref.node("Transpose", {"ctx"}, {"ctx_t"}, {attr_ints("perm", {0, 2, 1, 3})});
    ref.node("Reshape", {"ctx_t", ref.constant("out_shape", int64s({c.batch, c.seq, c.v_hidden}))}, {"y"});
    ref.output("y");
    expect_close(g.run(), ref.run(), kAttentionTol, describe(c));
  }
}

// A fully masked row keeps ONNX Runtime's behaviour: mask_filter_value shifts every score equally, so the
// row is the softmax of its scores, not a uniform average (and not NaN).
TEST(ContribOpsAttention, FullyMaskedRowIsSoftmaxOfShiftedScores) {
  Random rng(31);
  ir::Tensor x = rng.floats({1, 4, 4}, -3, 3), w = rng.floats({4, 12}, -3, 3), bias = rng.floats({12});
  auto run_with = [&](std::optional<ir::Tensor> mask) {
    TestGraph g;
    g.contrib("Attention",
              {g.input("x", x), g.input("w", w), g.input("bias", bias), mask ? g.input("mask", *mask) : ""}, {"y"},
              {attr_int("num_heads", 1), attr_float("mask_filter_value", -8.0f)});
    g.output("y");
    return g.run();
  };
  // With a small filter value the shift is exact in float32: the fully masked row equals the unmasked one.
  std::vector<ir::Tensor> masked = run_with(int32s({0}, {1}));
  std::vector<ir::Tensor> unmasked = run_with(std::nullopt);
  expect_close(masked, unmasked, 1e-5, "end position 0");
  // An end position past the sequence masks nothing.
  expect_close(run_with(int32s({9}, {1})), unmasked, 0, "end position 9");
}

// ---- FusedMatMul -------------------------------------------------------------------------------------

struct MatMulCase {
  std::vector<int64_t> a, b;
  bool trans_a = false, trans_b = false, trans_batch_a = false, trans_batch_b = false;
  std::optional<float> alpha = std::nullopt;
};

// The Transpose permutation FusedMatMul applies to an operand of this rank.
std::vector<int64_t> operand_perm(size_t rank, bool trans, bool trans_batch) {
  std::vector<int64_t> perm(rank);
  std::iota(perm.begin(), perm.end(), 0);
  if (rank < 2) return perm;
  if (trans_batch) {
    for (size_t i = 0; i + 2 < rank; ++i) perm[i] = static_cast<int64_t>(i) + 1;
    perm[rank - 2] = 0;
  }
  if (trans) std::swap(perm[rank - 2], perm[rank - 1]);
  return perm;
}

TEST(ContribOpsFusedMatMul, MatchesTransposeMatMulMul) {
  std::vector<MatMulCase> cases = {
      {.a = {2, 3, 4}, .b = {2, 4, 5}},
      {.a = {2, 4, 3}, .b = {2, 4, 5}, .trans_a = true, .alpha = 0.5f},
      {.a = {2, 3, 4}, .b = {2, 5, 4}, .trans_b = true},
      {.a = {2, 1, 3, 4}, .b = {3, 4, 5}, .alpha = -1.5f},
      {.a = {4}, .b = {4, 5}},
      {.a = {2, 3, 4}, .b = {4}, .alpha = 2.0f},
      {.a = {1, 7}, .b = {3, 1}, .trans_a = true, .trans_b = true},
      {.a = {3, 2, 4}, .b = {2, 4, 5}, .trans_batch_a = true},
      {.a = {3, 2, 4}, .b = {4, 2, 5}, .trans_batch_a = true, .trans_batch_b = true, .alpha = 0.25f},
      {.a = {4, 2, 3}, .b = {5, 2, 4}, .trans_a = true, .trans_b = true, .trans_batch_a = true, .trans_batch_b = true},
      {.a = {3, 2, 2, 4}, .b = {2, 2, 4, 5}, .trans_batch_a = true},
      {.a = {3, 1, 4}, .b = {2, 4, 5}, .trans_batch_a = true, .alpha = 3.0f},
  };
  Random rng(40);
  for (const MatMulCase& c : cases) {
    const std::string label = "FusedMatMul A" + ir::to_string(c.a) + " B" + ir::to_string(c.b);
    ir::Tensor a = rng.floats(c.a), b = rng.floats(c.b);
    std::vector<ir::Attribute> attrs;
    if (c.alpha) attrs.push_back(attr_float("alpha", *c.alpha));
    if (c.trans_a) attrs.push_back(attr_int("transA", 1));
    if (c.trans_b) attrs.push_back(attr_int("transB", 1));
    if (c.trans_batch_a) attrs.push_back(attr_int("transBatchA", 1));
    if (c.trans_batch_b) attrs.push_back(attr_int("transBatchB", 1));
    TestGraph g;
    g.contrib("FusedMatMul", {g.input("a", a), g.input("b", b)}, {"y"}, attrs);
    g.output("y");

    TestGraph ref;
    ref.node("Transpose", {ref.input("a", a)}, {"at"},
             {attr_ints("perm", operand_perm(c.a.size(), c.trans_a, c.trans_batch_a))});
    ref.node("Transpose", {ref.input("b", b)}, {"bt"},
             {attr_ints("perm", operand_perm(c.b.size(), c.trans_b, c.trans_batch_b))});
    ref.node("MatMul", {"at", "bt"}, {"ab"});
    ref.node("Mul", {"ab", ref.constant("alpha", scalar(c.alpha.value_or(1.0f)))}, {"y"});
    ref.output("y");
    expect_close(g.run(), ref.run(), kTol, label);
  }
}

// ---- FusedConv ---------------------------------------------------------------------------------------

struct ConvCase {
  std::vector<int64_t> x, w;
  std::vector<ir::Attribute> conv_attrs;
  bool bias = true;
  bool z = false;
};

struct ActivationCase {
  std::string name;
  std::vector<float> params;
};

std::vector<ActivationCase> fused_activations() {
  return {{"", {}},
          {"Relu", {}},
          {"Tanh", {}},
          {"Sigmoid", {}},
          {"LeakyRelu", {0.1f}},
          {"Clip", {-0.5f, 0.75f}},
          {"HardSigmoid", {0.3f, 0.4f}}};
}

TEST(ContribOpsFusedConv, MatchesConvAddActivationForEveryActivation) {
  std::vector<ConvCase> convs = {
      {{1, 3, 7, 7}, {4, 3, 3, 3}, {attr_ints("strides", {2, 2}), attr_ints("pads", {1, 1, 1, 1})}, true, true},
      {{2, 4, 6, 5}, {6, 2, 3, 3}, {attr_int("group", 2)}, false, false},
      {{1, 2, 9}, {3, 2, 3}, {attr_ints("dilations", {2}), attr_string("auto_pad", "SAME_UPPER")}, true, true},
      {{1, 1, 5, 5}, {2, 1, 1, 1}, {attr_ints("kernel_shape", {1, 1})}, false, true},
  };
  Random rng(50);
  for (const ConvCase& c : convs) {
    for (const ActivationCase& act : fused_activations()) {
      const std::string label = "FusedConv X" + ir::to_string(c.x) + " activation " + act.name;
      ir::Tensor x = rng.floats(c.x, -2, 2), w = rng.floats(c.w), b = rng.floats({c.w[0]});
      // Z has the output's shape: run the plain Conv first to learn it.
      TestGraph shape_probe;
      shape_probe.node("Conv", {shape_probe.input("x", x), shape_probe.input("w", w)}, {"y"}, c.conv_attrs);
      shape_probe.output("y");
      ir::Tensor z = rng.floats(shape_probe.run()[0].shape());

      std::vector<ir::Attribute> attrs = c.conv_attrs;
      if (!act.name.empty()) attrs.push_back(attr_string("activation", act.name));
      if (!act.params.empty()) attrs.push_back(attr_floats("activation_params", act.params));
      TestGraph g;
      std::vector<std::string> in = {g.input("x", x), g.input("w", w), c.bias ? g.input("b", b) : ""};
      if (c.z) in.push_back(g.input("z", z));
      g.contrib("FusedConv", in, {"y"}, attrs);
      g.output("y");

      TestGraph ref;
      std::vector<std::string> conv_in = {ref.input("x", x), ref.input("w", w)};
      if (c.bias) conv_in.push_back(ref.input("b", b));
      std::string cur = "conv";
      ref.node("Conv", conv_in, {cur}, c.conv_attrs);
      if (c.z) {
        ref.node("Add", {cur, ref.input("z", z)}, {"conv_z"});
        cur = "conv_z";
      }
      if (act.name.empty()) {
        ref.node("Identity", {cur}, {"y"});
      } else if (act.name == "LeakyRelu") {
        ref.node("LeakyRelu", {cur}, {"y"}, {attr_float("alpha", act.params[0])});
      } else if (act.name == "HardSigmoid") {
        ref.node("HardSigmoid", {cur}, {"y"}, {attr_float("alpha", act.params[0]), attr_float("beta", act.params[1])});
      } else if (act.name == "Clip") {
        ref.node("Clip", {cur, ref.constant("lo", scalar(act.params[0])), ref.constant("hi", scalar(act.params[1]))},
                 {"y"});
      } else {
        ref.node(act.name, {cur}, {"y"});
      }
      ref.output("y");
      expect_close(g.run(), ref.run(), kTol, label);
    }
  }
}

// ---- LayerNormalization below opset 17 -------------------------------------------------------------

// ONNX Runtime's optimizer writes LayerNormalization into opset-14 models; it means what opset 17 says.
TEST(ContribOpsLayerNormalization, AcceptedBelowOpset17WithOpset17Semantics) {
  Random rng(60);
  ir::Tensor x = rng.floats({2, 5, 7}), scale = rng.floats({7}), bias = rng.floats({7});
  auto run_at = [&](int64_t opset) {
    TestGraph g(opset);
    g.node("LayerNormalization", {g.input("x", x), g.input("scale", scale), g.input("bias", bias)},
           {"y", "mean", "inv"}, {attr_float("epsilon", 1e-5f)});
    for (const char* o : {"y", "mean", "inv"}) g.output(o);
    return g.run();
  };
  std::vector<ir::Tensor> want = run_at(17);
  expect_close(run_at(14), want, 0, "opset 14");
  expect_close(run_at(9), want, 0, "opset 9");
}

// ---- Model files -----------------------------------------------------------------------------------

// A contrib node survives saving and loading: domain, attributes, the com.microsoft import, and results.
TEST(ContribOpsModelFile, SavedAndLoadedContribModelRunsTheSame) {
  Random rng(65);
  TestGraph g;
  g.contrib("Attention",
            {g.input("x", rng.floats({2, 3, 4})), g.input("w", rng.floats({4, 12})), g.input("bias", rng.floats({12})),
             g.input("mask", int32s({3, 2}, {2}))},
            {"y"}, {attr_int("num_heads", 2), attr_int("unidirectional", 1)});
  g.output("y");
  TempDir dir("kiln_contrib_model");
  onnx_io::save_model(g.model(), dir.file("attention.onnx"));
  ir::Model loaded = onnx_io::load_model(dir.file("attention.onnx"));
  ASSERT_EQ(loaded.graph.nodes.size(), 1u);
  EXPECT_EQ(loaded.graph.nodes[0].domain, "com.microsoft");
  EXPECT_EQ(loaded.opset("com.microsoft"), 1);
  runtime::SessionOptions options;
  options.optimization = passes::Level::kNone;
  runtime::Session session(std::move(loaded), options);
  std::vector<ir::Datum> outs = session.run(g.feeds());
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(max_abs_diff(outs[0].tensor, g.run()[0]), 0);
}

// ---- Errors ----------------------------------------------------------------------------------------

TestGraph attention_graph(std::vector<ir::Attribute> attrs, int64_t hidden = 6,
                          std::optional<ir::Tensor> mask = std::nullopt, bool past = false) {
  Random rng(70);
  TestGraph g;
  std::vector<std::string> in = {g.input("x", rng.floats({2, 3, 4})), g.input("w", rng.floats({4, 3 * hidden})),
                                 g.input("bias", rng.floats({3 * hidden})), mask ? g.input("mask", *mask) : ""};
  if (past) in.push_back(g.input("past", rng.floats({2, 2, 2, 1, hidden / 2})));
  g.contrib("Attention", in, {"y"}, std::move(attrs));
  g.output("y");
  return g;
}

TEST(ContribOpsErrors, AttentionWithoutNumHeads) {
  expect_error(attention_graph({}), {"Attention node \"Attention_0\"", "missing required attribute \"num_heads\""});
}

TEST(ContribOpsErrors, AttentionHiddenNotDivisibleByHeads) {
  expect_error(attention_graph({attr_int("num_heads", 4)}),
               {"Attention node \"Attention_0\"", "hidden_size 6 is not divisible by num_heads 4"});
}

TEST(ContribOpsErrors, AttentionWrongMaskShape) {
  expect_error(attention_graph({attr_int("num_heads", 2)}, 6, int32s({3, 3, 3}, {3})),
               {"Attention node \"Attention_0\"", "mask_index of shape [3]"});
  expect_error(attention_graph({attr_int("num_heads", 2)}, 6, int32s(std::vector<int32_t>(8, 1), {2, 4})),
               {"mask_index of shape [2,4]"});
  expect_error(attention_graph({attr_int("num_heads", 2)}, 6, int32s(std::vector<int32_t>(18, 1), {2, 1, 3, 3})),
               {"mask_index of shape [2,1,3,3]", "not supported"});
  // ONNX Runtime refuses a negative end position too.
  expect_error(attention_graph({attr_int("num_heads", 2)}, 6, int32s({3, -1}, {2})),
               {"mask_index value -1 at index 1 is negative"});
}

TEST(ContribOpsErrors, AttentionRefusesPastAndPresent) {
  expect_error(attention_graph({attr_int("num_heads", 2)}, 6, std::nullopt, true),
               {"Attention node \"Attention_0\"", "input 4 (past) is given"});
  Random rng(71);
  TestGraph g;
  g.contrib("Attention", {g.input("x", rng.floats({1, 2, 4})), g.input("w", rng.floats({4, 12}))}, {"y", "present"},
            {attr_int("num_heads", 2)});
  g.output("y");
  g.output("present");
  expect_error(g, {"output 1 (present) is requested"});
}

TEST(ContribOpsErrors, AttentionRefusesFloat16) {
  TestGraph g;
  g.contrib("Attention",
            {g.input("x", ir::Tensor(ir::DType::kFloat16, {1, 2, 4})),
             g.input("w", ir::Tensor(ir::DType::kFloat16, {4, 12}))},
            {"y"}, {attr_int("num_heads", 2)});
  g.output("y");
  expect_error(g, {"input has element type float16", "float32 only"});
}

TestGraph embed_graph(const ir::Tensor& ids, const ir::Tensor* segment_ids, const ir::Tensor* position_ids) {
  Random rng(80);
  TestGraph g;
  std::vector<std::string> in = {g.input("ids", ids),
                                 segment_ids ? g.input("segment_ids", *segment_ids) : "",
                                 g.input("word", rng.floats({10, 4})),
                                 g.input("pos", rng.floats({3, 4})),
                                 segment_ids ? g.input("seg", rng.floats({2, 4})) : "",
                                 g.input("gamma", rng.floats({4})),
                                 g.input("beta", rng.floats({4})),
                                 ""};
  if (position_ids) in.push_back(g.input("position_ids", *position_ids));
  g.contrib("EmbedLayerNormalization", in, {"y", "mask_index"});
  g.output("y");
  return g;
}

TEST(ContribOpsErrors, EmbedIdsOutOfRange) {
  expect_error(embed_graph(int32s({1, 2, 10}, {1, 3}), nullptr, nullptr),
               {"EmbedLayerNormalization node", "input_ids[0,2] = 10 is out of range for word_embedding with 10 rows"});
  expect_error(embed_graph(int32s({1, -1, 3}, {1, 3}), nullptr, nullptr), {"input_ids[0,1] = -1 is out of range"});
  ir::Tensor seg = int32s({0, 2, 1}, {1, 3});
  expect_error(embed_graph(int32s({1, 2, 3}, {1, 3}), &seg, nullptr),
               {"segment_ids[0,1] = 2 is out of range for segment_embedding with 2 rows"});
  ir::Tensor pos = int32s({0, 1, 3}, {1, 3});
  expect_error(embed_graph(int32s({1, 2, 3}, {1, 3}), nullptr, &pos),
               {"position_ids[0,2] = 3 is out of range for position_embedding with 3 rows"});
  // Without position_ids a sequence longer than position_embedding runs out of positions.
  expect_error(embed_graph(int32s({1, 2, 3, 4}, {1, 4}), nullptr, nullptr), {"= 3 is out of range for position"});
}

TEST(ContribOpsErrors, SkipLayerNormBadShapes) {
  Random rng(90);
  TestGraph g;
  g.contrib(
      "SkipLayerNormalization",
      {g.input("x", rng.floats({2, 3, 4})), g.input("skip", rng.floats({2, 2, 4})), g.input("g", rng.floats({4}))},
      {"y"});
  g.output("y");
  expect_error(g, {"SkipLayerNormalization node", "skip of shape [2,2,4] must have the input's shape [2,3,4]"});
  TestGraph g2;
  g2.contrib(
      "SkipLayerNormalization",
      {g2.input("x", rng.floats({2, 3, 4})), g2.input("skip", rng.floats({2, 3, 4})), g2.input("g", rng.floats({5}))},
      {"y"});
  g2.output("y");
  expect_error(g2, {"gamma must be a 1-D tensor of 4 values, got shape [5]"});
}

TEST(ContribOpsErrors, FusedConvUnknownActivationAndMissingParams) {
  Random rng(91);
  auto graph = [&](std::vector<ir::Attribute> attrs) {
    TestGraph g;
    g.contrib("FusedConv", {g.input("x", rng.floats({1, 1, 4, 4})), g.input("w", rng.floats({1, 1, 3, 3}))}, {"y"},
              std::move(attrs));
    g.output("y");
    return g;
  };
  expect_error(graph({attr_string("activation", "Swish")}), {"FusedConv node", "unsupported activation \"Swish\""});
  expect_error(graph({attr_string("activation", "Clip"), attr_floats("activation_params", {0.0f})}),
               {"activation Clip needs 2 activation_params, got 1"});
}

TEST(ContribOpsErrors, FusedMatMulInnerDimensionMismatch) {
  Random rng(92);
  TestGraph g;
  g.contrib("FusedMatMul", {g.input("a", rng.floats({2, 3})), g.input("b", rng.floats({2, 4}))}, {"y"},
            {attr_int("transA", 0)});
  g.output("y");
  expect_error(g, {"FusedMatMul node", "inner dimensions differ"});
  // transBatch* need both inputs of the same rank, at least 3 (ONNX Runtime's rule).
  TestGraph g2;
  g2.contrib("FusedMatMul", {g2.input("a", rng.floats({2, 3, 4})), g2.input("b", rng.floats({4, 5}))}, {"y"},
             {attr_int("transBatchA", 1)});
  g2.output("y");
  expect_error(g2, {"transBatchA / transBatchB need inputs of the same rank, at least 3; got ranks 3 and 2"});
}

}  // namespace
}  // namespace kiln::testing::contrib

// The fast kernels (kernels/cpu/fast_kernels.h) against the reference kernels: each covered op on odd
// shapes, the cases a fast kernel must leave to the reference, and whole models (bert-tiny from torch,
// a kiln-exported 2-layer bert-base, vit-tiny, a conv net) run by a fast session and a reference one.
#include <gtest/gtest.h>

#include <cmath>

#include "contrib_test_util.h"
#include "export/exporter.h"
#include "export/transformer_config.h"
#include "export/weight_source.h"
#include "onnx/model_io.h"
#include "pass_test_util.h"
#include "runtime/random_inputs.h"
#include "runtime/session.h"
#include "test_util.h"

namespace kiln {
namespace {

using testing::contrib::attr_float;
using testing::contrib::attr_int;
using testing::contrib::max_abs_diff;
using testing::contrib::Random;
using testing::contrib::TestGraph;
using Feeds = std::unordered_map<std::string, ir::Datum>;

std::vector<ir::Datum> run_session(const ir::Model& m, const Feeds& feeds, bool fast, size_t* fast_count = nullptr,
                                   passes::Level level = passes::Level::kNone) {
  runtime::SessionOptions o;
  o.optimization = level;
  o.fast_kernels = fast;
  runtime::Session s(m, o);
  if (fast_count) *fast_count = s.fast_kernel_count();
  return s.run(feeds);
}

// Runs `g` with fast kernels and with the reference only; every output must agree within `tol`, and
// `expect_fast` nodes must have had a fast kernel prepared.
void expect_fast_matches_reference(const TestGraph& g, size_t expect_fast, double tol = 1e-4) {
  size_t fast_count = 0;
  std::vector<ir::Datum> fast = run_session(g.model(), g.feeds(), true, &fast_count);
  std::vector<ir::Datum> ref = run_session(g.model(), g.feeds(), false);
  EXPECT_EQ(fast_count, expect_fast);
  ASSERT_EQ(fast.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_EQ(fast[i].tensor.shape(), ref[i].tensor.shape()) << "output " << i;
    EXPECT_LE(max_abs_diff(fast[i].tensor, ref[i].tensor), tol) << "output " << i;
  }
}

TEST(FastKernels, MatMulWithConstantWeightsOnOddShapes) {
  for (std::vector<int64_t> a_shape : {std::vector<int64_t>{1, 7}, {3, 7}, {2, 5, 7}, {2, 1, 3, 7}}) {
    for (int64_t n : {1, 5, 33}) {
      Random rng(static_cast<uint32_t>(n + a_shape.size()));
      TestGraph g;
      g.input("a", rng.floats(a_shape));
      g.constant("b", rng.floats({7, n}));
      g.node("MatMul", {"a", "b"}, {"y"});
      g.output("y");
      SCOPED_TRACE(::testing::Message() << "A rank " << a_shape.size() << ", N " << n);
      expect_fast_matches_reference(g, 1);
    }
  }
}

TEST(FastKernels, GemmWithTransBAlphaBetaAndRowBias) {
  for (int64_t trans_b : {0, 1}) {
    for (bool with_c : {false, true}) {
      Random rng(static_cast<uint32_t>(2 * trans_b + with_c));
      TestGraph g;
      g.input("a", rng.floats({9, 17}));
      g.constant("b", rng.floats(trans_b ? std::vector<int64_t>{13, 17} : std::vector<int64_t>{17, 13}));
      std::vector<std::string> ins = {"a", "b"};
      if (with_c) ins.push_back(g.constant("c", rng.floats({1, 13})));
      g.node("Gemm", ins, {"y"}, {attr_int("transB", trans_b), attr_float("alpha", 0.5f), attr_float("beta", 2.0f)});
      g.output("y");
      SCOPED_TRACE(::testing::Message() << "transB " << trans_b << ", C " << with_c);
      expect_fast_matches_reference(g, 1);
    }
  }
}

TEST(FastKernels, MatMulOfTwoComputedOperandsBatchedAndBroadcast) {
  struct Shapes {
    std::vector<int64_t> a, b;
  };
  const std::vector<Shapes> cases = {
      {{1, 2, 5, 8}, {1, 2, 8, 5}},  // attention's Q x K^T per head
      {{2, 3, 5, 7}, {3, 7, 4}},     // B broadcast over the leading batch dim
      {{4, 6}, {2, 6, 5}},           // A broadcast
      {{2, 1, 3, 9}, {1, 4, 9, 2}},  // both broadcast
      {{3, 17}, {17, 33}},           // plain 2-D
      {{2, 3, 0}, {2, 0, 4}},        // K = 0: zeros
      {{2, 0, 3}, {2, 3, 4}},        // M = 0: empty
  };
  for (const Shapes& c : cases) {
    Random rng(static_cast<uint32_t>(c.a.size() * 10 + c.b.size()));
    TestGraph g;
    g.input("a", rng.floats(c.a));
    g.input("b", rng.floats(c.b));
    g.node("MatMul", {"a", "b"}, {"y"});
    g.output("y");
    SCOPED_TRACE(::testing::Message() << ir::to_string(c.a) << " x " << ir::to_string(c.b));
    expect_fast_matches_reference(g, 1);
  }
}

TEST(FastKernels, GemmInEveryTransposeWithComputedBAndEveryBiasShape) {
  const int64_t m = 5, k = 7, n = 6;
  for (int64_t trans_a : {0, 1}) {
    for (int64_t trans_b : {0, 1}) {
      for (std::vector<int64_t> c_shape : {std::vector<int64_t>{}, {1}, {n}, {m, 1}, {1, n}, {m, n}}) {
        Random rng(static_cast<uint32_t>(trans_a * 100 + trans_b * 10 + c_shape.size()));
        TestGraph g;
        g.input("a", rng.floats(trans_a ? std::vector<int64_t>{k, m} : std::vector<int64_t>{m, k}));
        g.input("b", rng.floats(trans_b ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n}));
        g.input("c", rng.floats(c_shape));
        g.node("Gemm", {"a", "b", "c"}, {"y"},
               {attr_int("transA", trans_a), attr_int("transB", trans_b), attr_float("alpha", 0.5f),
                attr_float("beta", 2.0f)});
        g.output("y");
        SCOPED_TRACE(::testing::Message() << "transA " << trans_a << ", transB " << trans_b << ", C "
                                          << ir::to_string(c_shape));
        expect_fast_matches_reference(g, 1);
      }
    }
  }
  // Without C, and with a constant B and transA.
  Random rng(9);
  TestGraph g;
  g.input("a", rng.floats({k, m}));
  g.constant("b", rng.floats({k, n}));
  g.node("Gemm", {"a", "b"}, {"y"}, {attr_int("transA", 1)});
  g.output("y");
  expect_fast_matches_reference(g, 1);
}

TEST(FastKernels, LeavesWhatTheyDoNotCoverToTheReference) {
  Random rng(5);
  // B fed at run time with a 1-D A: the batched MatMul is prepared but declines vectors.
  TestGraph fed;
  fed.input("a", rng.floats({4}));
  fed.input("b", rng.floats({4, 2}));
  fed.node("MatMul", {"a", "b"}, {"y"});
  fed.output("y");
  expect_fast_matches_reference(fed, 1);
  // A 1-D A: [K] x [K, N] -> [N], answered by the fast MatMul (it holds B, so it declines nothing).
  TestGraph vec;
  vec.input("a", rng.floats({4}));
  vec.constant("b", rng.floats({4, 3}));
  vec.node("MatMul", {"a", "b"}, {"y"});
  vec.output("y");
  expect_fast_matches_reference(vec, 1);
  // float64 LayerNormalization: the fast one is float32 only.
  TestGraph ln;
  ir::Tensor x64(ir::DType::kFloat64, {2, 6});
  for (int64_t i = 0; i < x64.numel(); ++i) x64.data<double>()[i] = std::sin(static_cast<double>(i));
  ln.input("x", x64);
  ir::Tensor gamma(ir::DType::kFloat64, {6});
  for (int64_t i = 0; i < 6; ++i) gamma.data<double>()[i] = 1.0 + 0.1 * static_cast<double>(i);
  ln.constant("gamma", gamma);
  ln.node("LayerNormalization", {"x", "gamma"}, {"y"});
  ln.output("y");
  expect_fast_matches_reference(ln, 1, 1e-12);
}

TEST(FastKernels, WeightsHeldPackedAreReleasedAndBadInputsFailLikeTheReference) {
  Random rng(5);
  TestGraph g;
  g.input("a", rng.floats({2, 4}));
  g.constant("b", rng.floats({4, 2}));
  g.constant("shared", rng.floats({2, 2}));
  g.node("MatMul", {"a", "b"}, {"h"});
  g.node("MatMul", {"h", "shared"}, {"y"});
  g.node("Add", {"y", "shared"}, {"z"});  // also read by an Add: must stay
  g.output("z");
  runtime::Session fast(g.model());
  EXPECT_FALSE(fast.model().graph.initializers.count("b"));
  EXPECT_TRUE(fast.model().graph.initializers.count("shared"));
  runtime::SessionOptions ref_options;
  ref_options.fast_kernels = false;
  runtime::Session ref(g.model(), ref_options);
  EXPECT_TRUE(ref.model().graph.initializers.count("b"));
  EXPECT_LE(max_abs_diff(fast.run(g.feeds())[0].tensor, ref.run(g.feeds())[0].tensor), 1e-5);
  // A of the wrong width (made so by a Reshape, since the session checks the declared input shapes):
  // the same message from both.
  TestGraph bad;
  bad.input("a", rng.floats({2, 4}));
  bad.constant("shape", testing::contrib::int64s({4, 2}));
  bad.constant("b", rng.floats({4, 2}));
  bad.node("Reshape", {"a", "shape"}, {"r"});
  bad.node("MatMul", {"r", "b"}, {"y"});
  bad.output("y");
  auto error_of = [&](bool fast_kernels) -> std::string {
    runtime::SessionOptions o;
    o.fast_kernels = fast_kernels;
    o.optimization = passes::Level::kNone;
    try {
      runtime::Session(bad.model(), o).run(bad.feeds());
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  for (bool fast_kernels : {true, false}) {
    std::string error = error_of(fast_kernels);
    EXPECT_NE(error.find("inner dimensions differ: [4,2] x [4,2]"), std::string::npos) << error;
  }
}

TEST(FastKernels, AttentionWithEveryMaskFormatAndScale) {
  enum class Mask { kNone, kRaw, kLengths, kStartEnd, kPerQuery, kCausal };
  struct Case {
    int64_t batch, seq, heads, head_size;
    Mask mask;
    float scale;
  };
  for (const Case& c : {Case{1, 1, 1, 4, Mask::kNone, 0.0f}, Case{2, 7, 3, 5, Mask::kRaw, 0.0f},
                        Case{3, 17, 2, 8, Mask::kRaw, 0.3f}, Case{1, 33, 4, 16, Mask::kNone, 0.0f},
                        Case{3, 9, 2, 4, Mask::kLengths, 0.0f}, Case{2, 9, 2, 4, Mask::kStartEnd, 0.0f},
                        Case{2, 6, 3, 4, Mask::kPerQuery, 0.0f}, Case{2, 8, 2, 4, Mask::kCausal, 0.0f},
                        // Past one block of queries (128) and of keys (256): the online softmax across
                        // key blocks, head sizes with and without a 16-column tail.
                        Case{1, 300, 2, 64, Mask::kRaw, 0.0f}, Case{2, 70, 3, 20, Mask::kPerQuery, 0.0f},
                        Case{1, 530, 1, 16, Mask::kCausal, 0.0f}}) {
    const int64_t d = c.heads * c.head_size;
    Random rng(static_cast<uint32_t>(c.seq));
    TestGraph g;
    g.input("x", rng.floats({c.batch, c.seq, d}));
    g.constant("w", rng.floats({d, 3 * d}));
    g.constant("bias", rng.floats({3 * d}));
    std::vector<std::string> ins = {"x", "w", "bias"};
    std::vector<int32_t> m;
    std::vector<int64_t> mask_shape;
    switch (c.mask) {
      case Mask::kRaw:  // right padding of a different length per row, every row keeping a key
        for (int64_t b = 0; b < c.batch; ++b)
          for (int64_t j = 0; j < c.seq; ++j) m.push_back(j < c.seq - b * 2 ? 1 : 0);
        mask_shape = {c.batch, c.seq};
        break;
      case Mask::kLengths:
        for (int64_t b = 0; b < c.batch; ++b) m.push_back(static_cast<int32_t>(c.seq - b));
        mask_shape = {c.batch};
        break;
      case Mask::kStartEnd:
        for (int64_t b = 0; b < c.batch; ++b) m.push_back(static_cast<int32_t>(c.seq - b));
        for (int64_t b = 0; b < c.batch; ++b) m.push_back(static_cast<int32_t>(b + 1));
        mask_shape = {2 * c.batch};
        break;
      case Mask::kPerQuery:
        for (int64_t b = 0; b < c.batch; ++b)
          for (int64_t i = 0; i < c.seq; ++i)
            for (int64_t j = 0; j < c.seq; ++j) m.push_back((i + j + b) % 3 != 0 || j == i ? 1 : 0);
        mask_shape = {c.batch, c.seq, c.seq};
        break;
      default:
        break;
    }
    if (!m.empty()) ins.push_back(g.input("mask", testing::contrib::int32s(m, mask_shape)));
    std::vector<ir::Attribute> attrs = {attr_int("num_heads", c.heads)};
    if (c.scale != 0.0f) attrs.push_back(attr_float("scale", c.scale));
    if (c.mask == Mask::kCausal) attrs.push_back(attr_int("unidirectional", 1));
    g.contrib("Attention", ins, {"y"}, attrs);
    g.output("y");
    SCOPED_TRACE(::testing::Message() << "B " << c.batch << " S " << c.seq << " N " << c.heads << " H "
                                      << c.head_size << " mask " << static_cast<int>(c.mask));
    expect_fast_matches_reference(g, 1);
  }
}

TEST(FastKernels, SoftmaxOverTheLastAxisAndTheReferenceForOthers) {
  struct Case {
    std::vector<int64_t> shape;
    int64_t opset, axis;
  };
  // The last three are not the last axis alone (an opset-11 softmax flattens from axis 1 on): the kernel
  // declines and the reference answers.
  for (const Case& c : {Case{{2, 3, 17}, 17, -1}, Case{{5, 1}, 17, 1}, Case{{4, 1000}, 13, -1}, Case{{3, 40}, 11, 1},
                        Case{{2, 3, 9}, 17, 1}, Case{{2, 3, 9}, 11, 1}, Case{{6}, 17, 0}}) {
    SCOPED_TRACE(::testing::Message() << "rank " << c.shape.size() << " opset " << c.opset << " axis " << c.axis);
    Random rng(static_cast<uint32_t>(c.shape.back()));
    TestGraph g(c.opset);
    g.input("x", rng.floats(c.shape, -8.0f, 8.0f));
    g.node("Softmax", {"x"}, {"y"}, {attr_int("axis", c.axis)});
    g.output("y");
    expect_fast_matches_reference(g, 1, 1e-6);
  }
}

TEST(FastKernels, LayerNormAndSkipLayerNorm) {
  for (int64_t n : {1, 3, 17, 768}) {
    Random rng(static_cast<uint32_t>(n));
    TestGraph ln;
    ln.input("x", rng.floats({2, 3, n}, -3.0f, 5.0f));
    ln.constant("gamma", rng.floats({n}));
    ln.constant("beta", rng.floats({n}));
    ln.node("LayerNormalization", {"x", "gamma", "beta"}, {"y"}, {attr_float("epsilon", 1e-5f)});
    ln.output("y");
    expect_fast_matches_reference(ln, 1);

    TestGraph skip;
    skip.input("x", rng.floats({2, 3, n}));
    skip.input("skip", rng.floats({2, 3, n}));
    skip.constant("gamma", rng.floats({n}));
    skip.constant("beta", rng.floats({n}));
    skip.constant("bias", rng.floats({n}));
    skip.contrib("SkipLayerNormalization", {"x", "skip", "gamma", "beta", "bias"}, {"y", "", "", "sum"},
                 {attr_float("epsilon", 1e-12f)});
    skip.output("y");
    skip.output("sum");
    expect_fast_matches_reference(skip, 1);
  }
}

TEST(FastKernels, GeluFastGeluBiasGelu) {
  Random rng(9);
  TestGraph g;
  g.input("x", rng.floats({3, 5, 33}, -6.0f, 6.0f));
  g.constant("bias", rng.floats({33}));
  g.contrib("Gelu", {"x"}, {"a"});
  g.contrib("FastGelu", {"x", "bias"}, {"b"});
  g.contrib("BiasGelu", {"x", "bias"}, {"c"});
  g.output("a");
  g.output("b");
  g.output("c");
  expect_fast_matches_reference(g, 3, 1e-5);
}

// ONNX's own Gelu (opset 20) reaches the fast GELU in both forms, over the SIMD width sweep; an unknown
// approximate is left to the reference, which refuses it.
TEST(FastKernels, OnnxGelu20NoneAndTanh) {
  for (const char* approximate : {"none", "tanh", ""}) {
    for (int64_t n : {1, 3, 15, 16, 17, 31, 33, 64, 65}) {
      Random rng(static_cast<uint32_t>(n));
      TestGraph g(20);
      g.input("x", rng.floats({2, n}, -6.0f, 6.0f));
      std::vector<ir::Attribute> attrs;
      if (*approximate) attrs.push_back(testing::contrib::attr_string("approximate", approximate));
      g.node("Gelu", {"x"}, {"y"}, attrs);
      g.output("y");
      SCOPED_TRACE(::testing::Message() << "approximate \"" << approximate << "\", n " << n);
      expect_fast_matches_reference(g, 1, 1e-5);
    }
  }
  TestGraph bad(20);
  bad.input("x", Random(1).floats({4}));
  bad.node("Gelu", {"x"}, {"y"}, {testing::contrib::attr_string("approximate", "sigmoid")});
  bad.output("y");
  size_t fast_count = 0;
  EXPECT_THROW(run_session(bad.model(), bad.feeds(), true, &fast_count), Error);
}

// Whole models, optimized as a Session optimizes them, fast against reference on the same inputs.
void expect_model_fast_matches_reference(const ir::Model& m, const std::map<std::string, int64_t>& dims,
                                         size_t min_fast) {
  Feeds feeds = testing::random_feeds(m, dims, 11);
  size_t fast_count = 0;
  std::vector<ir::Datum> fast = run_session(m, feeds, true, &fast_count, passes::Level::kAll);
  std::vector<ir::Datum> ref = run_session(m, feeds, false, nullptr, passes::Level::kAll);
  EXPECT_GE(fast_count, min_fast);
  ASSERT_EQ(fast.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i)
    EXPECT_LE(max_abs_diff(fast[i].tensor, ref[i].tensor), 1e-4) << m.graph.outputs[i].name;
}

TEST(FastKernelsEndToEnd, TorchBertTiny) {
  ir::Model m = onnx_io::load_model(testing::source_path("tests/data/bert-tiny/model.onnx"));
  // 2 Attention, 4 SkipLayerNorm, 2 BiasGelu, 6 MatMul, 1 Gemm.
  expect_model_fast_matches_reference(m, {{"batch", 2}, {"sequence", 9}}, 15);
}

TEST(FastKernelsEndToEnd, KilnBertBaseTwoLayers) {
  exporter::TransformerConfig c = exporter::preset_config("bert-base");
  c.num_layers = 2;
  ir::Model m = exporter::export_model(c, *exporter::random_weights(3)).model;
  expect_model_fast_matches_reference(m, {{"batch", 2}, {"sequence", 16}}, 15);
}

TEST(FastKernelsEndToEnd, KilnVitTiny) {
  if (testing::kSanitizeBuild) GTEST_SKIP() << "12 layers: runs in the release build";
  ir::Model m = exporter::export_model(exporter::preset_config("vit-tiny"), *exporter::random_weights(4)).model;
  expect_model_fast_matches_reference(m, {{"batch", 1}}, 12 * 6);
}

}  // namespace
}  // namespace kiln

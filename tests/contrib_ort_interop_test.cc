// kiln's com.microsoft contrib kernels against ONNX Runtime's own: each one-node model is saved with random
// inputs as .npy, run by ORT (benchmarks/peers/ort, optimizer disabled) and by kiln, and the outputs must
// agree within 1e-4. This is what proves kiln's reading of the contrib op definitions is ORT's.
// A missing peer FAILS these tests (see ort_interop_test.cc): a skipped interop test hides a broken peer.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "io/npy.h"
#include "onnx/model_io.h"
#include "ort_peer.h"
#include "test_util.h"

namespace kiln::testing::contrib {
namespace {

namespace fs = std::filesystem;

constexpr double kTol = 1e-4;

#define ASSERT_ORT_AVAILABLE()               \
  do {                                       \
    std::string why;                         \
    ASSERT_TRUE(ort_available(&why)) << why; \
  } while (0)

// Runs `g` in kiln and in ORT and compares every graph output.
void expect_same_as_ort(const TestGraph& g, const std::string& label, double tol = kTol) {
  SCOPED_TRACE(label);
  std::vector<ir::Tensor> ours = g.run();
  // ORT wants typed graph outputs: declare the types kiln computed.
  ir::Model m = g.model();
  ASSERT_EQ(m.graph.outputs.size(), ours.size());
  for (size_t i = 0; i < ours.size(); ++i)
    m.graph.outputs[i].type = ir::Type::tensor(ours[i].dtype(), ir::Shape::of(ours[i].shape()));
  TempDir dir("kiln_contrib_ort");
  fs::create_directories(dir.path() / "in");
  onnx_io::save_model(m, dir.file("model.onnx"));
  for (const auto& [name, d] : g.feeds()) io::write_npy(dir.file("in/" + name + ".npy"), d.tensor);
  OrtRun r = run_ort(dir.file("model.onnx"), dir.file("in"), dir.file("out"), "disabled");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (size_t i = 0; i < ours.size(); ++i) {
    const std::string& name = m.graph.outputs[i].name;
    ir::Tensor theirs = io::read_npy(dir.file("out/" + name + ".npy"));
    EXPECT_EQ(ir::to_string(theirs.shape()), ir::to_string(ours[i].shape())) << name;
    EXPECT_EQ(theirs.dtype(), ours[i].dtype()) << name;
    EXPECT_LE(max_abs_diff(ours[i], theirs), tol) << "output " << name;
  }
}

TEST(ContribOrtInterop, GeluFastGeluBiasGelu) {
  ASSERT_ORT_AVAILABLE();
  Random rng(101);
  for (std::vector<int64_t> shape : {std::vector<int64_t>{2, 3, 5}, {7}, {4, 13}}) {
    ir::Tensor x = rng.floats(shape, -5, 5), bias = rng.floats({shape.back()});
    TestGraph gelu;
    gelu.contrib("Gelu", {gelu.input("x", x)}, {"y"});
    gelu.output("y");
    expect_same_as_ort(gelu, "Gelu " + ir::to_string(shape));
    for (bool with_bias : {false, true}) {
      TestGraph fast;
      fast.contrib("FastGelu", {fast.input("x", x), with_bias ? fast.input("bias", bias) : ""}, {"y"});
      fast.output("y");
      expect_same_as_ort(fast, "FastGelu " + ir::to_string(shape) + (with_bias ? " bias" : ""));
    }
    TestGraph bias_gelu;
    bias_gelu.contrib("BiasGelu", {bias_gelu.input("a", x), bias_gelu.input("b", bias)}, {"y"});
    bias_gelu.output("y");
    expect_same_as_ort(bias_gelu, "BiasGelu " + ir::to_string(shape));
  }
}

TEST(ContribOrtInterop, SkipLayerNormalization) {
  ASSERT_ORT_AVAILABLE();
  struct Case {
    std::vector<int64_t> input, skip;
    bool beta, bias;
  };
  std::vector<Case> cases = {{{2, 3, 8}, {2, 3, 8}, true, true},
                             {{1, 1, 5}, {1, 1, 5}, false, false},
                             {{3, 7, 13}, {7, 13}, true, false},
                             {{3, 7, 13}, {1, 7, 13}, false, true},
                             {{4, 9}, {4, 9}, true, true}};
  Random rng(102);
  for (const Case& c : cases) {
    int64_t h = c.input.back();
    ir::Tensor x = rng.floats(c.input, -2, 2), skip = rng.floats(c.skip, -2, 2);
    ir::Tensor gamma = rng.floats({h}, 0.5, 1.5), beta = rng.floats({h}), bias = rng.floats({h});
    // Every output, mean and inv_std_var included; the default epsilon on alternate cases.
    std::vector<ir::Attribute> attrs;
    if (c.beta) attrs.push_back(attr_float("epsilon", 1e-5f));
    std::vector<std::string> outs = {"y", "mean", "inv", "sum"};
    TestGraph g;
    g.contrib("SkipLayerNormalization",
              {g.input("x", x), g.input("skip", skip), g.input("gamma", gamma), c.beta ? g.input("beta", beta) : "",
               c.bias ? g.input("bias", bias) : ""},
              outs, attrs);
    for (const auto& o : outs) g.output(o);
    expect_same_as_ort(g, "SkipLayerNormalization " + ir::to_string(c.input) + " skip " + ir::to_string(c.skip));

    // Input 3 is bias here (there is no beta); ORT reports a mean of 0.
    TestGraph s;
    s.contrib("SkipSimplifiedLayerNormalization",
              {s.input("x", x), s.input("skip", skip), s.input("gamma", gamma), c.bias ? s.input("bias", bias) : ""},
              outs, attrs);
    for (const auto& o : outs) s.output(o);
    expect_same_as_ort(s, "SkipSimplifiedLayerNormalization " + ir::to_string(c.input));
  }
}

TEST(ContribOrtInterop, EmbedLayerNormalization) {
  ASSERT_ORT_AVAILABLE();
  struct Case {
    int64_t batch, seq, hidden, vocab, positions, segments;
    bool mask;
    int position_rows;  // 0: no position_ids, else its first dim
  };
  // segments < 0: segment_embedding without segment_ids, which ORT reads as segment 0 everywhere.
  std::vector<Case> cases = {{2, 3, 8, 11, 5, 2, true, 0},
                             {1, 1, 5, 3, 1, 0, false, 0},
                             {3, 7, 13, 20, 9, 3, true, 3},
                             {2, 7, 13, 20, 12, 0, true, 1},
                             {2, 4, 6, 7, 4, -2, true, 0}};
  Random rng(103);
  for (const Case& c : cases) {
    ir::Tensor ids = rng.ints({c.batch, c.seq}, 0, static_cast<int32_t>(c.vocab - 1));
    const int64_t segments = std::abs(c.segments);
    ir::Tensor segment_ids = rng.ints({c.batch, c.seq}, 0, static_cast<int32_t>(std::max<int64_t>(segments, 1) - 1));
    ir::Tensor mask = rng.ints({c.batch, c.seq}, 0, 2);  // ORT counts the ones only, not the twos
    ir::Tensor position_ids = rng.ints({std::max(c.position_rows, 1), c.seq}, 0, static_cast<int32_t>(c.positions - 1));
    TestGraph g;
    std::vector<std::string> in = {g.input("ids", ids),
                                   c.segments > 0 ? g.input("segment_ids", segment_ids) : "",
                                   g.input("word", rng.floats({c.vocab, c.hidden})),
                                   g.input("pos", rng.floats({c.positions, c.hidden})),
                                   segments ? g.input("seg", rng.floats({segments, c.hidden})) : "",
                                   g.input("gamma", rng.floats({c.hidden}, 0.5, 1.5)),
                                   g.input("beta", rng.floats({c.hidden})),
                                   c.mask ? g.input("mask", mask) : ""};
    if (c.position_rows) in.push_back(g.input("position_ids", position_ids));
    std::vector<ir::Attribute> attrs;
    if (c.mask) attrs.push_back(attr_float("epsilon", 1e-5f));  // else ORT's default, 1e-12
    g.contrib("EmbedLayerNormalization", in, {"y", "mask_index", "sum"}, attrs);
    for (const char* o : {"y", "mask_index", "sum"}) g.output(o);
    expect_same_as_ort(g, "EmbedLayerNormalization B=" + std::to_string(c.batch) + " S=" + std::to_string(c.seq));
  }
}

struct AttentionCase {
  int64_t batch, seq, in_hidden, heads, hidden, v_hidden;
  std::string mask;  // "", "1d", "2b", "2d", "3d", "dummy", "odd" (values outside 0/1 and the sequence)
  bool unidirectional = false;
  float scale = 0;
  float mask_filter_value = -10000.0f;
  std::vector<int64_t> attention_bias = {};
};

TestGraph attention_graph(const AttentionCase& c, Random& rng) {
  const int64_t columns = 2 * c.hidden + c.v_hidden, b = c.batch, s = c.seq;
  TestGraph g;
  std::vector<std::string> in = {g.input("x", rng.floats({b, s, c.in_hidden})),
                                 g.input("w", rng.floats({c.in_hidden, columns})),
                                 g.input("bias", rng.floats({columns}))};
  ir::Tensor mask;
  if (c.mask == "1d") {
    mask = rng.ints({b}, 0, static_cast<int32_t>(s));
    mask.data<int32_t>()[0] = 0;  // every key masked
  } else if (c.mask == "2b") {
    mask = ir::Tensor(ir::DType::kInt32, {2 * b});
    for (int64_t i = 0; i < b; ++i) {
      mask.data<int32_t>()[i] = static_cast<int32_t>(s - (i % 2));
      mask.data<int32_t>()[b + i] = static_cast<int32_t>(i % 3 + (i == 0 ? 1 : 0));
    }
  } else if (c.mask == "2d") {
    mask = rng.ints({b, s}, 0, 1);
    for (int64_t j = 0; j < s; ++j) mask.data<int32_t>()[j] = 0;  // batch 0 masks every key
  } else if (c.mask == "3d") {
    mask = rng.ints({b, s, s}, 0, 1);
    for (int64_t j = 0; j < s; ++j) mask.data<int32_t>()[s + j] = 0;  // query 1 of batch 0 masks every key
  } else if (c.mask == "dummy") {
    mask = rng.ints({b, 1}, 0, 1);
  } else if (c.mask == "odd" && s > 0) {
    mask = ir::Tensor(ir::DType::kInt32, {2 * b});  // ends past the sequence, starts below 0 or past it
    for (int64_t i = 0; i < b; ++i) {
      mask.data<int32_t>()[i] = static_cast<int32_t>(s + 3 * i);
      mask.data<int32_t>()[b + i] = static_cast<int32_t>(i % 2 ? s + 2 : -2);
    }
  } else if (c.mask == "raw") {
    mask = rng.ints({b, s}, -2, 3);  // a raw mask attends where the value is > 0
  }
  in.push_back(mask.defined() ? g.input("mask", mask) : "");
  if (!c.attention_bias.empty()) {
    in.push_back("");
    in.push_back(g.input("attn_bias", rng.floats(c.attention_bias, -2, 2)));
  }
  std::vector<ir::Attribute> attrs = {attr_int("num_heads", c.heads)};
  if (c.unidirectional) attrs.push_back(attr_int("unidirectional", 1));
  if (c.scale != 0) attrs.push_back(attr_float("scale", c.scale));
  if (c.mask_filter_value != -10000.0f) attrs.push_back(attr_float("mask_filter_value", c.mask_filter_value));
  if (c.v_hidden != c.hidden) attrs.push_back(attr_ints("qkv_hidden_sizes", {c.hidden, c.hidden, c.v_hidden}));
  g.contrib("Attention", in, {"y"}, attrs);
  g.output("y");
  return g;
}

TEST(ContribOrtInterop, AttentionEveryMaskFormat) {
  ASSERT_ORT_AVAILABLE();
  std::vector<AttentionCase> cases = {
      {2, 7, 12, 3, 12, 12, ""},
      {1, 1, 8, 1, 8, 8, "1d", true},
      {3, 5, 10, 3, 15, 15, "2b", false, 0.3f},
      {2, 7, 9, 1, 7, 7, "2d", false, 0, -1000.0f},
      {2, 4, 6, 2, 6, 6, "3d", true},
      {2, 6, 10, 3, 9, 6, "1d", false, 0, -10000.0f, {1, 3, 6, 6}},
      {2, 3, 4, 2, 4, 4, "dummy", false, 0, -10000.0f, {2, 1, 3, 3}},
      {1, 7, 5, 3, 9, 9, "", true},
      {3, 5, 7, 1, 5, 5, "2d", true, 1.0f, -10000.0f, {3, 1, 5, 5}},
      {2, 4, 8, 4, 8, 8, "2b", true, 0, -10000.0f, {1, 1, 4, 4}},
      {2, 5, 8, 2, 8, 8, "3d", false, 0, -10000.0f, {2, 2, 5, 5}},
      {3, 6, 8, 2, 8, 8, "1d", true},
      {2, 5, 6, 3, 6, 6, "odd", true},
      {2, 5, 6, 3, 6, 6, "odd"},
      {3, 4, 6, 2, 6, 6, "raw", false, 0, -50.0f},
  };
  Random rng(104);
  for (const AttentionCase& c : cases) {
    std::string label = "Attention B=" + std::to_string(c.batch) + " S=" + std::to_string(c.seq) +
                        " N=" + std::to_string(c.heads) + " mask=" + c.mask + (c.unidirectional ? " causal" : "");
    expect_same_as_ort(attention_graph(c, rng), label);
  }
}

TEST(ContribOrtInterop, FusedMatMulWithTransposes) {
  ASSERT_ORT_AVAILABLE();
  struct Case {
    std::vector<int64_t> a, b;
    int ta, tb, tba, tbb;
    float alpha;
  };
  std::vector<Case> cases = {
      {{2, 3, 4}, {2, 4, 5}, 0, 0, 0, 0, 1.0f},
      {{2, 4, 3}, {2, 4, 5}, 1, 0, 0, 0, 0.5f},
      {{2, 3, 4}, {2, 5, 4}, 0, 1, 0, 0, 1.0f},
      {{2, 1, 3, 4}, {3, 4, 5}, 0, 0, 0, 0, -1.5f},
      {{4}, {4, 5}, 0, 0, 0, 0, 1.0f},
      {{2, 3, 4}, {4}, 0, 0, 0, 0, 2.0f},
      {{1, 7}, {3, 1}, 1, 1, 0, 0, 1.0f},
      {{3, 2, 4}, {2, 4, 5}, 0, 0, 1, 0, 1.0f},
      {{3, 2, 4}, {4, 2, 5}, 0, 0, 1, 1, 0.25f},
      {{4, 2, 3}, {5, 2, 4}, 1, 1, 1, 1, 1.0f},
      {{3, 2, 2, 4}, {2, 2, 4, 5}, 0, 0, 1, 0, 1.0f},
      {{3, 2, 4}, {2, 5, 4}, 0, 1, 1, 0, 1.0f},
      {{3, 1, 4}, {2, 4, 5}, 0, 0, 1, 0, 3.0f},
      {{4, 1, 3}, {2, 5, 4}, 1, 1, 1, 0, 1.0f},
  };
  Random rng(105);
  for (const Case& c : cases) {
    TestGraph g;
    g.contrib("FusedMatMul", {g.input("a", rng.floats(c.a)), g.input("b", rng.floats(c.b))}, {"y"},
              {attr_float("alpha", c.alpha), attr_int("transA", c.ta), attr_int("transB", c.tb),
               attr_int("transBatchA", c.tba), attr_int("transBatchB", c.tbb)});
    g.output("y");
    expect_same_as_ort(g, "FusedMatMul A" + ir::to_string(c.a) + " B" + ir::to_string(c.b) + " t" +
                              std::to_string(c.ta) + std::to_string(c.tb) + std::to_string(c.tba) +
                              std::to_string(c.tbb));
  }
}

TEST(ContribOrtInterop, FusedConvEveryActivation) {
  ASSERT_ORT_AVAILABLE();
  struct Act {
    std::string name;
    std::vector<float> params;
  };
  std::vector<Act> acts = {{"", {}},
                           {"Relu", {}},
                           {"Tanh", {}},
                           {"Sigmoid", {}},
                           {"LeakyRelu", {0.1f}},
                           {"Clip", {-0.5f, 0.75f}},
                           {"HardSigmoid", {0.3f, 0.4f}}};
  Random rng(106);
  for (const Act& act : acts) {
    for (bool with_z : {false, true}) {
      ir::Tensor x = rng.floats({1, 3, 7, 7}, -2, 2), w = rng.floats({4, 3, 3, 3}), b = rng.floats({4});
      std::vector<ir::Attribute> attrs = {attr_ints("strides", {2, 2}), attr_ints("pads", {1, 1, 1, 1})};
      if (!act.name.empty()) attrs.push_back(attr_string("activation", act.name));
      if (!act.params.empty()) attrs.push_back(attr_floats("activation_params", act.params));
      TestGraph g;
      std::vector<std::string> in = {g.input("x", x), g.input("w", w), g.input("b", b)};
      if (with_z) in.push_back(g.input("z", rng.floats({1, 4, 4, 4})));
      g.contrib("FusedConv", in, {"y"}, attrs);
      g.output("y");
      expect_same_as_ort(g, "FusedConv activation " + act.name + (with_z ? " with Z" : ""));
    }
  }
  // Grouped; 1-D with dilation; SAME_UPPER padding (ORT refuses dilation together with SAME_* padding).
  TestGraph grouped;
  grouped.contrib("FusedConv",
                  {grouped.input("x", rng.floats({2, 4, 6, 5})), grouped.input("w", rng.floats({6, 2, 3, 3}))}, {"y"},
                  {attr_int("group", 2), attr_string("activation", "Relu")});
  grouped.output("y");
  expect_same_as_ort(grouped, "FusedConv group 2");
  TestGraph one_d;
  one_d.contrib("FusedConv",
                {one_d.input("x", rng.floats({1, 2, 9})), one_d.input("w", rng.floats({3, 2, 3})),
                 one_d.input("b", rng.floats({3}))},
                {"y"}, {attr_ints("dilations", {2}), attr_ints("pads", {2, 1}), attr_string("activation", "Tanh")});
  one_d.output("y");
  expect_same_as_ort(one_d, "FusedConv 1-D");
  TestGraph same;
  same.contrib("FusedConv",
               {same.input("x", rng.floats({1, 2, 6, 5})), same.input("w", rng.floats({3, 2, 2, 3})), "",
                same.input("z", rng.floats({1, 3, 3, 3}))},
               {"y"}, {attr_ints("strides", {2, 2}), attr_string("auto_pad", "SAME_UPPER")});
  same.output("y");
  expect_same_as_ort(same, "FusedConv SAME_UPPER");
}

TEST(ContribOrtInterop, SimplifiedLayerNormalization) {
  ASSERT_ORT_AVAILABLE();
  Random rng(108);
  struct Case {
    std::vector<int64_t> x, scale;
    int64_t axis;
  };
  for (const Case& c : std::vector<Case>{{{2, 3, 8}, {8}, -1}, {{2, 3, 4}, {3, 4}, 1}, {{5, 13}, {13}, 1}}) {
    TestGraph g;
    g.node("SimplifiedLayerNormalization",
           {g.input("x", rng.floats(c.x, -2, 2)), g.input("scale", rng.floats(c.scale))}, {"y", "inv"},
           {attr_int("axis", c.axis), attr_float("epsilon", 1e-4f)});
    g.output("y");
    g.output("inv");
    expect_same_as_ort(g, "SimplifiedLayerNormalization " + ir::to_string(c.x) + " axis " + std::to_string(c.axis));
  }
}

// ORT accepts LayerNormalization in opset-14 models (its optimizer writes them); so does kiln, with the
// same result.
TEST(ContribOrtInterop, LayerNormalizationInOpset14Model) {
  ASSERT_ORT_AVAILABLE();
  Random rng(107);
  TestGraph g(14);
  g.node("LayerNormalization",
         {g.input("x", rng.floats({2, 5, 7})), g.input("scale", rng.floats({7})), g.input("bias", rng.floats({7}))},
         {"y"}, {attr_float("epsilon", 1e-5f)});
  g.output("y");
  expect_same_as_ort(g, "LayerNormalization opset 14");
}

}  // namespace
}  // namespace kiln::testing::contrib

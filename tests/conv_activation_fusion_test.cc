// Conv + activation fusion per target: HardSwish and x * Sigmoid(x) become kiln's ai.kiln.FusedConv for
// target kiln and are left alone, with the reason, for target ort; the six activations ONNX Runtime
// accepts stay com.microsoft.FusedConv either way. Then the ai.kiln.FusedConv kernel against Conv followed
// by the activation in standard ops, com.microsoft.FusedConv refusing kiln's activations, and
// `kiln optimize --target` end to end (the ort output run by ONNX Runtime).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

#include "contrib_test_util.h"
#include "export/graph_builder.h"
#include "io/npy.h"
#include "onnx/model_io.h"
#include "ort_peer.h"
#include "pass_test_util.h"
#include "passes/optimizer.h"
#include "passes/passes.h"
#include "test_util.h"

namespace kiln {
namespace {

using exporter::GraphBuilder;
using exporter::ints_attr;
using exporter::tensor_value;
using passes::Target;
using testing::count_ops;
using testing::Feeds;
using testing::find_op;
using testing::Fused;
using testing::max_abs_diff;

constexpr double kTol = 1e-5;

// Random inputs for every graph input (no symbolic dims), seeds from 11.
Feeds random_feeds(const ir::Model& m) { return testing::random_feeds(m, {}, 11); }

// Run as given, every output checked against the types inference gave.
std::vector<ir::Datum> run_as_given(const ir::Model& m, const Feeds& feeds) {
  return testing::run_unoptimized(m, feeds, /*verify_inference=*/true);
}

// fuse_conv_activation alone on a copy of `m` for `target`, then dead code dropped, then the outputs
// compared with the unfused model.
Fused fuse(const ir::Model& m, Target target) {
  passes::OptimizeOptions options;
  options.target = target;
  Fused f = testing::run_passes(m, {passes::fuse_conv_activation}, options);
  testing::drop_dead_code(f.model, options);
  testing::expect_same_outputs(m, f.model, random_feeds(m), kTol, /*verify_inference=*/true);
  return f;
}

// x [1, 3, 7, 6] -> Conv (4 output channels, 3x3, pads 1, with bias) -> the returned value; outputs are
// added by the caller. Weights are large enough that the outputs cross every region of HardSwish.
struct ConvGraph {
  ir::Model model;
  GraphBuilder b{model.graph};
  std::string conv;

  explicit ConvGraph(int64_t opset = 14) {
    model.opset_imports[""] = opset;
    model.graph.inputs.push_back(
        tensor_value("x", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(3), ir::Dim(7), ir::Dim(6)}));
    testing::contrib::Random rng(3);
    std::string w = b.initializer("w", rng.floats({4, 3, 3, 3}, -1.5f, 1.5f));
    std::string bias = b.initializer("bias", rng.floats({4}));
    conv = b.add("Conv", {"x", w, bias}, {ints_attr("kernel_shape", {3, 3}), ints_attr("pads", {1, 1, 1, 1})});
  }
  void output(const std::string& name) {
    model.graph.outputs.push_back(
        tensor_value(name, ir::DType::kFloat32, {ir::Dim(1), ir::Dim(4), ir::Dim(7), ir::Dim(6)}));
  }
};

ir::Model conv_hard_swish() {
  ConvGraph g;
  g.b.add_named("HardSwish", {g.conv}, "y");
  g.output("y");
  return std::move(g.model);
}

// y = c * Sigmoid(c), or Sigmoid(c) * c when `sigmoid_first`.
ir::Model conv_silu(bool sigmoid_first) {
  ConvGraph g;
  std::string s = g.b.add("Sigmoid", {g.conv});
  g.b.add_named("Mul", sigmoid_first ? std::vector<std::string>{s, g.conv} : std::vector<std::string>{g.conv, s}, "y");
  g.output("y");
  return std::move(g.model);
}

// ---- the pass ---------------------------------------------------------------------------------------

TEST(ConvActivationFusion, HardSwishBecomesKilnFusedConvForTargetKiln) {
  Fused f = fuse(conv_hard_swish(), Target::kKiln);
  EXPECT_EQ(f.ops("ai.kiln.FusedConv"), 1);
  EXPECT_EQ(f.ops("Conv") + f.ops("HardSwish") + f.ops("com.microsoft.FusedConv"), 0);
  EXPECT_EQ(f.changed("FusedConv HardSwish"), 1);
  EXPECT_TRUE(f.report.rejections.empty());
  EXPECT_EQ(f.model.opset("ai.kiln"), 1);
  EXPECT_EQ(f.model.opset("com.microsoft"), 0);  // nothing of ORT's was written
  const ir::Node* fc = find_op(f.model, "ai.kiln", "FusedConv");
  ASSERT_NE(fc, nullptr);
  EXPECT_EQ(fc->find_attribute("activation")->s, "HardSwish");
  EXPECT_EQ(fc->find_attribute("activation_params"), nullptr);
  EXPECT_EQ(fc->inputs.size(), 3u);  // x, W, B
  EXPECT_NE(fc->find_attribute("pads"), nullptr);
}

TEST(ConvActivationFusion, SiluBecomesKilnFusedConvForTargetKilnEitherMulOrder) {
  for (bool sigmoid_first : {false, true}) {
    Fused f = fuse(conv_silu(sigmoid_first), Target::kKiln);
    EXPECT_EQ(f.ops("ai.kiln.FusedConv"), 1) << sigmoid_first;
    EXPECT_EQ(f.ops("Conv") + f.ops("Sigmoid") + f.ops("Mul") + f.ops("com.microsoft.FusedConv"), 0) << sigmoid_first;
    EXPECT_EQ(f.changed("FusedConv Silu"), 1) << sigmoid_first;
    EXPECT_EQ(f.model.opset("ai.kiln"), 1);
    const ir::Node* fc = find_op(f.model, "ai.kiln", "FusedConv");
    ASSERT_NE(fc, nullptr);
    EXPECT_EQ(fc->find_attribute("activation")->s, "Silu");
    EXPECT_EQ(fc->outputs, std::vector<std::string>{"y"});
  }
}

TEST(ConvActivationFusion, TargetOrtLeavesHardSwishAndSiluWithTheReason) {
  Fused hs = fuse(conv_hard_swish(), Target::kOnnxRuntime);
  EXPECT_EQ(hs.ops("Conv"), 1);
  EXPECT_EQ(hs.ops("HardSwish"), 1);
  EXPECT_EQ(hs.ops("ai.kiln.FusedConv") + hs.ops("com.microsoft.FusedConv"), 0);
  EXPECT_EQ(hs.model.opset("ai.kiln"), 0);
  EXPECT_EQ(hs.reasons(), std::vector<std::string>{"HardSwish is not an activation ONNX Runtime's FusedConv supports "
                                                   "(fused only for kiln: --target kiln)"});
  for (bool sigmoid_first : {false, true}) {
    Fused silu = fuse(conv_silu(sigmoid_first), Target::kOnnxRuntime);
    EXPECT_EQ(silu.ops("Conv"), 1);
    EXPECT_EQ(silu.ops("Sigmoid"), 1);
    EXPECT_EQ(silu.ops("Mul"), 1);
    EXPECT_EQ(silu.ops("ai.kiln.FusedConv") + silu.ops("com.microsoft.FusedConv"), 0);
    EXPECT_EQ(silu.reasons(), std::vector<std::string>{"x * Sigmoid(x) is not an activation ONNX Runtime's FusedConv "
                                                       "supports (fused only for kiln: --target kiln)"});
  }
}

TEST(ConvActivationFusion, OrtActivationsStayMicrosoftFusedConvForBothTargets) {
  for (Target target : {Target::kOnnxRuntime, Target::kKiln}) {
    ConvGraph g;
    g.b.add_named("Relu", {g.conv}, "y");
    g.output("y");
    Fused f = fuse(g.model, target);
    EXPECT_EQ(f.ops("com.microsoft.FusedConv"), 1) << passes::target_name(target);
    EXPECT_EQ(f.ops("ai.kiln.FusedConv"), 0) << passes::target_name(target);
    EXPECT_EQ(f.changed("FusedConv Relu"), 1) << passes::target_name(target);
    EXPECT_EQ(f.model.opset("ai.kiln"), 0) << passes::target_name(target);
  }
}

// Both FusedConv ops take float32 only: a float64 Conv keeps its activation (and still runs).
TEST(ConvActivationFusion, Float64ConvIsNotFused) {
  for (const char* act : {"Relu", "HardSwish"}) {
    ConvGraph g;
    g.b.add_named(act, {g.conv}, "y");
    g.output("y");
    for (auto& [name, t] : g.model.graph.initializers) {
      std::vector<double> wide(t.data<float>(), t.data<float>() + t.numel());
      t = ir::Tensor::from_vector(wide, t.shape());
    }
    g.model.graph.inputs[0].type.dtype = ir::DType::kFloat64;
    g.model.graph.outputs[0].type.dtype = ir::DType::kFloat64;
    Fused f = fuse(g.model, Target::kKiln);
    EXPECT_EQ(f.ops("Conv"), 1) << act;
    EXPECT_EQ(f.ops(act), 1) << act;
    EXPECT_EQ(f.ops("ai.kiln.FusedConv") + f.ops("com.microsoft.FusedConv"), 0) << act;
  }
}

// Another reader of the Conv output or of the Sigmoid output needs the unfused value: no fusion.
TEST(ConvActivationFusion, SiluWithAnotherReaderIsNotFused) {
  struct Case {
    const char* what;
    const char* reason;
  };
  const Case cases[] = {
      {"Conv output read by a Relu", "x * Sigmoid(x): the Conv output has readers besides the Sigmoid and the Mul"},
      {"Conv output is a graph output", "x * Sigmoid(x): the Conv output has readers besides the Sigmoid and the Mul"},
      {"Sigmoid output read by a Relu", "x * Sigmoid(x): the Sigmoid output has readers besides the Mul"},
  };
  for (int k = 0; k < 3; ++k) {
    ConvGraph g;
    std::string s = g.b.add("Sigmoid", {g.conv});
    g.b.add_named("Mul", {g.conv, s}, "y");
    g.output("y");
    if (k == 0) g.b.add_named("Relu", {g.conv}, "r");
    if (k == 2) g.b.add_named("Relu", {s}, "r");
    g.output(k == 1 ? g.conv : "r");
    Fused f = fuse(g.model, Target::kKiln);
    EXPECT_EQ(f.ops("ai.kiln.FusedConv") + f.ops("com.microsoft.FusedConv"), 0) << cases[k].what;
    EXPECT_EQ(f.ops("Conv"), 1) << cases[k].what;
    EXPECT_EQ(f.ops("Sigmoid"), 1) << cases[k].what;
    EXPECT_EQ(f.ops("Mul"), 1) << cases[k].what;
    EXPECT_EQ(f.reasons(), std::vector<std::string>{cases[k].reason}) << cases[k].what;
  }
}

// ---- the kernels ------------------------------------------------------------------------------------

namespace ct = testing::contrib;

// Runs a contrib TestGraph whose nodes include ai.kiln ones (TestGraph imports only ai.onnx and
// com.microsoft).
std::vector<ir::Tensor> run_with_kiln_domain(const ct::TestGraph& g) {
  ir::Model m = g.model();
  m.opset_imports["ai.kiln"] = 1;
  std::vector<ir::Tensor> outs;
  for (auto& d : run_as_given(m, g.feeds())) outs.push_back(d.tensor);
  return outs;
}

std::string error_with_kiln_domain(const ct::TestGraph& g) {
  try {
    run_with_kiln_domain(g);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct KernelCase {
  std::vector<int64_t> x, w;
  std::vector<ir::Attribute> attrs;
  bool bias, z;
};

std::vector<KernelCase> kernel_cases() {
  return {
      {{1, 3, 7, 7}, {4, 3, 3, 3}, {ct::attr_ints("strides", {2, 2}), ct::attr_ints("pads", {1, 0, 2, 1})}, true, true},
      {{2, 4, 6, 5}, {6, 2, 3, 3}, {ct::attr_int("group", 2)}, false, false},
      {{1, 6, 5, 9}, {6, 1, 3, 2}, {ct::attr_int("group", 6), ct::attr_ints("strides", {1, 3})}, true, false},
      {{1, 2, 9}, {3, 2, 3}, {ct::attr_ints("dilations", {2}), ct::attr_string("auto_pad", "SAME_UPPER")}, true, true},
  };
}

TEST(ConvActivationFusionKernel, KilnFusedConvMatchesConvThenHardSwishOrSilu) {
  ct::Random rng(70);
  for (const KernelCase& c : kernel_cases()) {
    for (const char* act : {"HardSwish", "Silu"}) {
      const std::string label = std::string(act) + " X" + ir::to_string(c.x) + " W" + ir::to_string(c.w);
      ir::Tensor x = rng.floats(c.x, -3, 3), w = rng.floats(c.w, -1.5f, 1.5f), b = rng.floats({c.w[0]});
      ct::TestGraph probe;
      probe.node("Conv", {probe.input("x", x), probe.input("w", w)}, {"y"}, c.attrs);
      probe.output("y");
      ir::Tensor z = rng.floats(probe.run()[0].shape());

      ct::TestGraph g;
      std::vector<ir::Attribute> attrs = c.attrs;
      attrs.push_back(ct::attr_string("activation", act));
      std::vector<std::string> in = {g.input("x", x), g.input("w", w), c.bias ? g.input("b", b) : ""};
      if (c.z) in.push_back(g.input("z", z));
      g.node("FusedConv", in, {"y"}, attrs, "ai.kiln");
      g.output("y");

      ct::TestGraph ref;
      std::vector<std::string> conv_in = {ref.input("x", x), ref.input("w", w)};
      if (c.bias) conv_in.push_back(ref.input("b", b));
      std::string cur = "conv";
      ref.node("Conv", conv_in, {cur}, c.attrs);
      if (c.z) {
        ref.node("Add", {cur, ref.input("z", z)}, {"conv_z"});
        cur = "conv_z";
      }
      if (std::string(act) == "HardSwish") {
        ref.node("HardSwish", {cur}, {"y"});
      } else {
        ref.node("Sigmoid", {cur}, {"s"});
        ref.node("Mul", {cur, "s"}, {"y"});
      }
      ref.output("y");

      std::vector<ir::Tensor> got = run_with_kiln_domain(g), want = ref.run();
      ASSERT_EQ(got.size(), 1u) << label;
      ASSERT_EQ(got[0].shape(), want[0].shape()) << label;
      EXPECT_LE(ct::max_abs_diff(got[0], want[0]), kTol) << label;
    }
  }
}

// The two registrations share one implementation: on ORT's activations they must agree exactly.
TEST(ConvActivationFusionKernel, KilnFusedConvEqualsMicrosoftFusedConvOnOrtActivations) {
  ct::Random rng(71);
  const KernelCase c = kernel_cases()[0];
  ir::Tensor x = rng.floats(c.x, -3, 3), w = rng.floats(c.w), b = rng.floats({c.w[0]});
  for (auto [act, params] : std::vector<std::pair<std::string, std::vector<float>>>{{"Relu", {}},
                                                                                    {"Tanh", {}},
                                                                                    {"Sigmoid", {}},
                                                                                    {"LeakyRelu", {0.1f}},
                                                                                    {"Clip", {-0.5f, 0.75f}},
                                                                                    {"HardSigmoid", {0.3f, 0.4f}}}) {
    std::vector<ir::Attribute> attrs = c.attrs;
    attrs.push_back(ct::attr_string("activation", act));
    if (!params.empty()) attrs.push_back(ct::attr_floats("activation_params", params));
    ct::TestGraph kiln_g, ms_g;
    kiln_g.node("FusedConv", {kiln_g.input("x", x), kiln_g.input("w", w), kiln_g.input("b", b)}, {"y"}, attrs,
                "ai.kiln");
    kiln_g.output("y");
    ms_g.contrib("FusedConv", {ms_g.input("x", x), ms_g.input("w", w), ms_g.input("b", b)}, {"y"}, attrs);
    ms_g.output("y");
    EXPECT_EQ(ct::max_abs_diff(run_with_kiln_domain(kiln_g)[0], ms_g.run()[0]), 0.0) << act;
  }
}

ct::TestGraph fused_conv_graph(const std::string& domain, const std::string& activation) {
  ct::Random rng(72);
  ct::TestGraph g;
  g.node("FusedConv", {g.input("x", rng.floats({1, 1, 4, 4})), g.input("w", rng.floats({1, 1, 3, 3}))}, {"y"},
         {ct::attr_string("activation", activation)}, domain);
  g.output("y");
  return g;
}

// kiln's com.microsoft ops have ONNX Runtime's semantics, which has no HardSwish or Silu FusedConv.
TEST(ConvActivationFusionKernel, MicrosoftFusedConvRefusesKilnActivations) {
  for (const char* act : {"HardSwish", "Silu"}) {
    std::string e = ct::error_of(fused_conv_graph("com.microsoft", act));
    EXPECT_NE(e.find("FusedConv node"), std::string::npos) << e;
    EXPECT_NE(e.find(std::string("unsupported activation \"") + act +
                     "\" (expected Relu, Tanh, Sigmoid, LeakyRelu, Clip or HardSigmoid)"),
              std::string::npos)
        << e;
  }
  std::string e = error_with_kiln_domain(fused_conv_graph("ai.kiln", "Swish"));
  EXPECT_NE(e.find("unsupported activation \"Swish\" (expected Relu, Tanh, Sigmoid, LeakyRelu, Clip, HardSigmoid, "
                   "HardSwish or Silu)"),
            std::string::npos)
      << e;
}

// ---- kiln optimize --target -------------------------------------------------------------------------

// x -> Conv+Relu -> Conv+HardSwish -> Conv+SiLU -> y, 4 channels throughout.
ir::Model three_conv_net() {
  ir::Model m = testing::new_ir_model(14);
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(4), ir::Dim(9), ir::Dim(7)}));
  ct::Random rng(80);
  auto conv = [&](const std::string& in, int k) {
    std::string w = b.initializer("w" + std::to_string(k), rng.floats({4, 4, 3, 3}, -0.8f, 0.8f));
    std::string bias = b.initializer("b" + std::to_string(k), rng.floats({4}));
    return b.add("Conv", {in, w, bias}, {ints_attr("kernel_shape", {3, 3}), ints_attr("pads", {1, 1, 1, 1})});
  };
  std::string h = b.add("Relu", {conv("x", 0)});
  h = b.add("HardSwish", {conv(h, 1)});
  std::string c = conv(h, 2);
  b.add_named("Mul", {b.add("Sigmoid", {c}), c}, "y");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(4), ir::Dim(9), ir::Dim(7)}));
  return m;
}

TEST(ConvActivationFusionCli, OptimizeTargetOrtRunsInOrtAndTargetKilnWritesKilnFusedConv) {
  testing::TempDir dir("kiln_conv_target");
  ir::Model m = three_conv_net();
  onnx_io::save_model(m, dir.file("model.onnx"));
  Feeds feeds = random_feeds(m);
  std::vector<ir::Datum> want = run_as_given(m, feeds);
  std::filesystem::create_directories(dir.path() / "in");
  for (const auto& [name, d] : feeds) io::write_npy(dir.file("in/" + name + ".npy"), d.tensor);

  // Default target: ort.
  testing::RunResult r =
      testing::run_kiln({"optimize", dir.file("model.onnx"), "-o", dir.file("ort.onnx"), "--report"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("target ort"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("HardSwish is not an activation ONNX Runtime's FusedConv supports (fused only for kiln: "
                       "--target kiln)"),
            std::string::npos)
      << r.out;
  ir::Model ort_model = onnx_io::load_model(dir.file("ort.onnx"));
  EXPECT_EQ(count_ops(ort_model, "com.microsoft.FusedConv"), 1);
  EXPECT_EQ(count_ops(ort_model, "ai.kiln.FusedConv"), 0);
  EXPECT_EQ(count_ops(ort_model, "Conv"), 2);
  EXPECT_EQ(ort_model.opset("ai.kiln"), 0);

  std::string why;
  ASSERT_TRUE(testing::ort_available(&why)) << why;
  testing::OrtRun ort = testing::run_ort(dir.file("ort.onnx"), dir.file("in"), dir.file("out"), "disabled");
  ASSERT_EQ(ort.exit_code, 0) << ort.err;
  ir::Tensor theirs = io::read_npy(dir.file("out/y.npy"));
  ASSERT_EQ(theirs.shape(), want[0].tensor.shape());
  EXPECT_LE(max_abs_diff(theirs, want[0].tensor), 1e-4);

  testing::RunResult k =
      testing::run_kiln({"optimize", dir.file("model.onnx"), "-o", dir.file("kiln.onnx"), "--target", "kiln", "--level", "extended"});
  ASSERT_EQ(k.exit_code, 0) << k.err;
  EXPECT_NE(k.out.find("target kiln"), std::string::npos) << k.out;
  ir::Model kiln_model = onnx_io::load_model(dir.file("kiln.onnx"));
  EXPECT_EQ(count_ops(kiln_model, "com.microsoft.FusedConv"), 1);
  EXPECT_EQ(count_ops(kiln_model, "ai.kiln.FusedConv"), 2);
  EXPECT_EQ(count_ops(kiln_model, "Conv") + count_ops(kiln_model, "HardSwish") + count_ops(kiln_model, "Mul"), 0);
  EXPECT_EQ(kiln_model.opset("ai.kiln"), 1);
  std::vector<ir::Datum> got = run_as_given(kiln_model, feeds);
  EXPECT_LE(max_abs_diff(got[0].tensor, want[0].tensor), kTol);
  // Why ort is the default: ONNX Runtime cannot load kiln's own op.
  testing::OrtRun refused = testing::run_ort(dir.file("kiln.onnx"), dir.file("in"), dir.file("out2"), "disabled");
  EXPECT_NE(refused.exit_code, 0);

  testing::RunResult bad =
      testing::run_kiln({"optimize", dir.file("model.onnx"), "-o", dir.file("x.onnx"), "--target", "onnxruntime"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--target"), std::string::npos) << bad.err;
}

TEST(ConvActivationFusion, ParseTarget) {
  EXPECT_EQ(passes::parse_target("ort"), Target::kOnnxRuntime);
  EXPECT_EQ(passes::parse_target("kiln"), Target::kKiln);
  EXPECT_STREQ(passes::target_name(Target::kOnnxRuntime), "ort");
  EXPECT_STREQ(passes::target_name(Target::kKiln), "kiln");
  try {
    passes::parse_target("onnxruntime");
    ADD_FAILURE() << "parse_target accepted \"onnxruntime\"";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "unknown optimization target \"onnxruntime\" (ort or kiln)");
  }
  EXPECT_EQ(passes::OptimizeOptions{}.target, Target::kKiln);  // what a Session uses
}

}  // namespace
}  // namespace kiln

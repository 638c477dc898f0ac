// The whole optimizer (passes::optimize at level all) end to end: on kiln's BERT-base and ViT-base
// exports, the torch-exported BERT-tiny, and a small ResNet-style conv net built here. Each case checks the
// fusion counts the project promises and what is left in the graph, then that the optimized model computes
// the same outputs as the unoptimized one, run by kiln and by ONNX Runtime (its own optimizer disabled,
// so it runs exactly the com.microsoft ops we wrote).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "export/exporter.h"
#include "export/graph_builder.h"
#include "export/transformer_config.h"
#include "export/weight_source.h"
#include "onnx/model_io.h"
#include "pass_test_util.h"
#include "passes/optimizer.h"
#include "runtime/random_inputs.h"
#include "runtime/session.h"
#include "test_util.h"

namespace kiln {
namespace {

using exporter::GraphBuilder;
using exporter::int_attr;
using exporter::ints_attr;
using exporter::tensor_value;
using testing::Feeds;
using testing::max_abs_diff;
using testing::Optimized;
using testing::run_unoptimized;

constexpr double kTol = 1e-4;

int64_t after(const passes::OptimizationReport& r, const std::string& op) {
  auto it = r.ops_after.find(op);
  return it == r.ops_after.end() ? 0 : it->second;
}

// Optimizes a copy of `m` at level all.
// Every fusion: level extended, since level all adds the channels-last layout of kiln's own kernels
// (ai.kiln.FusedConv, which ONNX Runtime cannot run; tested in conv_channels_last_test.cc).
Optimized optimize_all(const ir::Model& m) {
  Optimized o{m, {}};
  passes::OptimizeOptions options;
  options.level = passes::Level::kExtended;
  o.report = passes::optimize(o.model, options);
  return o;
}

// The optimized model, run by kiln (as given) and by ONNX Runtime (optimizer disabled), matches the
// unoptimized model run by kiln, output by output, within kTol.
void expect_optimized_matches(const ir::Model& original, const ir::Model& opt, const Feeds& feeds,
                              const std::string& what) {
  std::vector<ir::Datum> want = run_unoptimized(original, feeds);
  std::vector<ir::Datum> got = run_unoptimized(opt, feeds);
  ASSERT_EQ(want.size(), original.graph.outputs.size());
  ASSERT_EQ(got.size(), want.size());
  ASSERT_EQ(opt.graph.outputs.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string& name = original.graph.outputs[i].name;
    EXPECT_EQ(opt.graph.outputs[i].name, name);
    ASSERT_EQ(got[i].tensor.shape(), want[i].tensor.shape()) << what << " kiln " << name;
    const double d = max_abs_diff(want[i].tensor, got[i].tensor);
    EXPECT_LE(d, kTol) << what << ": kiln, optimized, output " << name;
    std::cout << "[ diff   ] " << what << " " << name << ": kiln " << d << "\n";
  }

  std::vector<double> diffs;
  testing::expect_ort_matches(opt, feeds, want, kTol, what, &diffs);
  for (size_t i = 0; i < diffs.size(); ++i)
    std::cout << "[ diff   ] " << what << " " << opt.graph.outputs[i].name << ": ORT " << diffs[i] << "\n";
}

// Nothing of the unfused patterns is left.
void expect_no_unfused_ops(const passes::OptimizationReport& r) {
  for (const char* op : {"Softmax", "Erf", "Pow", "ReduceMean"})
    EXPECT_EQ(after(r, op), 0) << op << "\n" << r.to_text();
}

// ---------------------------------------------------------------------------------------------------
// Transformers

ir::Model export_preset(const std::string& name) {
  return exporter::export_model(exporter::preset_config(name), *exporter::random_weights(1)).model;
}

ir::Model load_bert_tiny() { return onnx_io::load_model(testing::source_path("tests/data/bert-tiny/model.onnx")); }

// Batch 2, sequence 8: token ids < 100, token types 0 then 1, row 0 all attended, row 1 with its last 3
// positions padded.
Feeds text_feeds(const ir::Model& m) {
  const int64_t batch = 2, seq = 8;
  Feeds f;
  for (const auto& in : m.graph.inputs) {
    ir::Tensor t(ir::DType::kInt64, {batch, seq});
    int64_t* p = t.data<int64_t>();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t s = 0; s < seq; ++s) {
        int64_t& v = p[b * seq + s];
        if (in.name == "input_ids")
          v = (b * 31 + s * 17 + 5) % 100;
        else if (in.name == "attention_mask")
          v = (b == 1 && s >= seq - 3) ? 0 : 1;
        else if (in.name == "token_type_ids")
          v = s >= seq / 2 ? 1 : 0;
        else
          ADD_FAILURE() << "unexpected input " << in.name;
      }
    f[in.name] = std::move(t);
  }
  return f;
}

// Batch 1 of a fixed sine pattern.
Feeds image_feeds(const ir::Model& m) {
  Feeds f;
  for (const auto& in : m.graph.inputs) {
    EXPECT_EQ(in.name, "pixel_values");
    std::vector<int64_t> shape = runtime::concrete_shape(in, {{"batch", 1}});
    ir::Tensor t(ir::DType::kFloat32, shape);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = std::sin(0.37f * static_cast<float>(i % 5003) + 0.1f);
    f[in.name] = std::move(t);
  }
  return f;
}

struct Expected {
  int64_t attention, layer_norm, gelu;
  int64_t embed_after, skip_after, layer_norm_after;
};

void check_transformer(const ir::Model& m, const Expected& e, const Feeds& feeds, const std::string& what) {
  auto t0 = std::chrono::steady_clock::now();
  auto [opt, report] = optimize_all(m);
  auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(report.count("Attention"), e.attention) << report.to_text();
  EXPECT_EQ(report.count("LayerNormalization"), e.layer_norm) << report.to_text();
  EXPECT_EQ(report.count("Gelu"), e.gelu) << report.to_text();
  EXPECT_EQ(report.count("BiasGelu"), e.gelu) << report.to_text();
  EXPECT_EQ(after(report, "com.microsoft.Attention"), e.attention);
  EXPECT_EQ(after(report, "com.microsoft.BiasGelu"), e.gelu);
  EXPECT_EQ(after(report, "com.microsoft.Gelu"), 0);
  EXPECT_EQ(after(report, "com.microsoft.EmbedLayerNormalization"), e.embed_after);
  EXPECT_EQ(after(report, "com.microsoft.SkipLayerNormalization"), e.skip_after);
  EXPECT_EQ(after(report, "LayerNormalization"), e.layer_norm_after);
  // Every fused LayerNormalization ended up in one of the three.
  EXPECT_EQ(e.embed_after + e.skip_after + e.layer_norm_after, e.layer_norm);
  expect_no_unfused_ops(report);
  EXPECT_EQ(report.ops_after, passes::op_histogram(opt.graph));
  expect_optimized_matches(m, opt, feeds, what);
  auto t2 = std::chrono::steady_clock::now();
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::cout << "[ timing ] " << what << ": optimize " << ms(t1 - t0) << " ms, runs " << ms(t2 - t1) << " ms, "
            << report.nodes_before << " -> " << report.nodes_after << " nodes\n";
}

TEST(OptimizerEndToEnd, KilnBertBase) {
#ifdef KILN_SANITIZE_BUILD
  GTEST_SKIP() << "runs in the release build";
#endif
  ir::Model m = export_preset("bert-base");
  check_transformer(m, {12, 25, 12, 1, 24, 0}, text_feeds(m), "kiln bert-base");
}

TEST(OptimizerEndToEnd, TorchBertTiny) {
  ir::Model m = load_bert_tiny();
  check_transformer(m, {2, 5, 2, 1, 4, 0}, text_feeds(m), "torch bert-tiny");
}

TEST(OptimizerEndToEnd, KilnVitBase) {
#ifdef KILN_SANITIZE_BUILD
  GTEST_SKIP() << "runs in the release build";
#endif
  ir::Model m = export_preset("vit-base");
  // Pre-norm: the final LayerNormalization has no residual Add before it to take.
  check_transformer(m, {12, 25, 12, 0, 24, 1}, image_feeds(m), "kiln vit-base");
}

// ---------------------------------------------------------------------------------------------------
// A ResNet-style conv net

ir::Tensor wave(std::vector<int64_t> shape, float scale, float offset, float phase) {
  ir::Tensor t(ir::DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = offset + scale * std::sin(1.3f * static_cast<float>(i) + phase);
  return t;
}

class ConvNet {
 public:
  ConvNet() : b_(m_.graph) { m_.opset_imports[""] = 17; }

  // Conv (bias included) with weights scaled by 1/sqrt(fan in).
  std::string conv(const std::string& x, int64_t in, int64_t out, int64_t k, int64_t stride) {
    const float scale = 1.5f / std::sqrt(static_cast<float>(in * k * k));
    std::string w = b_.initializer(fresh("w"), wave({out, in, k, k}, scale, 0.0f, phase()));
    std::string bias = b_.initializer(fresh("b"), wave({out}, 0.1f, 0.02f, phase()));
    const int64_t pad = k / 2;
    return b_.add("Conv", {x, w, bias},
                  {ints_attr("kernel_shape", {k, k}), ints_attr("strides", {stride, stride}),
                   ints_attr("pads", {pad, pad, pad, pad})});
  }

  std::string bn(const std::string& x, int64_t c) {
    return b_.add("BatchNormalization",
                  {x, b_.initializer(fresh("gamma"), wave({c}, 0.3f, 1.0f, phase())),
                   b_.initializer(fresh("beta"), wave({c}, 0.2f, 0.0f, phase())),
                   b_.initializer(fresh("mean"), wave({c}, 0.1f, 0.0f, phase())),
                   b_.initializer(fresh("var"), wave({c}, 0.3f, 0.6f, phase()))},  // in [0.3, 0.9]
                  {exporter::float_attr("epsilon", 1e-5f)});
  }

  ir::Model build() {
    m_.graph.inputs.push_back(
        tensor_value("x", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(3), ir::Dim(16), ir::Dim(16)}));
    // Stem: Conv + BN + Relu  -> FusedConv 1.
    std::string x = b_.add("Relu", {bn(conv("x", 3, 8, 3, 1), 8)});
    // Block 1, identity skip: Conv + BN + Relu (FusedConv 2), Conv + BN, Add, Relu.
    {
      std::string h = b_.add("Relu", {bn(conv(x, 8, 8, 3, 1), 8)});
      h = bn(conv(h, 8, 8, 3, 1), 8);
      x = b_.add("Relu", {b_.add("Add", {h, x})});
    }
    // Block 2, stride 2, projected skip: Conv + BN + Clip(0, 6) (FusedConv 3), Conv + BN; Conv 1x1 + BN on
    // the skip; Add, Relu.
    {
      std::string h = b_.add("Clip", {bn(conv(x, 8, 16, 3, 2), 16), b_.constant_float(0.0f), b_.constant_float(6.0f)});
      h = bn(conv(h, 16, 16, 3, 1), 16);
      std::string skip = bn(conv(x, 8, 16, 1, 2), 16);
      x = b_.add("Relu", {b_.add("Add", {h, skip})});
    }
    std::string pooled = b_.add("Flatten", {b_.add("GlobalAveragePool", {x})}, {int_attr("axis", 1)});
    std::string w = b_.initializer("fc.weight", wave({16, 10}, 0.4f, 0.0f, 0.7f));
    std::string bias = b_.initializer("fc.bias", wave({10}, 0.1f, 0.0f, 0.3f));
    b_.add_named("Add", {b_.add("MatMul", {pooled, w}), bias}, "logits");
    m_.graph.outputs.push_back(tensor_value("logits", ir::DType::kFloat32, {ir::Dim(1), ir::Dim(10)}));
    return std::move(m_);
  }

 private:
  std::string fresh(const std::string& base) { return base + std::to_string(next_++); }
  float phase() { return 0.37f * static_cast<float>(next_++); }

  ir::Model m_;
  GraphBuilder b_;
  int next_ = 0;
};

TEST(OptimizerEndToEnd, ResNetStyleConvNet) {
  ir::Model m = ConvNet().build();
  ASSERT_EQ(passes::op_histogram(m.graph)["BatchNormalization"], 6);
  auto [opt, report] = optimize_all(m);
  const std::string text = report.to_text();
  EXPECT_EQ(after(report, "BatchNormalization"), 0) << text;
  EXPECT_EQ(report.count("BatchNormalization folded into Conv"), 6) << text;
  // Stem Conv+Relu, block 1's first Conv+Relu, block 2's first Conv+Clip; then each block's second Conv
  // with its residual Add and the Relu after it (FusedConv's Z input). The projection stays a Conv.
  EXPECT_EQ(after(report, "com.microsoft.FusedConv"), 5) << text;
  EXPECT_EQ(report.count("FusedConv Relu"), 2) << text;
  EXPECT_EQ(report.count("FusedConv Clip"), 1) << text;
  EXPECT_EQ(report.count("FusedConv Conv+Add+Relu"), 2) << text;
  EXPECT_EQ(after(report, "Conv"), 1) << text;
  EXPECT_EQ(after(report, "Relu"), 0) << text;
  EXPECT_EQ(after(report, "Clip"), 0) << text;
  EXPECT_EQ(after(report, "Add"), 0) << text;
  EXPECT_EQ(after(report, "Gemm"), 1) << text;
  EXPECT_EQ(report.count("Gemm"), 1) << text;
  EXPECT_EQ(after(report, "MatMul"), 0) << text;
  for (const auto& n : opt.graph.nodes)
    if (n.op_type == "FusedConv" && n.find_attribute("activation")->s == "Clip") {
      const ir::Attribute* p = n.find_attribute("activation_params");
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(p->floats, (std::vector<float>{0.0f, 6.0f}));
    }
  Feeds feeds;
  ir::Tensor x(ir::DType::kFloat32, {1, 3, 16, 16});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::sin(0.11f * static_cast<float>(i)) * 1.5f;
  feeds["x"] = std::move(x);
  // The net is not degenerate (dead Relus would leave only the classifier bias): the logits depend on x.
  Feeds flipped = feeds;
  ir::Tensor neg = flipped["x"].tensor.clone();
  for (int64_t i = 0; i < neg.numel(); ++i) neg.data<float>()[i] = -neg.data<float>()[i];
  flipped["x"] = std::move(neg);
  const double spread = max_abs_diff(run_unoptimized(m, feeds)[0].tensor, run_unoptimized(m, flipped)[0].tensor);
  std::cout << "[ logits ] change when x is negated: " << spread << "\n";
  EXPECT_GT(spread, 1e-2);
  expect_optimized_matches(m, opt, feeds, "ResNet-style net");
  expect_optimized_matches(m, opt, flipped, "ResNet-style net, x negated");
}

}  // namespace
}  // namespace kiln

// Conv + residual Add (+ Relu) into com.microsoft.FusedConv with Z: ResNet's bottleneck tail and
// MobileNetV3's residual Add fuse, outputs unchanged; a broadcast Add, a Conv read twice and a Conv already
// fused with its activation are left alone; ONNX Runtime runs the fused graph.
#include <gtest/gtest.h>

#include "export/cnn_export.h"
#include "export/graph_builder.h"
#include "pass_test_util.h"
#include "passes/passes.h"

namespace kiln {
namespace {

using exporter::GraphBuilder;
using exporter::ints_attr;
using exporter::tensor_value;
using testing::Fused;

constexpr double kTol = 1e-5;

Fused fuse(const ir::Model& m) {
  Fused f = testing::run_passes(m, {passes::fuse_conv_add_activation});
  testing::drop_dead_code(f.model);
  testing::expect_same_outputs(m, f.model, testing::random_feeds(m, {{"batch", 2}}, 11), kTol, true);
  return f;
}

// x [batch, 4, 6, 5] -> Conv (4 -> 4, 3x3, pads 1) -> Add(conv, z) -> [Relu]; z a graph input of shape `z_dims`.
ir::Model conv_add(std::vector<ir::Dim> z_dims, bool relu, bool second_reader = false) {
  ir::Model m = testing::new_ir_model(17);
  GraphBuilder b(m.graph);
  const std::vector<ir::Dim> dims = {ir::Dim::symbolic("batch"), ir::Dim(4), ir::Dim(6), ir::Dim(5)};
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, dims));
  m.graph.inputs.push_back(tensor_value("z", ir::DType::kFloat32, z_dims));
  testing::contrib::Random rng(5);
  std::string conv = b.add("Conv", {"x", b.initializer("w", rng.floats({4, 4, 3, 3})), b.initializer("b", rng.floats({4}))},
                           {ints_attr("kernel_shape", {3, 3}), ints_attr("pads", {1, 1, 1, 1})});
  std::string y = b.add("Add", {conv, "z"});
  if (relu) y = b.add("Relu", {y});
  m.graph.nodes.back().outputs[0] = "y";
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, dims));
  if (second_reader) {
    b.add_named("Neg", {conv}, "c");
    m.graph.outputs.push_back(tensor_value("c", ir::DType::kFloat32, dims));
  }
  return m;
}

TEST(ConvAddActivationFusion, ConvAddReluAndConvAdd) {
  const std::vector<ir::Dim> same = {ir::Dim::symbolic("batch"), ir::Dim(4), ir::Dim(6), ir::Dim(5)};
  for (bool relu : {true, false}) {
    Fused f = fuse(conv_add(same, relu));
    EXPECT_EQ(f.ops("com.microsoft.FusedConv"), 1);
    EXPECT_EQ(f.ops("Conv") + f.ops("Add") + f.ops("Relu"), 0);
    const ir::Node* n = testing::find_op(f.model, "com.microsoft", "FusedConv");
    ASSERT_NE(n, nullptr);
    ASSERT_EQ(n->inputs.size(), 4u);
    EXPECT_EQ(n->inputs[3], "z");
    EXPECT_EQ(n->find_attribute("activation") != nullptr, relu);
  }
}

TEST(ConvAddActivationFusion, LeavesWhatMustNotFuse) {
  // Z broadcast along the batch: FusedConv's Z does not broadcast.
  Fused broadcast = fuse(conv_add({ir::Dim(1), ir::Dim(4), ir::Dim(6), ir::Dim(5)}, true));
  EXPECT_EQ(broadcast.ops("com.microsoft.FusedConv"), 0);
  EXPECT_NE(broadcast.rejections().find("no broadcasting"), std::string::npos) << broadcast.rejections();
  // The Conv output read by another node too.
  const std::vector<ir::Dim> same = {ir::Dim::symbolic("batch"), ir::Dim(4), ir::Dim(6), ir::Dim(5)};
  Fused twice = fuse(conv_add(same, true, true));
  EXPECT_EQ(twice.ops("com.microsoft.FusedConv"), 0);
  EXPECT_NE(twice.rejections().find("readers besides the Add"), std::string::npos) << twice.rejections();
}

TEST(ConvAddActivationFusion, ResNetAndMobileNetV3) {
  exporter::CnnOptions o;
  o.image_size = 64;
  o.resnet_blocks = {1, 2, 1, 1};
  for (auto family : {exporter::CnnFamily::kResNet50, exporter::CnnFamily::kMobileNetV3}) {
    ir::Model m = exporter::export_cnn(family, o);
    Fused f = testing::run_passes(m, {passes::fold_conv_batch_norm, passes::fuse_conv_activation,
                                      passes::fuse_conv_add_activation});
    testing::drop_dead_code(f.model);
    testing::expect_same_outputs(m, f.model, testing::random_feeds(m, {{"batch", 1}}, 3), 1e-4);
    if (family == exporter::CnnFamily::kResNet50) {
      EXPECT_EQ(f.changed("FusedConv Conv+Add+Relu"), 5);  // one per bottleneck
      EXPECT_EQ(f.ops("Add") + f.ops("Relu"), 0);
    } else {
      EXPECT_EQ(f.changed("FusedConv Conv+Add"), 6);
      EXPECT_EQ(f.ops("Add"), 0);
    }
  }
}

}  // namespace
}  // namespace kiln

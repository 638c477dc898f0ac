// ai.onnx.ml ops (kernels/reference/ml.cc) beyond what ONNX's own cases check: malformed attributes are
// refused with one error naming what is wrong, never read past an array.
#include <gtest/gtest.h>

#include "contrib_test_util.h"

namespace kiln {
namespace {

using testing::contrib::attr_int;
using testing::contrib::attr_ints;
using testing::contrib::TestGraph;

ir::Attribute attr_tensor(const std::string& name, ir::Tensor t) {
  ir::Attribute a;
  a.name = name;
  a.kind = ir::Attribute::Kind::kTensor;
  a.t = std::move(t);
  return a;
}

// Three nodes, two leaves: tree 0 splits at node 0 into leaves 0 and 1; "tree" 2 is a single leaf (both
// branches the same leaf), which ONNX's reference reads at the root's own index, 2: past the two leaves.
TEST(OnnxMl, TreeEnsembleRefusesASingleLeafRootPastTheLeaves) {
  TestGraph g(21);
  g.import_opset("ai.onnx.ml", 5);
  g.input("x", ir::Tensor::from_vector<float>({0.5f, 2.0f}, {2, 1}));
  g.node("TreeEnsemble", {"x"}, {"y"},
         {attr_ints("nodes_featureids", {0, 0, 0}),
          attr_tensor("nodes_splits", ir::Tensor::from_vector<float>({1.0f, 0.0f, 0.0f}, {3})),
          attr_tensor("nodes_modes", ir::Tensor::from_vector<uint8_t>({0, 0, 0}, {3})),
          attr_ints("nodes_truenodeids", {0, 0, 0}), attr_ints("nodes_falsenodeids", {1, 0, 0}),
          attr_ints("nodes_trueleafs", {1, 0, 1}), attr_ints("nodes_falseleafs", {1, 0, 1}),
          attr_ints("leaf_targetids", {0, 0}),
          attr_tensor("leaf_weights", ir::Tensor::from_vector<float>({1.0f, 2.0f}, {2})),
          attr_ints("tree_roots", {0, 2}), attr_int("n_targets", 1), attr_int("aggregate_function", 1)},
         "ai.onnx.ml");
  g.output("y");
  const std::string error = testing::contrib::error_of(g);
  EXPECT_NE(error.find("single-leaf tree root"), std::string::npos) << error;
}

}  // namespace
}  // namespace kiln

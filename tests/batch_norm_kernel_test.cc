// The fast BatchNormalization kernel (kernels/cpu/batch_norm_kernel.cc) against the reference: ranks 2
// to 5, odd sizes, constant and computed parameters, opsets 6 to 15, a large input for the threaded path;
// training and spatial=0 are left to the reference.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "fast_kernel_check.h"

namespace kiln {
namespace {

using testing::Answered;
using testing::expect_fast_matches_reference;
using testing::contrib::attr_float;
using testing::contrib::attr_int;
using testing::contrib::Random;
using testing::contrib::TestGraph;

TestGraph batch_norm_graph(int64_t opset, const std::vector<int64_t>& shape, bool constant,
                           std::vector<ir::Attribute> attrs = {}, size_t outputs = 1) {
  TestGraph g(opset);
  Random rng(static_cast<uint32_t>(shape.size() * 3 + constant));
  g.input("x", rng.floats(shape, -3.0f, 3.0f));
  const int64_t c = shape[1];
  std::vector<std::string> ins = {"x"};
  for (const char* p : {"scale", "b", "mean", "var"}) {
    ir::Tensor t = std::string(p) == "var" ? rng.floats({c}, 0.01f, 3.0f) : rng.floats({c});
    ins.push_back(constant ? g.constant(p, t) : g.input(p, t));
  }
  attrs.push_back(attr_float("epsilon", 1e-4f));
  std::vector<std::string> outs = {"y", "rm", "rv", "sm", "sv"};
  outs.resize(outputs);
  g.node("BatchNormalization", ins, outs, attrs);
  for (const std::string& o : outs) g.output(o);
  return g;
}

TEST(BatchNormKernel, RanksAndParameters) {
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{1, 3}, {7, 19}, {2, 5, 33}, {3, 7, 9, 11}, {1, 4, 3, 5, 7}, {1, 17, 1, 1}})
    for (bool constant : {true, false})
      for (int64_t opset : {6, 9, 14, 15})
        expect_fast_matches_reference(batch_norm_graph(opset, shape, constant), Answered::kFast,
                                      ir::to_string(shape) + (constant ? " constant" : " computed") + " opset " +
                                          std::to_string(opset),
                                      2e-6);
  expect_fast_matches_reference(batch_norm_graph(15, {2, 24, 80, 80}, true), Answered::kFast, "large", 2e-6);
}

TEST(BatchNormKernel, LeavesTrainingAndPerElementToTheReference) {
  expect_fast_matches_reference(batch_norm_graph(15, {2, 3, 5}, true, {attr_int("training_mode", 1)}, 3),
                                Answered::kReference, "training_mode", 1e-6);
  expect_fast_matches_reference(batch_norm_graph(9, {2, 3, 5}, true, {}, 5), Answered::kReference,
                                "statistics read", 1e-6);
}

}  // namespace
}  // namespace kiln

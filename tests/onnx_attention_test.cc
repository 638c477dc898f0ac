// ONNX's opset-23 Attention (kernels/reference/nn_attention.cc) beyond what ONNX's own cases check: shape
// inference keeps symbolic dims (batch, sequence) through 3-D and 4-D grouped-query attention, and a run
// agrees with what inference said. The numbers are checked by ONNX 1.22's cases (tests/conformance/extra/
// test_onnx122_attention_*, and `kiln conformance --suite onnx-1.22`).
#include <gtest/gtest.h>

#include "contrib_test_util.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using testing::contrib::attr_int;
using testing::contrib::Random;
using testing::contrib::TestGraph;

ir::Type symbolic(ir::DType dtype, std::vector<ir::Dim> dims) {
  ir::Shape s;
  s.dims = std::move(dims);
  return ir::Type::tensor(dtype, s);
}

ir::Dim sym(const char* name) { return ir::Dim::symbolic(name); }

// Declares input `i` of `m` with `type` instead of the static shape TestGraph gave it.
void declare(ir::Model& m, size_t i, ir::Type type) { m.graph.inputs[i].type = std::move(type); }

std::string dims_of(const ir::Type& t) { return t.shape ? ir::to_string(*t.shape) : "(unknown rank)"; }

TEST(OnnxAttention, InfersSymbolicShapesFor4dGroupedQueryAttention) {
  Random rng(23);
  TestGraph g(23);
  g.input("q", rng.floats({2, 4, 3, 8}));
  g.input("k", rng.floats({2, 2, 5, 8}));
  g.input("v", rng.floats({2, 2, 5, 6}));
  g.node("Attention", {"q", "k", "v"}, {"y", "present_key", "present_value"}, {attr_int("is_causal", 1)});
  for (const char* o : {"y", "present_key", "present_value"}) g.output(o);
  ir::Model m = g.model();
  declare(m, 0, symbolic(ir::DType::kFloat32, {sym("batch"), 4, sym("q_seq"), 8}));
  declare(m, 1, symbolic(ir::DType::kFloat32, {sym("batch"), 2, sym("kv_seq"), 8}));
  declare(m, 2, symbolic(ir::DType::kFloat32, {sym("batch"), 2, sym("kv_seq"), 6}));
  runtime::SessionOptions o;
  o.verify_inference = true;  // the run below checks every output against inference too
  runtime::Session s(m, o);
  EXPECT_EQ(dims_of(s.outputs()[0].type), "[batch,4,q_seq,6]");
  EXPECT_EQ(dims_of(s.outputs()[1].type), "[batch,2,kv_seq,8]");
  EXPECT_EQ(dims_of(s.outputs()[2].type), "[batch,2,kv_seq,6]");
  std::vector<ir::Datum> outs = s.run(g.feeds());
  EXPECT_EQ(outs[0].tensor.shape(), (ir::Dims{2, 4, 3, 6}));
  EXPECT_EQ(outs[1].tensor.shape(), (ir::Dims{2, 2, 5, 8}));
}

TEST(OnnxAttention, InfersShapesFor3dInputsWithPast) {
  Random rng(24);
  TestGraph g(23);
  g.input("q", rng.floats({1, 3, 32}));
  g.input("k", rng.floats({1, 3, 16}));
  g.input("v", rng.floats({1, 3, 12}));
  g.input("past_key", rng.floats({1, 2, 4, 8}));
  g.input("past_value", rng.floats({1, 2, 4, 6}));
  g.node("Attention", {"q", "k", "v", "", "past_key", "past_value"}, {"y", "present_key", "present_value", "qk"},
         {attr_int("q_num_heads", 4), attr_int("kv_num_heads", 2), attr_int("qk_matmul_output_mode", 3)});
  for (const char* o : {"y", "present_key", "present_value", "qk"}) g.output(o);
  ir::Model m = g.model();
  declare(m, 0, symbolic(ir::DType::kFloat32, {sym("batch"), sym("seq"), 32}));
  runtime::SessionOptions o;
  o.verify_inference = true;
  runtime::Session s(m, o);
  EXPECT_EQ(dims_of(s.outputs()[0].type), "[batch,seq,24]");
  EXPECT_EQ(dims_of(s.outputs()[1].type), "[batch,2,7,8]");
  EXPECT_EQ(dims_of(s.outputs()[3].type), "[batch,4,seq,7]");
  std::vector<ir::Datum> outs = s.run(g.feeds());
  // qk_matmul_output_mode 3: the softmax, each row summing to 1.
  const ir::Tensor& qk = outs[3].tensor;
  ASSERT_EQ(qk.shape(), (ir::Dims{1, 4, 3, 7}));
  for (int64_t row = 0; row < 12; ++row) {
    double sum = 0;
    for (int64_t j = 0; j < 7; ++j) sum += qk.data<float>()[row * 7 + j];
    EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << row;
  }
}

TEST(OnnxAttention, RefusesHeadCountsThatDoNotDivide) {
  Random rng(25);
  TestGraph g(23);
  g.input("q", rng.floats({1, 2, 30}));
  g.input("k", rng.floats({1, 2, 30}));
  g.input("v", rng.floats({1, 2, 30}));
  g.node("Attention", {"q", "k", "v"}, {"y"}, {attr_int("q_num_heads", 4), attr_int("kv_num_heads", 3)});
  g.output("y");
  EXPECT_NE(testing::contrib::error_of(g).find("not a multiple"), std::string::npos) << testing::contrib::error_of(g);
}

// 4-D K and V carry their own head count, which may be 0: one error, not a division by zero.
TEST(OnnxAttention, RefusesKeysWithNoHeads) {
  Random rng(26);
  TestGraph g(23);
  g.input("q", rng.floats({1, 2, 3, 4}));
  g.input("k", rng.floats({1, 0, 3, 4}));
  g.input("v", rng.floats({1, 0, 3, 4}));
  g.node("Attention", {"q", "k", "v"}, {"y"}, {});
  g.output("y");
  const std::string error = testing::contrib::error_of(g);
  EXPECT_NE(error.find("0 heads"), std::string::npos) << error;
}

}  // namespace
}  // namespace kiln

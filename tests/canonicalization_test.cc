// The canonicalization pass (passes/canonicalization.cc): each test builds a small graph, optimizes it,
// checks the rewrite happened (op counts, report counts) and that the outputs did not change (against the
// unoptimized graph: bit for bit where the rewrite is exact, within 1e-6 where it may round differently),
// and includes the cases that must be left alone, checked by the reason reported. End to end: rewrites
// that let CSE and the MatMul+Add fusion match what they could not before.
#include <gtest/gtest.h>

#include <limits>

#include "export/graph_builder.h"
#include "ir/graph_check.h"
#include "pass_test_util.h"
#include "passes/optimizer.h"
#include "passes/passes.h"

namespace kiln {
namespace {

using exporter::GraphBuilder;
using exporter::int_attr;
using exporter::tensor_value;

using testing::Feeds;
using testing::kExact;
using testing::new_ir_model;
using testing::Optimized;

std::vector<ir::Dim> n4() { return {ir::Dim::symbolic("n"), ir::Dim(4)}; }

// Random inputs: n = 3, seeds from 1.
Feeds random_feeds(const ir::Model& m) { return testing::random_feeds(m, {{"n", 3}}, 1); }

// The whole pipeline up to `level` on a copy of `m`, outputs compared with `m`'s on `feeds`.
Optimized optimize_and_compare(const ir::Model& m, passes::Level level, double tol, const Feeds& feeds) {
  passes::OptimizeOptions options;
  options.level = level;
  return testing::optimize_and_compare(m, options, feeds, tol);
}

Optimized optimize_and_compare(const ir::Model& m, passes::Level level, double tol) {
  return optimize_and_compare(m, level, tol, random_feeds(m));
}

// ---------------------------------------------------------------------------------------------------
// Div by a constant

TEST(Canonicalization, DivByPowerOfTwoBecomesMulAtBasicBitForBit) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, n4()));
  m.graph.inputs.push_back(tensor_value("h", ir::DType::kFloat16, n4()));
  // The attention scale as torch writes it: a Div by Sqrt(64), which constant folding makes a Div by 8.
  std::string scale = b.add("Sqrt", {b.constant_float(64.0f)});
  b.add_named("Div", {"x", scale}, "scaled");
  b.add_named("Div", {"x", b.initializer("halves", ir::Tensor::from_vector<float>({2, 0.5f, 4, 0.25f}, {4}))},
              "per_column");
  b.add_named("Div", {"h", b.constant(ir::Tensor::scalar<Float16>(Float16(0.125f)))}, "h8");
  for (const char* y : {"scaled", "per_column"}) m.graph.outputs.push_back(tensor_value(y, ir::DType::kFloat32, n4()));
  m.graph.outputs.push_back(tensor_value("h8", ir::DType::kFloat16, n4()));

  Optimized o = optimize_and_compare(m, passes::Level::kBasic, kExact);
  EXPECT_EQ(o.ops("Div"), 0) << o.text();
  EXPECT_EQ(o.ops("Mul"), 3);
  EXPECT_EQ(o.ops("Sqrt"), 0);
  EXPECT_EQ(o.report.count("Div by constant -> Mul"), 3);
  // Each node keeps its output (a graph output) and reads the reciprocal second.
  const ir::Node* scaled = o.writer_of("scaled");
  ASSERT_TRUE(scaled);
  EXPECT_EQ(scaled->inputs[0], "x");
  ASSERT_TRUE(o.model.graph.initializers.count(scaled->inputs[1]));
  EXPECT_EQ(o.model.graph.initializers.at(scaled->inputs[1]).data<float>()[0], 0.125f);
  const ir::Node* per_column = o.writer_of("per_column");
  ASSERT_TRUE(per_column);
  const ir::Tensor& r = o.model.graph.initializers.at(per_column->inputs[1]);
  EXPECT_EQ(std::vector<float>(r.data<float>(), r.data<float>() + 4), (std::vector<float>{0.5f, 2, 0.25f, 4}));
  EXPECT_FALSE(o.model.graph.initializers.count("halves"));  // no longer read
}

TEST(Canonicalization, DivByOtherConstantsWaitsForExtended) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, n4()));
  m.graph.inputs.push_back(tensor_value("d", ir::DType::kFloat64, n4()));
  b.add_named("Div", {"x", b.constant_float(1.4142135f)}, "y");
  b.add_named("Div", {"d", b.constant(ir::Tensor::from_vector<double>({3, 7, -0.1, 1e300}, {4}))}, "z");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, n4()));
  m.graph.outputs.push_back(tensor_value("z", ir::DType::kFloat64, n4()));

  Optimized basic = optimize_and_compare(m, passes::Level::kBasic, kExact);
  EXPECT_EQ(basic.ops("Div"), 2);
  EXPECT_EQ(basic.report.count("Div by constant -> Mul"), 0);
  EXPECT_TRUE(basic.rejected("(not a power of two), so x * (1/c) may round differently from x / c")) << basic.text();

  Optimized extended = optimize_and_compare(m, passes::Level::kExtended, 1e-6);
  EXPECT_EQ(extended.ops("Div"), 0) << extended.text();
  EXPECT_EQ(extended.ops("Mul"), 2);
  EXPECT_EQ(extended.report.count("Div by constant -> Mul"), 2);
}

TEST(Canonicalization, LeavesIntegerDivAndDivisorsThatAreNotSafeConstants) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, n4()));
  m.graph.inputs.push_back(tensor_value("w", ir::DType::kFloat32, n4()));
  m.graph.inputs.push_back(tensor_value("i", ir::DType::kInt64, n4()));
  // An initializer that is also a graph input: its value is only a default.
  b.initializer("overridable", ir::Tensor::scalar<float>(2.0f));
  m.graph.inputs.push_back(tensor_value("overridable", ir::DType::kFloat32, {}));
  b.add_named("Div", {"i", b.constant_int(2)}, "int_div");  // truncating: not a Mul by 0.5
  b.add_named("Div", {"x", "w"}, "by_input");
  b.add_named("Div", {"x", b.constant_float(0.0f)}, "by_zero");
  b.add_named("Div",
              {"x", b.constant(ir::Tensor::from_vector<float>({1, std::numeric_limits<float>::infinity(), 2, 4}, {4}))},
              "by_inf");
  b.add_named("Div", {"x", "overridable"}, "by_overridable");
  m.graph.outputs.push_back(tensor_value("int_div", ir::DType::kInt64, n4()));
  for (const char* y : {"by_input", "by_zero", "by_inf", "by_overridable"})
    m.graph.outputs.push_back(tensor_value(y, ir::DType::kFloat32, n4()));

  Optimized o = optimize_and_compare(m, passes::Level::kAll, kExact);
  EXPECT_EQ(o.ops("Div"), 5) << o.text();
  EXPECT_EQ(o.ops("Mul"), 0);
  EXPECT_EQ(o.report.count("Div by constant -> Mul"), 0);
  EXPECT_TRUE(o.rejected("Div by constant -> Mul at Div node \"/Div_2\": the divisor")) << o.text();
  EXPECT_TRUE(o.rejected("Div by constant -> Mul at Div node \"/Div_3\": the divisor")) << o.text();
  EXPECT_TRUE(o.rejected("has an element without a finite, nonzero reciprocal")) << o.text();
  EXPECT_TRUE(o.rejected("\"overridable\" is an initializer that is also a graph input")) << o.text();
}

// ---------------------------------------------------------------------------------------------------
// Sub

TEST(Canonicalization, SubByConstantBecomesAddOfTheNegation) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, n4()));
  m.graph.inputs.push_back(tensor_value("i", ir::DType::kInt64, n4()));
  b.add_named("Sub", {"x", b.constant(ir::Tensor::from_vector<float>({1, -2.5f, 0, 1e30f}, {4}))}, "y");
  b.add_named("Sub", {"i", b.constant_int(3)}, "j");               // integer: left alone
  b.add_named("Sub", {b.constant_float(1.0f), "x"}, "one_minus");  // not a zero: left alone
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, n4()));
  m.graph.outputs.push_back(tensor_value("j", ir::DType::kInt64, n4()));
  m.graph.outputs.push_back(tensor_value("one_minus", ir::DType::kFloat32, n4()));

  Optimized o = optimize_and_compare(m, passes::Level::kBasic, kExact);
  EXPECT_EQ(o.report.count("Sub by constant -> Add"), 1) << o.text();
  EXPECT_EQ(o.ops("Sub"), 2);
  EXPECT_EQ(o.ops("Add"), 1);
  const ir::Node* y = o.writer_of("y");
  ASSERT_TRUE(y);
  EXPECT_EQ(y->op_type, "Add");
  const ir::Tensor& c = o.model.graph.initializers.at(y->inputs[1]);
  EXPECT_EQ(std::vector<float>(c.data<float>(), c.data<float>() + 4), (std::vector<float>{-1, 2.5f, -0.0f, -1e30f}));
}

TEST(Canonicalization, ZeroMinusXBecomesNeg) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, n4()));
  m.graph.inputs.push_back(tensor_value("i", ir::DType::kInt32, n4()));
  m.graph.inputs.push_back(tensor_value("u", ir::DType::kUInt8, n4()));
  b.add_named("Sub", {b.constant_float(-0.0f), "x"}, "minus_zero");  // -0 - x is -x bit for bit
  b.add_named("Sub", {b.constant(ir::Tensor::from_vector<int32_t>({0}, {1, 1})), "i"}, "int_neg");
  b.add_named("Sub", {b.constant_float(0.0f), "x"}, "plus_zero");  // +0 - (+0) is +0, -(+0) is -0
  b.add_named("Sub", {b.constant(ir::Tensor(ir::DType::kFloat32, {2, 1, 4})), "x"}, "broadcast");  // [2,n,4]
  b.add_named("Sub", {b.constant(ir::Tensor::scalar<uint8_t>(0)), "u"}, "unsigned");               // no Neg for uint8
  m.graph.outputs.push_back(tensor_value("minus_zero", ir::DType::kFloat32, n4()));
  m.graph.outputs.push_back(tensor_value("int_neg", ir::DType::kInt32, n4()));
  m.graph.outputs.push_back(tensor_value("plus_zero", ir::DType::kFloat32, n4()));
  m.graph.outputs.push_back(
      tensor_value("broadcast", ir::DType::kFloat32, {ir::Dim(2), ir::Dim::symbolic("n"), ir::Dim(4)}));
  m.graph.outputs.push_back(tensor_value("unsigned", ir::DType::kUInt8, n4()));
  Feeds feeds = random_feeds(m);
  // x = +0 and -0 are where the forms could differ.
  feeds["x"] = ir::Tensor::from_vector<float>({0.0f, -0.0f, 1.5f, -2, 0, 0, 0, 0, 7, -0.0f, 1e-30f, 3}, {3, 4});

  Optimized basic = optimize_and_compare(m, passes::Level::kBasic, kExact, feeds);
  EXPECT_EQ(basic.report.count("0 - x -> Neg"), 2) << basic.text();
  EXPECT_EQ(basic.ops("Neg"), 2);
  EXPECT_EQ(basic.ops("Sub"), 3);
  EXPECT_EQ(basic.writer_of("minus_zero")->op_type, "Neg");
  EXPECT_EQ(basic.writer_of("int_neg")->op_type, "Neg");
  EXPECT_TRUE(basic.rejected("0 - x is +0 where Neg(x) is -0")) << basic.text();
  EXPECT_TRUE(basic.rejected("the zeros [2,1,4] may broadcast \"x\" to a larger shape")) << basic.text();

  // At extended the +0 form is rewritten too; its one difference is the sign of a zero result.
  Optimized extended = optimize_and_compare(m, passes::Level::kExtended, 1e-6, feeds);
  EXPECT_EQ(extended.report.count("0 - x -> Neg"), 3) << extended.text();
  EXPECT_EQ(extended.writer_of("plus_zero")->op_type, "Neg");
  EXPECT_EQ(extended.writer_of("broadcast")->op_type, "Sub");
  EXPECT_EQ(extended.writer_of("unsigned")->op_type, "Sub");
}

// ---------------------------------------------------------------------------------------------------
// Constant operand order

TEST(Canonicalization, ConstantOperandGoesSecond) {
  ir::Model m = new_ir_model(18);
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, n4()));
  m.graph.inputs.push_back(tensor_value("y", ir::DType::kFloat32, n4()));
  m.graph.inputs.push_back(tensor_value("i", ir::DType::kInt64, n4()));
  m.graph.inputs.push_back(tensor_value("p", ir::DType::kBool, n4()));
  b.initializer("overridable", ir::Tensor::scalar<float>(2.0f));
  m.graph.inputs.push_back(tensor_value("overridable", ir::DType::kFloat32, {}));
  std::string bias = b.initializer("bias", ir::Tensor::from_vector<float>({1, 2, 3, 4}, {4}));
  b.add_named("Add", {bias, "x"}, "add");
  b.add_named("Mul", {b.constant_float(3.0f), "x"}, "mul");
  b.add_named("Equal", {b.constant_int(5), "i"}, "equal");
  b.add_named("And", {b.constant(ir::Tensor::scalar<bool>(true)), "p"}, "and");
  b.add_named("BitwiseXor", {b.constant_int(6), "i"}, "xor");
  b.add_named("Add", {"y", "x"}, "two_inputs");            // neither constant: order kept
  b.add_named("Mul", {"overridable", "x"}, "overridden");  // a default, not a constant: order kept
  b.add_named("Div", {b.constant_float(3.0f), "x"}, "not_commutative");
  for (const char* v : {"add", "mul", "two_inputs", "overridden", "not_commutative"})
    m.graph.outputs.push_back(tensor_value(v, ir::DType::kFloat32, n4()));
  m.graph.outputs.push_back(tensor_value("equal", ir::DType::kBool, n4()));
  m.graph.outputs.push_back(tensor_value("and", ir::DType::kBool, n4()));
  m.graph.outputs.push_back(tensor_value("xor", ir::DType::kInt64, n4()));

  Optimized o = optimize_and_compare(m, passes::Level::kBasic, kExact);
  EXPECT_EQ(o.report.count("constant operand second"), 5) << o.text();
  EXPECT_EQ(o.writer_of("add")->inputs, (std::vector<std::string>{"x", "bias"}));
  for (const char* v : {"mul", "equal", "and", "xor"}) {
    const ir::Node* n = o.writer_of(v);
    ASSERT_TRUE(n) << v;
    EXPECT_NE(n->inputs[0].find("/Constant"), 0u) << v;
    EXPECT_EQ(n->inputs[1].find("/Constant"), 0u) << v;
  }
  EXPECT_EQ(o.writer_of("two_inputs")->inputs, (std::vector<std::string>{"y", "x"}));
  EXPECT_EQ(o.writer_of("overridden")->inputs, (std::vector<std::string>{"overridable", "x"}));
  EXPECT_EQ(o.writer_of("not_commutative")->inputs[1], "x");
}

TEST(Canonicalization, LeavesLegacyBroadcastOperandsInPlace) {
  // Opset 6: B broadcasts to A only, by attribute; swapping would change the meaning.
  ir::Model m = new_ir_model(6);
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim(3), ir::Dim(4)}));
  std::string c = b.initializer("c", ir::Tensor::from_vector<float>({1, 2, 3}, {3}));
  b.add_named("Add", {"x", c}, "y", {int_attr("broadcast", 1), int_attr("axis", 0)});
  b.add_named("Sub", {"x", c}, "z", {int_attr("broadcast", 1), int_attr("axis", 0)});
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim(3), ir::Dim(4)}));
  m.graph.outputs.push_back(tensor_value("z", ir::DType::kFloat32, {ir::Dim(3), ir::Dim(4)}));
  Optimized o = optimize_and_compare(m, passes::Level::kAll, kExact);
  EXPECT_EQ(o.ops("Sub"), 1) << o.text();
  EXPECT_EQ(o.writer_of("y")->inputs, (std::vector<std::string>{"x", "c"}));
}

// ---------------------------------------------------------------------------------------------------
// Cast chains

TEST(Canonicalization, LosslessCastChainsBecomeOneCast) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  auto cast = [&](const std::string& v, ir::DType to) {
    return b.add("Cast", {v}, {int_attr("to", static_cast<int64_t>(to))});
  };
  auto cast_to = [&](const std::string& v, ir::DType to, const std::string& out) {
    b.add_named("Cast", {v}, out, {int_attr("to", static_cast<int64_t>(to))});
  };
  using D = ir::DType;
  const std::vector<std::pair<std::string, D>> inputs = {
      {"h", D::kFloat16}, {"i8", D::kInt8}, {"u8", D::kUInt8}, {"x", D::kFloat32}};
  for (const auto& [name, dtype] : inputs) m.graph.inputs.push_back(tensor_value(name, dtype, {ir::Dim(8)}));
  // Lossless first Casts: the second can read the source.
  cast_to(cast("h", D::kFloat32), D::kInt32, "h_int");     // float16 -> float -> int32
  cast_to(cast("i8", D::kInt32), D::kFloat16, "i8_half");  // int8 -> int32 -> float16
  cast_to(cast("u8", D::kInt16), D::kInt8, "u8_wrapped");  // uint8 -> int16 -> int8 (wraps the same)
  b.add_named("Relu", {cast(cast("x", D::kFloat64), D::kFloat32)}, "x_again");  // back to float: no Cast at all
  // The first Cast is also a graph output: it stays, the second reads i8.
  cast_to("i8", D::kInt16, "i8_wide");
  cast_to("i8_wide", D::kFloat32, "i8_float");
  // Lossy first Casts and a Cast to string: left alone.
  cast_to(cast("x", D::kInt32), D::kFloat32, "x_truncated");
  cast_to(cast("x", D::kFloat16), D::kFloat32, "x_rounded");
  cast_to(cast("h", D::kFloat32), D::kString, "h_text");
  auto out = [&](const char* name, D dtype) { m.graph.outputs.push_back(tensor_value(name, dtype, {ir::Dim(8)})); };
  out("h_int", D::kInt32);
  out("i8_half", D::kFloat16);
  out("u8_wrapped", D::kInt8);
  out("x_again", D::kFloat32);
  out("i8_wide", D::kInt16);
  out("i8_float", D::kFloat32);
  out("x_truncated", D::kFloat32);
  out("x_rounded", D::kFloat32);
  out("h_text", D::kString);

  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  Feeds feeds;
  ir::Tensor h(D::kFloat16, {8});
  const float hv[] = {-65504, -1.5f, -0.0f, 0.1f, 3.75f, 65504, inf, nan};
  for (int k = 0; k < 8; ++k) h.data<Float16>()[k] = Float16(hv[k]);
  feeds["h"] = h;
  feeds["i8"] = ir::Tensor::from_vector<int8_t>({-128, -77, -1, 0, 1, 2, 100, 127}, {8});
  feeds["u8"] = ir::Tensor::from_vector<uint8_t>({0, 1, 127, 128, 200, 255, 3, 4}, {8});
  feeds["x"] = ir::Tensor::from_vector<float>({-1e10f, -2.5f, -0.0f, 1e-3f, 3.14159f, 1e10f, 65519, 1e-8f}, {8});

  Optimized o = optimize_and_compare(m, passes::Level::kBasic, kExact, feeds);
  EXPECT_EQ(o.report.count("Cast chain"), 5) << o.text();
  EXPECT_EQ(o.report.count("Cast removed"), 1);  // Cast(x, float) of a float, after the chain is shortened
  EXPECT_EQ(o.writer_of("h_int")->inputs[0], "h");
  EXPECT_EQ(o.writer_of("i8_half")->inputs[0], "i8");
  EXPECT_EQ(o.writer_of("u8_wrapped")->inputs[0], "u8");
  EXPECT_EQ(o.writer_of("x_again")->inputs[0], "x");
  EXPECT_EQ(o.writer_of("i8_float")->inputs[0], "i8");
  EXPECT_EQ(o.writer_of("i8_wide")->op_type, "Cast");
  EXPECT_NE(o.writer_of("x_truncated")->inputs[0], "x");
  EXPECT_NE(o.writer_of("x_rounded")->inputs[0], "x");
  EXPECT_NE(o.writer_of("h_text")->inputs[0], "h");
  // h_int, i8_half, u8_wrapped, i8_wide, i8_float, two each for x_truncated, x_rounded and h_text.
  EXPECT_EQ(o.ops("Cast"), 11);
  EXPECT_TRUE(o.rejected("the first Cast, float32 to int32, is not lossless")) << o.text();
  EXPECT_TRUE(o.rejected("the first Cast, float32 to float16, is not lossless")) << o.text();
  EXPECT_TRUE(o.rejected("a Cast to string formats numbers by their type")) << o.text();
}

// ---------------------------------------------------------------------------------------------------
// End to end: what the passes after canonicalization can now do

TEST(Canonicalization, LetsCseMergeOperandOrders) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, n4()));
  std::string c = b.initializer("c", ir::Tensor::from_vector<float>({1, 2, 3, 4}, {4}));
  b.add_named("Mul", {b.add("Add", {"x", c}), b.add("Add", {c, "x"})}, "y");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, n4()));

  // CSE alone compares inputs in order: both Adds stay.
  {
    ir::Model alone = m;
    passes::PassReport report;
    passes::OptimizeOptions options;
    passes::PassContext ctx(alone, options, report);
    EXPECT_FALSE(passes::eliminate_common_subexpressions(alone.graph, ctx));
  }
  Optimized o = optimize_and_compare(m, passes::Level::kBasic, kExact);
  EXPECT_EQ(o.ops("Add"), 1) << o.text();
  EXPECT_EQ(o.report.count("constant operand second"), 1);
  EXPECT_EQ(o.report.count("Add merged"), 1);
  const ir::Node* y = o.writer_of("y");
  ASSERT_TRUE(y);
  EXPECT_EQ(y->inputs[0], y->inputs[1]);  // the square of one sum
}

TEST(Canonicalization, LetsMatMulMinusBiasBecomeGemm) {
  ir::Model m = new_ir_model();
  GraphBuilder b(m.graph);
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(3)}));
  std::string w = b.initializer("w", ir::Tensor::from_vector<float>({1, -2, 3, 0.5f, 5, -6}, {3, 2}));
  std::string bias = b.initializer("bias", ir::Tensor::from_vector<float>({0.25f, -4}, {2}));
  b.add_named("Sub", {b.add("MatMul", {"x", w}), bias}, "y");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(2)}));

  Optimized o = optimize_and_compare(m, passes::Level::kBasic, 1e-6);
  EXPECT_EQ(o.report.count("Sub by constant -> Add"), 1) << o.text();
  EXPECT_EQ(o.report.count("Gemm"), 1);
  EXPECT_EQ(o.ops("Gemm"), 1);
  EXPECT_EQ(o.ops("Sub") + o.ops("Add") + o.ops("MatMul"), 0);
}

}  // namespace
}  // namespace kiln

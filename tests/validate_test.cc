// validate/'s library: the figures of output_comparison.h on small hand-made arrays with hand-computed
// expected values, and shared_values.h's choice of the intermediate values two graphs share.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "export/graph_builder.h"
#include "pass_test_util.h"
#include "validate/output_comparison.h"
#include "validate/shared_values.h"

namespace kiln {
namespace {

using ir::Tensor;
using validate::Agreement;
using validate::OutputComparer;
using validate::OutputFigures;

OutputFigures compare_once(const Tensor& reference, const Tensor& candidate, bool task_figures = true) {
  OutputComparer c("y", task_figures);
  c.add(reference, candidate);
  return c.figures();
}

TEST(ValidateFigures, IdenticalTensorsHaveNoError) {
  Tensor a = Tensor::from_vector<float>({1, -2, 3, 0.5f, 0, 7}, {2, 3});
  OutputFigures f = compare_once(a, a.clone());
  ASSERT_TRUE(f.compared()) << f.not_compared;
  EXPECT_EQ(f.samples, 1);
  EXPECT_EQ(f.elements, 6);
  EXPECT_EQ(f.max_abs_error, 0);
  EXPECT_EQ(f.max_rel_error, 0);
  EXPECT_EQ(f.mean_abs_error, 0);
  EXPECT_EQ(f.rel_l2_error, 0);
  EXPECT_DOUBLE_EQ(f.cosine, 1);
  EXPECT_DOUBLE_EQ(f.min_cosine, 1);
  EXPECT_EQ(f.reference_type, "float32[2,3]");
}

TEST(ValidateFigures, ErrorsByHand) {
  // float64, so that every value below is exact.
  Tensor a = Tensor::from_vector<double>({1, 2, 0, -4}, {4});
  Tensor b = Tensor::from_vector<double>({1, 2.5, 0.002, -4}, {4});
  OutputFigures f = compare_once(a, b);
  ASSERT_TRUE(f.compared()) << f.not_compared;
  EXPECT_DOUBLE_EQ(f.max_abs_error, 0.5);
  // |0.002 - 0| / max(0, 0.001 x 4) = 0.5 beats 0.5 / 2 = 0.25: the zero is judged against the floor, not
  // against 0 (which would make it infinite).
  EXPECT_DOUBLE_EQ(f.max_rel_error, 0.5);
  EXPECT_DOUBLE_EQ(f.mean_abs_error, (0.5 + 0.002) / 4);
  // a.b = 1 + 5 + 0 + 16; |a|^2 = 21; |b|^2 = 1 + 6.25 + 0.000004 + 16.
  EXPECT_NEAR(f.cosine, 22 / std::sqrt(21 * 23.250004), 1e-15);
  EXPECT_DOUBLE_EQ(f.min_cosine, f.cosine);
  EXPECT_NEAR(f.rel_l2_error, std::sqrt((0.25 + 0.000004) / 21), 1e-15);
  // Rank 1: neither classifier- nor embedding-like.
  EXPECT_EQ(f.top1.state, Agreement::State::kNotApplicable);
  EXPECT_EQ(f.retrieval.state, Agreement::State::kNotApplicable);
}

TEST(ValidateFigures, CosineOverSamplesAndTheLowestOne) {
  Tensor a = Tensor::from_vector<float>({1, 2, 3}, {3});
  Tensor minus_a = Tensor::from_vector<float>({-1, -2, -3}, {3});
  OutputComparer c("y");
  c.add(a, a);
  c.add(a, minus_a);
  OutputFigures f = c.figures();
  EXPECT_EQ(f.samples, 2);
  EXPECT_EQ(f.sample_cosines, (std::vector<double>{1, -1}));
  EXPECT_DOUBLE_EQ(f.min_cosine, -1);
  EXPECT_DOUBLE_EQ(f.cosine, 0);  // a.a + a.(-a) = 0 over both samples together
  EXPECT_EQ(f.sample_max_abs_errors, (std::vector<double>{0, 6}));
  EXPECT_DOUBLE_EQ(f.mean_abs_error, (2 + 4 + 6) / 6.0);
}

TEST(ValidateFigures, CosineSimilarity) {
  const std::vector<double> a = {1, 2, 3}, b = {4, 5, 6}, zero = {0, 0, 0};
  EXPECT_DOUBLE_EQ(validate::cosine_similarity(a, b), 32 / std::sqrt(14.0 * 77.0));
  EXPECT_DOUBLE_EQ(validate::cosine_similarity(zero, zero), 1);
  EXPECT_DOUBLE_EQ(validate::cosine_similarity(a, zero), 0);
}

TEST(ValidateFigures, TopOneAndTopFiveAgreement) {
  // Rows of 6 classes. Row 0: same argmax (2). Row 1: the candidate prefers class 1, the reference's class 0
  // is its second. Row 2: the reference's class 5 is the candidate's smallest.
  Tensor a = Tensor::from_vector<float>({0, 1, 9, 2, 3, 4,  //
                                         9, 8, 1, 2, 3, 4,  //
                                         1, 2, 3, 4, 5, 9},
                                        {3, 6});
  Tensor b = Tensor::from_vector<float>({0, 1, 9, 2, 3, 4,  //
                                         8, 9, 1, 2, 3, 4,  //
                                         1, 2, 3, 4, 5, 0},
                                        {3, 6});
  OutputFigures f = compare_once(a, b);
  ASSERT_TRUE(f.top1.measured());
  EXPECT_EQ(f.top1.agreeing, 1);
  EXPECT_EQ(f.top1.rows, 3);
  EXPECT_NEAR(f.top1.percent(), 100.0 / 3, 1e-12);
  ASSERT_TRUE(f.top5.measured());
  EXPECT_EQ(f.top5.agreeing, 2);
  EXPECT_EQ(f.top5.rows, 3);
}

TEST(ValidateFigures, TopFiveNeedsFiveClassesAndTiesCountInFavour) {
  Tensor a = Tensor::from_vector<float>({3, 1, 2, 0, 2, 1}, {2, 3});
  OutputFigures f = compare_once(a, a);
  EXPECT_TRUE(f.top1.measured());
  EXPECT_EQ(f.top1.agreeing, 2);
  EXPECT_EQ(f.top5.state, Agreement::State::kUnavailable);
  EXPECT_NE(f.top5.why.find("3 classes"), std::string::npos) << f.top5.why;

  // The reference's top class ties with five others in the candidate: still in its top 5.
  Tensor r = Tensor::from_vector<float>({5, 0, 0, 0, 0, 0}, {1, 6});
  Tensor c = Tensor::from_vector<float>({1, 1, 1, 1, 1, 1}, {1, 6});
  EXPECT_EQ(compare_once(r, c).top5.agreeing, 1);
}

TEST(ValidateFigures, RetrievalAgreementByHand) {
  // Rows of width 2. Reference: 0 <-> 1 and 2 <-> 3 are each other's nearest. Candidate: row 3 moved next to
  // row 1 (cosine 0.991 against row 0's 0.970), so row 3's nearest is row 1, not row 2; rows 0, 1, 2 keep
  // theirs (row 2: 0.243 to row 3, 0.110 to row 1).
  const std::vector<double> reference = {1, 0, 0.9, 0.1, 0, 1, 0.1, 0.9};
  const std::vector<double> candidate = {1, 0, 0.9, 0.1, 0, 1, 0.8, 0.2};
  Agreement a = validate::retrieval_agreement(reference, candidate, 2);
  ASSERT_TRUE(a.measured());
  EXPECT_EQ(a.rows, 4);
  EXPECT_EQ(a.agreeing, 3);
  EXPECT_DOUBLE_EQ(a.percent(), 75);

  Agreement two_rows =
      validate::retrieval_agreement(std::vector<double>{1, 0, 0, 1}, std::vector<double>{1, 0, 0, 1}, 2);
  EXPECT_EQ(two_rows.state, Agreement::State::kUnavailable);
  EXPECT_NE(two_rows.why.find("2 rows"), std::string::npos) << two_rows.why;
}

TEST(ValidateFigures, RetrievalPoolsRowsAcrossSamplesAndMeanPoolsSequences) {
  // [batch 2, seq 2, D 2], two samples: four pooled rows. Sample 0 pools to (1, 0) and (0.9, 0.1); sample 1
  // to (0, 1) and (0.1, 0.9) in the reference, (0.8, 0.2) for the last one in the candidate: as above.
  Tensor s0 = Tensor::from_vector<float>({1, 0, 1, 0, 0.8f, 0.2f, 1.0f, 0}, {2, 2, 2});
  Tensor s1_ref = Tensor::from_vector<float>({0, 1, 0, 1, 0.2f, 0.8f, 0, 1.0f}, {2, 2, 2});
  Tensor s1_cand = Tensor::from_vector<float>({0, 1, 0, 1, 0.8f, 0.2f, 0.8f, 0.2f}, {2, 2, 2});
  OutputComparer c("last_hidden_state");
  c.add(s0, s0);
  c.add(s1_ref, s1_cand);
  OutputFigures f = c.figures();
  ASSERT_TRUE(f.retrieval.measured()) << f.retrieval.why;
  EXPECT_EQ(f.retrieval.rows, 4);
  EXPECT_EQ(f.retrieval.agreeing, 3);

  // Rank 2, one row per sample, two samples: too few rows to say.
  OutputComparer pooled("pooler_output");
  Tensor row = Tensor::from_vector<float>({1, 2, 3}, {1, 3});
  pooled.add(row, row);
  pooled.add(row, row);
  EXPECT_EQ(pooled.figures().retrieval.state, Agreement::State::kUnavailable);
}

TEST(ValidateFigures, TokenMaskWeightsThePoolingIntoEmbeddings) {
  // [batch 1, seq 3, D 2] with the middle position padding: the embedding is the mean of positions 0 and 2.
  Tensor h = Tensor::from_vector<float>({1, 2, 100, -100, 3, 4}, {1, 3, 2});
  Tensor mask = Tensor::from_vector<int64_t>({1, 0, 1}, {1, 3});
  std::vector<double> rows;
  validate::append_embedding_rows(h, &mask, rows);
  EXPECT_EQ(rows, (std::vector<double>{2, 3}));
  // Without a mask, or with one of another shape (not [batch, seq]): the plain mean.
  rows.clear();
  validate::append_embedding_rows(h, nullptr, rows);
  EXPECT_EQ(rows, (std::vector<double>{104.0 / 3, -94.0 / 3}));
  rows.clear();
  Tensor other = Tensor::from_vector<int32_t>({1, 0}, {1, 2});
  validate::append_embedding_rows(h, &other, rows);
  EXPECT_EQ(rows, (std::vector<double>{104.0 / 3, -94.0 / 3}));
  // A mask of all zeros leaves a zero row; rank 2 is taken as is.
  rows.clear();
  Tensor none = Tensor::from_vector<int32_t>({0, 0, 0}, {1, 3});
  validate::append_embedding_rows(h, &none, rows);
  EXPECT_EQ(rows, (std::vector<double>{0, 0}));
  rows.clear();
  validate::append_embedding_rows(Tensor::from_vector<float>({5, 6, 7, 8}, {2, 2}), nullptr, rows);
  EXPECT_EQ(rows, (std::vector<double>{5, 6, 7, 8}));

  // The candidate differs only at the padding: its embedding is the reference's (cosine 1), though the
  // element-wise cosine over the whole tensor is not.
  Tensor changed = Tensor::from_vector<float>({1, 2, -50, 7, 3, 4}, {1, 3, 2});
  OutputComparer c("last_hidden_state");
  c.add(h, changed, &mask);
  OutputFigures f = c.figures();
  ASSERT_EQ(f.embedding_cosines.size(), 1u);
  EXPECT_DOUBLE_EQ(f.embedding_cosines[0], 1);
  EXPECT_LT(f.cosine, 0.9);
}

TEST(ValidateFigures, EmbeddingCosinesPerRowAcrossSamples) {
  // Two samples of [batch 2, D 2]: rows (1, 0) / (1, 0), (0, 1) / (1, 1), (3, 4) / (3, 4), (1, 0) / (-1, 0).
  OutputComparer c("sentence_embedding");
  c.add(Tensor::from_vector<float>({1, 0, 0, 1}, {2, 2}), Tensor::from_vector<float>({1, 0, 1, 1}, {2, 2}));
  c.add(Tensor::from_vector<float>({3, 4, 1, 0}, {2, 2}), Tensor::from_vector<float>({3, 4, -1, 0}, {2, 2}));
  OutputFigures f = c.figures();
  ASSERT_EQ(f.embedding_cosines.size(), 4u);
  EXPECT_DOUBLE_EQ(f.embedding_cosines[0], 1);
  EXPECT_NEAR(f.embedding_cosines[1], 1 / std::sqrt(2.0), 1e-15);
  EXPECT_DOUBLE_EQ(f.embedding_cosines[2], 1);
  EXPECT_DOUBLE_EQ(f.embedding_cosines[3], -1);
  EXPECT_NEAR(f.embedding_cosine_mean(), (2 + 1 / std::sqrt(2.0) - 1) / 4, 1e-15);
  EXPECT_DOUBLE_EQ(f.embedding_cosine_min(), -1);
  // Rank 1 is not embedding-like.
  EXPECT_FALSE(compare_once(Tensor::from_vector<float>({1, 2}, {2}), Tensor::from_vector<float>({1, 2}, {2}))
                   .has_embedding_cosines());
}

TEST(ValidateFigures, MismatchesAreNotCompared) {
  OutputFigures shape = compare_once(Tensor(ir::DType::kFloat32, {1, 2}), Tensor(ir::DType::kFloat32, {1, 3}));
  EXPECT_FALSE(shape.compared());
  EXPECT_NE(shape.not_compared.find("shape mismatch: reference [1,2], candidate [1,3]"), std::string::npos)
      << shape.not_compared;

  OutputFigures dtype = compare_once(Tensor(ir::DType::kFloat32, {2}), Tensor(ir::DType::kInt64, {2}));
  EXPECT_FALSE(dtype.compared());
  EXPECT_NE(dtype.not_compared.find("dtype mismatch"), std::string::npos) << dtype.not_compared;

  // Two float widths are compared, in double.
  Tensor half(ir::DType::kFloat16, {2});
  OutputFigures widths = compare_once(Tensor(ir::DType::kFloat32, {2}), half);
  EXPECT_TRUE(widths.compared()) << widths.not_compared;
  EXPECT_EQ(widths.candidate_type, "float16[2]");

  OutputComparer sequence("s");
  sequence.add(ir::Datum(Tensor(ir::DType::kFloat32, {2})), ir::Datum::of_sequence({}, ir::DType::kFloat32));
  EXPECT_FALSE(sequence.figures().compared());
}

TEST(ValidateFigures, NonFiniteValues) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  // The same NaN and the same infinity on both sides are no error; 5 against infinity is a mismatch.
  Tensor a = Tensor::from_vector<double>({1, nan, inf, inf}, {4});
  Tensor b = Tensor::from_vector<double>({1, nan, inf, 5}, {4});
  OutputFigures f = compare_once(a, b);
  EXPECT_EQ(f.nonfinite_mismatches, 1);
  EXPECT_EQ(f.elements, 3);
  EXPECT_TRUE(std::isinf(f.max_abs_error));
  EXPECT_TRUE(std::isinf(f.max_rel_error));
  EXPECT_EQ(f.mean_abs_error, 0);
}

// ---- shared values (per layer) ----

ir::Node node(const std::string& name, const std::string& op, std::vector<std::string> inputs,
              std::vector<std::string> outputs) {
  ir::Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  return n;
}

// x [n, 4] -> MatMul w -> h -> Relu -> y (the output); beside it, a Shape of x (int64), and in the reference
// only, h times the negated bias (a value computed from weights alone) before the Relu.
ir::Model layered_model(bool reference) {
  ir::Model m = testing::new_ir_model();
  m.graph.inputs.push_back(exporter::tensor_value("x", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  m.graph.add_initializer("w", Tensor::from_vector<float>(std::vector<float>(16, 0.5f), {4, 4}));
  m.graph.nodes.push_back(node("mm", "MatMul", {"x", "w"}, {"h"}));
  m.graph.nodes.push_back(node("shape", "Shape", {"x"}, {"x_shape"}));
  if (reference) {
    m.graph.add_initializer("bias", Tensor::from_vector<float>({1, 2, 3, 4}, {4}));
    m.graph.nodes.push_back(node("negate", "Neg", {"bias"}, {"negated_bias"}));
    m.graph.nodes.push_back(node("scale", "Mul", {"h", "negated_bias"}, {"h_scaled"}));  // not in the candidate
    m.graph.nodes.push_back(node("relu", "Relu", {"h_scaled"}, {"y"}));
  } else {
    m.graph.nodes.push_back(node("relu", "Relu", {"h"}, {"y"}));
  }
  m.graph.outputs.push_back(exporter::tensor_value("y", ir::DType::kFloat32, {ir::Dim::symbolic("n"), ir::Dim(4)}));
  return m;
}

TEST(ValidateSharedValues, ExposesFloatValuesComputedFromTheInputsInBoth) {
  ir::Model reference = layered_model(true), candidate = layered_model(false);
  std::vector<validate::SharedValue> values = validate::expose_shared_values(reference, candidate);
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(values[0].name, "h");
  EXPECT_EQ(values[0].node, "mm");
  EXPECT_EQ(values[0].op, "MatMul");
  EXPECT_EQ(values[0].candidate_op, "MatMul");
  EXPECT_TRUE(values[0].sources.empty());  // it reads a graph input and a weight
  EXPECT_EQ(values[1].name, "y");
  // y's node reads h_scaled, which the candidate lacks: its source is looked for through it.
  EXPECT_EQ(values[1].sources, (std::vector<std::string>{"h"}));
  EXPECT_LT(values[0].order, values[1].order);
  // Both graphs now return h too, after their own outputs; y is not listed twice.
  for (const ir::Model* m : {&reference, &candidate}) {
    ASSERT_EQ(m->graph.outputs.size(), 2u);
    EXPECT_EQ(m->graph.outputs[0].name, "y");
    EXPECT_EQ(m->graph.outputs[1].name, "h");
    EXPECT_EQ(m->graph.outputs[1].type.dtype, ir::DType::kFloat32);
  }
}

}  // namespace
}  // namespace kiln

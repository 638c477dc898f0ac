// The random ops (RandomNormal, RandomUniform, their *Like forms, Bernoulli, Multinomial) cannot have
// conformance cases with fixed expected values, so these tests check what the ONNX spec does fix: the
// output type and shape, the range of the values, that a seed makes the draw repeatable, and the
// statistics of large draws. Every node here is seeded, so each test sees the same numbers each run.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "common/error.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using Kind = ir::Attribute::Kind;

ir::Attribute attr_float(const std::string& name, float v) {
  ir::Attribute a;
  a.name = name;
  a.kind = Kind::kFloat;
  a.f = v;
  return a;
}

ir::Attribute attr_int(const std::string& name, int64_t v) {
  ir::Attribute a;
  a.name = name;
  a.kind = Kind::kInt;
  a.i = v;
  return a;
}

ir::Attribute attr_ints(const std::string& name, std::vector<int64_t> v) {
  ir::Attribute a;
  a.name = name;
  a.kind = Kind::kInts;
  a.ints = std::move(v);
  return a;
}

// Runs a model of one node: `op` reading `input` (when defined) as graph input "x", writing "y".
ir::Tensor run_op(const std::string& op, int64_t opset, std::vector<ir::Attribute> attrs,
                  const ir::Tensor& input = ir::Tensor()) {
  ir::Model m;
  m.opset_imports[""] = opset;
  ir::Node n;
  n.name = "random";
  n.op_type = op;
  if (input.defined()) {
    n.inputs = {"x"};
    m.graph.inputs.push_back({"x", ir::Type::tensor(input.dtype(), ir::Shape::of(input.shape())), ""});
  }
  n.outputs = {"y"};
  n.attributes = std::move(attrs);
  m.graph.nodes.push_back(std::move(n));
  m.graph.outputs.push_back({"y", ir::Type(), ""});
  runtime::Session session(std::move(m));
  std::unordered_map<std::string, ir::Datum> feeds;
  if (input.defined()) feeds["x"] = input;
  std::vector<ir::Datum> outs = session.run(feeds);
  EXPECT_EQ(outs.size(), 1u);
  EXPECT_TRUE(outs[0].is_tensor());
  return outs[0].tensor;
}

double mean_of(const ir::Tensor& t) {
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += t.as_double(i);
  return s / static_cast<double>(t.numel());
}

double stddev_of(const ir::Tensor& t) {
  double m = mean_of(t), s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += (t.as_double(i) - m) * (t.as_double(i) - m);
  return std::sqrt(s / static_cast<double>(t.numel()));
}

ir::Tensor filled(ir::DType dtype, std::vector<int64_t> shape, double v) {
  ir::Tensor t(dtype, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (dtype == ir::DType::kFloat32)
      t.data<float>()[i] = static_cast<float>(v);
    else if (dtype == ir::DType::kFloat64)
      t.data<double>()[i] = v;
    else if (dtype == ir::DType::kInt32)
      t.data<int32_t>()[i] = static_cast<int32_t>(v);
    else
      ADD_FAILURE() << "filled: unhandled dtype";
  }
  return t;
}

// ---- RandomNormal / RandomNormalLike

TEST(RandomOps, RandomNormalDefaultsToFloat32WithMeanAndScale) {
  ir::Tensor y = run_op(
      "RandomNormal", 1,
      {attr_ints("shape", {100, 100}), attr_float("mean", 5.0f), attr_float("scale", 0.5f), attr_float("seed", 3.0f)});
  EXPECT_EQ(y.dtype(), ir::DType::kFloat32);
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{100, 100}));
  EXPECT_NEAR(mean_of(y), 5.0, 0.05);
  EXPECT_NEAR(stddev_of(y), 0.5, 0.02);
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_TRUE(std::isfinite(y.as_double(i))) << "element " << i;
}

TEST(RandomOps, RandomNormalDoubleStandard) {
  ir::Tensor y =
      run_op("RandomNormal", 1, {attr_ints("shape", {10000}), attr_int("dtype", 11), attr_float("seed", 7.0f)});
  EXPECT_EQ(y.dtype(), ir::DType::kFloat64);
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{10000}));
  EXPECT_NEAR(mean_of(y), 0.0, 0.05);
  EXPECT_NEAR(stddev_of(y), 1.0, 0.05);
}

TEST(RandomOps, RandomNormalSameSeedSameOutput) {
  auto draw = [](float seed) {
    return run_op("RandomNormal", 1, {attr_ints("shape", {4, 5}), attr_float("seed", seed)});
  };
  ir::Tensor a = draw(11.0f), b = draw(11.0f), c = draw(12.0f);
  EXPECT_TRUE(a.bitwise_equal(b));
  EXPECT_FALSE(a.bitwise_equal(c));
}

TEST(RandomOps, RandomNormalLikeTakesInputShapeAndType) {
  ir::Tensor x = filled(ir::DType::kFloat64, {100, 100}, 123.0);
  ir::Tensor y = run_op("RandomNormalLike", 1, {attr_float("mean", -2.0f), attr_float("seed", 5.0f)}, x);
  EXPECT_EQ(y.dtype(), ir::DType::kFloat64);
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_NEAR(mean_of(y), -2.0, 0.05);
  EXPECT_NEAR(stddev_of(y), 1.0, 0.05);
  ir::Tensor again = run_op("RandomNormalLike", 1, {attr_float("mean", -2.0f), attr_float("seed", 5.0f)}, x);
  EXPECT_TRUE(y.bitwise_equal(again));
}

TEST(RandomOps, RandomNormalLikeDtypeOverridesInputType) {
  ir::Tensor x = filled(ir::DType::kInt32, {3, 2}, 0);
  ir::Tensor y = run_op("RandomNormalLike", 1, {attr_int("dtype", 1), attr_float("seed", 1.0f)}, x);
  EXPECT_EQ(y.dtype(), ir::DType::kFloat32);
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{3, 2}));
}

// ---- RandomUniform / RandomUniformLike

void expect_uniform(const ir::Tensor& y, double low, double high) {
  for (int64_t i = 0; i < y.numel(); ++i) {
    double v = y.as_double(i);
    ASSERT_TRUE(v >= low && v < high) << "element " << i << " is " << v << ", outside [" << low << ", " << high << ")";
  }
  EXPECT_NEAR(mean_of(y), (low + high) / 2, 0.01 * (high - low) * 3);
  // A uniform distribution's standard deviation is (high - low) / sqrt(12).
  EXPECT_NEAR(stddev_of(y), (high - low) / std::sqrt(12.0), 0.02 * (high - low));
}

TEST(RandomOps, RandomUniformDefaultsToFloat32InUnitInterval) {
  ir::Tensor y = run_op("RandomUniform", 1, {attr_ints("shape", {50, 200}), attr_float("seed", 2.0f)});
  EXPECT_EQ(y.dtype(), ir::DType::kFloat32);
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{50, 200}));
  expect_uniform(y, 0.0, 1.0);
}

TEST(RandomOps, RandomUniformDoubleLowHigh) {
  ir::Tensor y = run_op("RandomUniform", 1,
                        {attr_ints("shape", {10000}), attr_int("dtype", 11), attr_float("low", -3.0f),
                         attr_float("high", 5.0f), attr_float("seed", 4.0f)});
  EXPECT_EQ(y.dtype(), ir::DType::kFloat64);
  expect_uniform(y, -3.0, 5.0);
}

TEST(RandomOps, RandomUniformFloat16StaysInRange) {
  ir::Tensor y = run_op("RandomUniform", 1,
                        {attr_ints("shape", {10000}), attr_int("dtype", 10), attr_float("low", -2.0f),
                         attr_float("high", -1.0f), attr_float("seed", 6.0f)});
  EXPECT_EQ(y.dtype(), ir::DType::kFloat16);
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{10000}));
  // Rounding to float16 may carry a draw just below `high` onto it, so the range is closed here.
  for (int64_t i = 0; i < y.numel(); ++i) {
    double v = y.as_double(i);
    ASSERT_TRUE(v >= -2.0 && v <= -1.0) << "element " << i << " is " << v;
  }
  EXPECT_NEAR(mean_of(y), -1.5, 0.03);
}

TEST(RandomOps, RandomUniformSameSeedSameOutput) {
  auto draw = [](float seed) {
    return run_op("RandomUniform", 1, {attr_ints("shape", {3, 7}), attr_float("seed", seed)});
  };
  ir::Tensor a = draw(0.5f), b = draw(0.5f), c = draw(1.5f);
  EXPECT_TRUE(a.bitwise_equal(b));
  EXPECT_FALSE(a.bitwise_equal(c));
}

TEST(RandomOps, RandomUniformLikeTakesShapeAndDtype) {
  ir::Tensor x = filled(ir::DType::kInt32, {100, 100}, 9);
  ir::Tensor y =
      run_op("RandomUniformLike", 1,
             {attr_int("dtype", 1), attr_float("low", 10.0f), attr_float("high", 12.0f), attr_float("seed", 1.0f)}, x);
  EXPECT_EQ(y.dtype(), ir::DType::kFloat32);
  EXPECT_EQ(y.shape(), x.shape());
  expect_uniform(y, 10.0, 12.0);
  ir::Tensor again =
      run_op("RandomUniformLike", 1,
             {attr_int("dtype", 1), attr_float("low", 10.0f), attr_float("high", 12.0f), attr_float("seed", 1.0f)}, x);
  EXPECT_TRUE(y.bitwise_equal(again));
}

TEST(RandomOps, RandomUniformLikeKeepsFloatInputType) {
  ir::Tensor x = filled(ir::DType::kFloat64, {2, 3, 4}, 0);
  ir::Tensor y = run_op("RandomUniformLike", 1, {attr_float("seed", 8.0f)}, x);
  EXPECT_EQ(y.dtype(), ir::DType::kFloat64);
  EXPECT_EQ(y.shape(), x.shape());
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_TRUE(y.as_double(i) >= 0 && y.as_double(i) < 1);
}

// ---- Bernoulli

TEST(RandomOps, BernoulliBoolFollowsProbabilities) {
  ir::Tensor p(ir::DType::kFloat64, {8});
  const double probs[] = {0, 1, 0.5, 0.5, 0.5, 0.5, 1, 0};
  for (int i = 0; i < 8; ++i) p.data<double>()[i] = probs[i];
  ir::Tensor y = run_op("Bernoulli", 15, {attr_int("dtype", 9), attr_float("seed", 3.0f)}, p);
  EXPECT_EQ(y.dtype(), ir::DType::kBool);
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{8}));
  for (int i = 0; i < 8; ++i) {
    int64_t v = y.as_int64(i);
    EXPECT_TRUE(v == 0 || v == 1) << "element " << i << " is " << v;
    if (probs[i] == 0 || probs[i] == 1) {
      EXPECT_EQ(v, static_cast<int64_t>(probs[i])) << "element " << i;
    }
  }
}

TEST(RandomOps, BernoulliDefaultsToInputTypeAndMatchesRate) {
  ir::Tensor p = filled(ir::DType::kFloat32, {100, 100}, 0.3);
  ir::Tensor y = run_op("Bernoulli", 15, {attr_float("seed", 4.0f)}, p);
  EXPECT_EQ(y.dtype(), ir::DType::kFloat32);
  EXPECT_EQ(y.shape(), p.shape());
  for (int64_t i = 0; i < y.numel(); ++i) {
    double v = y.as_double(i);
    ASSERT_TRUE(v == 0 || v == 1) << "element " << i << " is " << v;
  }
  EXPECT_NEAR(mean_of(y), 0.3, 0.03);
}

TEST(RandomOps, BernoulliSameSeedSameOutput) {
  ir::Tensor p = filled(ir::DType::kFloat64, {64}, 0.5);
  auto draw = [&](float seed) { return run_op("Bernoulli", 15, {attr_int("dtype", 6), attr_float("seed", seed)}, p); };
  ir::Tensor a = draw(9.0f), b = draw(9.0f), c = draw(10.0f);
  EXPECT_EQ(a.dtype(), ir::DType::kInt32);
  EXPECT_TRUE(a.bitwise_equal(b));
  EXPECT_FALSE(a.bitwise_equal(c));  // 64 fair coins agree with probability 2^-64
}

// ---- Multinomial

TEST(RandomOps, MultinomialSamplesSoftmaxOfLogits) {
  // Row 0: softmax(0, 1, -100) puts ~0.269 on class 0, ~0.731 on class 1, ~e^-100 on class 2.
  // Row 1: equal logits, 1/3 each.
  ir::Tensor x = ir::Tensor::from_vector<float>({0.0f, 1.0f, -100.0f, 5.0f, 5.0f, 5.0f}, {2, 3});
  const int64_t n = 20000;
  ir::Tensor y =
      run_op("Multinomial", 7, {attr_int("sample_size", n), attr_int("dtype", 7), attr_float("seed", 2.0f)}, x);
  EXPECT_EQ(y.dtype(), ir::DType::kInt64);
  ASSERT_EQ(y.shape(), (std::vector<int64_t>{2, n}));
  int64_t counts[2][3] = {};
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t s = 0; s < n; ++s) {
      int64_t c = y.data<int64_t>()[b * n + s];
      ASSERT_TRUE(c >= 0 && c < 3) << "row " << b << " sample " << s << " is " << c;
      ++counts[b][c];
    }
  const double e = std::exp(1.0);
  EXPECT_NEAR(static_cast<double>(counts[0][1]) / n, e / (1 + e), 0.02);
  EXPECT_EQ(counts[0][2], 0);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(static_cast<double>(counts[1][c]) / n, 1.0 / 3, 0.02) << "class " << c;
}

TEST(RandomOps, MultinomialDefaultsToInt32AndOneSample) {
  ir::Tensor x = ir::Tensor::from_vector<double>({0.1, 0.2, 0.3, 0.4, -1.0, 2.0, 0.0, 0.5}, {2, 4});
  ir::Tensor y = run_op("Multinomial", 7, {attr_float("seed", 1.0f)}, x);
  EXPECT_EQ(y.dtype(), ir::DType::kInt32);
  ASSERT_EQ(y.shape(), (std::vector<int64_t>{2, 1}));
  for (int64_t i = 0; i < 2; ++i) EXPECT_TRUE(y.as_int64(i) >= 0 && y.as_int64(i) < 4);
}

TEST(RandomOps, MultinomialSameSeedSameOutput) {
  ir::Tensor x = ir::Tensor::from_vector<float>({1.0f, 1.0f, 1.0f, 1.0f}, {1, 4});
  auto draw = [&](float seed) {
    return run_op("Multinomial", 7, {attr_int("sample_size", 50), attr_float("seed", seed)}, x);
  };
  ir::Tensor a = draw(21.0f), b = draw(21.0f), c = draw(22.0f);
  EXPECT_TRUE(a.bitwise_equal(b));
  EXPECT_FALSE(a.bitwise_equal(c));
}

}  // namespace
}  // namespace kiln

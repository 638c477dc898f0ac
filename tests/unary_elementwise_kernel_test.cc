// The single unary elementwise kernels (kernels/cpu/unary_elementwise_kernel.cc) and the vectorized steps
// under them (vector_kernels.h's unary_f32). First the steps, in every build this machine runs, against
// their definitions (kernels/reference/elementwise_step.h, what the reference ops compute) on special
// values (NaN, +-inf, +-0, denormals, halves, the extremes) and on a sweep of magnitudes, at sizes around
// the vector widths, and once on a tensor split across threads: bit for bit where the SIMD form is exact,
// within 1e-6 relative where it approximates. Then the ops through a Session against the reference
// kernels: Clip with a bound missing, Pow by 2, 0.5, 3, -1, 1.7, 0 and 1 over special bases and with its
// exponent in other types and shapes, and Cast between float32, float16, int64, int32 and bool.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "kernels/cpu/vector_kernels.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using kernels::cpu::Isa;
using kernels::cpu::VectorKernelTable;
using ops::chain::Step;
using ops::chain::StepKind;
using testing::contrib::attr_float;
using testing::contrib::attr_int;
using testing::contrib::TestGraph;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<const VectorKernelTable*> unary_tables() {
  std::vector<const VectorKernelTable*> out;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar})
    if (const VectorKernelTable* t = kernels::cpu::vector_kernels_for(isa)) out.push_back(t);
  return out;
}

// Special values, then +-m 2^e over e in [-150, 128] with random mantissas, in a shuffled order.
std::vector<float> unary_test_values() {
  std::vector<float> v = {kNaN,   -kNaN,   kInf,    -kInf,   0.0f,    -0.0f,   1.0f,     -1.0f,   0.5f,
                          -0.5f,  1.5f,    -1.5f,   2.5f,    -2.5f,   3.5f,    1e-40f,   -1e-40f, 1e-45f,
                          -1e-45f, std::numeric_limits<float>::min(), -std::numeric_limits<float>::min(),
                          std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(), 88.0f, -88.0f,
                          -103.0f, 20.0f,  -20.0f,  0.34f,   -0.34f,  0.36f,   -0.36f,   0.625f,  -0.625f,
                          3.9f,    -3.9f,   4.0f,    -4.0f,   1.4142135f, 0.70710677f, 8388608.5f, 16777215.0f,
                          -8388607.5f, 1e-8f, -1e-8f};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  for (int e = -150; e <= 128; ++e)
    for (int k = 0; k < 6; ++k) {
      const float m = std::ldexp(mantissa(rng), e);
      v.push_back(k % 2 ? -m : m);
    }
  std::shuffle(v.begin() + 8, v.end(), rng);
  return v;
}

struct StepCase {
  std::string what;
  Step step;
  bool exact;  // the SIMD form is the definition's float result (up to an FMA's rounding: `fma_ulp`)
  bool fma_ulp = false;
};

Step make_step(StepKind kind, float p0 = 0, float p1 = 0) {
  Step s;
  s.kind = kind;
  s.p0 = p0;
  s.p1 = p1;
  return s;
}

std::vector<StepCase> step_cases() {
  const float inf = kInf;
  return {
      {"Relu", make_step(StepKind::kRelu), true},
      {"Neg", make_step(StepKind::kNeg), true},
      {"Abs", make_step(StepKind::kAbs), true},
      {"Sqrt", make_step(StepKind::kSqrt), true},
      {"Reciprocal", make_step(StepKind::kReciprocal), true},
      {"Floor", make_step(StepKind::kFloor), true},
      {"Ceil", make_step(StepKind::kCeil), true},
      {"Round", make_step(StepKind::kRound), true},
      {"Clip", make_step(StepKind::kClip, -0.7f, 0.9f), true},
      {"Clip min only", make_step(StepKind::kClip, 0.0f, inf), true},
      {"Clip max only", make_step(StepKind::kClip, -inf, 6.0f), true},
      {"Clip NaN bounds", make_step(StepKind::kClip, kNaN, kNaN), true},
      {"LeakyRelu", make_step(StepKind::kLeakyRelu, 0.1f), true},
      {"Pow 2", make_step(StepKind::kPow, 2.0f), true},
      {"Pow 0.5", make_step(StepKind::kPow, 0.5f), true},
      {"Pow -1", make_step(StepKind::kPow, -1.0f), true},
      {"Pow 3", make_step(StepKind::kPow, 3.0f), true},
      {"Pow 1.7", make_step(StepKind::kPow, 1.7f), true},
      {"Pow 0", make_step(StepKind::kPow, 0.0f), true},
      {"HardSigmoid", make_step(StepKind::kHardSigmoid, 0.2f, 0.5f), true, true},
      {"HardSwish", make_step(StepKind::kHardSwish), true, true},
      {"Exp", make_step(StepKind::kExp), false},
      {"Sigmoid", make_step(StepKind::kSigmoid), false},
      {"Tanh", make_step(StepKind::kTanh), false},
      {"Erf", make_step(StepKind::kErf), false},
      {"Log", make_step(StepKind::kLog), false},
      {"Softplus", make_step(StepKind::kSoftplus), false},
      {"Elu", make_step(StepKind::kElu, 1.0f), false},
      {"Elu alpha 0.3", make_step(StepKind::kElu, 0.3f), false},
  };
}

// got is want: the same bits (so -0 is not +0), or both NaN; or, not exact, within 1e-6 relative (and a
// denormal's worth absolute), erf within 1e-7 absolute; `fma_ulp`: within an ulp of the sum an FMA rounds
// once (alpha x + beta, an ulp of beta's size where it cancels).
::testing::AssertionResult unary_matches(const StepCase& c, float x, float got, float want) {
  bool ok;
  if (std::isnan(want) || std::isnan(got)) {
    ok = std::isnan(want) && std::isnan(got);
  } else if (c.exact && !c.fma_ulp) {
    uint32_t a, b;
    std::memcpy(&a, &got, 4);
    std::memcpy(&b, &want, 4);
    ok = a == b;
  } else if (got == want) {
    ok = std::signbit(got) == std::signbit(want) || c.step.kind == StepKind::kErf;
  } else if (std::isinf(got) || std::isinf(want)) {
    // exp's polynomial overflows a hair before the C library's (88.72 either side of FLT_MAX's log).
    ok = std::fabs(x) > 88.0f && std::fabs(x) < 89.0f;
  } else {
    const double rel = c.fma_ulp ? 1.2e-7 : 1e-6;
    const double abs_tol = c.step.kind == StepKind::kErf ? 1e-7 : c.fma_ulp ? 6e-8 : 1e-38;
    ok = std::fabs(double(got) - double(want)) <= rel * std::fabs(double(want)) + abs_tol;
  }
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << c.what << "(" << x << ") = " << got << ", want " << want;
}

TEST(UnaryElementwiseSteps, EveryBuildMatchesTheDefinitionsOnSpecialValuesAndOddSizes) {
  const std::vector<float> x = unary_test_values();
  const auto n = static_cast<int64_t>(x.size());
  for (const VectorKernelTable* t : unary_tables()) {
    for (const StepCase& c : step_cases()) {
      SCOPED_TRACE(std::string(kernels::cpu::isa_name(t->isa)) + " " + c.what);
      // Sizes around the vector widths (tails), starting off a vector boundary, and the whole sweep.
      for (int64_t count : {int64_t{1}, int64_t{7}, int64_t{17}, int64_t{33}, int64_t{65}, n - 3}) {
        std::vector<float> y(static_cast<size_t>(count) + 1, 12345.0f);
        t->unary(c.step, x.data() + 3, y.data(), count);
        int failures = 0;
        for (int64_t i = 0; i < count && failures < 5; ++i) {
          const float xi = x[static_cast<size_t>(i + 3)];
          const ::testing::AssertionResult r =
              unary_matches(c, xi, y[static_cast<size_t>(i)], ops::chain::apply_unary(c.step, xi));
          EXPECT_TRUE(r) << "count " << count << ", element " << i;
          failures += r ? 0 : 1;
        }
        EXPECT_EQ(y[static_cast<size_t>(count)], 12345.0f) << "wrote past the end, count " << count;
      }
    }
  }
}

TEST(UnaryElementwiseSteps, LargeTensorsSplitAcrossThreadsAndRunInPlace) {
  const int64_t n = 1000003;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-10.0f, 10.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = d(rng);
  for (const VectorKernelTable* t : unary_tables()) {
    for (const StepCase& c : step_cases()) {
      SCOPED_TRACE(std::string(kernels::cpu::isa_name(t->isa)) + " " + c.what);
      std::vector<float> y = x;
      kernels::cpu::unary_f32(c.step, y.data(), y.data(), n, *t);  // in place
      int failures = 0;
      for (int64_t i = 0; i < n && failures < 5; ++i) {
        const float xi = x[static_cast<size_t>(i)];
        const ::testing::AssertionResult r =
            unary_matches(c, xi, y[static_cast<size_t>(i)], ops::chain::apply_unary(c.step, xi));
        EXPECT_TRUE(r) << "element " << i;
        failures += r ? 0 : 1;
      }
    }
  }
}

// ---- the ops, through a Session ------------------------------------------------------------------------

// Element by element: the same bits, or both NaN (a float32 NaN's payload is not compared).
void expect_same_tensor(const ir::Tensor& got, const ir::Tensor& want) {
  ASSERT_EQ(got.dtype(), want.dtype());
  ASSERT_EQ(got.shape(), want.shape());
  if (got.dtype() == ir::DType::kFloat32) {
    for (int64_t i = 0; i < got.numel(); ++i) {
      const float a = got.data<float>()[i], b = want.data<float>()[i];
      if (std::isnan(a) && std::isnan(b)) continue;
      uint32_t ab, bb;
      std::memcpy(&ab, &a, 4);
      std::memcpy(&bb, &b, 4);
      EXPECT_EQ(ab, bb) << "element " << i << ": " << a << ", want " << b;
    }
    return;
  }
  ASSERT_EQ(got.nbytes(), want.nbytes());
  EXPECT_EQ(std::memcmp(got.raw(), want.raw(), got.nbytes()), 0) << ir::dtype_name(got.dtype());
}

// Runs g with the fast kernels (expecting `fast` nodes to have one) and on the reference kernels alone,
// without graph passes, and compares every output.
void expect_fast_is_reference(const TestGraph& g, size_t fast = 1) {
  runtime::SessionOptions fast_options, ref_options;
  fast_options.optimization = ref_options.optimization = passes::Level::kNone;
  ref_options.fast_kernels = false;
  runtime::Session fast_session(g.model(), fast_options), ref_session(g.model(), ref_options);
  EXPECT_EQ(fast_session.fast_kernel_count(), fast);
  std::vector<ir::Datum> got = fast_session.run(g.feeds()), want = ref_session.run(g.feeds());
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) expect_same_tensor(got[i].tensor, want[i].tensor);
}

ir::Tensor special_floats(std::vector<int64_t> shape = {}) {
  std::vector<float> v = {kNaN, kInf, -kInf, 0.0f, -0.0f, 1e-40f, -1e-40f, 0.5f, -0.5f, 2.0f, -2.0f, 7.25f,
                          -7.25f, 1.0f, -1.0f, 3e38f, -3e38f, 1e-20f, 100.0f, -100.0f, 0.7f, -0.7f, 6.5f};
  if (shape.empty()) shape = {static_cast<int64_t>(v.size())};
  return ir::Tensor::from_vector<float>(v, shape);
}

TEST(UnaryElementwiseKernel, ClipWithABoundMissingOrAsAttributes) {
  struct Bounds {
    std::vector<std::string> inputs;
  };
  for (const Bounds& b : {Bounds{{"x", "lo", "hi"}}, Bounds{{"x", "lo"}}, Bounds{{"x", "", "hi"}}, Bounds{{"x"}},
                          Bounds{{"x", "", ""}}}) {
    TestGraph g(13);
    g.input("x", special_floats());
    g.constant("lo", testing::contrib::scalar(-0.5f));
    g.constant("hi", testing::contrib::scalar(6.0f));
    g.node("Clip", b.inputs, {"y"});
    g.output("y");
    SCOPED_TRACE(b.inputs.size());
    expect_fast_is_reference(g);
  }
  // Before opset 11: attributes, either absent.
  for (const std::vector<ir::Attribute>& attrs :
       {std::vector<ir::Attribute>{attr_float("min", -0.5f), attr_float("max", 6.0f)},
        std::vector<ir::Attribute>{attr_float("min", 0.0f)}, std::vector<ir::Attribute>{attr_float("max", 0.0f)},
        std::vector<ir::Attribute>{}}) {
    TestGraph g(6);
    g.input("x", special_floats());
    g.node("Clip", {"x"}, {"y"}, attrs);
    g.output("y");
    SCOPED_TRACE(attrs.size());
    expect_fast_is_reference(g);
  }
  // A bound computed at run time, of one element but rank 1: read per call.
  TestGraph g(13);
  g.input("x", special_floats());
  g.input("lo", ir::Tensor::from_vector<float>({-1.0f}, {1}));
  g.node("Clip", {"x", "lo"}, {"y"});
  g.output("y");
  expect_fast_is_reference(g);
}

TEST(UnaryElementwiseKernel, PowByAConstantExponentOverSpecialBases) {
  for (float exponent : {2.0f, 0.5f, 3.0f, -1.0f, 1.7f, 0.0f, 1.0f, -0.5f, kNaN}) {
    TestGraph g(13);
    g.input("x", special_floats());
    g.constant("e", testing::contrib::scalar(exponent));
    g.node("Pow", {"x", "e"}, {"y"});
    g.output("y");
    SCOPED_TRACE(exponent);
    expect_fast_is_reference(g);
  }
  // The exponent as int64 and int32 [1], float64 (one a float holds, one it does not: that call is the
  // reference's), and [1, 1] over a rank-1 base (which widens the output: the reference's too).
  std::vector<std::pair<std::string, ir::Tensor>> exponents;
  exponents.emplace_back("int64", ir::Tensor::from_vector<int64_t>({2}, {1}));
  exponents.emplace_back("int32", ir::Tensor::from_vector<int32_t>({3}, {1}));
  exponents.emplace_back("float64 0.5", ir::Tensor::from_vector<double>({0.5}, {}));
  exponents.emplace_back("float64 0.1", ir::Tensor::from_vector<double>({0.1}, {}));
  exponents.emplace_back("[1, 1]", ir::Tensor::from_vector<float>({2.0f}, {1, 1}));
  for (const auto& [what, e] : exponents) {
    TestGraph g(13);
    g.input("x", special_floats());
    g.constant("e", e);
    g.node("Pow", {"x", "e"}, {"y"});
    g.output("y");
    SCOPED_TRACE(what);
    expect_fast_is_reference(g);
  }
  // An exponent of several elements: the reference's.
  TestGraph g(13);
  g.input("x", special_floats({23}));
  g.constant("e", ir::Tensor::from_vector<float>(std::vector<float>(23, 2.0f), {23}));
  g.node("Pow", {"x", "e"}, {"y"});
  g.output("y");
  expect_fast_is_reference(g);
}

TEST(UnaryElementwiseKernel, ActivationsWithAttributesAndSpecialValues) {
  struct Op {
    std::string op;
    std::vector<ir::Attribute> attrs;
  };
  for (const Op& o : {Op{"Relu", {}}, Op{"Neg", {}}, Op{"Abs", {}}, Op{"Sqrt", {}}, Op{"Reciprocal", {}},
                      Op{"Floor", {}}, Op{"Ceil", {}}, Op{"Round", {}}, Op{"LeakyRelu", {attr_float("alpha", 0.2f)}},
                      Op{"LeakyRelu", {}}}) {
    TestGraph g(17);
    g.input("x", special_floats({23}));
    g.node(o.op, {"x"}, {"y"}, o.attrs);
    g.output("y");
    SCOPED_TRACE(o.op);
    expect_fast_is_reference(g);
  }
}

TEST(UnaryElementwiseKernel, CastBetweenTheSimpleTypes) {
  std::vector<ir::Tensor> inputs;
  inputs.push_back(ir::Tensor::from_vector<float>(
      {kNaN, kInf, -kInf, 0.0f, -0.0f, 0.5f, -2.5f, 3e9f, -3e9f, 65504.0f, 70000.0f, 1e-8f, 1.9f, -1.9f, 2e19f}, {15}));
  inputs.push_back(ir::Tensor::from_vector<int64_t>(
      {0, 1, -1, 16777217, int64_t{1} << 40, -(int64_t{1} << 62), std::numeric_limits<int64_t>::min(), 70000}, {8}));
  inputs.push_back(ir::Tensor::from_vector<int32_t>({0, 1, -1, 16777217, std::numeric_limits<int32_t>::min(), 70000}, {2, 3}));
  inputs.push_back(ir::Tensor::from_vector<bool>({true, false, true}, {3}));
  inputs.push_back(ir::Tensor::from_vector<Float16>({Float16(1.5f), Float16(-0.0f), Float16(kInf), Float16(kNaN),
                                                     Float16(65504.0f), Float16(-3.25f)},
                                                    {6}));
  for (const ir::Tensor& x : inputs) {
    for (ir::DType to : {ir::DType::kFloat32, ir::DType::kFloat16, ir::DType::kInt64, ir::DType::kInt32, ir::DType::kBool}) {
      TestGraph g(21);
      g.input("x", x);
      g.node("Cast", {"x"}, {"y"}, {attr_int("to", static_cast<int64_t>(to))});
      g.output("y");
      SCOPED_TRACE(std::string(ir::dtype_name(x.dtype())) + " to " + std::string(ir::dtype_name(to)));
      expect_fast_is_reference(g);
    }
  }
  // Another target (float64) has no fast kernel.
  TestGraph g(21);
  g.input("x", inputs[0]);
  g.node("Cast", {"x"}, {"y"}, {attr_int("to", static_cast<int64_t>(ir::DType::kFloat64))});
  g.output("y");
  expect_fast_is_reference(g, 0);
}

}  // namespace
}  // namespace kiln

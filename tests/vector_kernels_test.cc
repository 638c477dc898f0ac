// kiln's vectorized kernels (kernels/cpu/vector_kernels.h), every build this machine runs (AVX-512, AVX2,
// scalar), against kiln's reference ops run through a Session (LayerNormalization, SkipLayerNormalization,
// Gelu, FastGelu, BiasGelu, Softmax, Add, Mul) or, for what no op computes (a masked, scaled softmax;
// strided rows), a double-precision loop; over odd and BERT-sized rows, with NaN and infinity. The vector
// math (exp, erf, tanh) is checked directly against the C library in double. Every kernel also runs on
// rows of every length up to two AVX-512 vectors and more, ending at an inaccessible page, against the
// portable build.
#include "kernels/cpu/vector_kernels.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "contrib_test_util.h"

namespace kiln::testing::vector_kernels {
namespace {

using contrib::attr_float;
using contrib::attr_int;
using contrib::TestGraph;
using kernels::cpu::BinaryOp;
using kernels::cpu::GeluKind;
using kernels::cpu::Isa;
using kernels::cpu::LayerNormArgs;
using kernels::cpu::SoftmaxArgs;
using kernels::cpu::VectorKernelTable;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

const std::vector<int64_t> kWidths = {1, 3, 15, 16, 17, 31, 33, 768, 1000, 3072};
const std::vector<int64_t> kRows = {1, 2, 7, 128};

// The builds this machine runs, best first.
std::vector<const VectorKernelTable*> tables() {
  std::vector<const VectorKernelTable*> out;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kScalar})
    if (const VectorKernelTable* t = kernels::cpu::vector_kernels_for(isa)) out.push_back(t);
  return out;
}

std::string shape_name(const VectorKernelTable& t, int64_t rows, int64_t n) {
  return std::string(kernels::cpu::isa_name(t.isa)) + " [" + std::to_string(rows) + ", " + std::to_string(n) + "]";
}

// Sessions may run kiln's fast kernels, these among them; the ground truth is the reference kernels alone.
template <class Options>
void reference_kernels_only(Options& options) {
  if constexpr (requires { options.fast_kernels; }) options.fast_kernels = false;
}

// Runs g on kiln's reference kernels, as written (no graph passes).
std::vector<ir::Tensor> run_reference(const TestGraph& g) {
  runtime::SessionOptions options;
  options.verify_inference = true;
  options.optimization = passes::Level::kNone;
  reference_kernels_only(options);
  runtime::Session session(g.model(), options);
  std::vector<ir::Tensor> outs;
  for (auto& d : session.run(g.feeds())) outs.push_back(d.tensor);
  return outs;
}

ir::Tensor tensor(const std::vector<int64_t>& shape) { return ir::Tensor(ir::DType::kFloat32, shape); }

ir::Tensor normal(std::mt19937& gen, const std::vector<int64_t>& shape, float mean = 0, float stddev = 1) {
  ir::Tensor t = tensor(shape);
  std::normal_distribution<float> d(mean, stddev);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(gen);
  return t;
}

ir::Tensor uniform(std::mt19937& gen, const std::vector<int64_t>& shape, float lo, float hi) {
  ir::Tensor t = tensor(shape);
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(gen);
  return t;
}

// Every element of got within abs_tol + rel_tol * |want| of want; NaN only where want is NaN. Reports the
// first element that is not.
void expect_close(const float* got, const float* want, int64_t count, double abs_tol, double rel_tol,
                  const std::string& what) {
  for (int64_t i = 0; i < count; ++i) {
    double g = got[i], w = want[i];
    bool ok = std::isnan(w) ? std::isnan(g) : (g == w || std::fabs(g - w) <= abs_tol + rel_tol * std::fabs(w));
    if (!ok) {
      ADD_FAILURE() << what << ": element " << i << " is " << g << ", expected " << w << " (difference " << g - w
                    << ")";
      return;
    }
  }
}

void expect_close(const ir::Tensor& got, const ir::Tensor& want, double abs_tol, double rel_tol,
                  const std::string& what) {
  ASSERT_EQ(got.numel(), want.numel()) << what;
  expect_close(got.data<float>(), want.data<float>(), got.numel(), abs_tol, rel_tol, what);
}

// ---- dispatch ----------------------------------------------------------------------------------------

TEST(VectorKernels, DispatchPicksTheSelectedIsaAndTheEnvironmentOnlyLowersIt) {
  using kernels::cpu::isa_from_env;
  EXPECT_EQ(kernels::cpu::vector_kernels().isa, kernels::cpu::selected_isa());
  EXPECT_TRUE(kernels::cpu::isa_supported(kernels::cpu::best_supported_isa()));
  ASSERT_NE(kernels::cpu::vector_kernels_for(Isa::kScalar), nullptr);
  EXPECT_EQ(isa_from_env(nullptr, Isa::kAvx512), Isa::kAvx512);
  EXPECT_EQ(isa_from_env("", Isa::kAvx2), Isa::kAvx2);
  EXPECT_EQ(isa_from_env("avx2", Isa::kAvx512), Isa::kAvx2);
  EXPECT_EQ(isa_from_env("scalar", Isa::kAvx512), Isa::kScalar);
  EXPECT_EQ(isa_from_env("avx512", Isa::kAvx2), Isa::kAvx2);
  try {
    isa_from_env("sse9", Isa::kAvx2);
    ADD_FAILURE() << "expected an error for KILN_CPU_ISA=sse9";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("KILN_CPU_ISA=sse9"), std::string::npos) << e.what();
  }
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    EXPECT_EQ(kernels::cpu::parse_isa(kernels::cpu::isa_name(isa)), isa);
    if (!kernels::cpu::isa_supported(isa)) {
      EXPECT_EQ(kernels::cpu::vector_kernels_for(isa), nullptr);
    }
  }
  if (!kernels::cpu::isa_supported(Isa::kAvx512))
    std::cout << "[ NOTE     ] this CPU has no AVX-512: its kernels are not run here\n";
}

// ---- exp, erf, tanh ----------------------------------------------------------------------------------

// x from lo to hi in `steps` steps, plus the values every function must get right.
std::vector<float> sweep(double lo, double hi, int steps) {
  std::vector<float> x = {0.0f, -0.0f, kInf, -kInf, kNaN, 1e-40f, -1e-40f, 1e-30f, -1e-30f, 1e4f, -1e4f, 3e38f, -3e38f};
  for (int i = 0; i <= steps; ++i) x.push_back(static_cast<float>(lo + (hi - lo) * i / steps));
  return x;
}

TEST(VectorKernels, ExpMatchesTheCLibraryToAboutOneUlpIncludingDenormalsAndSpecials) {
  std::vector<float> x = sweep(-110, 95, 200001);
  for (float v : {88.72f, 88.73f, -87.33f, -87.34f, -100.0f, -103.9f, -104.0f, -150.0f}) x.push_back(v);
  std::vector<float> y(x.size());
  for (const VectorKernelTable* t : tables()) {
    t->exp(x.data(), y.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      double want = std::exp(static_cast<double>(x[i]));
      float want_f = static_cast<float>(want);
      double got = y[i];
      // 3 ulp of the float result, or 2 of the smallest denormal where the result is denormal or 0.
      double ulp = std::isfinite(want_f) && want_f >= std::numeric_limits<float>::min()
                       ? std::ldexp(1.0, std::ilogb(want_f) - 23)
                       : std::numeric_limits<float>::denorm_min();
      bool ok =
          std::isnan(want) ? std::isnan(got) : (std::isinf(want_f) ? got == want_f : std::fabs(got - want) <= 3 * ulp);
      if (!ok) {
        ADD_FAILURE() << kernels::cpu::isa_name(t->isa) << " exp(" << x[i] << ") = " << got << ", expected " << want;
        break;
      }
    }
    float tiny = 0;
    float minus_100 = -100.0f;
    t->exp(&minus_100, &tiny, 1);
    EXPECT_GT(tiny, 0.0f) << "exp(-100) is a denormal, " << std::exp(-100.0);
  }
}

TEST(VectorKernels, ErfMatchesTheCLibraryToTwoTenthsOfAMillionth) {
  std::vector<float> x = sweep(-7, 7, 140001);
  std::vector<float> y(x.size());
  for (const VectorKernelTable* t : tables()) {
    t->erf(x.data(), y.data(), static_cast<int64_t>(x.size()));
    std::vector<float> want(x.size());
    for (size_t i = 0; i < x.size(); ++i) want[i] = static_cast<float>(std::erf(static_cast<double>(x[i])));
    // Near 0 erf is relative: 1e-30 must not come out 0.
    expect_close(y.data(), want.data(), static_cast<int64_t>(x.size()), 2e-7, 2e-7,
                 std::string(kernels::cpu::isa_name(t->isa)) + " erf");
    EXPECT_EQ(std::signbit(y[1]), true) << "erf(-0)";
  }
}

TEST(VectorKernels, TanhMatchesTheCLibraryToAFewUlp) {
  std::vector<float> x = sweep(-12, 12, 240001);
  std::vector<float> y(x.size());
  for (const VectorKernelTable* t : tables()) {
    t->tanh(x.data(), y.data(), static_cast<int64_t>(x.size()));
    std::vector<float> want(x.size());
    for (size_t i = 0; i < x.size(); ++i) want[i] = static_cast<float>(std::tanh(static_cast<double>(x[i])));
    expect_close(y.data(), want.data(), static_cast<int64_t>(x.size()), 0, 3e-7,
                 std::string(kernels::cpu::isa_name(t->isa)) + " tanh");
    EXPECT_EQ(std::signbit(y[1]), true) << "tanh(-0)";
  }
}

TEST(VectorKernels, SigmoidMatchesTheCLibraryToAFewUlp) {
  std::vector<float> x = sweep(-110, 110, 220001);
  std::vector<float> y(x.size());
  for (const VectorKernelTable* t : tables()) {
    t->sigmoid(x.data(), y.data(), static_cast<int64_t>(x.size()));
    std::vector<float> want(x.size());
    for (size_t i = 0; i < x.size(); ++i)
      want[i] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(x[i]))));
    // Relative everywhere: sigmoid(-100) is a denormal-free 3.7e-44 only in double; in float it is tiny.
    expect_close(y.data(), want.data(), static_cast<int64_t>(x.size()), 1e-37, 4e-7,
                 std::string(kernels::cpu::isa_name(t->isa)) + " sigmoid");
  }
}

// ---- recurrent cells ---------------------------------------------------------------------------------

// One time step of every cell, each build against the portable one: hidden sizes around the 16-unit
// blocks and both AVX widths, rows past a tile of rows (and in another order than the states), peepholes,
// input_forget, clip, blocks walked backward; a call over some blocks writes only their units.
TEST(VectorKernels, RecurrentStepMatchesThePortableBuildAndKeepsToItsBlocks) {
  using kernels::cpu::kRecurrentBlock;
  using kernels::cpu::RecurrentCell;
  using kernels::cpu::RecurrentRow;
  using kernels::cpu::RecurrentStepArgs;
  const VectorKernelTable& plain = *kernels::cpu::vector_kernels_for(Isa::kScalar);
  std::mt19937 gen(71);
  std::normal_distribution<float> d(0, 1);
  auto fill = [&](std::vector<float>& v, float scale) {
    for (float& f : v) f = scale * d(gen);
  };
  constexpr float kSentinel = 1234.5f;
  for (RecurrentCell cell : {RecurrentCell::kLstm, RecurrentCell::kGruLinearBeforeReset, RecurrentCell::kGruGates,
                             RecurrentCell::kGruCandidate})
    for (int64_t hidden : {1, 7, 8, 16, 17, 33, 40})
      for (int64_t rows : {1, 3, 6})
        for (int variant = 0; variant < 3; ++variant) {
          const int64_t gates = kernels::cpu::recurrent_cell_gates(cell);
          const int64_t blocks = (hidden + kRecurrentBlock - 1) / kRecurrentBlock;
          const int64_t states = rows + 1;  // one state row unused
          std::vector<float> weights(static_cast<size_t>(blocks * hidden * gates * kRecurrentBlock));
          fill(weights, 1.0f / std::sqrt(static_cast<float>(hidden)));
          std::vector<float> xw(static_cast<size_t>(rows * 4 * hidden)), h(static_cast<size_t>(states * hidden)),
              c(h.size()), z(h.size()), reset_h(h.size()), peep(static_cast<size_t>(3 * hidden)),
              h_bias(static_cast<size_t>(hidden));
          for (auto* v : {&xw, &h, &c, &peep, &h_bias}) fill(*v, 1.5f);
          for (float& v : z) v = std::uniform_real_distribution<float>(0, 1)(gen);
          fill(reset_h, 1.0f);
          // Runs the step on `table`; returns every buffer it may write, one after another.
          auto run = [&](const VectorKernelTable& table, int64_t block_begin) {
            std::vector<float> c_io = c, z_io = z, reset_io = reset_h;
            std::vector<float> h_out(h.size(), kSentinel), y(static_cast<size_t>(rows * hidden), kSentinel);
            if (cell == RecurrentCell::kGruGates) std::fill(z_io.begin(), z_io.end(), kSentinel);
            if (cell == RecurrentCell::kGruGates) std::fill(reset_io.begin(), reset_io.end(), kSentinel);
            std::vector<RecurrentRow> row_list;
            for (int64_t r = 0; r < rows; ++r)
              row_list.push_back({xw.data() + r * 4 * hidden, r % 2 == 0 ? y.data() + r * hidden : nullptr,
                                  rows - r});  // states in reverse order, state 0 unused
            RecurrentStepArgs a;
            a.cell = cell;
            a.hidden = hidden;
            a.weights = weights.data();
            a.rows = row_list.data();
            a.row_count = rows;
            a.h = h.data();
            a.h_out = h_out.data();
            a.c = c_io.data();
            a.z = z_io.data();
            a.reset_h = reset_io.data();
            a.peepholes = variant == 1 ? peep.data() : nullptr;
            a.h_bias = h_bias.data();
            a.input_forget = variant == 2;
            a.has_clip = variant == 2;
            a.clip = 1.1f;
            a.reverse_blocks = variant == 1;
            table.recurrent_step(a, block_begin, blocks);
            std::vector<float> out = h_out;
            for (auto* v : {&y, &c_io, &z_io, &reset_io}) out.insert(out.end(), v->begin(), v->end());
            return out;
          };
          for (const VectorKernelTable* t : tables()) {
            const std::string what = std::string(kernels::cpu::isa_name(t->isa)) + " cell " +
                                     std::to_string(static_cast<int>(cell)) + " hidden " + std::to_string(hidden) +
                                     " rows " + std::to_string(rows) + " variant " + std::to_string(variant);
            for (int64_t first_block : {int64_t{0}, blocks - 1}) {
              std::vector<float> want = run(plain, first_block), got = run(*t, first_block);
              expect_close(got.data(), want.data(), static_cast<int64_t>(want.size()), 2e-6, 2e-6,
                           what + " from block " + std::to_string(first_block));
              // h_out: state 0 is no row's, and units before the first block are not the call's.
              const int64_t first_unit = first_block * kRecurrentBlock;
              for (int64_t st = 0; st < states; ++st)
                for (int64_t u = 0; u < (st == 0 ? hidden : first_unit); ++u)
                  ASSERT_EQ(got[static_cast<size_t>(st * hidden + u)], kSentinel)
                      << what << " state " << st << " unit " << u;
            }
          }
        }
}

// ---- LayerNormalization ------------------------------------------------------------------------------

// The reference LayerNormalization over the last dim: Y, Mean, InvStdDev.
std::vector<ir::Tensor> reference_layer_norm(const ir::Tensor& x, const ir::Tensor& gamma, const ir::Tensor* beta,
                                             float epsilon) {
  TestGraph g;
  std::vector<std::string> inputs = {g.input("x", x), g.constant("gamma", gamma)};
  if (beta) inputs.push_back(g.constant("beta", *beta));
  g.node("LayerNormalization", inputs, {"y", "mean", "inv"}, {attr_int("axis", -1), attr_float("epsilon", epsilon)});
  for (const char* out : {"y", "mean", "inv"}) g.output(out);
  return run_reference(g);
}

TEST(VectorKernels, LayerNormMatchesTheReferenceOnEveryShapeWithAndWithoutAnOffset) {
  std::mt19937 gen(11);
  for (int64_t n : kWidths) {
    for (int64_t rows : kRows) {
      // Values ~N(0, 1), and ~N(100, 1) whose large mean float32 statistics must survive.
      float offset = (n + rows) % 2 == 0 ? 100.0f : 0.0f;
      bool with_beta = n % 3 != 0;
      ir::Tensor x = normal(gen, {rows, n}, offset, 1);
      ir::Tensor gamma = uniform(gen, {n}, 0.5f, 1.5f);
      ir::Tensor beta = uniform(gen, {n}, -1, 1);
      std::vector<ir::Tensor> want = reference_layer_norm(x, gamma, with_beta ? &beta : nullptr, 1e-5f);
      for (const VectorKernelTable* t : tables()) {
        ir::Tensor y = tensor({rows, n}), mean = tensor({rows}), inv = tensor({rows});
        LayerNormArgs a;
        a.rows = rows;
        a.n = n;
        a.x = x.data<float>();
        a.gamma = gamma.data<float>();
        a.beta = with_beta ? beta.data<float>() : nullptr;
        a.epsilon = 1e-5f;
        a.y = y.data<float>();
        a.mean = mean.data<float>();
        a.inv_std = inv.data<float>();
        kernels::cpu::layer_norm_f32(a, *t);
        std::string what = "LayerNorm " + shape_name(*t, rows, n) + " offset " + std::to_string(offset);
        expect_close(y, want[0], 1e-5, 1e-5, what + " y");
        expect_close(mean, want[1], 1e-6, 1e-6, what + " mean");
        expect_close(inv, want[2], 0, 1e-5, what + " inv_std");
      }
    }
  }
}

TEST(VectorKernels, LayerNormReadsStridedRowsWritesInPlaceAndTurnsNanOrInfRowsToNan) {
  std::mt19937 gen(12);
  const int64_t rows = 6, n = 33, stride = 40;
  ir::Tensor x = normal(gen, {rows, n});
  x.data<float>()[1 * n + 5] = kNaN;
  x.data<float>()[2 * n + 0] = kInf;
  x.data<float>()[3 * n + 32] = -kInf;
  ir::Tensor gamma = uniform(gen, {n}, 0.5f, 1.5f);
  ir::Tensor beta = uniform(gen, {n}, -1, 1);
  std::vector<ir::Tensor> want = reference_layer_norm(x, gamma, &beta, 1e-5f);
  for (int64_t r : {1, 2, 3})
    for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(std::isnan(want[0].data<float>()[r * n + i])) << "the reference";
  for (const VectorKernelTable* t : tables()) {
    std::vector<float> buffer(rows * stride, -7.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < n; ++i) buffer[r * stride + i] = x.data<float>()[r * n + i];
    LayerNormArgs a;
    a.rows = rows;
    a.n = n;
    a.x = buffer.data();
    a.x_stride = stride;
    a.gamma = gamma.data<float>();
    a.beta = beta.data<float>();
    a.y = buffer.data();
    a.y_stride = stride;
    kernels::cpu::layer_norm_f32(a, *t);
    ir::Tensor y = tensor({rows, n});
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < n; ++i) y.data<float>()[r * n + i] = buffer[r * stride + i];
      for (int64_t i = n; i < stride; ++i) EXPECT_EQ(buffer[r * stride + i], -7.0f) << "wrote past the row";
    }
    expect_close(y, want[0], 1e-5, 1e-5, "LayerNorm strided in place " + shape_name(*t, rows, n));
  }
}

// ---- SkipLayerNormalization --------------------------------------------------------------------------

TEST(VectorKernels, SkipLayerNormMatchesTheReferenceWithEveryOptionalInputAndOutput) {
  std::mt19937 gen(21);
  int variant = 0;
  for (int64_t n : kWidths) {
    for (int64_t rows : kRows) {
      ++variant;
      bool with_bias = variant % 2 == 0, with_beta = variant % 3 != 0, write_sum = variant % 4 != 1;
      ir::Tensor x = normal(gen, {rows, n}, variant % 5 == 0 ? 100.0f : 0.0f, 1);
      ir::Tensor skip = normal(gen, {rows, n});
      ir::Tensor gamma = uniform(gen, {n}, 0.5f, 1.5f);
      ir::Tensor beta = uniform(gen, {n}, -1, 1);
      ir::Tensor bias = uniform(gen, {n}, -1, 1);
      TestGraph g;
      g.contrib("SkipLayerNormalization",
                {g.input("x", x), g.input("skip", skip), g.constant("gamma", gamma),
                 with_beta ? g.constant("beta", beta) : "", with_bias ? g.constant("bias", bias) : ""},
                {"y", "mean", "inv", "sum"}, {attr_float("epsilon", 1e-12f)});
      for (const char* out : {"y", "mean", "inv", "sum"}) g.output(out);
      std::vector<ir::Tensor> want = run_reference(g);
      for (const VectorKernelTable* t : tables()) {
        ir::Tensor y = tensor({rows, n}), mean = tensor({rows}), inv = tensor({rows}), sum = tensor({rows, n});
        LayerNormArgs a;
        a.rows = rows;
        a.n = n;
        a.x = x.data<float>();
        a.skip = skip.data<float>();
        a.bias = with_bias ? bias.data<float>() : nullptr;
        a.gamma = gamma.data<float>();
        a.beta = with_beta ? beta.data<float>() : nullptr;
        a.epsilon = 1e-12f;
        a.y = y.data<float>();
        a.sum = write_sum ? sum.data<float>() : nullptr;
        a.mean = mean.data<float>();
        a.inv_std = inv.data<float>();
        kernels::cpu::layer_norm_f32(a, *t);
        std::string what = "SkipLayerNorm " + shape_name(*t, rows, n);
        expect_close(y, want[0], 1e-5, 1e-5, what + " y");
        expect_close(mean, want[1], 1e-6, 1e-6, what + " mean");
        expect_close(inv, want[2], 0, 1e-5, what + " inv_std");
        // The sum is formed in float32 in the reference's order: bit for bit.
        if (write_sum) expect_close(sum, want[3], 0, 0, what + " sum");
      }
    }
  }
}

TEST(VectorKernels, SkipLayerNormBroadcastsASequenceSkipOverTheBatch) {
  std::mt19937 gen(22);
  const int64_t batch = 3, seq = 7, n = 768;
  ir::Tensor x = normal(gen, {batch, seq, n});
  ir::Tensor skip = normal(gen, {seq, n});
  ir::Tensor gamma = uniform(gen, {n}, 0.5f, 1.5f);
  ir::Tensor beta = uniform(gen, {n}, -1, 1);
  ir::Tensor bias = uniform(gen, {n}, -1, 1);
  TestGraph g;
  g.contrib("SkipLayerNormalization",
            {g.input("x", x), g.input("skip", skip), g.constant("gamma", gamma), g.constant("beta", beta),
             g.constant("bias", bias)},
            {"y", "", "", "sum"});
  g.output("y");
  g.output("sum");
  std::vector<ir::Tensor> want = run_reference(g);
  for (const VectorKernelTable* t : tables()) {
    ir::Tensor y = tensor({batch, seq, n}), sum = tensor({batch, seq, n});
    LayerNormArgs a;
    a.rows = batch * seq;
    a.n = n;
    a.x = x.data<float>();
    a.skip = skip.data<float>();
    a.skip_rows = seq;
    a.bias = bias.data<float>();
    a.gamma = gamma.data<float>();
    a.beta = beta.data<float>();
    a.epsilon = 1e-12f;
    a.y = y.data<float>();
    a.sum = sum.data<float>();
    kernels::cpu::layer_norm_f32(a, *t);
    expect_close(y, want[0], 1e-5, 1e-5, "SkipLayerNorm broadcast skip " + shape_name(*t, batch * seq, n));
    expect_close(sum, want[1], 0, 0, "SkipLayerNorm broadcast skip sum " + shape_name(*t, batch * seq, n));
  }
}

// ---- GELU --------------------------------------------------------------------------------------------

// Uniform in [-6, 6] with NaN, infinities, zeros and large values sprinkled in.
ir::Tensor gelu_input(std::mt19937& gen, int64_t rows, int64_t n) {
  ir::Tensor x = uniform(gen, {rows, n}, -6, 6);
  const float specials[] = {kNaN, kInf, -kInf, 0.0f, -0.0f, 1e4f, -1e4f, 30.0f, -30.0f, 1e-30f};
  for (int64_t i = 0; i < x.numel(); i += 13) x.data<float>()[i] = specials[(i / 13) % 10];
  return x;
}

TEST(VectorKernels, GeluVariantsMatchTheReferenceOpsToAMillionth) {
  std::mt19937 gen(31);
  int variant = 0;
  for (int64_t n : kWidths) {
    for (int64_t rows : kRows) {
      ++variant;
      ir::Tensor x = gelu_input(gen, rows, n);
      ir::Tensor bias = uniform(gen, {n}, -1, 1);
      // Gelu; BiasGelu; FastGelu with a bias on odd variants, without on even ones.
      bool fast_bias = variant % 2 == 1;
      TestGraph g;
      std::string xi = g.input("x", x), bi = g.constant("bias", bias);
      g.contrib("Gelu", {xi}, {"gelu"});
      g.contrib("BiasGelu", {xi, bi}, {"bias_gelu"});
      g.contrib("FastGelu", {xi, fast_bias ? bi : ""}, {"fast_gelu"});
      for (const char* out : {"gelu", "bias_gelu", "fast_gelu"}) g.output(out);
      std::vector<ir::Tensor> want = run_reference(g);
      for (const VectorKernelTable* t : tables()) {
        ir::Tensor y = tensor({rows, n});
        std::string what = shape_name(*t, rows, n);
        kernels::cpu::gelu_f32(GeluKind::kErf, x.data<float>(), nullptr, y.data<float>(), rows, n, *t);
        expect_close(y, want[0], 1e-6, 1e-6, "Gelu " + what);
        kernels::cpu::gelu_f32(GeluKind::kErf, x.data<float>(), bias.data<float>(), y.data<float>(), rows, n, *t);
        expect_close(y, want[1], 1e-6, 1e-6, "BiasGelu " + what);
        kernels::cpu::gelu_f32(GeluKind::kTanh, x.data<float>(), fast_bias ? bias.data<float>() : nullptr,
                               y.data<float>(), rows, n, *t);
        expect_close(y, want[2], 1e-6, 1e-6, "FastGelu " + what);
      }
    }
  }
}

// ---- softmax -----------------------------------------------------------------------------------------

TEST(VectorKernels, SoftmaxMatchesTheReferenceOpIncludingInfinityAndNanRows) {
  std::mt19937 gen(41);
  for (int64_t n : kWidths) {
    for (int64_t rows : kRows) {
      // Scores spread over +-20 around an offset, so that max subtraction matters.
      float offset = n % 2 == 0 ? 1000.0f : 0.0f;
      ir::Tensor x = uniform(gen, {rows, n}, offset - 20, offset + 20);
      float* v = x.data<float>();
      if (rows >= 7) {
        v[1 * n + n / 2] = -kInf;                              // a masked score: 0
        v[2 * n + n - 1] = kNaN;                               // NaN row
        v[3 * n + 0] = kInf;                                   // +inf row: NaN, as the reference
        for (int64_t i = 0; i < n; ++i) v[4 * n + i] = -kInf;  // all masked: NaN, as the reference
      }
      TestGraph g;
      g.node("Softmax", {g.input("x", x)}, {"y"}, {attr_int("axis", -1)});
      g.output("y");
      ir::Tensor want = run_reference(g)[0];
      for (const VectorKernelTable* t : tables()) {
        ir::Tensor y = tensor({rows, n});
        SoftmaxArgs a;
        a.rows = rows;
        a.n = n;
        a.x = x.data<float>();
        a.y = y.data<float>();
        kernels::cpu::softmax_f32(a, *t);
        expect_close(y, want, 1e-6, 0, "Softmax " + shape_name(*t, rows, n));
      }
    }
  }
}

// softmax(scale * x + mask) in double, row r reading mask row r / group.
std::vector<float> masked_softmax(const std::vector<float>& x, const std::vector<float>& mask, int64_t rows, int64_t n,
                                  float scale, int64_t group) {
  std::vector<float> y(x.size());
  std::vector<double> t(n);
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) {
      t[i] = static_cast<double>(x[r * n + i]) * scale + mask[(r / group) * n + i];
      mx = std::max(mx, t[i]);
    }
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(t[i] - mx);
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = static_cast<float>(std::exp(t[i] - mx) / sum);
  }
  return y;
}

TEST(VectorKernels, ScaledSoftmaxWithAnAttentionMaskMatchesADoubleLoopAndRunsInPlace) {
  std::mt19937 gen(42);
  // Attention scores [batch, heads, q, k] with a [batch, k] mask of 0 and -10000 (BERT) or -inf.
  for (int64_t k : {1, 7, 16, 33, 128}) {
    const int64_t batch = 2, heads = 3, q = 5, rows = batch * heads * q;
    std::uniform_real_distribution<float> score(-30, 30);
    std::vector<float> x(rows * k), mask(batch * k);
    for (float& v : x) v = score(gen);
    for (int64_t i = 0; i < batch * k; ++i) mask[i] = (i % 5 == 3) ? (i % 2 ? -10000.0f : -kInf) : 0.0f;
    mask[0] = 0;  // at least one unmasked key a batch
    mask[k] = 0;
    std::vector<float> want = masked_softmax(x, mask, rows, k, 0.125f, heads * q);
    for (const VectorKernelTable* t : tables()) {
      std::vector<float> y = x;
      SoftmaxArgs a;
      a.rows = rows;
      a.n = k;
      a.x = y.data();
      a.y = y.data();
      a.scale = 0.125f;
      a.mask = mask.data();
      a.mask_group = heads * q;
      kernels::cpu::softmax_f32(a, *t);
      expect_close(y.data(), want.data(), rows * k, 1e-6, 0, "masked softmax in place " + shape_name(*t, rows, k));
    }
  }
}

// ---- Add, Mul ----------------------------------------------------------------------------------------

TEST(VectorKernels, AddAndMulMatchTheReferenceBitForBitForSameShapeRowAndScalarOperands) {
  std::mt19937 gen(51);
  for (int64_t n : kWidths) {
    for (int64_t rows : {int64_t{1}, int64_t{7}, int64_t{128}}) {
      ir::Tensor a = uniform(gen, {rows, n}, -10, 10);
      a.data<float>()[0] = kNaN;
      a.data<float>()[a.numel() - 1] = kInf;
      // b the same shape as a, a row vector, a scalar.
      std::vector<ir::Tensor> bs = {uniform(gen, {rows, n}, -10, 10), uniform(gen, {n}, -10, 10),
                                    uniform(gen, {1}, -10, 10)};
      TestGraph g;
      std::string ai = g.input("a", a);
      std::vector<std::string> outputs;
      for (size_t j = 0; j < bs.size(); ++j) {
        // Fixed names: GCC 12 -O3 reports a false -Wstringop-overflow for "b" + std::to_string(j) here.
        const char* const kB[] = {"b0", "b1", "b2"};
        const char* const kOut[][2] = {{"Add0", "Mul0"}, {"Add1", "Mul1"}, {"Add2", "Mul2"}};
        std::string bj = g.input(kB[j], bs[j]);
        for (int k = 0; k < 2; ++k) {
          outputs.push_back(kOut[j][k]);
          g.node(k == 0 ? "Add" : "Mul", {ai, bj}, {outputs.back()});
          g.output(outputs.back());
        }
      }
      std::vector<ir::Tensor> want = run_reference(g);
      for (const VectorKernelTable* t : tables()) {
        for (size_t j = 0; j < bs.size(); ++j) {
          for (auto [k, op] : {std::pair{0, BinaryOp::kAdd}, std::pair{1, BinaryOp::kMul}}) {
            ir::Tensor y = a.clone();  // in place: y is a
            kernels::cpu::binary_f32(op, y.data<float>(), bs[j].data<float>(), bs[j].numel(), y.data<float>(),
                                     a.numel(), *t);
            expect_close(
                y, want[2 * j + k], 0, 0,
                outputs[2 * j + k] + " with b of " + std::to_string(bs[j].numel()) + " " + shape_name(*t, rows, n));
          }
        }
      }
    }
  }
}

// ---- row tails ---------------------------------------------------------------------------------------

// `count` floats that end where an inaccessible page begins: a kernel that reads or writes past the end of
// its data faults, where a heap buffer's slack would let it pass.
class PageEndFloats {
 public:
  explicit PageEndFloats(int64_t count) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t bytes = (static_cast<size_t>(count) * sizeof(float) + page - 1) / page * page;
    size_ = bytes + page;
    void* base = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    KILN_CHECK(base != MAP_FAILED, "PageEndFloats: mmap of ", size_, " bytes failed");
    base_ = static_cast<char*>(base);
    KILN_CHECK(mprotect(base_ + bytes, page, PROT_NONE) == 0, "PageEndFloats: mprotect failed");
    data_ = reinterpret_cast<float*>(base_ + bytes) - count;
  }
  PageEndFloats(const PageEndFloats&) = delete;
  PageEndFloats& operator=(const PageEndFloats&) = delete;
  ~PageEndFloats() { munmap(base_, size_); }
  float* data() { return data_; }

 private:
  char* base_ = nullptr;
  size_t size_ = 0;
  float* data_ = nullptr;
};

// Column sums of strided rows (a channels-last global pool): within (kColumnSumBlock + rows / kColumnSumBlock)
// float32 roundings of the sum of magnitudes of a double loop, on every ISA; nothing past the n columns of
// any row read or written (the last row ends at an inaccessible page; the columns past n hold NaN).
TEST(VectorKernels, ColumnSumsMatchADoubleLoopAndKeepToTheirColumns) {
  std::mt19937 gen(77);
  std::uniform_real_distribution<float> dist(-3.0f, 5.0f);
  for (int64_t n : {1, 15, 16, 17, 32, 63, 64, 65, 144, 1000}) {
    for (int64_t rows : {1, 7, 64, 65, 3136}) {
      const int64_t stride = n + 3;
      std::vector<float> x(static_cast<size_t>(rows * stride), kNaN);
      for (int64_t k = 0; k < rows; ++k)
        for (int64_t j = 0; j < n; ++j) x[static_cast<size_t>(k * stride + j)] = dist(gen);
      std::vector<double> want(static_cast<size_t>(n), 0.0), magnitude(static_cast<size_t>(n), 0.0);
      for (int64_t k = 0; k < rows; ++k)
        for (int64_t j = 0; j < n; ++j) {
          want[static_cast<size_t>(j)] += x[static_cast<size_t>(k * stride + j)];
          magnitude[static_cast<size_t>(j)] += std::fabs(x[static_cast<size_t>(k * stride + j)]);
        }
      const double roundings = static_cast<double>(kernels::cpu::kColumnSumBlock + rows / kernels::cpu::kColumnSumBlock + 1);
      for (const VectorKernelTable* t : tables()) {
        // The last row's n columns end the buffer: the page after them is not readable.
        PageEndFloats data((rows - 1) * stride + n);
        std::copy_n(x.data(), (rows - 1) * stride + n, data.data());
        PageEndFloats y(n);
        kernels::cpu::column_sums_f32(data.data(), rows, stride, n, y.data(), *t);
        for (int64_t j = 0; j < n; ++j)
          ASSERT_NEAR(y.data()[j], want[static_cast<size_t>(j)], roundings * 6e-8 * magnitude[static_cast<size_t>(j)])
              << shape_name(*t, rows, n) << " column " << j;
      }
    }
  }
}

// A [rows, k] matrix times a vector: within k float32 roundings of the sum of magnitudes of a double loop,
// on every ISA, at every row count around the four-row blocks and every tail length around a vector;
// nothing read past the matrix (its last row ends at an inaccessible page) or written past y.
TEST(VectorKernels, DotRowsMatchADoubleLoop) {
  std::mt19937 gen(78);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (int64_t k : {1, 7, 16, 17, 33, 48, 1152}) {
    for (int64_t rows : {1, 3, 4, 5, 9, 48, 1000}) {
      std::vector<float> w(static_cast<size_t>(rows * k)), x(static_cast<size_t>(k));
      for (float& v : w) v = dist(gen);
      for (float& v : x) v = dist(gen);
      for (const VectorKernelTable* t : tables()) {
        PageEndFloats wp(rows * k), xp(k), y(rows);
        std::copy(w.begin(), w.end(), wp.data());
        std::copy(x.begin(), x.end(), xp.data());
        kernels::cpu::dot_rows_f32(wp.data(), k, xp.data(), rows, y.data(), *t);
        for (int64_t i = 0; i < rows; ++i) {
          double want = 0, magnitude = 0;
          for (int64_t j = 0; j < k; ++j) {
            want += static_cast<double>(w[static_cast<size_t>(i * k + j)]) * x[static_cast<size_t>(j)];
            magnitude += std::fabs(static_cast<double>(w[static_cast<size_t>(i * k + j)]) * x[static_cast<size_t>(j)]);
          }
          ASSERT_NEAR(y.data()[i], want, static_cast<double>(k + 1) * 6e-8 * magnitude) << shape_name(*t, rows, k) << " row " << i;
        }
      }
    }
  }
}

// A repeating row b (a broadcast over the last axis) from any element on: a thread's range starts and ends
// mid-row; rows of 1 to 5 vectors (held in registers up to 4) and longer. Exact, as the portable build.
TEST(VectorKernels, BinaryWithARepeatingRowMatchesThePortableBuildOverAnyRange) {
  const VectorKernelTable& plain = *kernels::cpu::vector_kernels_for(Isa::kScalar);
  std::mt19937 gen(67);
  std::normal_distribution<float> d(0, 3);
  for (int64_t b_len : {2, 7, 16, 24, 32, 33, 48, 63, 64, 65, 80, 144}) {
    const int64_t count = 5 * b_len + 3;
    std::vector<float> a(static_cast<size_t>(count)), b(static_cast<size_t>(b_len));
    for (float& v : a) v = d(gen);
    for (float& v : b) v = d(gen);
    for (const VectorKernelTable* t : tables()) {
      for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, count},
                                {3, count - 1},
                                {b_len, 3 * b_len},
                                {b_len - 1, 2 * b_len + 1},
                                {1, 2}}) {
        for (BinaryOp op : {BinaryOp::kAdd, BinaryOp::kMul}) {
          std::vector<float> want(static_cast<size_t>(count), -1.0f), got(want);
          plain.binary(op, a.data(), b.data(), b_len, want.data(), begin, end);
          t->binary(op, a.data(), b.data(), b_len, got.data(), begin, end);
          ASSERT_EQ(got, want) << isa_name(t->isa) << " b_len " << b_len << " [" << begin << ", " << end << ")";
        }
      }
    }
  }
}

TEST(VectorKernels, EveryKernelKeepsToItsRowsAtEveryTailLengthAndMatchesThePortableBuild) {
  // Up to two AVX-512 vectors and one more: every tail length of both SIMD builds, with and without
  // whole vectors before it. Two rows, the second ending at a page end; the first's tail would read the
  // second's values, and change its result, if a kernel read past its row.
  constexpr int64_t kWidestVector = 16;
  const int64_t rows = 2;
  const VectorKernelTable& plain = *kernels::cpu::vector_kernels_for(Isa::kScalar);
  std::mt19937 gen(61);
  std::normal_distribution<float> d(0, 3);
  for (int64_t n = 0; n <= 2 * kWidestVector + 1; ++n) {
    const int64_t count = rows * n;
    PageEndFloats x(count), other(count), mask(count), bias(n), gamma(n), beta(n);
    for (PageEndFloats* p : {&x, &other, &mask, &bias, &gamma, &beta})
      for (int64_t i = 0; i < (p == &bias || p == &gamma || p == &beta ? n : count); ++i) p->data()[i] = d(gen);
    for (const VectorKernelTable* t : tables()) {
      const std::string what = shape_name(*t, rows, n);
      // Runs `run` on the portable build and on t, each writing `count` floats; compares them.
      auto check = [&](const std::string& name, double abs_tol, double rel_tol,
                       const std::function<void(const VectorKernelTable&, float*)>& run) {
        std::vector<float> want(static_cast<size_t>(count));
        PageEndFloats got(count);
        run(plain, want.data());
        run(*t, got.data());
        expect_close(got.data(), want.data(), count, abs_tol, rel_tol, name + " " + what);
      };
      check("exp", 0, 1e-6, [&](const VectorKernelTable& k, float* y) { k.exp(x.data(), y, count); });
      check("erf", 2e-7, 2e-7, [&](const VectorKernelTable& k, float* y) { k.erf(x.data(), y, count); });
      check("tanh", 1e-7, 3e-7, [&](const VectorKernelTable& k, float* y) { k.tanh(x.data(), y, count); });
      for (GeluKind kind : {GeluKind::kErf, GeluKind::kTanh}) {
        for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
          check(
              std::string(kind == GeluKind::kErf ? "Gelu" : "FastGelu") + (b ? " with bias" : ""), 1e-6, 1e-6,
              [&](const VectorKernelTable& k, float* y) { kernels::cpu::gelu_f32(kind, x.data(), b, y, rows, n, k); });
        }
      }
      for (BinaryOp op : {BinaryOp::kAdd, BinaryOp::kMul}) {
        for (int64_t b_len : {int64_t{1}, n, count}) {
          if (b_len == 0) continue;
          check(std::string(op == BinaryOp::kAdd ? "Add" : "Mul") + " b_len " + std::to_string(b_len), 0, 0,
                [&](const VectorKernelTable& k, float* y) {
                  kernels::cpu::binary_f32(op, x.data(), other.data(), b_len, y, count, k);
                });
        }
      }
      auto layer_norm = [&](bool skip) {
        LayerNormArgs a;
        a.rows = rows;
        a.n = n;
        a.x = x.data();
        a.gamma = gamma.data();
        a.beta = beta.data();
        if (skip) {
          a.skip = other.data();
          a.bias = bias.data();
        }
        return a;
      };
      check("LayerNorm", 1e-5, 1e-5, [&](const VectorKernelTable& k, float* y) {
        LayerNormArgs a = layer_norm(false);
        a.y = y;
        kernels::cpu::layer_norm_f32(a, k);
      });
      check("SkipLayerNorm", 1e-5, 1e-5, [&](const VectorKernelTable& k, float* y) {
        LayerNormArgs a = layer_norm(true);
        a.y = y;
        kernels::cpu::layer_norm_f32(a, k);
      });
      check("SkipLayerNorm sum", 0, 0, [&](const VectorKernelTable& k, float* sum) {
        PageEndFloats y(count);
        LayerNormArgs a = layer_norm(true);
        a.y = y.data();
        a.sum = sum;
        kernels::cpu::layer_norm_f32(a, k);
      });
      for (bool masked : {false, true}) {
        check(masked ? "scaled, masked softmax" : "Softmax", 1e-6, 0, [&](const VectorKernelTable& k, float* y) {
          SoftmaxArgs a;
          a.rows = rows;
          a.n = n;
          a.x = x.data();
          a.y = y;
          if (masked) {
            a.scale = 0.3f;
            a.mask = mask.data();
          }
          kernels::cpu::softmax_f32(a, k);
        });
      }
    }
  }
}

}  // namespace
}  // namespace kiln::testing::vector_kernels

// PackedMatMul (oneDNN matmul, or kiln's panel GEMM, with weights packed once) against a plain
// double-accumulated loop, over odd and BERT-sized shapes, every post-op, bias, residual, alpha, strides,
// the per-M primitive cache and concurrent calls. Each numeric test runs every engine this CPU has.
#include "kernels/cpu/onednn_matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/cpu/onednn_engine.h"
#include "kernels/cpu/panel_gemm.h"
#include "test_util.h"

namespace kiln::kernels::cpu {
namespace {

// oneDNN always; the panel GEMM where the CPU has AVX2.
std::vector<GemmEngine> engines() {
  std::vector<GemmEngine> all = {GemmEngine::kOneDnn};
  if (panel_gemm_supported()) all.push_back(GemmEngine::kPanel);
  return all;
}

const char* engine_name(GemmEngine e) { return e == GemmEngine::kPanel ? "panel" : "onednn"; }

std::vector<float> random_floats(size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

double apply_post(PostOp post, double x) {
  switch (post) {
    case PostOp::kNone:
      return x;
    case PostOp::kRelu:
      return x > 0 ? x : 0;
    case PostOp::kGeluErf:
      return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case PostOp::kGeluTanh:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
  }
  return x;
}

// One problem: inputs with their strides, and the reference answer with an error bound per element.
struct Problem {
  MatMulSpec spec;
  int64_t m = 0, lda = 0, ldy = 0, ldr = 0;
  std::vector<float> a, b, bias, residual;
  std::vector<double> want, bound;  // dense [m, n]
  bool bf16 = false;

  double operand(float v) const { return bf16 ? bfloat16_bits_to_float(float_to_bfloat16_bits(v)) : v; }

  // With bf16_operands, the reference multiplies A and B rounded to bfloat16 (as spec.bf16 computes where
  // bf16_matmul_is_fast()): exact products of the rounded values, summed as precisely as float32's.
  Problem(const MatMulSpec& s, int64_t m_, std::mt19937& rng, int64_t pad = 0, bool bf16_operands = false)
      : spec(s), m(m_), bf16(bf16_operands) {
    lda = spec.k + pad;
    ldy = spec.n + pad;
    ldr = spec.add_residual ? spec.n + pad : 0;
    a = random_floats(static_cast<size_t>(std::max<int64_t>(m * lda, 1)), rng);
    b = random_floats(static_cast<size_t>(spec.k * spec.n), rng);
    if (spec.has_bias) bias = random_floats(static_cast<size_t>(spec.n), rng);
    if (spec.add_residual) residual = random_floats(static_cast<size_t>(std::max<int64_t>(m * ldr, 1)), rng);
    compute_reference();
  }

  void compute_reference() {
    const int64_t n = spec.n, k = spec.k;
    // B as a dense [K,N] so that the inner loop walks rows (a transposed B read by columns is slow).
    std::vector<double> b_kn(static_cast<size_t>(k * n));
    for (int64_t p = 0; p < k; ++p) {
      for (int64_t j = 0; j < n; ++j) {
        b_kn[static_cast<size_t>(p * n + j)] =
            operand(spec.trans_b ? b[static_cast<size_t>(j * k + p)] : b[static_cast<size_t>(p * n + j)]);
      }
    }
    want.assign(static_cast<size_t>(m * n), 0.0);
    bound.assign(static_cast<size_t>(m * n), 0.0);
    std::vector<double> acc_row(static_cast<size_t>(n)), magnitude_row(static_cast<size_t>(n));
    for (int64_t i = 0; i < m; ++i) {
      std::fill(acc_row.begin(), acc_row.end(), 0.0);
      std::fill(magnitude_row.begin(), magnitude_row.end(), 0.0);
      for (int64_t p = 0; p < k; ++p) {
        const double av = operand(a[static_cast<size_t>(i * lda + p)]);
        const double* brow = b_kn.data() + p * n;
        for (int64_t j = 0; j < n; ++j) {
          const double term = av * brow[j];
          acc_row[static_cast<size_t>(j)] += term;
          magnitude_row[static_cast<size_t>(j)] += std::abs(term);
        }
      }
      for (int64_t j = 0; j < n; ++j) {
        double acc = acc_row[static_cast<size_t>(j)] * spec.alpha;
        double magnitude = magnitude_row[static_cast<size_t>(j)] * std::abs(spec.alpha);
        if (spec.has_bias) {
          acc += bias[static_cast<size_t>(j)];
          magnitude += std::abs(bias[static_cast<size_t>(j)]);
        }
        double out = apply_post(spec.post, acc);
        if (spec.add_residual) {
          const double r = residual[static_cast<size_t>(i * ldr + j)];
          out += r;
          magnitude += std::abs(r);
        }
        // fp32 accumulation in any order errs by at most ~K * 2^-24 * sum |a b| (2x margin, plus the
        // rounding of alpha into B and of bias and residual adds); the post-ops' slopes are at most
        // ~1.13, and oneDNN's GELU approximations add a little relative error.
        want[static_cast<size_t>(i * n + j)] = out;
        bound[static_cast<size_t>(i * n + j)] =
            2.5e-7 * static_cast<double>(k + 8) * magnitude + 1e-5 * std::abs(out) + 1e-6;
      }
    }
  }
};

// Runs `mm` on `p` into a y with padding filled with a sentinel; checks values and that padding is untouched.
void expect_matches(const PackedMatMul& mm, const Problem& p, const std::string& what) {
  constexpr float kSentinel = 12345.0f;
  std::vector<float> y(static_cast<size_t>(std::max<int64_t>(p.m * p.ldy, 1)), kSentinel);
  mm.run(p.m, p.a.data(), p.lda, y.data(), p.ldy, p.spec.add_residual ? p.residual.data() : nullptr, p.ldr);
  int failures = 0;
  for (int64_t i = 0; i < p.m && failures < 5; ++i) {
    for (int64_t j = 0; j < p.ldy && failures < 5; ++j) {
      const float got = y[static_cast<size_t>(i * p.ldy + j)];
      if (j >= p.spec.n) {
        if (got != kSentinel) {
          ++failures;
          ADD_FAILURE() << what << ": wrote padding at row " << i << " col " << j;
        }
        continue;
      }
      const double want = p.want[static_cast<size_t>(i * p.spec.n + j)];
      const double bound = p.bound[static_cast<size_t>(i * p.spec.n + j)];
      if (!(std::abs(got - want) <= bound)) {
        ++failures;
        ADD_FAILURE() << what << ": y[" << i << "," << j << "] = " << got << ", want " << want << " (bound " << bound
                      << ")";
      }
    }
  }
}

std::string describe(const MatMulSpec& s, int64_t m) {
  return str(engine_name(s.engine), " M=", m, " K=", s.k, " N=", s.n, " trans_b=", s.trans_b, " bias=", s.has_bias,
             " post=", static_cast<int>(s.post), " residual=", s.add_residual, " alpha=", s.alpha);
}

TEST(OneDnnMatMul, ReportsIsa) {
  const std::string isa = onednn_isa_name();
  EXPECT_NE(isa, "unknown");
  std::cout << "oneDNN CPU ISA: " << isa << "\n";
}

TEST(OneDnnMatMul, MatchesReferenceOverShapes) {
  std::mt19937 rng(7);
  const int64_t big = testing::kSanitizeBuild ? 160 : 768;
  int index = 0;
  for (int64_t m : {1, 3, 17, 128}) {
    for (int64_t k : {int64_t{1}, int64_t{7}, int64_t{64}, big}) {
      for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{33}, big}) {
        for (bool trans_b : {false, true}) {
          MatMulSpec spec;
          spec.k = k;
          spec.n = n;
          spec.trans_b = trans_b;
          spec.has_bias = (index++ % 3) != 0;
          Problem p(spec, m, rng);
          for (GemmEngine engine : engines()) {
            spec.engine = engine;
            PackedMatMul mm(spec, p.b.data(), p.bias.data());
            EXPECT_EQ(mm.engine(), engine);
            expect_matches(mm, p, describe(spec, m));
          }
        }
      }
    }
  }
}

TEST(OneDnnMatMul, PostOpsBiasResidualAlpha) {
  std::mt19937 rng(11);
  struct Shape {
    int64_t m, k, n;
  };
  std::vector<Shape> shapes = {{3, 7, 5}, {17, 64, 33}};
  shapes.push_back(testing::kSanitizeBuild ? Shape{32, 96, 80} : Shape{128, 160, 96});
  for (const Shape& s : shapes) {
    for (PostOp post : {PostOp::kNone, PostOp::kRelu, PostOp::kGeluErf, PostOp::kGeluTanh}) {
      for (bool residual : {false, true}) {
        for (float alpha : {1.0f, 0.125f}) {
          MatMulSpec spec;
          spec.k = s.k;
          spec.n = s.n;
          spec.post = post;
          spec.has_bias = alpha == 1.0f || residual;
          spec.add_residual = residual;
          spec.alpha = alpha;
          spec.trans_b = post == PostOp::kGeluTanh;
          Problem p(spec, s.m, rng);
          for (GemmEngine engine : engines()) {
            spec.engine = engine;
            PackedMatMul mm(spec, p.b.data(), p.bias.data());
            expect_matches(mm, p, describe(spec, s.m));
          }
        }
      }
    }
  }
}

TEST(OneDnnMatMul, LeadingDimensionsLargerThanRows) {
  std::mt19937 rng(13);
  for (bool residual : {false, true}) {
    MatMulSpec spec;
    spec.k = 37;
    spec.n = 29;
    spec.has_bias = true;
    spec.post = PostOp::kGeluErf;
    spec.add_residual = residual;
    Problem p(spec, 19, rng, /*pad=*/11);
    for (GemmEngine engine : engines()) {
      spec.engine = engine;
      PackedMatMul mm(spec, p.b.data(), p.bias.data());
      expect_matches(mm, p, "padded " + describe(spec, p.m));
    }
  }
}

// Rows of 4 KiB (N = 1024) get a padded leading dimension where oneDNN wants plain weights; two row
// counts run on the one packing (the second primitive takes the padded layout as given).
TEST(OneDnnMatMul, WeightRowsOfFourKiB) {
  std::mt19937 rng(23);
  for (bool trans_b : {false, true}) {
    MatMulSpec spec;
    spec.k = 40;
    spec.n = 1024;
    spec.has_bias = true;
    spec.trans_b = trans_b;
    spec.alpha = 2.0f;
    spec.engine = GemmEngine::kOneDnn;
    Problem p17(spec, 17, rng);
    Problem p1(spec, 1, rng);
    p1.b = p17.b;
    p1.bias = p17.bias;
    p1.compute_reference();
    PackedMatMul mm(spec, p17.b.data(), p17.bias.data());
    EXPECT_GE(mm.packed_bytes(), static_cast<size_t>(spec.k * spec.n + spec.n) * sizeof(float));
    expect_matches(mm, p17, describe(spec, 17));
    expect_matches(mm, p1, describe(spec, 1));
  }
}

TEST(OneDnnMatMul, CachesPrimitivesPerRowCountAndEvictsOldest) {
  std::mt19937 rng(17);
  MatMulSpec spec;
  spec.k = 48;
  spec.n = 40;
  spec.has_bias = true;
  spec.post = PostOp::kRelu;
  spec.engine = GemmEngine::kOneDnn;
  const std::vector<float> b = random_floats(static_cast<size_t>(spec.k * spec.n), rng);
  const std::vector<float> bias = random_floats(static_cast<size_t>(spec.n), rng);
  PackedMatMul mm(spec, b.data(), bias.data());
  const size_t after_pack = mm.cached_primitives();
  EXPECT_LE(after_pack, 1u);
  EXPECT_GE(mm.packed_bytes(), static_cast<size_t>(spec.k * spec.n + spec.n) * sizeof(float));

  auto check = [&](int64_t m) {
    Problem p(spec, m, rng);
    p.b = b;
    p.bias = bias;
    p.compute_reference();
    expect_matches(mm, p, describe(spec, m));
  };
  check(5);
  check(128);
  check(5);  // a second M, then the first again: both from the cache
  EXPECT_EQ(mm.cached_primitives(), 2u);
  EXPECT_EQ(mm.prepare(5, spec.k, spec.n), mm.prepare(5, spec.k, spec.n));
  EXPECT_EQ(mm.cached_primitives(), 2u);
  // More row counts than the cache holds: it stays bounded and answers stay right after eviction.
  for (int64_t m = 1; m <= static_cast<int64_t>(PackedMatMul::kMaxCachedPrimitives) + 4; ++m) check(m);
  EXPECT_EQ(mm.cached_primitives(), PackedMatMul::kMaxCachedPrimitives);
  check(128);
  check(3);
  EXPECT_EQ(mm.cached_primitives(), PackedMatMul::kMaxCachedPrimitives);
}

TEST(OneDnnMatMul, ConcurrentRunsFromTwoThreads) {
  std::mt19937 rng(19);
  MatMulSpec spec;
  spec.k = testing::kSanitizeBuild ? 96 : 256;
  spec.n = testing::kSanitizeBuild ? 80 : 192;
  spec.has_bias = true;
  spec.post = PostOp::kGeluErf;
  spec.add_residual = true;
  Problem p1(spec, 33, rng);
  Problem p2(spec, 64, rng);
  p2.b = p1.b;
  p2.bias = p1.bias;
  p2.compute_reference();
  for (GemmEngine engine : engines()) {
    spec.engine = engine;
    PackedMatMul mm(spec, p1.b.data(), p1.bias.data());
    const int iterations = testing::kSanitizeBuild ? 5 : 20;
    auto worker = [&](const Problem& p, std::vector<float>& y) {
      for (int it = 0; it < iterations; ++it) mm.run(p.m, p.a.data(), p.lda, y.data(), p.ldy, p.residual.data(), p.ldr);
    };
    std::vector<float> y1(static_cast<size_t>(p1.m * p1.ldy)), y2(static_cast<size_t>(p2.m * p2.ldy));
    std::thread t1(worker, std::cref(p1), std::ref(y1));
    std::thread t2(worker, std::cref(p2), std::ref(y2));
    t1.join();
    t2.join();
    for (auto [p, y] : {std::pair<const Problem*, std::vector<float>*>{&p1, &y1}, {&p2, &y2}}) {
      for (size_t i = 0; i < p->want.size(); ++i) {
        ASSERT_LE(std::abs((*y)[i] - p->want[i]), p->bound[i])
            << engine_name(engine) << " M=" << p->m << " element " << i;
      }
    }
  }
}

// Calls of one shape at once share a primitive but never the memory objects it is bound to: each call
// takes its own set (a second one is made the first time two calls overlap), so each y gets its own A.
TEST(OneDnnMatMul, ConcurrentRunsOfOneShape) {
  std::mt19937 rng(23);
  MatMulSpec spec;
  spec.k = testing::kSanitizeBuild ? 96 : 256;
  spec.n = testing::kSanitizeBuild ? 80 : 192;
  spec.has_bias = true;
  spec.post = PostOp::kRelu;
  spec.add_residual = true;
  Problem p1(spec, 40, rng);
  Problem p2(spec, 40, rng);
  p2.b = p1.b;
  p2.bias = p1.bias;
  p2.compute_reference();
  for (GemmEngine engine : engines()) {
    spec.engine = engine;
    PackedMatMul mm(spec, p1.b.data(), p1.bias.data());
    mm.prepare(p1.m, p1.lda, p1.ldy, p1.ldr);
    const int iterations = testing::kSanitizeBuild ? 10 : 50;
    auto worker = [&](const Problem& p, std::vector<float>& y) {
      for (int it = 0; it < iterations; ++it) mm.run(p.m, p.a.data(), p.lda, y.data(), p.ldy, p.residual.data(), p.ldr);
    };
    std::vector<float> y1(static_cast<size_t>(p1.m * p1.ldy)), y2(static_cast<size_t>(p2.m * p2.ldy));
    std::thread t1(worker, std::cref(p1), std::ref(y1));
    std::thread t2(worker, std::cref(p2), std::ref(y2));
    t1.join();
    t2.join();
    EXPECT_EQ(mm.cached_primitives(), engine == GemmEngine::kPanel ? 0u : 1u);
    for (auto [p, y] : {std::pair<const Problem*, std::vector<float>*>{&p1, &y1}, {&p2, &y2}}) {
      for (size_t i = 0; i < p->want.size(); ++i) {
        ASSERT_LE(std::abs((*y)[i] - p->want[i]), p->bound[i])
            << engine_name(engine) << " call on y" << (p == &p1 ? 1 : 2) << " element " << i;
      }
    }
  }
}

// The panel GEMM's blocking edges: K past one K block (768), so later blocks add to y; row counts that
// are not a multiple of the micro-kernel's 6 and more rows than one row block (96); a last panel narrower
// than 16 columns; and products large enough to be split across threads by rows or by panels.
TEST(OneDnnMatMul, PanelGemmBlockEdges) {
  if (!panel_gemm_supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(29);
  struct Shape {
    int64_t m, k, n;
  };
  std::vector<Shape> shapes = {{1, 1, 1}, {5, 769, 17}, {7, 3, 15}};
  if (testing::kSanitizeBuild) {
    shapes.push_back({101, 800, 40});
  } else {
    shapes.push_back({197, 1600, 70});
    shapes.push_back({13, 2000, 400});
  }
  for (const Shape& s : shapes) {
    for (bool residual : {false, true}) {
      MatMulSpec spec;
      spec.k = s.k;
      spec.n = s.n;
      spec.has_bias = true;
      spec.post = residual ? PostOp::kGeluErf : PostOp::kRelu;
      spec.add_residual = residual;
      spec.trans_b = residual;
      spec.engine = GemmEngine::kPanel;
      Problem p(spec, s.m, rng, /*pad=*/3);
      PackedMatMul mm(spec, p.b.data(), p.bias.data());
      EXPECT_EQ(mm.prepare(s.m, p.lda, p.ldy, p.ldr), "kiln:panel_avx2");
      EXPECT_EQ(mm.cached_primitives(), 0u);
      EXPECT_GE(mm.packed_bytes(), static_cast<size_t>(s.k * s.n + s.n) * sizeof(float));
      expect_matches(mm, p, describe(spec, s.m));
    }
  }
}

TEST(OneDnnMatMul, RefusesBadArguments) {
  MatMulSpec spec;
  spec.k = 4;
  spec.n = 3;
  spec.add_residual = true;
  std::vector<float> b(12, 1.0f), a(8, 1.0f), y(6), r(6);
  for (GemmEngine engine : engines()) {
    spec.engine = engine;
    SCOPED_TRACE(engine_name(engine));
    PackedMatMul mm(spec, b.data(), nullptr);
    EXPECT_THROW(mm.run(2, a.data(), 3, y.data(), 3, r.data()), Error);      // lda < K
    EXPECT_THROW(mm.run(2, a.data(), 4, y.data(), 2, r.data()), Error);      // ldy < N
    EXPECT_THROW(mm.run(2, a.data(), 4, y.data(), 3), Error);                // residual missing
    EXPECT_THROW(mm.run(2, a.data(), 4, y.data(), 3, y.data() + 1), Error);  // residual overlaps y
    EXPECT_NO_THROW(mm.run(0, a.data(), 4, y.data(), 3, r.data()));          // no rows: nothing to do
    EXPECT_THROW(PackedMatMul(MatMulSpec{0, 3}, b.data(), nullptr), Error);  // K = 0
    MatMulSpec with_bias{4, 3, /*has_bias=*/true};
    EXPECT_THROW(PackedMatMul(with_bias, b.data(), nullptr), Error);  // bias missing
    try {
      mm.run(2, a.data(), 3, y.data(), 3, r.data());
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("[PackedMatMul] lda 3 is less than K 4"), std::string::npos) << e.what();
    }
  }
}

// bf16 products against the reference on bfloat16-rounded operands, over shapes, post-ops, strides and
// two row counts on one packing; on a CPU without faster bfloat16 the spec falls back to float32 and is
// held to the float32 reference instead.
TEST(OneDnnMatMul, Bfloat16ProductsMatchTheRoundedOperands) {
  std::mt19937 rng(29);
  const bool fast = bf16_matmul_is_fast();
  std::cout << "bf16 products " << (fast ? "run in bfloat16 here" : "fall back to float32 here") << "\n";
  struct Case {
    int64_t m, k, n;
    PostOp post;
    bool residual, trans_b;
    float alpha;  // a power of two: bf16(alpha * b) == alpha * bf16(b), the reference's order
    int64_t pad;
  };
  const int64_t big = testing::kSanitizeBuild ? 160 : 768;
  const std::vector<Case> cases = {
      {1, 1, 1, PostOp::kNone, false, false, 1.0f, 0},         {3, 7, 5, PostOp::kRelu, true, true, 0.5f, 0},
      {17, 64, 33, PostOp::kGeluErf, false, false, 1.0f, 3},   {19, 37, 29, PostOp::kGeluTanh, true, false, 1.0f, 11},
      {128, big, 96, PostOp::kNone, true, true, 0.125f, 0},    {128, 96, big, PostOp::kGeluErf, false, false, 1.0f, 0},
  };
  int compared_to_float32 = 0, beyond_float32 = 0;
  for (const Case& c : cases) {
    MatMulSpec spec;
    spec.k = c.k;
    spec.n = c.n;
    spec.post = c.post;
    spec.has_bias = true;
    spec.add_residual = c.residual;
    spec.trans_b = c.trans_b;
    spec.alpha = c.alpha;
    spec.engine = GemmEngine::kOneDnn;
    spec.bf16 = true;
    Problem p(spec, c.m, rng, c.pad, fast);
    PackedMatMul mm(spec, p.b.data(), p.bias.data());
    EXPECT_EQ(mm.spec().bf16, fast);
    const std::string what = "bf16 " + describe(spec, c.m);
    expect_matches(mm, p, what);
    Problem one_row = p;  // a second row count on the same packed weights
    one_row.m = 1;
    expect_matches(mm, one_row, what + " (M=1)");
    if (!fast) continue;
    // The bf16 result is further from the float32 reference than float32's own rounding allows somewhere:
    // the bf16 kernels really ran.
    Problem exact = p;
    exact.bf16 = false;
    exact.compute_reference();
    std::vector<float> y(static_cast<size_t>(p.m * p.ldy));
    mm.run(p.m, p.a.data(), p.lda, y.data(), p.ldy, c.residual ? p.residual.data() : nullptr, p.ldr);
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.spec.n; ++j) {
        const size_t at = static_cast<size_t>(i * p.spec.n + j);
        ++compared_to_float32;
        beyond_float32 += std::abs(y[static_cast<size_t>(i * p.ldy + j)] - exact.want[at]) > exact.bound[at];
      }
  }
  if (fast) {
    EXPECT_GT(beyond_float32, compared_to_float32 / 10);
  }
}

// The float32 engines ignore spec.bf16: the panel GEMM (AVX2 machines) has no bfloat16 path.
TEST(OneDnnMatMul, PanelGemmStaysFloat32WhenBfloat16IsAsked) {
  if (!panel_gemm_supported()) GTEST_SKIP() << "no AVX2: no panel GEMM on this CPU";
  std::mt19937 rng(31);
  MatMulSpec spec;
  spec.k = 33;
  spec.n = 21;
  spec.engine = GemmEngine::kPanel;
  spec.bf16 = true;
  Problem p(spec, 9, rng);
  PackedMatMul mm(spec, p.b.data(), nullptr);
  EXPECT_FALSE(mm.spec().bf16);
  expect_matches(mm, p, "panel asked for bf16");
}

}  // namespace
}  // namespace kiln::kernels::cpu

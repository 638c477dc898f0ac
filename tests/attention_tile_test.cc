// kernels/cpu/attention_tile: the tiled attention against a double-precision two-pass softmax, at every
// ISA level this machine runs, across query and key block edges, with strided rows and masks.
#include "kernels/cpu/attention_tile.h"

#include "common/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

// Named, so that in a unity build its helpers meet no other test file's.
namespace kiln::attention_tile_test {
namespace {

using kernels::cpu::AttentionHeadArgs;
using kernels::cpu::Isa;

constexpr float kInf = std::numeric_limits<float>::infinity();

// Q, K and V of one head, each row `ld` floats apart (wider than the head, as in a packed QKV buffer).
struct HeadData {
  int64_t queries, keys, head_size, ld;
  std::vector<float> q, k, v, mask;  // mask: [queries, keys], empty for none
  std::vector<float> out;
};

HeadData random_head(int64_t queries, int64_t keys, int64_t head_size, bool masked, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  HeadData h{queries, keys, head_size, 3 * head_size + 5, {}, {}, {}, {}, {}};
  auto fill = [&](std::vector<float>& x, int64_t rows) {
    x.resize(static_cast<size_t>(rows * h.ld));
    for (float& f : x) f = normal(gen);
  };
  fill(h.q, queries);
  fill(h.k, keys);
  fill(h.v, keys);
  if (masked) {
    std::uniform_int_distribution<int> pick(0, 9);
    h.mask.resize(static_cast<size_t>(queries * keys));
    for (float& m : h.mask) m = pick(gen) == 0 ? -10000.0f : pick(gen) == 1 ? -kInf : 0.5f * normal(gen);
    for (int64_t i = 0; i < queries; ++i) h.mask[static_cast<size_t>(i * keys + i % keys)] = 0.0f;  // one key kept
  }
  h.out.assign(static_cast<size_t>(queries * h.ld), -7.0f);
  return h;
}

void run(HeadData& h, float scale, Isa isa, bool bf16 = false) {
  AttentionHeadArgs a;
  a.queries = h.queries;
  a.keys = h.keys;
  a.head_size = h.head_size;
  a.q = h.q.data();
  a.k = h.k.data();
  a.v = h.v.data();
  a.ldq = a.ldk = a.ldv = a.ldo = h.ld;
  a.scale = scale;
  if (!h.mask.empty()) {
    a.mask = h.mask.data();
    a.mask_stride = h.keys;
  }
  a.out = h.out.data();
  a.bf16 = bf16;
  kernels::cpu::attention_head(a, isa);
}

// Row i of the exact result, in double.
std::vector<double> expected_row(const HeadData& h, float scale, int64_t i) {
  std::vector<double> s(static_cast<size_t>(h.keys));
  double mx = -INFINITY;
  for (int64_t j = 0; j < h.keys; ++j) {
    double dot = 0;
    for (int64_t t = 0; t < h.head_size; ++t) dot += double(h.q[i * h.ld + t]) * h.k[j * h.ld + t];
    s[j] = scale * dot + (h.mask.empty() ? 0.0 : h.mask[i * h.keys + j]);
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (double& x : s) sum += (x = std::exp(x - mx));
  std::vector<double> out(static_cast<size_t>(h.head_size), 0.0);
  for (int64_t j = 0; j < h.keys; ++j)
    for (int64_t t = 0; t < h.head_size; ++t) out[t] += s[j] / sum * h.v[j * h.ld + t];
  return out;
}

std::vector<Isa> isas() {
  std::vector<Isa> r;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (kernels::cpu::isa_supported(isa)) r.push_back(isa);
  return r;
}

TEST(AttentionTile, MatchesATwoPassSoftmaxAcrossBlockEdges) {
  struct Case {
    int64_t queries, keys, head_size;
    bool masked;
  };
  for (Isa isa : isas())
    for (const Case& c : {Case{1, 1, 1, false}, Case{5, 7, 3, true}, Case{48, 256, 64, false}, Case{49, 257, 64, true},
                          Case{100, 600, 20, true}, Case{13, 300, 16, false}, Case{7, 513, 33, true},
                          Case{130, 257, 64, true}, Case{300, 40, 8, false}}) {
      SCOPED_TRACE(::testing::Message() << kernels::cpu::isa_name(isa) << " queries " << c.queries << " keys "
                                        << c.keys << " head " << c.head_size << (c.masked ? " masked" : ""));
      HeadData h = random_head(c.queries, c.keys, c.head_size, c.masked, static_cast<uint32_t>(c.keys));
      const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_size));
      run(h, scale, isa);
      double worst = 0;
      for (int64_t i = 0; i < c.queries; ++i) {
        std::vector<double> want = expected_row(h, scale, i);
        for (int64_t t = 0; t < c.head_size; ++t) worst = std::max(worst, std::abs(want[t] - h.out[i * h.ld + t]));
        for (int64_t t = c.head_size; t < h.ld; ++t) ASSERT_EQ(h.out[i * h.ld + t], -7.0f) << "wrote past the head";
      }
      EXPECT_LT(worst, 2e-5);
    }
}

TEST(AttentionTile, MaskedKeyBlocksAddNothingAndFullyMaskedRowsAreNaN) {
  for (Isa isa : isas()) {
    SCOPED_TRACE(kernels::cpu::isa_name(isa));
    HeadData h = random_head(4, 600, 8, true, 11);
    for (float& m : h.mask) m = 0.0f;
    for (int64_t j = 0; j < 300; ++j) h.mask[j] = -kInf;  // row 0: the whole first key block (and more) masked
    for (int64_t j = 0; j < 600; ++j) h.mask[600 + j] = -kInf;  // row 1: everything masked
    h.mask[2 * 600 + 599] = std::numeric_limits<float>::quiet_NaN();  // row 2: one NaN score
    for (int64_t j = 0; j < 256; ++j)  // row 3: a whole key block NaN, the rest attended
      h.mask[3 * 600 + j] = std::numeric_limits<float>::quiet_NaN();
    run(h, 0.25f, isa);
    std::vector<double> want = expected_row(h, 0.25f, 0);
    for (int64_t t = 0; t < 8; ++t) EXPECT_NEAR(h.out[t], want[t], 2e-5) << t;
    for (int64_t t = 0; t < 8; ++t) EXPECT_TRUE(std::isnan(h.out[h.ld + t])) << t;
    for (int64_t t = 0; t < 8; ++t) EXPECT_TRUE(std::isnan(h.out[2 * h.ld + t])) << t;
    for (int64_t t = 0; t < 8; ++t) EXPECT_TRUE(std::isnan(h.out[3 * h.ld + t])) << t;
  }
}

// bf16 products: against the exact result on Q, K and V rounded to bfloat16, within the rounding of the
// probabilities (2^-9 relative each: |error| <= ~2^-8 * max |v|), across block edges, odd key counts and
// masks; where the CPU has no faster bfloat16 (or the head size is no multiple of 32) the float32 path runs
// and is held to float32's bound. Where bf16 runs it must differ from float32 by more than float32's error.
TEST(AttentionTile, Bfloat16ProductsStayWithinTheirRounding) {
  struct Case {
    int64_t queries, keys, head_size;
    bool masked;
  };
  for (Isa isa : isas())
    for (const Case& c : {Case{1, 1, 32, false}, Case{13, 7, 32, true}, Case{128, 128, 64, true},
                          Case{49, 257, 64, false}, Case{130, 513, 32, true}, Case{20, 30, 20, false}}) {
      const bool bf16 = kernels::cpu::attention_head_runs_bf16(c.head_size, isa);
      SCOPED_TRACE(::testing::Message() << kernels::cpu::isa_name(isa) << (bf16 ? " bf16" : " float32") << " queries "
                                        << c.queries << " keys " << c.keys << " head " << c.head_size);
      HeadData h = random_head(c.queries, c.keys, c.head_size, c.masked, static_cast<uint32_t>(c.keys + 1));
      HeadData rounded = h;
      for (auto* x : {&rounded.q, &rounded.k, &rounded.v})
        for (float& f : *x) f = bfloat16_bits_to_float(float_to_bfloat16_bits(f));
      const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_size));
      run(h, scale, isa, /*bf16=*/true);
      double worst = 0, worst_vs_exact = 0;
      for (int64_t i = 0; i < c.queries; ++i) {
        std::vector<double> want = expected_row(bf16 ? rounded : h, scale, i), exact = expected_row(h, scale, i);
        for (int64_t t = 0; t < c.head_size; ++t) {
          worst = std::max(worst, std::abs(want[t] - h.out[i * h.ld + t]));
          worst_vs_exact = std::max(worst_vs_exact, std::abs(exact[t] - h.out[i * h.ld + t]));
        }
        for (int64_t t = c.head_size; t < h.ld; ++t) ASSERT_EQ(h.out[i * h.ld + t], -7.0f) << "wrote past the head";
      }
      // V's entries are N(0, 1): |v| < ~6 here.
      EXPECT_LT(worst, bf16 ? 0.03 : 2e-5);
      if (bf16) {
        EXPECT_GT(worst_vs_exact, 1e-4) << "no bfloat16 rounding seen";
      }
    }
}

}  // namespace
}  // namespace kiln::attention_tile_test

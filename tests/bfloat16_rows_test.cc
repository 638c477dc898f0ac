// round_rows_to_bfloat16 against common/half.h's scalar rounding, bit for bit: ties, NaN, infinities,
// subnormals, row tails of every length and strided rows, on one thread and split across threads.
#include "kernels/cpu/bfloat16_rows.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/half.h"

// Named, so that in a unity build its helpers meet no other test file's.
namespace kiln::kernels::cpu::bfloat16_rows_test {
namespace {

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

void expect_rounded(int64_t rows, int64_t cols, int64_t ldx, const std::vector<float>& x) {
  std::vector<uint16_t> y(static_cast<size_t>(rows * cols) + 1, 0xabcd);
  round_rows_to_bfloat16(rows, cols, x.data(), ldx, y.data());
  int failures = 0;
  for (int64_t r = 0; r < rows && failures < 5; ++r)
    for (int64_t c = 0; c < cols && failures < 5; ++c) {
      const float v = x[static_cast<size_t>(r * ldx + c)];
      const uint16_t got = y[static_cast<size_t>(r * cols + c)];
      if (got != float_to_bfloat16_bits(v)) {
        ++failures;
        ADD_FAILURE() << "rows " << rows << " cols " << cols << " ldx " << ldx << ": [" << r << "," << c << "] = " << v
                      << " rounded to 0x" << std::hex << got << ", want 0x" << float_to_bfloat16_bits(v) << std::dec;
      }
    }
  EXPECT_EQ(y.back(), 0xabcd) << "wrote past the output";
}

TEST(Bfloat16Rows, SpecialValuesRoundAsTheScalarRounding) {
  const std::vector<float> specials = {
      0.0f, -0.0f, 1.0f, -1.0f,
      from_bits(0x3f808000u),  // a tie, even below: rounds down
      from_bits(0x3f818000u),  // a tie, odd below: rounds up
      from_bits(0x3f80ffffu), from_bits(0x7f7fffffu),  // the largest float rounds to infinity
      std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
      std::numeric_limits<float>::quiet_NaN(), from_bits(0x7f800001u),  // a signalling NaN stays a NaN
      from_bits(0xffffffffu),                                            // a NaN that adding would carry
      from_bits(0x00000001u), from_bits(0x807fffffu), std::numeric_limits<float>::min(),
  };
  for (int64_t cols = 1; cols <= static_cast<int64_t>(specials.size()); ++cols) expect_rounded(1, cols, cols, specials);
}

TEST(Bfloat16Rows, EveryTailLengthAndStridedRows) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<uint32_t> bits;
  for (int64_t cols : {1, 15, 16, 17, 31, 33, 768}) {
    for (int64_t pad : {0, 5}) {
      const int64_t rows = 7, ldx = cols + pad;
      std::vector<float> x(static_cast<size_t>(rows * ldx));
      for (float& v : x) v = from_bits(bits(rng));
      expect_rounded(rows, cols, ldx, x);
    }
  }
}

TEST(Bfloat16Rows, LargeInputsSplitAcrossThreads) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 10.0f);
  const int64_t rows = 128, cols = 3072 + 3, ldx = cols + 1;  // past kParallelMinElements
  std::vector<float> x(static_cast<size_t>(rows * ldx));
  for (float& v : x) v = dist(rng);
  expect_rounded(rows, cols, ldx, x);
}

}  // namespace
}  // namespace kiln::kernels::cpu::bfloat16_rows_test

#include "io/npy.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace kiln {
namespace {

TEST(Npy, RoundTripsEveryNumericType) {
  for (ir::DType dt : {ir::DType::kFloat32, ir::DType::kFloat64, ir::DType::kFloat16, ir::DType::kInt8,
                       ir::DType::kInt16, ir::DType::kInt32, ir::DType::kInt64, ir::DType::kUInt8, ir::DType::kUInt16,
                       ir::DType::kUInt32, ir::DType::kUInt64, ir::DType::kBool}) {
    ir::Tensor t(dt, {2, 3});
    for (size_t i = 0; i < t.nbytes(); ++i) static_cast<uint8_t*>(t.raw())[i] = static_cast<uint8_t>(i * 7 + 1);
    if (dt == ir::DType::kBool)
      for (int64_t i = 0; i < t.numel(); ++i) t.data<bool>()[i] = i % 2;
    ir::Tensor back = io::parse_npy(io::serialize_npy(t), "mem");
    EXPECT_TRUE(back.bitwise_equal(t)) << ir::dtype_name(dt);
  }
}

TEST(Npy, ScalarAndVectorShapes) {
  EXPECT_EQ(io::parse_npy(io::serialize_npy(ir::Tensor::scalar<float>(2.5f)), "mem").shape(), std::vector<int64_t>{});
  ir::Tensor v = ir::Tensor::from_vector<int64_t>({1, 2, 3}, {3});
  ir::Tensor back = io::parse_npy(io::serialize_npy(v), "mem");
  EXPECT_EQ(back.shape(), std::vector<int64_t>{3});
  EXPECT_EQ(back.data<int64_t>()[2], 3);
}

TEST(Npy, ReadsFixtureWrittenByNumpy) {
  ir::Tensor ids = io::read_npy(std::string(KILN_SOURCE_DIR) + "/tests/data/bert-tiny/inputs/input_ids.npy");
  EXPECT_EQ(ids.dtype(), ir::DType::kInt64);
  EXPECT_EQ(ids.rank(), 2u);
}

TEST(Npy, RefusesTruncatedData) {
  std::string bytes = io::serialize_npy(ir::Tensor(ir::DType::kFloat32, {4, 4}));
  bytes.resize(bytes.size() - 3);
  try {
    io::parse_npy(bytes, "x.npy");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.npy: .npy data has 61 bytes"), std::string::npos) << e.what();
  }
}

TEST(Npy, RefusesNonNpy) { EXPECT_THROW(io::parse_npy("hello world, not numpy", "t.npy"), Error); }

}  // namespace
}  // namespace kiln

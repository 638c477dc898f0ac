// Opset 23's attributes of QuantizeLinear (precision: the type x and y_scale are cast to before they are
// divided) and DequantizeLinear (output_dtype: the output's type when it is not x_scale's), which ONNX
// 1.22's backend cases do not exercise. Expected values from numpy, as ONNX's reference computes them.
#include <gtest/gtest.h>

#include "common/half.h"
#include "contrib_test_util.h"

namespace kiln {
namespace {

using testing::contrib::attr_int;
using testing::contrib::TestGraph;

constexpr int64_t kOnnxFloat16 = 10;

ir::Tensor quantize(int64_t precision) {
  TestGraph g(23);
  // 6.82 / 0.39 is 17.49 in float32 and 17.5 in float16 (x and the scale rounded first), which rounds
  // to even: 17 against 18.
  g.input("x", ir::Tensor::from_vector<float>({6.82f, 100.3f, 3.3f}, {3}));
  g.constant("s", ir::Tensor::scalar<float>(0.39f));
  g.constant("zp", ir::Tensor::scalar<uint8_t>(0));
  std::vector<ir::Attribute> attrs;
  if (precision != 0) attrs.push_back(attr_int("precision", precision));
  g.node("QuantizeLinear", {"x", "s", "zp"}, {"y"}, attrs);
  g.output("y");
  return g.run().at(0);
}

TEST(QuantizeLinearOpset23, PrecisionIsTheTypeOfTheDivision) {
  EXPECT_EQ(quantize(0).to_int64_vector(), (std::vector<int64_t>{17, 255, 8}));
  EXPECT_EQ(quantize(kOnnxFloat16).to_int64_vector(), (std::vector<int64_t>{18, 255, 8}));
}

TEST(DequantizeLinearOpset23, OutputDtypeConvertsTheResult) {
  TestGraph g(23);
  g.input("x", ir::Tensor::from_vector<uint8_t>({0, 7, 255}, {3}));
  g.constant("s", ir::Tensor::scalar<float>(0.1f));
  g.constant("zp", ir::Tensor::scalar<uint8_t>(3));
  g.node("DequantizeLinear", {"x", "s", "zp"}, {"y"}, {attr_int("output_dtype", kOnnxFloat16)});
  g.output("y");
  const ir::Tensor y = g.run().at(0);
  ASSERT_EQ(y.dtype(), ir::DType::kFloat16);
  const std::vector<float> expected = {-0.3f, 0.4f, 25.2f};  // (x - 3) * 0.1 in float32, then to float16
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(static_cast<float>(y.data<Float16>()[i]), static_cast<float>(Float16(expected[i]))) << i;
}

TEST(DequantizeLinearOpset23, RefusesAnOutputDtypeThatIsNotFloat) {
  TestGraph g(23);
  g.input("x", ir::Tensor::from_vector<uint8_t>({1}, {1}));
  g.constant("s", ir::Tensor::scalar<float>(0.1f));
  g.node("DequantizeLinear", {"x", "s"}, {"y"}, {attr_int("output_dtype", 6)});  // int32
  g.output("y");
  const std::string error = testing::contrib::error_of(g);
  EXPECT_NE(error.find("output_dtype must be float"), std::string::npos) << error;
}

}  // namespace
}  // namespace kiln

// The narrow element types (float8, float4e2m1, int4/uint4, int2/uint2): conversions against values
// ml_dtypes (ONNX's reference) gives, and ONNX's packed sub-byte form.
#include "ir/narrow_types.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <vector>

#include "ir/tensor.h"
#include "onnx/model_io.h"
#include "onnx/proto_convert.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using ir::DType;
using ir::E8M0Rounding;

constexpr double kNarrowTestInf = std::numeric_limits<double>::infinity();
constexpr double kNarrowTestNaN = std::numeric_limits<double>::quiet_NaN();

uint8_t narrow_test_encode(DType t, double v, bool saturate) { return ir::narrow_float_from_double(t, v, saturate); }

TEST(NarrowTypes, Float8DecodesEdgeCodes) {
  EXPECT_EQ(ir::narrow_to_double(DType::kFloat8E4M3FN, 0x7E), 448.0);
  EXPECT_EQ(ir::narrow_to_double(DType::kFloat8E4M3FN, 0x01), std::ldexp(1.0, -9));
  EXPECT_TRUE(std::isnan(ir::narrow_to_double(DType::kFloat8E4M3FN, 0xFF)));
  EXPECT_TRUE(std::signbit(ir::narrow_to_double(DType::kFloat8E4M3FN, 0x80)));  // -0
  EXPECT_EQ(ir::narrow_to_double(DType::kFloat8E4M3FNUZ, 0x7F), 240.0);
  EXPECT_TRUE(std::isnan(ir::narrow_to_double(DType::kFloat8E4M3FNUZ, 0x80)));
  EXPECT_EQ(ir::narrow_to_double(DType::kFloat8E5M2, 0x7B), 57344.0);
  EXPECT_EQ(ir::narrow_to_double(DType::kFloat8E5M2, 0xFC), -kNarrowTestInf);
  EXPECT_TRUE(std::isnan(ir::narrow_to_double(DType::kFloat8E5M2, 0x7E)));
  EXPECT_EQ(ir::narrow_to_double(DType::kFloat8E5M2FNUZ, 0x7F), 57344.0);
  EXPECT_EQ(ir::narrow_to_double(DType::kFloat8E5M2FNUZ, 0x01), std::ldexp(1.0, -17));
  EXPECT_EQ(ir::narrow_to_double(DType::kFloat8E8M0, 0x7F), 1.0);
  EXPECT_EQ(ir::narrow_to_double(DType::kFloat8E8M0, 0x00), std::ldexp(1.0, -127));
  EXPECT_TRUE(std::isnan(ir::narrow_to_double(DType::kFloat8E8M0, 0xFF)));
  EXPECT_EQ(ir::narrow_to_double(DType::kFloat4E2M1, 0x7), 6.0);
  EXPECT_EQ(ir::narrow_to_double(DType::kFloat4E2M1, 0x9), -0.5);
}

// Every code but NaN decodes to a value that encodes back to it (infinity only without saturation).
TEST(NarrowTypes, EveryCodeRoundTrips) {
  for (DType t : {DType::kFloat8E4M3FN, DType::kFloat8E4M3FNUZ, DType::kFloat8E5M2, DType::kFloat8E5M2FNUZ,
                  DType::kFloat8E8M0, DType::kFloat4E2M1}) {
    const int codes = t == DType::kFloat4E2M1 ? 16 : 256;
    for (int c = 0; c < codes; ++c) {
      double v = ir::narrow_to_double(t, static_cast<uint8_t>(c));
      if (std::isnan(v)) continue;
      for (bool saturate : {false, true}) {
        if (saturate && std::isinf(v)) continue;  // saturates to the largest finite value
        EXPECT_EQ(ir::narrow_float_from_double(t, v, saturate, E8M0Rounding::kNearest), c)
            << ir::dtype_name(t) << " code " << c;
      }
    }
  }
}

TEST(NarrowTypes, Float8RoundsToNearestEvenAndOverflowsPerSaturate) {
  // 464 lies halfway between 448 (mantissa 110, even) and 480 (would be 111, the NaN code).
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E4M3FN, 464, false), 0x7E);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E4M3FN, 465, false), 0x7F);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E4M3FN, 465, true), 0x7E);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E4M3FN, -kNarrowTestInf, false), 0xFF);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E4M3FN, -kNarrowTestInf, true), 0xFE);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E4M3FN, kNarrowTestNaN, true), 0x7F);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E4M3FN, -1e-7, true), 0x80);  // underflows to -0
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E4M3FN, 0.47892547, true), 0x2F);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E4M3FNUZ, -1e-7, true), 0x00);  // no -0 in the fnuz types
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E4M3FNUZ, kNarrowTestInf, false), 0x80);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E4M3FNUZ, kNarrowTestInf, true), 0x7F);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E5M2, 61440, false), 0x7C);  // rounds past the maximum: infinity
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E5M2, 61440, true), 0x7B);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E5M2, -kNarrowTestNaN, false), 0xFE);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E5M2FNUZ, 1e6, false), 0x80);
  EXPECT_EQ(narrow_test_encode(DType::kFloat8E5M2FNUZ, -1e6, true), 0xFF);
}

TEST(NarrowTypes, Float4E2M1AlwaysSaturates) {
  EXPECT_EQ(narrow_test_encode(DType::kFloat4E2M1, 0.25, true), 0x0);  // halfway between 0 and 0.5: even
  EXPECT_EQ(narrow_test_encode(DType::kFloat4E2M1, -3.5, true), 0xE);  // halfway between 3 and 4: 4
  EXPECT_EQ(narrow_test_encode(DType::kFloat4E2M1, 9, false), 0x7);
  EXPECT_EQ(narrow_test_encode(DType::kFloat4E2M1, -kNarrowTestInf, false), 0xF);
  EXPECT_EQ(narrow_test_encode(DType::kFloat4E2M1, kNarrowTestNaN, true), 0x8);  // as ml_dtypes: -0
}

TEST(NarrowTypes, Float8E8M0RoundingModes) {
  auto e8m0 = [](double v, E8M0Rounding r, bool saturate = true) {
    return ir::narrow_float_from_double(DType::kFloat8E8M0, v, saturate, r);
  };
  EXPECT_EQ(e8m0(1.1, E8M0Rounding::kUp), 0x80);
  EXPECT_EQ(e8m0(1.1, E8M0Rounding::kDown), 0x7F);
  EXPECT_EQ(e8m0(1.1, E8M0Rounding::kNearest), 0x7F);
  EXPECT_EQ(e8m0(1.5, E8M0Rounding::kNearest), 0x80);
  EXPECT_EQ(e8m0(-4.0, E8M0Rounding::kUp), 0x81);  // no sign: the exponent only
  EXPECT_EQ(e8m0(0.0, E8M0Rounding::kUp), 0x00);
  EXPECT_EQ(e8m0(kNarrowTestInf, E8M0Rounding::kUp), 0xFF);
  EXPECT_EQ(e8m0(FLT_MAX, E8M0Rounding::kUp, true), 0xFE);
  EXPECT_EQ(e8m0(FLT_MAX, E8M0Rounding::kUp, false), 0xFF);
  EXPECT_EQ(ir::e8m0_rounding_from_name("nearest"), E8M0Rounding::kNearest);
  EXPECT_THROW(ir::e8m0_rounding_from_name("even"), Error);
}

TEST(NarrowTypes, IntegersWrapLikeNumpy) {
  EXPECT_EQ(static_cast<int8_t>(ir::narrow_int_from_int64(DType::kInt4, 8)), -8);
  EXPECT_EQ(static_cast<int8_t>(ir::narrow_int_from_int64(DType::kInt4, -9)), 7);
  EXPECT_EQ(ir::narrow_int_from_int64(DType::kUInt4, -1), 15);
  EXPECT_EQ(static_cast<int8_t>(ir::narrow_int_from_int64(DType::kInt2, 2)), -2);
  EXPECT_EQ(ir::narrow_int_from_int64(DType::kUInt2, -3), 1);
  EXPECT_EQ(ir::narrow_from_double(DType::kInt4, -7.9), static_cast<uint8_t>(-7));  // toward zero
  EXPECT_EQ(ir::narrow_from_double(DType::kUInt4, kNarrowTestNaN), 0);
  EXPECT_EQ(ir::narrow_int_min(DType::kInt4), -8);
  EXPECT_EQ(ir::narrow_int_max(DType::kUInt2), 3);
}

TEST(NarrowTypes, PacksLowBitsFirstWithOddCounts) {
  const std::vector<uint8_t> int4 = {static_cast<uint8_t>(-8), 7, static_cast<uint8_t>(-1), 0, 3};
  ASSERT_EQ(ir::narrow_packed_bytes(DType::kInt4, 5), 3u);
  std::vector<uint8_t> packed(3), back(5);
  ir::pack_narrow(DType::kInt4, int4.data(), 5, packed.data());
  EXPECT_EQ(packed, (std::vector<uint8_t>{0x78, 0x0F, 0x03}));
  ir::unpack_narrow(DType::kInt4, packed.data(), 5, back.data());
  EXPECT_EQ(back, int4);

  const std::vector<uint8_t> uint2 = {1, 2, 3, 0, 1, 2, 3};  // ONNX's test_cast_UINT2_to_UINT8 input
  ASSERT_EQ(ir::narrow_packed_bytes(DType::kUInt2, 7), 2u);
  std::vector<uint8_t> packed2(2), back2(7);
  ir::pack_narrow(DType::kUInt2, uint2.data(), 7, packed2.data());
  EXPECT_EQ(packed2, (std::vector<uint8_t>{0x39, 0x39}));
  ir::unpack_narrow(DType::kUInt2, packed2.data(), 7, back2.data());
  EXPECT_EQ(back2, uint2);

  std::vector<uint8_t> int2(3);
  const uint8_t ones = 0xFF;  // padding bits set: ignored
  ir::unpack_narrow(DType::kInt2, &ones, 3, int2.data());
  EXPECT_EQ(int2, (std::vector<uint8_t>(3, 0xFF)));  // -1 each
}

TEST(NarrowTypes, TensorProtoRoundTripsPackedAndInt32Forms) {
  ir::Tensor t(DType::kInt4, {5});
  const int8_t values[] = {-8, 7, -1, 0, 3};
  for (int i = 0; i < 5; ++i) static_cast<int8_t*>(t.raw())[i] = values[i];
  EXPECT_EQ(t.as_int64(0), -8);
  EXPECT_EQ(t.as_double(1), 7.0);

  ::onnx::TensorProto p;
  onnx_io::detail::tensor_to_proto(t, &p);
  EXPECT_EQ(p.raw_data(), std::string("\x78\x0F\x03", 3));
  ir::Tensor back = onnx_io::detail::tensor_from_proto(p, "t", "");
  EXPECT_TRUE(back.bitwise_equal(t));

  ::onnx::TensorProto q;  // int32_data: one packed byte per value
  q.set_data_type(static_cast<int32_t>(DType::kInt4));
  q.add_dims(5);
  for (int v : {0x78, 0x0F, 0x03}) q.add_int32_data(v);
  EXPECT_TRUE(onnx_io::detail::tensor_from_proto(q, "q", "").bitwise_equal(t));

  ::onnx::TensorProto f8;  // float8: one element per value
  f8.set_data_type(static_cast<int32_t>(DType::kFloat8E5M2));
  f8.add_dims(2);
  f8.add_int32_data(0x3C);  // 1.0
  f8.add_int32_data(0xFC);  // -inf
  ir::Tensor g = onnx_io::detail::tensor_from_proto(f8, "f8", "");
  EXPECT_EQ(g.as_double(0), 1.0);
  EXPECT_EQ(g.as_double(1), -kNarrowTestInf);

  ::onnx::TensorProto bad;
  bad.set_data_type(static_cast<int32_t>(DType::kUInt4));
  bad.add_dims(5);
  bad.set_raw_data(std::string("\x01\x02", 2));  // 5 elements need 3 bytes
  EXPECT_THROW(onnx_io::detail::tensor_from_proto(bad, "bad", ""), Error);
}

// One node of `op` in a model: inputs and outputs by name, attributes int-valued.
ir::Node narrow_test_node(const std::string& op, std::vector<std::string> inputs, std::string output,
                          std::vector<std::pair<std::string, int64_t>> attrs = {}) {
  ir::Node n;
  n.name = output + "_node";
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = {std::move(output)};
  for (auto& [name, v] : attrs) {
    ir::Attribute a;
    a.name = name;
    a.kind = ir::Attribute::Kind::kInt;
    a.i = v;
    n.attributes.push_back(a);
  }
  return n;
}

// x (float) -> Cast to int4 -> Concat with an int4 initializer of odd length -> Reshape -> Transpose ->
// Cast to float; and x -> QuantizeLinear to float8e4m3fn -> DequantizeLinear. Run directly and after an
// export/import round trip (which packs and unpacks the initializer).
TEST(NarrowTypes, SessionCastsQuantizesAndMovesNarrowTensors) {
  ir::Model m;
  m.ir_version = 11;
  m.opset_imports[""] = 25;
  ir::Tensor w(DType::kInt4, {3});
  for (int i = 0; i < 3; ++i) static_cast<int8_t*>(w.raw())[i] = static_cast<int8_t>(-8 + 7 * i);  // -8, -1, 6
  m.graph.add_initializer("w", w);
  m.graph.add_initializer("shape", ir::Tensor::from_vector<int64_t>({2, 4}, {2}));
  m.graph.add_initializer("scale", ir::Tensor::scalar<float>(0.5f));
  m.graph.inputs.push_back({"x", ir::Type::tensor(DType::kFloat32, ir::Shape::of({5})), ""});
  m.graph.nodes.push_back(narrow_test_node("Cast", {"x"}, "q4", {{"to", static_cast<int64_t>(DType::kInt4)}}));
  m.graph.nodes.push_back(narrow_test_node("Concat", {"q4", "w"}, "c", {{"axis", 0}}));
  m.graph.nodes.push_back(narrow_test_node("Reshape", {"c", "shape"}, "r"));
  m.graph.nodes.push_back(narrow_test_node("Transpose", {"r"}, "t"));
  m.graph.nodes.push_back(narrow_test_node("Cast", {"t"}, "y", {{"to", 1}}));
  m.graph.nodes.push_back(narrow_test_node("QuantizeLinear", {"x", "scale"}, "f8",
                                           {{"output_dtype", static_cast<int64_t>(DType::kFloat8E4M3FN)}}));
  m.graph.nodes.push_back(narrow_test_node("DequantizeLinear", {"f8", "scale"}, "z"));
  m.graph.outputs.push_back({"y", ir::Type(), ""});
  m.graph.outputs.push_back({"z", ir::Type(), ""});

  const std::string bytes = onnx_io::serialize_model(m);
  ir::Model reloaded = onnx_io::parse_model(bytes.data(), bytes.size(), "", "narrow");
  ASSERT_TRUE(reloaded.graph.find_initializer("w")->bitwise_equal(w));

  ir::Tensor x = ir::Tensor::from_vector<float>({-9.0f, 7.9f, 8.0f, 0.3f, 100.0f}, {5});
  for (ir::Model* model : {&m, &reloaded}) {
    runtime::Session session(*model);
    std::vector<ir::Datum> outs = session.run({{"x", x}});
    ASSERT_EQ(outs.size(), 2u);
    // int4 wraps: -9 -> 7, 7.9 -> 7, 8 -> -8, 0.3 -> 0, 100 -> 4; then w. [2,4] transposed to [4,2].
    const std::vector<float> want_y = {7, 4, 7, -8, -8, -1, 0, 6};
    const ir::Tensor& y = outs[0].tensor;
    ASSERT_EQ(y.shape(), (std::vector<int64_t>{4, 2}));
    for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(y.data<float>()[i], want_y[static_cast<size_t>(i)]) << i;
    // x / 0.5 in float8e4m3fn, times 0.5: -18, 16 (from 15.8), 16, 0.625 (from 0.6), 192 (200: a tie, to even).
    const std::vector<float> want_z = {-9.0f, 8.0f, 8.0f, 0.3125f, 96.0f};
    const ir::Tensor& z = outs[1].tensor;
    ASSERT_EQ(z.dtype(), DType::kFloat32);
    for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(z.data<float>()[i], want_z[static_cast<size_t>(i)]) << i;
  }
}

TEST(NarrowTypes, ExternalDataHoldsThePackedForm) {
  ir::Model m;
  m.opset_imports[""] = 25;
  ir::Tensor w(DType::kUInt2, {7});
  for (int i = 0; i < 7; ++i) static_cast<uint8_t*>(w.raw())[i] = static_cast<uint8_t>((i * 3) % 4);
  ir::Tensor f(DType::kFloat8E5M2FNUZ, {3});
  for (int i = 0; i < 3; ++i) static_cast<uint8_t*>(f.raw())[i] = static_cast<uint8_t>(0x40 + i);
  m.graph.add_initializer("w", w);
  m.graph.add_initializer("f", f);
  m.graph.nodes.push_back(narrow_test_node("Identity", {"w"}, "y"));
  m.graph.outputs.push_back({"y", ir::Type(), ""});
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kiln_narrow_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "m.onnx").string();
  onnx_io::SaveOptions options;
  options.external_data_threshold = 0;
  options.force_external_data = true;
  onnx_io::save_model(m, path, options);
  std::ifstream data(path + ".data", std::ios::binary);
  std::string head(2, '\0');
  data.read(head.data(), 2);
  EXPECT_EQ(head, std::string("\x6C\x2C", 2));  // w's 7 elements 0,3,2,1,0,3,2 in 2 bytes
  ir::Model back = onnx_io::load_model(path);
  EXPECT_TRUE(back.graph.find_initializer("w")->bitwise_equal(w));
  EXPECT_TRUE(back.graph.find_initializer("f")->bitwise_equal(f));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kiln

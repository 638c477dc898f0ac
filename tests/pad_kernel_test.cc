// The fast Pad kernel (kernels/cpu/pad_kernel.cc) against the reference, bit for bit: every mode on
// ranks 1 to 5 with random pads (negative ones crop), odd sizes, element types of 1, 2, 4 and 8 bytes, a
// large input for the threaded path, every opset form of the pads and constant; and the calls left to
// the reference (strings, invalid pads or axes, a crop past the axis), which must fail with its message.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "fast_kernel_check.h"

namespace kiln {
namespace {

using testing::Answered;
using testing::expect_fast_matches_reference;
using testing::contrib::attr_float;
using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::int64s;
using testing::contrib::pattern_tensor;
using testing::contrib::Random;
using testing::contrib::TestGraph;

// Pad at opset 19 with pads as an input (and the constant as one when given).
void check_pad(const std::vector<int64_t>& shape, const std::vector<int64_t>& pads, const std::string& mode,
               ir::DType dtype = ir::DType::kFloat32, Answered answered = Answered::kFast) {
  TestGraph g(19);
  g.input("x", pattern_tensor(dtype, shape, static_cast<uint32_t>(shape.size() * 13 + pads.size())));
  std::vector<std::string> ins = {"x", g.constant("pads", int64s(pads))};
  if (mode == "constant" && dtype == ir::DType::kFloat32)
    ins.push_back(g.constant("value", testing::contrib::scalar(-2.5f)));
  g.node("Pad", ins, {"y"}, {attr_string("mode", mode)});
  g.output("y");
  expect_fast_matches_reference(g, answered,
                                "shape " + ir::to_string(shape) + " pads " + ir::to_string(pads) + " " + mode + " " +
                                    std::string(ir::dtype_name(dtype)));
}

TEST(PadKernel, EveryModeOnRanks1To5WithCrops) {
  std::mt19937 gen(3);
  for (const char* mode : {"constant", "reflect", "edge", "wrap"}) {
    for (size_t rank = 1; rank <= 5; ++rank) {
      for (int trial = 0; trial < 8; ++trial) {
        std::vector<int64_t> shape(rank), pads(2 * rank);
        for (int64_t& d : shape) d = std::uniform_int_distribution<int64_t>(3, rank <= 2 ? 19 : 6)(gen);
        for (size_t a = 0; a < rank; ++a) {
          // Crops of at most 1 a side leave at least one element of the 3 or more.
          for (size_t side : {a, a + rank}) {
            const int64_t v = std::uniform_int_distribution<int64_t>(-1, 3)(gen);
            pads[side] = trial == 0 ? 0 : v;
          }
        }
        check_pad(shape, pads, mode);
      }
    }
  }
}

TEST(PadKernel, PadsLongerThanTheAxisAndOneElementAxes) {
  for (const char* mode : {"constant", "reflect", "edge", "wrap"}) {
    check_pad({3, 4}, {7, 0, 9, 11}, mode);
    check_pad({1, 5}, {2, 3, 1, 2}, mode);
    check_pad({4, 1, 3}, {0, 2, 0, 1, 3, 0}, mode);
    check_pad({2, 6, 5}, {0, -2, -1, 0, -3, 3}, mode);  // crops, then pads from the cropped range
  }
}

TEST(PadKernel, ElementTypesAndALargeInput) {
  for (ir::DType t : {ir::DType::kUInt8, ir::DType::kInt16, ir::DType::kInt32, ir::DType::kInt64,
                      ir::DType::kFloat64, ir::DType::kFloat16})
    for (const char* mode : {"constant", "reflect", "edge"}) check_pad({3, 5, 7}, {1, 0, 2, 0, 2, 1}, mode, t);
  // Swin's window padding, [1, H, W, C] on H and W, large enough for threads.
  for (const char* mode : {"constant", "reflect"}) check_pad({1, 61, 59, 96}, {0, 0, 3, 0, 0, 3, 5, 0}, mode);
  check_pad({300000}, {3, 5}, "edge");
}

TEST(PadKernel, OpsetFormsOfPadsAndConstant) {
  Random rng(7);
  const std::vector<int64_t> pads = {1, 0, -1, 2, 1, 3};
  for (int64_t opset : {1, 2, 10, 11, 13, 18, 19, 21}) {
    TestGraph g(opset);
    g.input("x", rng.floats({2, 5, 7}));
    std::vector<std::string> ins = {"x"};
    std::vector<ir::Attribute> attrs = {attr_string("mode", "constant")};
    if (opset < 11) {
      attrs.push_back(attr_ints(opset < 2 ? "paddings" : "pads", pads));
      attrs.push_back(attr_float("value", 0.75f));
    } else if (opset < 18) {
      ins = {"x", g.constant("pads", int64s(pads)), g.constant("value", testing::contrib::scalar(0.75f))};
    } else {
      ins = {"x", g.constant("pads", int64s({-1, 1, 2, 3})), g.constant("value", testing::contrib::scalar(0.75f)),
             g.constant("axes", int64s({-1, 0}))};
    }
    g.node("Pad", ins, {"y"}, attrs);
    g.output("y");
    expect_fast_matches_reference(g, Answered::kFast, "opset " + std::to_string(opset));
  }
  // An int64 input at opset 10 gets the float value attribute converted.
  TestGraph g(10);
  g.input("x", pattern_tensor(ir::DType::kInt64, {4, 3}, 9));
  g.node("Pad", {"x"}, {"y"}, {attr_ints("pads", {1, 1, 0, 2}), attr_float("value", 7.0f)});
  g.output("y");
  expect_fast_matches_reference(g, Answered::kFast, "int64, opset 10 value");
}

TEST(PadKernel, LeavesInvalidCallsToTheReference) {
  check_pad({3, 4}, {1, 1, 1}, "constant", ir::DType::kFloat32, Answered::kReference);  // odd count
  check_pad({3, 4}, {-2, 0, -2, 0}, "constant", ir::DType::kFloat32, Answered::kReference);  // crops past the axis
  check_pad({3, 4}, {0, -4, 0, 2}, "reflect", ir::DType::kFloat32, Answered::kReference);  // pads an empty axis
  TestGraph g(19);
  ir::Tensor s(ir::DType::kString, {2});
  g.input("x", s);
  g.node("Pad", {"x", g.constant("pads", int64s({1, 1}))}, {"y"});
  g.output("y");
  expect_fast_matches_reference(g, Answered::kReference, "strings");
  TestGraph h(19);
  h.input("x", Random(2).floats({3, 4}));
  h.node("Pad", {"x", h.constant("pads", int64s({1, 1})), "", h.constant("axes", int64s({5}))}, {"y"});
  h.output("y");
  expect_fast_matches_reference(h, Answered::kReference, "axis out of range");
}

}  // namespace
}  // namespace kiln

// The fast Gather kernel (kernels/cpu/gather_kernel.cc) against the reference, bit for bit: every axis
// of ranks 1 to 4, int32 and int64 indices (negative, repeated, scalar, multi-dimensional), element types
// of 1 to 8 bytes, a large embedding lookup for the threaded path; out-of-range indices and strings are
// left to the reference, which must fail with its message.
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
using testing::contrib::attr_int;
using testing::contrib::Random;
using testing::contrib::TestGraph;

void check_gather(const std::vector<int64_t>& shape, int64_t axis, const ir::Tensor& indices,
                  ir::DType dtype = ir::DType::kFloat32, Answered answered = Answered::kFast) {
  TestGraph g;
  ir::Tensor x = Random(static_cast<uint32_t>(shape.size() + 3)).floats(shape);
  if (dtype != ir::DType::kFloat32) {
    x = ir::Tensor(dtype, shape);
    std::mt19937 gen(4);
    for (size_t i = 0; i < x.nbytes(); ++i) static_cast<uint8_t*>(x.raw())[i] = static_cast<uint8_t>(gen());
  }
  g.input("x", x);
  g.input("i", indices);
  g.node("Gather", {"x", "i"}, {"y"}, {attr_int("axis", axis)});
  g.output("y");
  expect_fast_matches_reference(g, answered,
                                "shape " + ir::to_string(shape) + " axis " + std::to_string(axis) + " indices " +
                                    ir::to_string(indices.shape()) + " " + std::string(ir::dtype_name(dtype)));
}

// Random indices in [-dim, dim) of the given shape, int64 or int32.
ir::Tensor gather_test_indices(const std::vector<int64_t>& shape, int64_t dim, bool i64, uint32_t seed) {
  std::mt19937 gen(seed);
  ir::Tensor t(i64 ? ir::DType::kInt64 : ir::DType::kInt32, shape);
  for (int64_t k = 0; k < t.numel(); ++k) {
    const int64_t v = std::uniform_int_distribution<int64_t>(-dim, dim - 1)(gen);
    if (i64)
      t.data<int64_t>()[k] = v;
    else
      t.data<int32_t>()[k] = static_cast<int32_t>(v);
  }
  return t;
}

TEST(GatherKernel, EveryAxisOfRanks1To4) {
  uint32_t seed = 1;
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{17}, {5, 9}, {3, 7, 5}, {2, 3, 5, 17}}) {
    const auto rank = static_cast<int64_t>(shape.size());
    for (int64_t axis = -rank; axis < rank; ++axis) {
      const int64_t dim = shape[static_cast<size_t>(axis < 0 ? axis + rank : axis)];
      for (bool i64 : {true, false}) {
        check_gather(shape, axis, gather_test_indices({4}, dim, i64, seed++));
        check_gather(shape, axis, gather_test_indices({2, 3}, dim, i64, seed++));
        check_gather(shape, axis, gather_test_indices({}, dim, i64, seed++));  // scalar: the axis goes
      }
    }
  }
}

TEST(GatherKernel, ElementTypesAndALargeLookup) {
  for (ir::DType t : {ir::DType::kUInt8, ir::DType::kInt16, ir::DType::kInt64, ir::DType::kFloat16, ir::DType::kBool})
    check_gather({6, 5, 3}, 1, gather_test_indices({7}, 5, true, 3), t);
  check_gather({1000, 384}, 0, gather_test_indices({2, 200}, 1000, true, 5));  // an embedding table
  check_gather({4, 5000}, 1, gather_test_indices({3000}, 5000, false, 6));     // short blocks, many of them
}

TEST(GatherKernel, LeavesInvalidCallsToTheReference) {
  check_gather({5, 4}, 0, ir::Tensor::from_vector<int64_t>({1, 5}, {2}), ir::DType::kFloat32, Answered::kReference);
  check_gather({5, 4}, 1, ir::Tensor::from_vector<int32_t>({-5}, {1}), ir::DType::kFloat32, Answered::kReference);
  check_gather({5, 4}, 2, ir::Tensor::from_vector<int64_t>({0}, {1}), ir::DType::kFloat32, Answered::kReference);
  check_gather({5, 0}, 0, ir::Tensor::from_vector<int64_t>({0}, {1}), ir::DType::kFloat32, Answered::kReference);
}

}  // namespace
}  // namespace kiln

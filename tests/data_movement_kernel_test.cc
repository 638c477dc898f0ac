// The fast Transpose, Slice, Concat and Split kernels (kernels/cpu/data_movement_kernel.cc) against the
// reference ones, bit for bit: every perm of ranks 3 and 4, random perms up to rank 6, size-1 axes, tile
// edges (sizes below, at and above 8 and 16), tensors large enough to take the threaded paths, element
// types of 1, 2, 4 and 8 bytes; Slice with negative and clamped starts, ends, axes and steps; Concat and
// Split along every axis, with empty parts, unused outputs and opset 18's num_outputs; and the calls left
// to the reference (strings, invalid attributes or inputs), which must fail with the reference's message.
// Run under KILN_CPU_ISA=avx2 and scalar too: the tiles differ per ISA.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
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
using testing::contrib::attr_ints;
using testing::contrib::int64s;
using testing::contrib::pattern_tensor;
using testing::contrib::Random;
using testing::contrib::TestGraph;

std::string describe(const std::vector<int64_t>& shape, const std::vector<int64_t>& perm) {
  return "shape " + ir::to_string(shape) + " perm " + ir::to_string(perm);
}

void check_transpose(const std::vector<int64_t>& shape, const std::vector<int64_t>& perm,
                     ir::DType dtype = ir::DType::kFloat32, Answered answered = Answered::kFast) {
  TestGraph g;
  g.input("x", pattern_tensor(dtype, shape, static_cast<uint32_t>(shape.size() * 31 + perm.size())));
  g.node("Transpose", {"x"}, {"y"}, {attr_ints("perm", perm)});
  g.output("y");
  expect_fast_matches_reference(g, answered, describe(shape, perm) + " " + std::string(ir::dtype_name(dtype)));
}

TEST(DataMovementKernels, TransposeEveryPermOfRanks3And4) {
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{3, 5, 7}, {9, 17, 33}, {1, 16, 8}, {2, 3, 5, 7}, {4, 1, 9, 17}, {2, 16, 3, 24}}) {
    std::vector<int64_t> perm(shape.size());
    std::iota(perm.begin(), perm.end(), 0);
    do {
      check_transpose(shape, perm);
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
}

TEST(DataMovementKernels, TransposeRandomPermsOfRanks1To6) {
  std::mt19937 gen(5);
  for (size_t rank = 1; rank <= 6; ++rank) {
    for (int trial = 0; trial < 6; ++trial) {
      std::vector<int64_t> shape(rank), perm(rank);
      for (int64_t& d : shape) d = std::uniform_int_distribution<int64_t>(1, rank <= 3 ? 19 : 6)(gen);
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), gen);
      check_transpose(shape, perm);
    }
  }
  check_transpose({1, 1, 1}, {2, 0, 1});  // one element
  check_transpose({5}, {0});
}

// 2-D transposes around the tile sizes (8 for AVX2, 16 for AVX-512) and the 64-element blocks.
TEST(DataMovementKernels, TransposeTileEdges) {
  for (int64_t rows : {1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 130})
    for (int64_t cols : {1, 3, 8, 16, 17, 40, 64, 67}) check_transpose({rows, cols}, {1, 0});
  check_transpose({3, 24, 40}, {0, 2, 1});
  check_transpose({24, 3, 40}, {2, 1, 0});
}

// Three rows to interleave (an image's NCHW -> NHWC with 3 channels), which AVX-512 and AVX2 do with
// permutes: widths around their 16 and 8 lanes and the 64-element blocks, batches, 4-byte integers, and 3
// rows whose output is not dense (the permutes do not apply).
TEST(DataMovementKernels, TransposeInterleavesThreeRows) {
  for (int64_t cols : {1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 129}) {
    check_transpose({3, cols}, {1, 0});
    check_transpose({2, 3, 1, cols}, {0, 2, 3, 1});
    check_transpose({1, 3, cols, 5}, {0, 2, 3, 1}, ir::DType::kInt32);
    check_transpose({3, 2, cols}, {2, 1, 0});
  }
}

// Over kMoveParallelBytes: split across threads, on every path.
TEST(DataMovementKernels, TransposeLargeTensorsTakeTheThreadedPaths) {
  check_transpose({1, 96, 56, 56}, {0, 2, 3, 1});  // ConvNeXt's NCHW -> NHWC
  check_transpose({1, 56, 56, 96}, {0, 3, 1, 2});  // and back
  check_transpose({2, 197, 12, 64}, {0, 2, 1, 3});  // attention heads: runs of 64 kept
  check_transpose({1, 12, 197, 64}, {0, 1, 3, 2});  // K transposed
  check_transpose({1, 8, 7, 8, 7, 96}, {0, 1, 3, 2, 4, 5});  // Swin's windows
  check_transpose({1, 224 * 224, 3}, {0, 2, 1});  // an image NHWC -> NCHW: 3 columns
  check_transpose({3, 224 * 224}, {1, 0});  // and 3 rows
  check_transpose({1, 3, 320, 317}, {0, 2, 3, 1});  // an odd width
  check_transpose({70000, 2}, {1, 0});
  check_transpose({1, 300000}, {1, 0});  // no movement: one copy, split
  check_transpose({9, 65, 131}, {2, 1, 0}, ir::DType::kInt64);
  check_transpose({9, 65, 531}, {2, 0, 1}, ir::DType::kUInt8);
}

TEST(DataMovementKernels, TransposeEveryElementSize) {
  for (ir::DType t : {ir::DType::kUInt8, ir::DType::kBool, ir::DType::kInt16, ir::DType::kFloat16, ir::DType::kInt32,
                      ir::DType::kUInt32, ir::DType::kInt64, ir::DType::kFloat64}) {
    check_transpose({5, 17, 19}, {2, 0, 1}, t);
    check_transpose({2, 33, 18}, {0, 2, 1}, t);
    check_transpose({4, 3, 6}, {1, 0, 2}, t);
  }
}

TEST(DataMovementKernels, TransposeWithoutPermReversesTheAxes) {
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{4, 9}, {3, 5, 7}, {2, 1, 3, 18}}) {
    TestGraph g;
    g.input("x", Random(3).floats(shape));
    g.node("Transpose", {"x"}, {"y"});
    g.output("y");
    expect_fast_matches_reference(g, Answered::kFast, "no perm, shape " + ir::to_string(shape));
  }
}

TEST(DataMovementKernels, TransposeLeavesToTheReference) {
  {
    TestGraph g;  // a perm for another rank: the kernel is prepared, the call declined
    g.input("x", Random(1).floats({3, 4}));
    g.node("Transpose", {"x"}, {"y"}, {attr_ints("perm", {0, 2, 1})});
    g.output("y");
    expect_fast_matches_reference(g, Answered::kReference, "perm of another rank");
  }
  {
    TestGraph g;  // strings
    ir::Tensor s(ir::DType::kString, {2, 3});
    for (int64_t i = 0; i < 6; ++i) s.data<std::string>()[i] = std::to_string(i);
    g.input("x", s);
    g.node("Transpose", {"x"}, {"y"}, {attr_ints("perm", {1, 0})});
    g.output("y");
    expect_fast_matches_reference(g, Answered::kReference, "strings");
  }
  check_transpose({0, 3}, {1, 0}, ir::DType::kFloat32, Answered::kReference);  // empty
}

// ---- Slice ----

struct SliceCase {
  std::vector<int64_t> shape, starts, ends, axes, steps;  // axes, steps empty: not given
};

std::string describe(const SliceCase& c) {
  return "shape " + ir::to_string(c.shape) + " starts " + ir::to_string(c.starts) + " ends " +
         ir::to_string(c.ends) + " axes " + ir::to_string(c.axes) + " steps " + ir::to_string(c.steps);
}

// Opset 13 with int64 (or int32) inputs, as constants or as graph inputs.
void check_slice(const SliceCase& c, ir::DType dtype = ir::DType::kFloat32, Answered answered = Answered::kFast,
                 bool int32_params = false) {
  TestGraph g(13);
  g.input("x", pattern_tensor(dtype, c.shape, static_cast<uint32_t>(c.shape.size() + c.starts.size())));
  auto param = [&](const std::string& name, const std::vector<int64_t>& v) {
    if (!int32_params) return g.constant(name, int64s(v));
    std::vector<int32_t> v32(v.begin(), v.end());
    return g.input(name, testing::contrib::int32s(v32, {static_cast<int64_t>(v.size())}));
  };
  std::vector<std::string> ins = {"x", param("starts", c.starts), param("ends", c.ends)};
  if (!c.axes.empty() || !c.steps.empty()) ins.push_back(c.axes.empty() ? "" : param("axes", c.axes));
  if (!c.steps.empty()) ins.push_back(param("steps", c.steps));
  g.node("Slice", ins, {"y"});
  g.output("y");
  expect_fast_matches_reference(g, answered, describe(c) + " " + std::string(ir::dtype_name(dtype)));
}

TEST(DataMovementKernels, SliceMatchesReference) {
  const int64_t big = std::numeric_limits<int64_t>::max();
  const std::vector<SliceCase> cases = {
      {{10}, {2}, {7}, {}, {}},
      {{10}, {-3}, {big}, {}, {}},
      {{10}, {9}, {-big}, {0}, {-1}},  // reversed
      {{10}, {-1}, {0}, {0}, {-3}},
      {{10}, {1}, {10}, {0}, {4}},
      {{3, 17}, {0, 1}, {3, 16}, {}, {}},
      {{3, 17}, {1}, {-1}, {-1}, {2}},  // inner axis strided
      {{4, 5, 6}, {1, 0}, {3, 6}, {0, 2}, {}},
      {{4, 5, 6}, {3, -2, 5}, {0, 0, -big}, {0, 1, 2}, {-1, -2, -2}},
      {{2, 3, 5, 7}, {0, 1}, {1, 3}, {1, 2}, {}},  // keeps the innermost runs whole
      {{2, 3, 5, 7}, {1, 2, 3}, {big, 4, big}, {-3, -2, -1}, {1, 1, 2}},
      {{1, 197, 768}, {0}, {1}, {1}, {}},  // ViT's class token
      {{2, 8, 8, 12}, {0, 0}, {big, big}, {1, 2}, {2, 2}},  // Swin's patch merging
      {{2, 8, 8, 12}, {1, 0}, {big, big}, {1, 2}, {2, 2}},
      {{6, 7}, {-100, 200}, {100, -200}, {0, 1}, {1, -1}},  // clamped
      {{6, 7}, {4}, {2}, {0}, {}},  // empty: left to the reference
      {{1, 64, 112, 112}, {0, 1}, {32, big}, {1, 2}, {1, 2}},  // large: threaded
      {{1, 600000}, {5}, {-5}, {1}, {}},  // one long run, split
  };
  for (const SliceCase& c : cases) {
    int64_t count = 1;
    {
      // The output is empty when an axis takes nothing: those go to the reference.
      TestGraph probe(13);
      probe.input("x", Random(1).floats(c.shape));
      std::vector<std::string> ins = {"x", probe.constant("s", int64s(c.starts)), probe.constant("e", int64s(c.ends))};
      if (!c.axes.empty() || !c.steps.empty()) ins.push_back(probe.constant("a", int64s(c.axes)));
      if (!c.steps.empty()) ins.push_back(probe.constant("p", int64s(c.steps)));
      probe.node("Slice", ins, {"y"});
      probe.output("y");
      count = probe.run()[0].numel();
    }
    check_slice(c, ir::DType::kFloat32, count > 0 ? Answered::kFast : Answered::kReference);
  }
}

TEST(DataMovementKernels, SliceParamsAsInt32InputsAndEveryElementSize) {
  const SliceCase c{{5, 6, 7}, {1, -1, 0}, {4, 0, 7}, {0, 1, 2}, {2, -2, 3}};
  check_slice(c, ir::DType::kFloat32, Answered::kFast, /*int32_params=*/true);
  for (ir::DType t : {ir::DType::kUInt8, ir::DType::kInt16, ir::DType::kInt32, ir::DType::kInt64, ir::DType::kFloat64})
    check_slice(c, t);
}

TEST(DataMovementKernels, SliceBeforeOpset10TakesAttributes) {
  TestGraph g(9);
  g.input("x", Random(2).floats({4, 7, 5}));
  g.node("Slice", {"x"}, {"y"}, {attr_ints("starts", {1, -4}), attr_ints("ends", {3, 100}), attr_ints("axes", {0, 2})});
  g.output("y");
  expect_fast_matches_reference(g, Answered::kFast, "opset 9 attributes");
  TestGraph h(1);
  h.input("x", Random(2).floats({4, 7, 5}));
  h.node("Slice", {"x"}, {"y"}, {attr_ints("starts", {1, 2}), attr_ints("ends", {3, -1})});
  h.output("y");
  expect_fast_matches_reference(h, Answered::kFast, "opset 1 without axes");
}

TEST(DataMovementKernels, SliceLeavesInvalidInputsToTheReference) {
  const int64_t big = std::numeric_limits<int64_t>::max();
  check_slice({{4, 5}, {0, 0}, {2}, {}, {}}, ir::DType::kFloat32, Answered::kReference);  // lengths differ
  check_slice({{4, 5}, {0, 0}, {2, 2}, {1, 1}, {}}, ir::DType::kFloat32, Answered::kReference);  // a repeated axis
  check_slice({{4, 5}, {0}, {2}, {2}, {}}, ir::DType::kFloat32, Answered::kReference);  // axis out of range
  check_slice({{4, 5}, {0}, {big}, {0}, {0}}, ir::DType::kFloat32, Answered::kReference);  // a zero step
}

// ---- Concat ----

void check_concat(const std::vector<std::vector<int64_t>>& shapes, int64_t axis, ir::DType dtype = ir::DType::kFloat32,
                  Answered answered = Answered::kFast, int64_t opset = 13) {
  TestGraph g(opset);
  std::vector<std::string> ins;
  std::string what = "axis " + std::to_string(axis) + ":";
  for (size_t i = 0; i < shapes.size(); ++i) {
    ins.push_back(g.input("x" + std::to_string(i), pattern_tensor(dtype, shapes[i], static_cast<uint32_t>(i + 1))));
    what += " " + ir::to_string(shapes[i]);
  }
  g.node("Concat", ins, {"y"}, {attr_int("axis", axis)});
  g.output("y");
  expect_fast_matches_reference(g, answered, what + " " + std::string(ir::dtype_name(dtype)));
}

TEST(DataMovementKernels, ConcatMatchesReference) {
  check_concat({{3}, {5}, {1}}, 0);
  check_concat({{2, 3}, {2, 5}}, 1);
  check_concat({{2, 3}, {4, 3}, {1, 3}}, -2);
  for (int64_t axis = 0; axis < 4; ++axis) {
    std::vector<std::vector<int64_t>> shapes;
    for (int64_t k : {3, 1, 5}) {
      std::vector<int64_t> s = {2, 3, 5, 7};
      s[static_cast<size_t>(axis)] = k;
      shapes.push_back(s);
    }
    check_concat(shapes, axis);
    check_concat(shapes, axis - 4);
  }
  check_concat({{2, 0, 3}, {2, 4, 3}, {2, 0, 3}, {2, 1, 3}}, 1);  // empty parts
  check_concat({{1, 256, 32, 32}, {1, 256, 32, 32}, {1, 128, 32, 32}}, 1);  // channels, large: threaded
  check_concat({{300, 1000}, {200, 1000}}, 0);
  check_concat({{64, 1000}, {64, 1}, {64, 999}}, 1);
  check_concat({{1}, {2}, {1}}, 0, ir::DType::kInt64);  // a shape being built
  for (ir::DType t : {ir::DType::kUInt8, ir::DType::kFloat16, ir::DType::kInt32, ir::DType::kFloat64})
    check_concat({{2, 3, 5}, {2, 4, 5}}, 1, t);
  check_concat({{2, 3}, {2, 5}}, 1, ir::DType::kFloat32, Answered::kFast, 1);  // opset 1
}

TEST(DataMovementKernels, ConcatLeavesInvalidInputsToTheReference) {
  check_concat({{2, 3}, {3, 5}}, 1, ir::DType::kFloat32, Answered::kReference);  // other dims differ
  check_concat({{2, 3}, {2, 3, 1}}, 1, ir::DType::kFloat32, Answered::kReference);  // ranks differ
  check_concat({{2, 3}, {2, 3}}, 2, ir::DType::kFloat32, Answered::kReference);  // axis out of range
  check_concat({{2, 0}, {2, 0}}, 1, ir::DType::kFloat32, Answered::kReference);  // empty output
  TestGraph g;  // element types differ
  g.input("a", Random(1).floats({2, 3}));
  g.input("b", pattern_tensor(ir::DType::kInt32, {2, 3}, 2));
  g.node("Concat", {"a", "b"}, {"y"}, {attr_int("axis", 0)});
  g.output("y");
  expect_fast_matches_reference(g, Answered::kReference, "float32 and int32");
}

// ---- Split ----

// sizes empty: no split input / attribute. outputs: how many; unused: outputs left unnamed.
void check_split(const std::vector<int64_t>& shape, int64_t axis, const std::vector<int64_t>& sizes, size_t outputs,
                 int64_t opset, Answered answered = Answered::kFast, const std::vector<size_t>& unused = {},
                 ir::DType dtype = ir::DType::kFloat32, bool num_outputs_attr = false) {
  TestGraph g(opset);
  g.input("x", pattern_tensor(dtype, shape, 7));
  std::vector<std::string> ins = {"x"};
  std::vector<ir::Attribute> attrs = {attr_int("axis", axis)};
  if (!sizes.empty()) {
    if (opset >= 13)
      ins.push_back(g.constant("split", int64s(sizes)));
    else
      attrs.push_back(attr_ints("split", sizes));
  }
  if (num_outputs_attr) attrs.push_back(attr_int("num_outputs", static_cast<int64_t>(outputs)));
  std::vector<std::string> outs;
  for (size_t k = 0; k < outputs; ++k) {
    const bool skip = std::find(unused.begin(), unused.end(), k) != unused.end();
    outs.push_back(skip ? "" : "y" + std::to_string(k));
  }
  g.node("Split", ins, outs, attrs);
  for (const std::string& o : outs)
    if (!o.empty()) g.output(o);
  expect_fast_matches_reference(g, answered,
                                "shape " + ir::to_string(shape) + " axis " + std::to_string(axis) + " split " +
                                    ir::to_string(sizes) + " outputs " + std::to_string(outputs) + " opset " +
                                    std::to_string(opset) + " " + std::string(ir::dtype_name(dtype)));
}

TEST(DataMovementKernels, SplitMatchesReference) {
  for (int64_t opset : {11, 13}) {
    check_split({10}, 0, {3, 0, 7}, 3, opset);
    check_split({4, 9}, 1, {2, 3, 4}, 3, opset);
    check_split({4, 9}, -1, {}, 3, opset);
    check_split({6, 5, 7}, 0, {}, 2, opset);
    check_split({3, 6, 5, 7}, 2, {1, 4}, 2, opset);
    check_split({3, 6, 5, 7}, 3, {5, 1, 1}, 3, opset, Answered::kFast, {1});  // an output nobody reads
  }
  check_split({2, 9, 4}, 1, {}, 2, 18, Answered::kFast, {}, ir::DType::kFloat32, /*num_outputs_attr=*/true);  // 5 + 4
  check_split({2, 10, 4}, 1, {}, 4, 18, Answered::kFast, {}, ir::DType::kFloat32, true);  // 3 + 3 + 3 + 1
  check_split({1, 768, 3, 197}, 1, {}, 3, 13);  // fused QKV: large, threaded
  check_split({1, 197, 2304}, 2, {768, 768, 768}, 3, 13);
  check_split({900, 1000}, 0, {450, 450}, 2, 13);
  check_split({2, 12}, 1, {}, 3, 2);  // the attribute era
  for (ir::DType t : {ir::DType::kUInt8, ir::DType::kInt16, ir::DType::kInt64})
    check_split({3, 8, 5}, 1, {2, 6}, 2, 13, Answered::kFast, {}, t);
}

// Rows of up to 4 KiB go whole to the threads, each segment copied inline in overlapping moves of 32, 16,
// 8 or 4 bytes or byte by byte: segment widths around each of those, and channels-last feature maps large
// enough to be threaded, both ways.
TEST(DataMovementKernels, ConcatAndSplitOfShortRows) {
  for (int64_t a : {1, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 70})
    for (int64_t b : {1, 5, 9, 64, 100}) check_concat({{37, a}, {37, 0}, {37, b}}, 1, ir::DType::kUInt8);
  check_concat({{1, 104, 104, 24}, {1, 104, 104, 24}}, 3);  // ddddocr-det's, threaded
  check_concat({{1, 52, 52, 4}, {1, 52, 52, 1}, {1, 52, 52, 1}}, -1);
  check_split({1, 104, 104, 48}, 3, {24, 24}, 2, 13);
  check_split({1, 104, 104, 48}, 3, {5, 43}, 2, 13, Answered::kFast, {}, ir::DType::kUInt8);
}

TEST(DataMovementKernels, SplitLeavesInvalidInputsToTheReference) {
  check_split({4, 9}, 1, {2, 3}, 2, 13, Answered::kReference);  // does not add up
  check_split({4, 9}, 1, {2, 7}, 3, 13, Answered::kReference);  // sizes for other outputs
  check_split({4, 9}, 1, {}, 2, 13, Answered::kReference);  // 9 is not even
  check_split({4, 9}, 2, {}, 3, 13, Answered::kReference);  // axis out of range
  check_split({4, 9}, 1, {}, 4, 18, Answered::kFast, {}, ir::DType::kFloat32, true);  // 3 + 3 + 3 + 0
  check_split({4, 5}, 1, {}, 4, 18, Answered::kReference, {}, ir::DType::kFloat32, true);  // 2 + 2 + 2 leaves -1
}

}  // namespace
}  // namespace kiln

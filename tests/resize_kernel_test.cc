// The fast Resize and Upsample kernel (kernels/cpu/resize_kernel.cc) against the reference: nearest in every
// coordinate_transformation_mode and nearest_mode (bit for bit: the same elements), tf_crop_and_resize's
// extrapolation, linear over NCHW and NHWC (within float rounding of the reference's double sums), up and
// down, from scales and from sizes, at every opset the kernel covers, inputs of one row or column, large
// ones that take the threaded path, NaN and infinity; and the calls it leaves to the reference.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "contrib_test_util.h"
#include "fast_kernel_check.h"

namespace kiln {
namespace {

using testing::Answered;
using testing::expect_fast_matches_reference;
using testing::contrib::attr_float;
using testing::contrib::attr_floats;
using testing::contrib::attr_int;
using testing::contrib::attr_ints;
using testing::contrib::attr_string;
using testing::contrib::int64s;
using testing::contrib::Random;
using testing::contrib::TestGraph;

constexpr double kLinearTolerance = 2e-6;

ir::Tensor floats(const std::vector<float>& v) {
  return ir::Tensor::from_vector<float>(v, {static_cast<int64_t>(v.size())});
}

struct ResizeCase {
  ResizeCase(std::vector<int64_t> x_shape, std::vector<float> scale_values, std::vector<int64_t> size_values,
             std::vector<ir::Attribute> attributes, int64_t op_opset = 13, std::vector<float> roi_values = {})
      : x(std::move(x_shape)),
        scales(std::move(scale_values)),
        sizes(std::move(size_values)),
        attrs(std::move(attributes)),
        opset(op_opset),
        roi(std::move(roi_values)) {}
  std::vector<int64_t> x;
  std::vector<float> scales;   // or
  std::vector<int64_t> sizes;  // (one of the two)
  std::vector<ir::Attribute> attrs;
  int64_t opset;
  std::vector<float> roi;  // tf_crop_and_resize's
};

std::string describe(const ResizeCase& c) {
  std::string s = "x " + ir::to_string(c.x) + " opset " + std::to_string(c.opset);
  if (!c.sizes.empty()) s += " sizes " + ir::to_string(c.sizes);
  if (!c.scales.empty()) {
    s += " scales [";
    for (float f : c.scales) s += std::to_string(f) + " ";
    s += "]";
  }
  for (const ir::Attribute& a : c.attrs) {
    s += " " + a.name + "=";
    s += a.kind == ir::Attribute::Kind::kString ? a.s : std::to_string(a.i);
  }
  return s;
}

TestGraph resize_graph(const ResizeCase& c, const ir::Tensor& x) {
  TestGraph g(c.opset);
  g.input("x", x);
  std::vector<std::string> ins = {"x"};
  if (c.opset < 11) {
    ins.push_back(g.constant("scales", floats(c.scales)));
  } else {
    // Opset 11 requires roi and scales (empty when unused); from 13 on they may be omitted.
    const bool omit = c.opset >= 13;
    ins.push_back(!c.roi.empty() ? g.constant("roi", floats(c.roi)) : omit ? "" : g.constant("roi", floats({})));
    if (!c.scales.empty())
      ins.push_back(g.constant("scales", floats(c.scales)));
    else
      ins.push_back(omit ? "" : g.constant("scales", floats({})));
    if (!c.sizes.empty()) ins.push_back(g.constant("sizes", int64s(c.sizes)));
  }
  g.node("Resize", ins, {"y"}, c.attrs);
  g.output("y");
  return g;
}

bool is_linear(const ResizeCase& c) {
  for (const ir::Attribute& a : c.attrs)
    if (a.name == "mode" && a.s != "nearest") return true;
  return false;
}

void check_resize(const ResizeCase& c, Answered answered = Answered::kFast) {
  const TestGraph g = resize_graph(c, Random(static_cast<uint32_t>(c.x.size() * 13 + c.sizes.size())).floats(c.x));
  expect_fast_matches_reference(g, answered, describe(c), is_linear(c) ? kLinearTolerance : 0.0);
}

const char* const kCoordModes[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                   "asymmetric", "tf_half_pixel_for_nn"};
const char* const kNearestModes[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};

TEST(ResizeKernel, NearestEveryCoordinateAndNearestMode) {
  for (const char* coord : kCoordModes) {
    for (const char* nearest : kNearestModes) {
      const std::vector<ir::Attribute> attrs = {attr_string("mode", "nearest"),
                                                attr_string("coordinate_transformation_mode", coord),
                                                attr_string("nearest_mode", nearest)};
      check_resize({{1, 2, 5, 7}, {1, 1, 2, 3}, {}, attrs, 19});
      check_resize({{1, 2, 5, 7}, {1, 1, 0.6f, 1.7f}, {}, attrs, 19});
      check_resize({{2, 3, 9, 4}, {}, {2, 3, 4, 13}, attrs, 19});
      check_resize({{1, 6, 7, 3}, {}, {1, 11, 4, 3}, attrs, 19});  // NHWC
      check_resize({{13}, {}, {5}, attrs, 19});
    }
  }
}

TEST(ResizeKernel, NearestOverManyAxesAndRanks) {
  const std::vector<ir::Attribute> attrs = {attr_string("mode", "nearest")};
  check_resize({{3, 4, 5}, {2, 0.5f, 1.5f}, {}, attrs});  // every axis
  check_resize({{2, 3, 2, 3, 2}, {}, {4, 3, 3, 3, 5}, attrs});
  check_resize({{2, 1, 3, 1, 2, 3}, {}, {2, 2, 3, 1, 4, 3}, attrs});  // rank 6, size-1 axes
  check_resize({{1, 4, 1, 1}, {}, {1, 4, 5, 6}, attrs});  // from one element per plane
  check_resize({{1, 3, 4, 5}, {1, 1, 1, 1}, {}, attrs});  // no change: a copy
  check_resize({{2, 32, 40, 40}, {1, 1, 2, 2}, {}, attrs});  // YOLO's upsample: large, threaded
  check_resize({{1, 40, 40, 64}, {1, 2, 2, 1}, {}, attrs});  // the same in NHWC
}

TEST(ResizeKernel, NearestTfCropAndResizeExtrapolates) {
  for (const std::vector<float>& roi : std::vector<std::vector<float>>{
           {0, 0, 0.2f, 0.1f, 1, 1, 0.9f, 1.3f}, {0, 0, -0.3f, 0.5f, 1, 1, 0.6f, 0.7f}}) {
    check_resize({{1, 2, 6, 5},
                  {},
                  {1, 2, 7, 9},
                  {attr_string("mode", "nearest"), attr_string("coordinate_transformation_mode", "tf_crop_and_resize"),
                   attr_float("extrapolation_value", -7.5f)},
                  13,
                  roi});
  }
}

TEST(ResizeKernel, LinearNchwAndNhwc) {
  for (const char* coord : kCoordModes) {
    // tf_half_pixel_for_nn moves every axis by half a pixel, so linear blends neighbouring batches and
    // channels too: more than two resized axes, left to the reference (below).
    if (std::string(coord) == "tf_half_pixel_for_nn") continue;
    const std::vector<ir::Attribute> attrs = {attr_string("mode", "linear"),
                                              attr_string("coordinate_transformation_mode", coord)};
    check_resize({{1, 3, 5, 7}, {1, 1, 2, 2}, {}, attrs});
    check_resize({{2, 3, 5, 7}, {1, 1, 0.5f, 1.3f}, {}, attrs});
    check_resize({{1, 2, 9, 4}, {}, {1, 2, 4, 13}, attrs});
    check_resize({{1, 1, 3}, {}, {1, 1, 1}, attrs});  // one output column
    check_resize({{1, 5, 6, 8}, {}, {1, 9, 4, 8}, attrs});  // NHWC: runs of 8 channels
    check_resize({{2, 5, 6, 3}, {1, 1.6f, 0.7f, 1}, {}, attrs});
    check_resize({{3, 10}, {}, {3, 17}, attrs});  // the last axis alone
    check_resize({{3, 10, 4}, {}, {3, 6, 4}, attrs});  // a middle axis alone: runs of 4
  }
}

TEST(ResizeKernel, LinearLikeSegmentationHeads) {
  const std::vector<ir::Attribute> attrs = {attr_string("mode", "linear"),
                                            attr_string("coordinate_transformation_mode", "half_pixel")};
  check_resize({{1, 21, 32, 32}, {}, {1, 21, 512, 512}, attrs});  // DeepLabV3's logits: large, threaded
  check_resize({{1, 256, 1, 1}, {}, {1, 256, 32, 32}, attrs});  // its pooled branch: from one element
  check_resize({{1, 21, 64, 64}, {}, {1, 21, 520, 520}, attrs});
  check_resize({{1, 64, 64, 21}, {}, {1, 260, 260, 21}, attrs});  // NHWC
  check_resize({{1, 3, 480, 640}, {}, {1, 3, 224, 224}, attrs});  // downscaling a picture
}

TEST(ResizeKernel, EveryOpsetAndUpsample) {
  for (int64_t opset : {10, 11, 13, 18, 19}) {
    for (const char* mode : {"nearest", "linear"}) {
      check_resize({{1, 2, 5, 7}, {1, 1, 2.5f, 1.5f}, {}, {attr_string("mode", mode)}, opset});
      if (opset >= 11) check_resize({{1, 2, 5, 7}, {}, {1, 2, 3, 11}, {attr_string("mode", mode)}, opset});
    }
  }
  // Opset 18's axes: scales and sizes for the named axes only.
  check_resize({{1, 2, 5, 7}, {2, 3}, {}, {attr_string("mode", "linear"), attr_ints("axes", {2, 3})}, 18});
  check_resize({{1, 2, 5, 7}, {}, {9, 4}, {attr_string("mode", "nearest"), attr_ints("axes", {-1, 2})}, 18});
  for (const char* mode : {"nearest", "linear"}) {
    for (int64_t opset : {7, 9}) {
      TestGraph g(opset);
      g.input("x", Random(4).floats({1, 3, 4, 5}));
      std::vector<std::string> ins = {"x"};
      std::vector<ir::Attribute> attrs = {attr_string("mode", mode)};
      if (opset >= 9)
        ins.push_back(g.constant("scales", floats({1, 1, 2, 2.5f})));
      else
        attrs.push_back(attr_floats("scales", {1, 1, 2, 2.5f}));
      g.node("Upsample", ins, {"y"}, attrs);
      g.output("y");
      expect_fast_matches_reference(g, Answered::kFast,
                                    std::string("Upsample ") + mode + " opset " + std::to_string(opset),
                                    std::string(mode) == "linear" ? kLinearTolerance : 0.0);
    }
  }
}

TEST(ResizeKernel, NanAndInfinityPassAsInTheReference) {
  for (const char* mode : {"nearest", "linear"}) {
    ResizeCase c{{1, 1, 4, 5}, {}, {1, 1, 7, 9}, {attr_string("mode", mode)}, 13};
    ir::Tensor x = Random(9).floats(c.x);
    x.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
    x.data<float>()[12] = std::numeric_limits<float>::infinity();
    expect_fast_matches_reference(resize_graph(c, x), Answered::kFast, std::string("NaN and inf, ") + mode,
                                  std::string(mode) == "linear" ? kLinearTolerance : 0.0);
  }
}

TEST(ResizeKernel, LeavesTheRestToTheReference) {
  const std::vector<ResizeCase> declined = {
      {{1, 2, 5, 7}, {1, 1, 2, 2}, {}, {attr_string("mode", "cubic")}},
      {{1, 2, 5, 7}, {1, 1, 0.5f, 0.5f}, {}, {attr_string("mode", "linear"), attr_int("antialias", 1)}, 18},
      {{1, 2, 5, 7}, {1, 1, 2, 2}, {}, {attr_string("mode", "linear"), attr_int("exclude_outside", 1)}},
      {{1, 2, 5, 7}, {}, {1, 2, 9, 9}, {attr_string("mode", "nearest"), attr_string("keep_aspect_ratio_policy", "not_larger")}, 18},
      {{2, 2, 5, 7}, {2, 1, 2, 2}, {}, {attr_string("mode", "linear")}},  // three resized axes
      {{2, 3, 5, 7}, {2, 1, 1, 2}, {}, {attr_string("mode", "linear")}},  // resized axes apart
      {{1, 2, 5, 7}, {1, 1, 2}, {}, {attr_string("mode", "nearest")}},  // too few scales: the reference says why
      {{1, 2, 5, 7}, {1, 1, -2, 2}, {}, {attr_string("mode", "nearest")}},  // a negative scale
      {{1, 2, 5, 7}, {1, 1, 0.1f, 0.1f}, {}, {attr_string("mode", "nearest")}},  // an empty output
  };
  for (const ResizeCase& c : declined) check_resize(c, Answered::kReference);
  const std::vector<ir::Attribute> half_pixel_for_nn = {
      attr_string("mode", "linear"), attr_string("coordinate_transformation_mode", "tf_half_pixel_for_nn")};
  check_resize({{2, 3, 5, 7}, {1, 1, 2, 2}, {}, half_pixel_for_nn}, Answered::kReference);
  check_resize({{1, 1, 5, 7}, {1, 1, 2, 0.6f}, {}, half_pixel_for_nn});  // size-1 batch and channels stay put
  // tf_crop_and_resize with linear: declined.
  check_resize({{1, 1, 4, 4},
                {},
                {1, 1, 3, 3},
                {attr_string("mode", "linear"), attr_string("coordinate_transformation_mode", "tf_crop_and_resize")},
                13,
                {0, 0, 0.1f, 0.1f, 1, 1, 0.8f, 0.9f}},
               Answered::kReference);
}

}  // namespace
}  // namespace kiln

// Resize (opsets 10 to 19) and the deprecated Upsample. Both are separable: each output coordinate
// along an axis maps to a short list of (input index, weight) taps, computed once per axis, and an
// output element is the weighted sum over the product of its axes' taps. The formulas follow the
// ONNX reference implementation (onnx/reference/ops/op_resize.py), which generated the test data.
#include <algorithm>
#include <cmath>

#include "kernels/reference/common.h"
#include "kernels/reference/nn_common.h"

namespace kiln::ops::nn {
namespace {

using ir::DType;

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord {
  kHalfPixel,
  kHalfPixelSymmetric,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNn,
  kTfCropAndResize,
};
// kSimple is Upsample's (and Resize-10's) rule: floor when upsampling, ceil when downsampling.
enum class Nearest { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kSimple };
enum class AspectPolicy { kStretch, kNotLarger, kNotSmaller };

struct ResizeSpec {
  Mode mode = Mode::kNearest;
  Coord coord = Coord::kHalfPixel;
  Nearest nearest = Nearest::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0;
  bool antialias = false;
  AspectPolicy policy = AspectPolicy::kStretch;
  std::vector<int64_t> axes;  // the axes that scales / sizes / roi refer to (all axes by default)
};

Mode parse_mode(const NodeView& node, const std::string& s) {
  if (s == "nearest") return Mode::kNearest;
  if (s == "linear" || s == "bilinear" || s == "trilinear") return Mode::kLinear;
  if (s == "cubic" || s == "bicubic") return Mode::kCubic;
  node.fail("attribute mode has unknown value \"", s, "\" (expected nearest, linear or cubic)");
}

// Reads the attributes of the op at this opset, and the axes for an input of rank `rank`.
ResizeSpec read_spec(const NodeView& node, bool is_upsample, size_t rank) {
  ResizeSpec s;
  s.mode = parse_mode(node, node.attr_string("mode", "nearest"));
  bool legacy = is_upsample || node.opset() < 11;
  if (legacy) {
    if (s.mode == Mode::kCubic) node.fail("mode cubic needs Resize from opset 11");
    s.coord = Coord::kAsymmetric;
    s.nearest = Nearest::kSimple;
  } else {
    std::string c = node.attr_string("coordinate_transformation_mode", "half_pixel");
    if (c == "half_pixel")
      s.coord = Coord::kHalfPixel;
    else if (c == "half_pixel_symmetric")
      s.coord = Coord::kHalfPixelSymmetric;
    else if (c == "pytorch_half_pixel")
      s.coord = Coord::kPytorchHalfPixel;
    else if (c == "align_corners")
      s.coord = Coord::kAlignCorners;
    else if (c == "asymmetric")
      s.coord = Coord::kAsymmetric;
    else if (c == "tf_half_pixel_for_nn")
      s.coord = Coord::kTfHalfPixelForNn;
    else if (c == "tf_crop_and_resize")
      s.coord = Coord::kTfCropAndResize;
    else
      node.fail("attribute coordinate_transformation_mode has unknown value \"", c, "\"");
    std::string n = node.attr_string("nearest_mode", "round_prefer_floor");
    if (n == "round_prefer_floor")
      s.nearest = Nearest::kRoundPreferFloor;
    else if (n == "round_prefer_ceil")
      s.nearest = Nearest::kRoundPreferCeil;
    else if (n == "floor")
      s.nearest = Nearest::kFloor;
    else if (n == "ceil")
      s.nearest = Nearest::kCeil;
    else
      node.fail("attribute nearest_mode has unknown value \"", n, "\"");
    s.cubic_a = node.attr_float("cubic_coeff_a", -0.75f);
    s.exclude_outside = node.attr_int("exclude_outside", 0) != 0;
    s.extrapolation = node.attr_float("extrapolation_value", 0.0f);
    s.antialias = node.attr_int("antialias", 0) != 0;
    std::string p = node.attr_string("keep_aspect_ratio_policy", "stretch");
    if (p == "stretch")
      s.policy = AspectPolicy::kStretch;
    else if (p == "not_larger")
      s.policy = AspectPolicy::kNotLarger;
    else if (p == "not_smaller")
      s.policy = AspectPolicy::kNotSmaller;
    else
      node.fail("attribute keep_aspect_ratio_policy has unknown value \"", p, "\"");
  }
  std::vector<int64_t> axes = legacy ? std::vector<int64_t>() : node.attr_ints("axes");
  if (axes.empty()) {
    for (size_t i = 0; i < rank; ++i) s.axes.push_back(static_cast<int64_t>(i));
  } else {
    std::vector<bool> seen(rank, false);
    for (int64_t a : axes) {
      int64_t n = normalize_axis(node, a, static_cast<int64_t>(rank));
      if (seen[static_cast<size_t>(n)]) node.fail("axis ", a, " is repeated in attribute axes");
      seen[static_cast<size_t>(n)] = true;
      s.axes.push_back(n);
    }
  }
  return s;
}

// Where the op's inputs are: Resize-10 and Upsample-9 take (X, scales); Resize-11+ (X, roi, scales,
// sizes); Upsample before 9 has scales as an attribute.
struct InputSlots {
  int roi = -1, scales = -1, sizes = -1;
};
InputSlots input_slots(const NodeView& node, bool is_upsample) {
  if (is_upsample) return node.opset() >= 9 ? InputSlots{-1, 1, -1} : InputSlots{};
  if (node.opset() < 11) return InputSlots{-1, 1, -1};
  return InputSlots{1, 2, 3};
}

// Scales from Upsample's attributes (opsets 1 to 8).
std::vector<double> upsample_attr_scales(const NodeView& node, size_t rank) {
  if (node.has_attr("scales")) {
    std::vector<float> f = node.attr_floats("scales");
    return std::vector<double>(f.begin(), f.end());
  }
  // Opset 1 (experimental): height_scale and width_scale of an NCHW input.
  if (rank != 4) node.fail("Upsample with height_scale/width_scale needs a 4-D input, got rank ", rank);
  return {1.0, 1.0, node.attr_float("height_scale"), node.attr_float("width_scale")};
}

// The output size and per-axis scale of every axis, from scales or sizes.
struct Plan {
  std::vector<int64_t> out;
  std::vector<double> scales;
  std::vector<double> roi_start, roi_end;  // per axis, [0, 1] unless tf_crop_and_resize gives one
};

Plan plan_resize(const NodeView& node, const ResizeSpec& spec, const std::vector<int64_t>& in,
                 const std::vector<double>* scales, const std::vector<int64_t>* sizes, const std::vector<double>* roi) {
  size_t rank = in.size(), na = spec.axes.size();
  Plan p;
  p.out = in;
  p.scales.assign(rank, 1.0);
  p.roi_start.assign(rank, 0.0);
  p.roi_end.assign(rank, 1.0);
  if (scales && sizes) node.fail("only one of scales and sizes may be given");
  if (!scales && !sizes) node.fail("one of scales and sizes must be given");
  if (scales) {
    if (scales->size() != na)
      node.fail("scales has ", scales->size(), " values; expected ", na, " (one per resized axis)");
    for (size_t i = 0; i < na; ++i) {
      double s = (*scales)[i];
      size_t a = static_cast<size_t>(spec.axes[i]);
      if (!(s > 0) || !std::isfinite(s)) node.fail("scales must be positive, got ", s, " for axis ", a);
      double o = std::floor(s * static_cast<double>(in[a]));
      if (o > static_cast<double>(int64_t{1} << 40)) node.fail("scale ", s, " makes axis ", a, " too large");
      p.scales[a] = s;
      p.out[a] = static_cast<int64_t>(o);
    }
  } else {
    if (sizes->size() != na)
      node.fail("sizes has ", sizes->size(), " values; expected ", na, " (one per resized axis)");
    for (size_t i = 0; i < na; ++i) {
      size_t a = static_cast<size_t>(spec.axes[i]);
      int64_t s = (*sizes)[i];
      if (s < 0) node.fail("sizes must not be negative, got ", s, " for axis ", a);
      if (in[a] == 0 && s > 0) node.fail("cannot resize axis ", a, " of size 0 to ", s);
      p.out[a] = s;
      p.scales[a] = in[a] == 0 ? 1.0 : static_cast<double>(s) / static_cast<double>(in[a]);
    }
    if (spec.policy != AspectPolicy::kStretch) {
      double common = spec.policy == AspectPolicy::kNotLarger ? std::numeric_limits<double>::infinity() : 0.0;
      for (int64_t a : spec.axes)
        common = spec.policy == AspectPolicy::kNotLarger ? std::min(common, p.scales[static_cast<size_t>(a)])
                                                         : std::max(common, p.scales[static_cast<size_t>(a)]);
      for (int64_t a : spec.axes) {
        p.scales[static_cast<size_t>(a)] = common;
        p.out[static_cast<size_t>(a)] =
            static_cast<int64_t>(std::floor(common * static_cast<double>(in[static_cast<size_t>(a)]) + 0.5));
      }
    }
  }
  if (roi && spec.coord == Coord::kTfCropAndResize) {
    if (roi->size() != 2 * na) node.fail("roi has ", roi->size(), " values; expected ", 2 * na);
    for (size_t i = 0; i < na; ++i) {
      p.roi_start[static_cast<size_t>(spec.axes[i])] = (*roi)[i];
      p.roi_end[static_cast<size_t>(spec.axes[i])] = (*roi)[i + na];
    }
  }
  return p;
}

// ---- Per-axis taps ------------------------------------------------------------------------------

struct AxisTaps {
  std::vector<std::vector<std::pair<int64_t, double>>> taps;  // per output coordinate
  std::vector<bool> outside;  // tf_crop_and_resize: the coordinate maps outside the input
};

double original_coordinate(const ResizeSpec& spec, double x, int64_t in, int64_t out_int, double scale,
                           double roi_start, double roi_end) {
  double out_f = scale * static_cast<double>(in);  // the reference uses the unrounded output length
  double len = static_cast<double>(in);
  switch (spec.coord) {
    case Coord::kHalfPixel:
      return (x + 0.5) / scale - 0.5;
    case Coord::kHalfPixelSymmetric: {
      double adjustment = static_cast<double>(out_int) / out_f;
      double center = len / 2;
      return center * (1 - adjustment) + (x + 0.5) / scale - 0.5;
    }
    case Coord::kPytorchHalfPixel:
      return out_f == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    case Coord::kAlignCorners:
      return out_f == 1 ? 0.0 : x * (len - 1) / (out_f - 1);
    case Coord::kAsymmetric:
      return x / scale;
    case Coord::kTfHalfPixelForNn:
      return (x + 0.5) / scale;
    case Coord::kTfCropAndResize: {
      double r =
          out_f == 1 ? (roi_end - roi_start) * (len - 1) / 2 : x * (roi_end - roi_start) * (len - 1) / (out_f - 1);
      return r + roi_start * (len - 1);
    }
  }
  return x;
}

double cubic_kernel(double x, double a) {  // Keys' cubic convolution kernel
  x = std::fabs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

AxisTaps axis_taps(const ResizeSpec& spec, int64_t in, int64_t out, double scale, double roi_start, double roi_end) {
  AxisTaps t;
  t.taps.resize(static_cast<size_t>(out));
  t.outside.assign(static_cast<size_t>(out), false);
  auto clamp = [&](int64_t i) { return std::clamp<int64_t>(i, 0, in - 1); };
  for (int64_t xo = 0; xo < out; ++xo) {
    auto& taps = t.taps[static_cast<size_t>(xo)];
    if (in == 1 && spec.coord != Coord::kTfCropAndResize) {  // every rule lands on the only element
      taps.emplace_back(0, 1.0);
      continue;
    }
    double x = original_coordinate(spec, static_cast<double>(xo), in, out, scale, roi_start, roi_end);
    if (spec.coord == Coord::kTfCropAndResize && (x < 0 || x > static_cast<double>(in - 1))) {
      t.outside[static_cast<size_t>(xo)] = true;
      continue;
    }
    double base_f = std::floor(x);
    // Far-out coordinates clamp to the edge anyway; keep the integer arithmetic in range.
    base_f = std::clamp(base_f, -4.0 - static_cast<double>(in), 4.0 + 2 * static_cast<double>(in));
    int64_t base = static_cast<int64_t>(base_f);
    double r = x - std::floor(x);
    if (spec.mode == Mode::kNearest) {
      int64_t idx = base;
      if (r != 0) {
        switch (spec.nearest) {
          case Nearest::kRoundPreferFloor:
            idx = r <= 0.5 ? base : base + 1;
            break;
          case Nearest::kRoundPreferCeil:
            idx = r < 0.5 ? base : base + 1;
            break;
          case Nearest::kFloor:
            idx = base;
            break;
          case Nearest::kCeil:
            idx = base + 1;
            break;
          case Nearest::kSimple:
            idx = scale < 1 ? base + 1 : base;
            break;
        }
      }
      taps.emplace_back(clamp(idx), 1.0);
      continue;
    }
    std::vector<std::pair<int64_t, double>> raw;  // (unclamped position, weight)
    double s = std::min(scale, 1.0);
    if (spec.mode == Mode::kLinear) {
      if (!spec.antialias || s >= 1) {
        raw = {{base, 1 - r}, {base + 1, r}};
      } else {  // triangle filter stretched by 1/scale
        int64_t start = static_cast<int64_t>(std::floor(-1 / s) + 1);
        for (int64_t i = start; i < 2 - start; ++i)
          raw.emplace_back(base + i, std::clamp(1 - std::fabs((static_cast<double>(i) - r) * s), 0.0, 1.0));
      }
    } else {
      if (!spec.antialias || s >= 1) {
        for (int64_t i = -1; i <= 2; ++i)
          raw.emplace_back(base + i, cubic_kernel(static_cast<double>(i) - r, spec.cubic_a));
      } else {
        int64_t start = static_cast<int64_t>(std::floor(-2 / s) + 1);
        for (int64_t i = start; i < 2 - start; ++i)
          raw.emplace_back(base + i, cubic_kernel((static_cast<double>(i) - r) * s, spec.cubic_a));
      }
    }
    if (spec.antialias) {
      double sum = 0;
      for (const auto& [pos, w] : raw) sum += w;
      if (sum != 0)
        for (auto& pw : raw) pw.second /= sum;
    }
    if (spec.exclude_outside) {
      double sum = 0;
      for (auto& [pos, w] : raw) {
        if (pos < 0 || pos >= in) w = 0;
        sum += w;
      }
      if (sum != 0)
        for (auto& pw : raw) pw.second /= sum;
    }
    // Positions past an edge read the edge element: merge them so that wide antialias filters cost
    // at most one tap per input element.
    for (const auto& [pos, w] : raw) {
      if (w == 0) continue;
      int64_t idx = clamp(pos);
      if (!taps.empty() && taps.back().first == idx)
        taps.back().second += w;
      else
        taps.emplace_back(idx, w);
    }
  }
  return t;
}

// ---- Kernel -------------------------------------------------------------------------------------

std::vector<double> read_float_values(const KernelContext& ctx, int slot) {
  const ir::Tensor& t = ctx.input(static_cast<size_t>(slot));
  if (!ir::is_float(t.dtype())) ctx.fail("input ", slot, " must be a float tensor, got ", t.dtype());
  return to_doubles(t);
}

void run_resize_impl(KernelContext& ctx, bool is_upsample) {
  const ir::Tensor& x = ctx.input(0);
  size_t rank = x.rank();
  ResizeSpec spec = read_spec(ctx, is_upsample, rank);
  InputSlots slots = input_slots(ctx, is_upsample);
  std::optional<std::vector<double>> scales, roi;
  std::optional<std::vector<int64_t>> sizes;
  if (slots.scales < 0) {
    scales = upsample_attr_scales(ctx, rank);
  } else if (ctx.has_input(static_cast<size_t>(slots.scales)) &&
             ctx.input(static_cast<size_t>(slots.scales)).numel() > 0) {
    scales = read_float_values(ctx, slots.scales);
  }
  if (slots.sizes >= 0 && ctx.has_input(static_cast<size_t>(slots.sizes)) &&
      ctx.input(static_cast<size_t>(slots.sizes)).numel() > 0) {
    const ir::Tensor& s = ctx.input(static_cast<size_t>(slots.sizes));
    if (s.dtype() != DType::kInt64) ctx.fail("sizes must be int64, got ", s.dtype());
    sizes = s.to_int64_vector();
  }
  if (slots.roi >= 0 && ctx.has_input(static_cast<size_t>(slots.roi)) &&
      ctx.input(static_cast<size_t>(slots.roi)).numel() > 0)
    roi = read_float_values(ctx, slots.roi);
  if (rank == 0) ctx.fail("cannot resize a scalar");
  if (spec.coord == Coord::kTfCropAndResize && !roi)
    ctx.fail("coordinate_transformation_mode tf_crop_and_resize needs roi");
  Plan plan =
      plan_resize(ctx, spec, x.shape(), scales ? &*scales : nullptr, sizes ? &*sizes : nullptr, roi ? &*roi : nullptr);
  ir::Tensor y = ctx.make_tensor(x.dtype(), plan.out);
  if (y.numel() == 0) return ctx.set_output(0, y);
  for (size_t a = 0; a < rank; ++a)
    if (x.dim(a) == 0) ctx.fail("cannot resize axis ", a, " of size 0 to ", plan.out[a]);

  std::vector<AxisTaps> axes;
  for (size_t a = 0; a < rank; ++a)
    axes.push_back(axis_taps(spec, x.dim(a), plan.out[a], plan.scales[a], plan.roi_start[a], plan.roi_end[a]));
  std::vector<int64_t> in_strides = ir::strides_of(x.shape());

  if (spec.mode == Mode::kNearest) {
    // A gather: works for every element type, strings and bool included.
    ir::visit_dtype(x.dtype(), [&]<class T>() {
      const T* xp = x.data<T>();
      T* yp = y.data<T>();
      std::vector<int64_t> o(rank, 0);
      int64_t k = 0;
      do {
        int64_t off = 0;
        bool outside = false;
        for (size_t a = 0; a < rank; ++a) {
          if (axes[a].outside[static_cast<size_t>(o[a])])
            outside = true;
          else
            off += axes[a].taps[static_cast<size_t>(o[a])][0].first * in_strides[a];
        }
        if (outside) {
          if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>)
            yp[k] = saturate_from_double<T>(spec.extrapolation);
          else
            yp[k] = T();
        } else {
          yp[k] = xp[off];
        }
        ++k;
      } while (next_index(o, plan.out));
    });
    return ctx.set_output(0, y);
  }

  require_dtype(ctx, x.dtype(), kNumericTypes, "input X");
  std::vector<double> xv = to_doubles(x), yv(static_cast<size_t>(y.numel()));
  std::vector<int64_t> o(rank, 0), tap(rank, 0), ntaps(rank);
  int64_t k = 0;
  do {
    bool outside = false;
    for (size_t a = 0; a < rank; ++a) {
      if (axes[a].outside[static_cast<size_t>(o[a])]) outside = true;
      ntaps[a] = static_cast<int64_t>(axes[a].taps[static_cast<size_t>(o[a])].size());
    }
    double acc = 0;
    if (outside) {
      acc = spec.extrapolation;
    } else {
      std::fill(tap.begin(), tap.end(), 0);
      do {
        double w = 1;
        int64_t off = 0;
        for (size_t a = 0; a < rank; ++a) {
          const auto& [pos, wt] = axes[a].taps[static_cast<size_t>(o[a])][static_cast<size_t>(tap[a])];
          w *= wt;
          off += pos * in_strides[a];
        }
        acc += w * xv[static_cast<size_t>(off)];
      } while (next_index(tap, ntaps));
    }
    yv[static_cast<size_t>(k++)] = acc;
  } while (next_index(o, plan.out));
  store_doubles(y, yv.data());
  ctx.set_output(0, y);
}

// ---- Inference ----------------------------------------------------------------------------------

void infer_resize_impl(InferenceContext& ctx, bool is_upsample) {
  const ir::Type& x = ctx.input_type(0);
  if (!x.shape) return ctx.set_output(0, x.dtype, std::nullopt);
  size_t rank = x.shape->rank();
  if (rank == 0) ctx.fail("cannot resize a scalar");
  ResizeSpec spec = read_spec(ctx, is_upsample, rank);
  InputSlots slots = input_slots(ctx, is_upsample);
  ir::Shape unknown{std::vector<ir::Dim>(rank)};
  auto value_of = [&](int slot) -> const ir::Tensor* {
    return slot >= 0 && ctx.has_input(static_cast<size_t>(slot)) ? ctx.input_value(static_cast<size_t>(slot)) : nullptr;
  };
  auto present = [&](int slot) { return slot >= 0 && ctx.has_input(static_cast<size_t>(slot)); };
  std::optional<std::vector<double>> scales;
  std::optional<std::vector<int64_t>> sizes;
  if (slots.scales < 0) {
    scales = upsample_attr_scales(ctx, rank);
  } else if (present(slots.scales)) {
    const ir::Tensor* v = value_of(slots.scales);
    if (!v) return ctx.set_output(0, x.dtype, unknown);
    if (v->numel() > 0) scales = to_doubles(*v);
  }
  if (present(slots.sizes)) {
    const ir::Tensor* v = value_of(slots.sizes);
    if (!v) return ctx.set_output(0, x.dtype, unknown);
    if (v->numel() > 0) sizes = v->to_int64_vector();
  }
  if (!scales && !sizes) return ctx.set_output(0, x.dtype, unknown);
  if (scales && sizes) ctx.fail("only one of scales and sizes may be given");
  // Resized axes need static input sizes (keep_aspect_ratio_policy needs all of them); other axes
  // keep their dims, symbolic or not.
  std::vector<int64_t> in;
  bool resized_static = true;
  for (size_t a = 0; a < rank; ++a) in.push_back((*x.shape)[a].is_static() ? (*x.shape)[a].value : 1);
  for (size_t i = 0; i < spec.axes.size(); ++i) {
    size_t a = static_cast<size_t>(spec.axes[i]);
    bool unit_scale = scales && i < scales->size() && (*scales)[i] == 1.0;
    if (!(*x.shape)[a].is_static() && !unit_scale) resized_static = false;
  }
  if (sizes && spec.policy != AspectPolicy::kStretch && !resized_static) return ctx.set_output(0, x.dtype, unknown);
  Plan plan = plan_resize(ctx, spec, in, scales ? &*scales : nullptr, sizes ? &*sizes : nullptr, nullptr);
  ir::Shape out = *x.shape;
  for (size_t i = 0; i < spec.axes.size(); ++i) {
    size_t a = static_cast<size_t>(spec.axes[i]);
    bool unit_scale = scales && (*scales)[i] == 1.0;
    if (sizes || (*x.shape)[a].is_static())
      out[a] = ir::Dim(plan.out[a]);
    else if (!unit_scale)
      out[a] = ir::Dim();
  }
  ctx.set_output(0, x.dtype, out);
}

}  // namespace

void register_resize_ops(OpRegistry& r) {
  r.add(OpDef{"", "Resize", 10, kNoMaxOpset, [](InferenceContext& c) { infer_resize_impl(c, false); },
              [](KernelContext& c) { run_resize_impl(c, false); }});
  r.add(OpDef{"", "Upsample", 1, kNoMaxOpset, [](InferenceContext& c) { infer_resize_impl(c, true); },
              [](KernelContext& c) { run_resize_impl(c, true); }});
}

}  // namespace kiln::ops::nn

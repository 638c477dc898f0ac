// DeformConv (opset 19), 2-D: a convolution whose every kernel tap reads X at its regular position
// plus a learned (dh, dw) offset, sampled bilinearly (zero outside X), optionally scaled by a mask:
//   Y[n,o,i,j] = B[o] + sum_{c,kh,kw} W[o,c,kh,kw] * mask[n,g,kh,kw,i,j]
//                * bilinear(X[n,c'], i*sh - pad_top + kh*dh + off[n,g,kh,kw,0,i,j],
//                                    j*sw - pad_left + kw*dw + off[n,g,kh,kw,1,i,j])
// with c' the absolute input channel of c in o's group and g = c' / (C / offset_group). The offset
// input is [N, offset_group*kH*kW*2, oH, oW] (per tap: dh then dw), mask [N, offset_group*kH*kW, oH, oW].
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/nn_common.h"

namespace kiln::ops {

void register_deform_conv_ops(OpRegistry& r);

namespace {

using ir::DType;

struct DeformAttrs {
  int64_t group = 1;
  int64_t offset_group = 1;
  std::vector<int64_t> kernel;  // from kernel_shape, or W's spatial dims when absent
  std::vector<int64_t> strides, dilations, pads;
};

DeformAttrs read_deform_attrs(const NodeView& node, const std::optional<std::vector<int64_t>>& w_spatial) {
  DeformAttrs a;
  a.group = node.attr_int("group", 1);
  a.offset_group = node.attr_int("offset_group", 1);
  if (a.group < 1) node.fail("attribute group must be positive, got ", a.group);
  if (a.offset_group < 1) node.fail("attribute offset_group must be positive, got ", a.offset_group);
  if (node.has_attr("kernel_shape")) {
    a.kernel = node.attr_ints("kernel_shape");
    if (w_spatial && a.kernel != *w_spatial)
      node.fail("attribute kernel_shape ", ir::to_string(a.kernel), " does not match W's spatial dims ",
                ir::to_string(*w_spatial));
  } else if (w_spatial) {
    a.kernel = *w_spatial;
  } else {
    return a;  // kernel unknown until W's shape is
  }
  if (a.kernel.size() != 2) node.fail("only 2-D DeformConv is supported, kernel is ", ir::to_string(a.kernel));
  for (int64_t k : a.kernel)
    if (k < 1) node.fail("kernel dims must be positive, got ", ir::to_string(a.kernel));
  a.strides = node.attr_ints("strides", {1, 1});
  a.dilations = node.attr_ints("dilations", {1, 1});
  a.pads = node.attr_ints("pads", {0, 0, 0, 0});
  if (a.strides.size() != 2) node.fail("attribute strides must have 2 values, got ", a.strides.size());
  if (a.dilations.size() != 2) node.fail("attribute dilations must have 2 values, got ", a.dilations.size());
  if (a.pads.size() != 4) node.fail("attribute pads must have 4 values, got ", a.pads.size());
  for (size_t i = 0; i < 2; ++i) {
    if (a.strides[i] < 1) node.fail("attribute strides must be positive, got ", ir::to_string(a.strides));
    if (a.dilations[i] < 1) node.fail("attribute dilations must be positive, got ", ir::to_string(a.dilations));
  }
  for (int64_t p : a.pads)
    if (p < 0) node.fail("attribute pads must not be negative, got ", ir::to_string(a.pads));
  // Bounds that keep every coordinate computation far from int64 overflow.
  constexpr int64_t kMaxAttr = int64_t{1} << 30;
  for (const auto* v : {&a.kernel, &a.strides, &a.dilations, &a.pads})
    for (int64_t d : *v)
      if (d > kMaxAttr) node.fail("kernel, strides, dilations and pads must be at most ", kMaxAttr, ", got ", d);
  return a;
}

// Output size along spatial axis i for input size `in`; 128-bit arithmetic so that absurd attribute
// values give a clear message instead of overflowing.
int64_t out_size(const NodeView& node, const DeformAttrs& a, size_t i, int64_t in) {
  __int128 eff = static_cast<__int128>(a.kernel[i] - 1) * a.dilations[i] + 1;
  __int128 span = static_cast<__int128>(in) + a.pads[i] + a.pads[i + 2] - eff;
  __int128 out = span < 0 ? 0 : span / a.strides[i] + 1;
  if (out > std::numeric_limits<int32_t>::max()) node.fail("output size along spatial axis ", i, " is too large");
  return static_cast<int64_t>(out);
}

// a * b * c for sizes, failing instead of overflowing.
int64_t checked_product(const NodeView& node, std::initializer_list<int64_t> v) {
  __int128 p = 1;
  for (int64_t d : v) {
    p *= d;
    if (p > std::numeric_limits<int64_t>::max() / 4) node.fail("sizes are too large");
  }
  return static_cast<int64_t>(p);
}

void infer_deform_conv(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  const ir::Type& w = ctx.input_type(1);
  const ir::Type& off = ctx.input_type(2);
  if (x.is_tensor() && x.dtype != DType::kUndefined) nn::require_dtype(ctx, x.dtype, nn::kFloatTypes, "input X");
  if (x.shape && x.shape->rank() != 4)
    ctx.fail("only 2-D DeformConv is supported: X must be [N,C,H,W], got ", ir::to_string(*x.shape));
  if (w.shape && w.shape->rank() != 4) ctx.fail("W must be [oC,C/group,kH,kW], got ", ir::to_string(*w.shape));
  if (off.shape && off.shape->rank() != 4)
    ctx.fail("offset must be [N,offset_group*kH*kW*2,oH,oW], got ", ir::to_string(*off.shape));
  std::optional<std::vector<int64_t>> w_spatial;
  if (w.shape && (*w.shape)[2].is_static() && (*w.shape)[3].is_static())
    w_spatial = std::vector<int64_t>{(*w.shape)[2].value, (*w.shape)[3].value};
  DeformAttrs a = read_deform_attrs(ctx, w_spatial);
  if (!x.shape && !off.shape) return ctx.set_output(0, x.dtype, std::nullopt);
  ir::Shape out{std::vector<ir::Dim>(4)};
  if (x.shape) out[0] = (*x.shape)[0];
  if (w.shape) out[1] = (*w.shape)[0];
  for (size_t i = 0; i < 2; ++i) {
    if (off.shape && (*off.shape)[i + 2].is_static())
      out[i + 2] = (*off.shape)[i + 2];
    else if (x.shape && (*x.shape)[i + 2].is_static() && !a.kernel.empty())
      out[i + 2] = ir::Dim(out_size(ctx, a, i, (*x.shape)[i + 2].value));
  }
  ctx.set_output(0, x.dtype, out);
}

// Bilinear read of a [h, w] plane at (y, x); corners outside the plane read zero.
double bilinear(const double* plane, int64_t h, int64_t w, double y, double x) {
  if (!std::isfinite(y) || !std::isfinite(x) || y <= -1 || x <= -1 || y >= static_cast<double>(h) ||
      x >= static_cast<double>(w))
    return 0;
  double fy = std::floor(y), fx = std::floor(x);
  auto y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
  double ly = y - fy, lx = x - fx;
  auto at = [&](int64_t yy, int64_t xx) { return yy >= 0 && yy < h && xx >= 0 && xx < w ? plane[yy * w + xx] : 0.0; };
  return (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x0 + 1)) +
         ly * ((1 - lx) * at(y0 + 1, x0) + lx * at(y0 + 1, x0 + 1));
}

void run_deform_conv(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const ir::Tensor& w = ctx.input(1);
  const ir::Tensor& off = ctx.input(2);
  nn::require_dtype(ctx, x.dtype(), nn::kFloatTypes, "input X");
  for (size_t i = 1; i < 5; ++i)
    if (ctx.has_input(i) && ctx.input(i).dtype() != x.dtype())
      ctx.fail("input ", i, " has element type ", ir::dtype_name(ctx.input(i).dtype()), ", X has ",
               ir::dtype_name(x.dtype()));
  if (x.rank() != 4) ctx.fail("only 2-D DeformConv is supported: X must be [N,C,H,W], got ", ir::to_string(x.shape()));
  if (w.rank() != 4) ctx.fail("W must be [oC,C/group,kH,kW], got ", ir::to_string(w.shape()));
  DeformAttrs a = read_deform_attrs(ctx, std::vector<int64_t>{w.dim(2), w.dim(3)});
  int64_t n = x.dim(0), c = x.dim(1), ih = x.dim(2), iw = x.dim(3);
  int64_t oc = w.dim(0), kh = a.kernel[0], kw = a.kernel[1], taps = checked_product(ctx, {kh, kw});
  if (c % a.group != 0 || oc % a.group != 0)
    ctx.fail("group ", a.group, " must divide the input channels ", c, " and the output channels ", oc);
  int64_t cg = c / a.group, ocg = oc / a.group;
  if (w.dim(1) != cg)
    ctx.fail("W ", ir::to_string(w.shape()), " must have C/group = ", cg, " input channels (X has ", c,
             " channels, group ", a.group, ")");
  if (c % a.offset_group != 0) ctx.fail("offset_group ", a.offset_group, " must divide the input channels ", c);
  int64_t c_per_og = c / a.offset_group;
  int64_t oh = out_size(ctx, a, 0, ih), ow = out_size(ctx, a, 1, iw);
  std::vector<int64_t> off_want = {n, checked_product(ctx, {a.offset_group, taps, 2}), oh, ow};
  if (off.shape() != off_want)
    ctx.fail("offset must have shape ", ir::to_string(off_want), " for X ", ir::to_string(x.shape()), " and W ",
             ir::to_string(w.shape()), ", got ", ir::to_string(off.shape()));
  const ir::Tensor* bias = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  const ir::Tensor* mask = ctx.has_input(4) ? &ctx.input(4) : nullptr;
  if (bias && bias->shape() != std::vector<int64_t>{oc})
    ctx.fail("B must have shape [", oc, "], got ", ir::to_string(bias->shape()));
  std::vector<int64_t> mask_want = {n, checked_product(ctx, {a.offset_group, taps}), oh, ow};
  if (mask && mask->shape() != mask_want)
    ctx.fail("mask must have shape ", ir::to_string(mask_want), ", got ", ir::to_string(mask->shape()));

  ir::Tensor y = ctx.make_tensor(x.dtype(), {n, oc, oh, ow});
  if (y.numel() == 0) return ctx.set_output(0, y);
  std::vector<double> xv = nn::to_doubles(x), wv = nn::to_doubles(w), ov = nn::to_doubles(off);
  std::vector<double> bv = bias ? nn::to_doubles(*bias) : std::vector<double>(static_cast<size_t>(oc), 0.0);
  std::vector<double> mv = mask ? nn::to_doubles(*mask) : std::vector<double>();
  std::vector<double> yv(static_cast<size_t>(y.numel()));
  int64_t plane = ih * iw, oplane = oh * ow;

  // Sampled input per (input channel, tap, output position), built once per image and shared by
  // every output channel that reads it.
  int64_t ncols = checked_product(ctx, {c, taps, oplane});
  if (ncols > ctx.limits().max_tensor_bytes / static_cast<int64_t>(sizeof(double)))
    ctx.fail("sampled columns of ", ncols, " values exceed the memory limit");
  std::vector<double> cols(static_cast<size_t>(ncols));
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t ci = 0; ci < c; ++ci) {
      int64_t g = ci / c_per_og;
      const double* xp = xv.data() + (b * c + ci) * plane;
      for (int64_t t = 0; t < taps; ++t) {
        int64_t ki = t / kw, kj = t % kw;
        const double* dy = ov.data() + ((b * a.offset_group + g) * taps + t) * 2 * oplane;
        const double* dx = dy + oplane;
        const double* mp = mask ? mv.data() + ((b * a.offset_group + g) * taps + t) * oplane : nullptr;
        double* col = cols.data() + (ci * taps + t) * oplane;
        for (int64_t i = 0; i < oh; ++i) {
          for (int64_t j = 0; j < ow; ++j) {
            int64_t p = i * ow + j;
            double sy = static_cast<double>(i * a.strides[0] - a.pads[0] + ki * a.dilations[0]) + dy[p];
            double sx = static_cast<double>(j * a.strides[1] - a.pads[1] + kj * a.dilations[1]) + dx[p];
            double v = bilinear(xp, ih, iw, sy, sx);
            col[p] = mp ? v * mp[p] : v;
          }
        }
      }
    }
    for (int64_t o = 0; o < oc; ++o) {
      double* yp = yv.data() + (b * oc + o) * oplane;
      std::fill(yp, yp + oplane, bv[static_cast<size_t>(o)]);
      int64_t c0 = (o / ocg) * cg;
      for (int64_t cl = 0; cl < cg; ++cl) {
        for (int64_t t = 0; t < taps; ++t) {
          double wt = wv[static_cast<size_t>((o * cg + cl) * taps + t)];
          const double* col = cols.data() + ((c0 + cl) * taps + t) * oplane;
          for (int64_t p = 0; p < oplane; ++p) yp[p] += wt * col[p];
        }
      }
    }
  }
  nn::store_doubles(y, yv.data());
  ctx.set_output(0, std::move(y));
}

}  // namespace

void register_deform_conv_ops(OpRegistry& r) {
  r.add(OpDef{"", "DeformConv", 19, kMaxOnnxOpset, infer_deform_conv, run_deform_conv});
}

}  // namespace kiln::ops

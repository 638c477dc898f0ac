// Conv and ConvTranspose over 1-D, 2-D, 3-D (any N-D) inputs, computed directly in double.
#include <algorithm>

#include "kernels/reference/common.h"
#include "kernels/reference/nn_common.h"

namespace kiln::ops::nn {
namespace {

using ir::DType;

int64_t read_group(const NodeView& node) {
  int64_t g = node.attr_int("group", 1);
  if (g <= 0) node.fail("attribute group must be positive, got ", g);
  return g;
}

// Per-axis kernel index of every kernel tap, in row-major order of the weights' spatial dims.
std::vector<std::vector<int64_t>> kernel_taps(const std::vector<int64_t>& kernel) {
  std::vector<std::vector<int64_t>> taps;
  std::vector<int64_t> idx(kernel.size(), 0);
  do taps.push_back(idx);
  while (next_index(idx, kernel));
  return taps;
}

// Spatial dims of a weight type from index 2 on, -1 where not static; nullopt when the rank is unknown.
std::optional<std::vector<int64_t>> weight_spatial_of(const ir::Type& w) {
  if (!w.shape) return std::nullopt;
  std::vector<int64_t> v;
  for (size_t i = 2; i < w.shape->rank(); ++i) v.push_back((*w.shape)[i].is_static() ? (*w.shape)[i].value : -1);
  return v;
}

bool all_static(const std::vector<int64_t>& v) {
  return std::all_of(v.begin(), v.end(), [](int64_t d) { return d >= 0; });
}

// ---- Conv ---------------------------------------------------------------------------------------

void infer_conv(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  const ir::Type& w = ctx.input_type(1);
  std::optional<size_t> rank = x.shape   ? std::optional<size_t>(x.shape->rank())
                               : w.shape ? std::optional<size_t>(w.shape->rank())
                                         : std::nullopt;
  if (!rank) return ctx.set_output(0, x.dtype, std::nullopt);
  if (*rank < 3) ctx.fail("input X must have rank >= 3 (N, C, spatial...), got rank ", *rank);
  if (w.shape && w.shape->rank() != *rank)
    ctx.fail("weights W of shape ", ir::to_string(*w.shape), " must have the same rank as X (", *rank, ")");
  int64_t group = read_group(ctx);
  ir::Dim m = w.shape ? (*w.shape)[0] : ir::Dim();
  if (x.shape && w.shape && (*x.shape)[1].is_static() && (*w.shape)[1].is_static() &&
      (*x.shape)[1].value != (*w.shape)[1].value * group)
    ctx.fail("input has ", (*x.shape)[1].value, " channels but W ", ir::to_string(*w.shape), " with group ", group,
             " expects ", (*w.shape)[1].value * group);
  auto wsp = weight_spatial_of(w);
  if (!x.shape || (!ctx.has_attr("kernel_shape") && (!wsp || !all_static(*wsp)))) {
    ir::Shape out{std::vector<ir::Dim>(*rank)};
    if (x.shape) out[0] = (*x.shape)[0];
    out[1] = m;
    return ctx.set_output(0, x.dtype, out);
  }
  WindowAttrs wa = read_window_attrs(ctx, read_kernel_shape(ctx, *rank - 2, wsp), false);
  ctx.set_output(0, x.dtype, forward_window_shape(ctx, wa, *x.shape, m));
}

void run_conv(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const ir::Tensor& w = ctx.input(1);
  require_dtype(ctx, x.dtype(), kFloatTypes, "input X");
  if (w.dtype() != x.dtype()) ctx.fail("W has element type ", w.dtype(), ", X has ", x.dtype());
  if (x.rank() < 3) ctx.fail("input X must have rank >= 3 (N, C, spatial...), got ", ir::to_string(x.shape()));
  if (w.rank() != x.rank())
    ctx.fail("weights W of shape ", ir::to_string(w.shape()), " must have the same rank as X ",
             ir::to_string(x.shape()));
  size_t nsp = x.rank() - 2;
  int64_t group = read_group(ctx);
  int64_t n = x.dim(0), c = x.dim(1), m = w.dim(0), cg = w.dim(1);
  if (c != cg * group)
    ctx.fail("input has ", c, " channels but W ", ir::to_string(w.shape()), " with group ", group, " expects ",
             cg * group);
  if (m % group != 0) ctx.fail("W has ", m, " output channels, not a multiple of group ", group);
  const ir::Tensor* b = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (b && (b->dtype() != x.dtype() || b->rank() != 1 || b->dim(0) != m))
    ctx.fail("bias B must be a 1-D ", x.dtype(), " tensor of ", m, " values, got ", b->dtype(),
             ir::to_string(b->shape()));
  std::vector<int64_t> wsp(w.shape().begin() + 2, w.shape().end());
  WindowAttrs wa = read_window_attrs(ctx, read_kernel_shape(ctx, nsp, wsp), false);

  std::vector<int64_t> in_sp(x.shape().begin() + 2, x.shape().end()), out_sp(nsp), pad_begin(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    AxisWindow a = forward_window(ctx, wa, i, in_sp[i]);
    out_sp[i] = a.out;
    pad_begin[i] = a.pad_begin;
  }
  std::vector<int64_t> out_shape = {n, m};
  out_shape.insert(out_shape.end(), out_sp.begin(), out_sp.end());
  ir::Tensor y = ctx.make_tensor(x.dtype(), out_shape);
  if (y.numel() == 0) return ctx.set_output(0, y);

  std::vector<double> xv = to_doubles(x), wv = to_doubles(w), bv = b ? to_doubles(*b) : std::vector<double>();
  std::vector<double> yv(static_cast<size_t>(y.numel()));
  auto taps = kernel_taps(wa.kernel);
  int64_t in_vol = product(in_sp), out_vol = product(out_sp), kvol = static_cast<int64_t>(taps.size());
  int64_t mg = m / group;
  std::vector<int64_t> in_strides = ir::strides_of(in_sp);
  std::vector<std::pair<int64_t, int64_t>> valid;  // (tap, offset in the input plane) inside the input
  std::vector<int64_t> o(nsp, 0);
  int64_t o_lin = 0;
  do {
    valid.clear();
    for (int64_t t = 0; t < kvol; ++t) {
      int64_t off = 0;
      bool inside = true;
      for (size_t i = 0; i < nsp && inside; ++i) {
        int64_t pos = o[i] * wa.strides[i] - pad_begin[i] + taps[t][i] * wa.dilations[i];
        inside = pos >= 0 && pos < in_sp[i];
        off += pos * in_strides[i];
      }
      if (inside) valid.emplace_back(t, off);
    }
    for (int64_t ni = 0; ni < n; ++ni) {
      for (int64_t mi = 0; mi < m; ++mi) {
        int64_t g = mi / mg;
        double acc = b ? bv[mi] : 0.0;
        for (int64_t ci = 0; ci < cg; ++ci) {
          const double* xp = xv.data() + ((ni * c) + g * cg + ci) * in_vol;
          const double* wp = wv.data() + (mi * cg + ci) * kvol;
          for (const auto& [t, off] : valid) acc += xp[off] * wp[t];
        }
        yv[(ni * m + mi) * out_vol + o_lin] = acc;
      }
    }
    ++o_lin;
  } while (next_index(o, out_sp));
  store_doubles(y, yv.data());
  ctx.set_output(0, y);
}

// ---- ConvTranspose ------------------------------------------------------------------------------

}  // namespace

TransposeGeometry transpose_geometry(const NodeView& node, const WindowAttrs& wa, const std::vector<int64_t>& in) {
  size_t nsp = wa.rank();
  std::vector<int64_t> out_pad = node.attr_ints("output_padding", std::vector<int64_t>(nsp, 0));
  if (out_pad.empty()) out_pad.assign(nsp, 0);
  if (out_pad.size() != nsp)
    node.fail("attribute output_padding ", ir::to_string(out_pad), " must have ", nsp, " values");
  for (int64_t p : out_pad)
    if (p < 0 || p > (int64_t{1} << 40))
      node.fail("attribute output_padding ", ir::to_string(out_pad), " is out of range");
  std::vector<int64_t> out_shape = node.attr_ints("output_shape");
  if (!out_shape.empty()) {
    // Older exporters give the full shape [N, C, spatial...]; the spec wants only the spatial part.
    if (out_shape.size() == nsp + 2) out_shape.erase(out_shape.begin(), out_shape.begin() + 2);
    if (out_shape.size() != nsp)
      node.fail("attribute output_shape ", ir::to_string(node.attr_ints("output_shape")), " must have ", nsp,
                " values");
    for (int64_t d : out_shape)
      if (d <= 0 || d > (int64_t{1} << 40))
        node.fail("attribute output_shape ", ir::to_string(out_shape), " must be positive");
  }
  TransposeGeometry g;
  g.out.assign(nsp, -1);
  g.pad_begin.assign(nsp, 0);
  for (size_t i = 0; i < nsp; ++i) {
    bool same = wa.auto_pad == AutoPad::kSameUpper || wa.auto_pad == AutoPad::kSameLower;
    if (in[i] < 0) {
      if (!out_shape.empty()) g.out[i] = out_shape[i];
      continue;
    }
    if (in[i] == 0) node.fail("input spatial dim ", i, " is 0");
    int64_t full = wa.strides[i] * (in[i] - 1) + out_pad[i] + wa.effective_kernel(i);
    if (!out_shape.empty() || same) {
      int64_t target = !out_shape.empty() ? out_shape[i] : in[i] * wa.strides[i];
      // Padding that brings the full result to the requested size; split as the ONNX reference does
      // (SAME_UPPER puts the extra element at the end). A negative total means the output is larger
      // than the full result: the extra elements at the end get the bias only.
      int64_t total = std::max<int64_t>(0, full - target);
      g.pad_begin[i] = wa.auto_pad == AutoPad::kSameUpper ? total / 2 : total - total / 2;
      g.out[i] = target;
    } else {
      int64_t pb = wa.auto_pad == AutoPad::kValid ? 0 : wa.pads[i];
      int64_t pe = wa.auto_pad == AutoPad::kValid ? 0 : wa.pads[i + nsp];
      g.pad_begin[i] = pb;
      g.out[i] = full - pb - pe;
      if (g.out[i] <= 0)
        node.fail("pads ", ir::to_string(wa.pads), " leave no output along spatial axis ", i, " (full size ", full,
                  ")");
    }
  }
  return g;
}

namespace {

void infer_conv_transpose(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  const ir::Type& w = ctx.input_type(1);
  std::optional<size_t> rank = x.shape   ? std::optional<size_t>(x.shape->rank())
                               : w.shape ? std::optional<size_t>(w.shape->rank())
                                         : std::nullopt;
  if (!rank) return ctx.set_output(0, x.dtype, std::nullopt);
  if (*rank < 3) ctx.fail("input X must have rank >= 3 (N, C, spatial...), got rank ", *rank);
  if (w.shape && w.shape->rank() != *rank)
    ctx.fail("weights W of shape ", ir::to_string(*w.shape), " must have the same rank as X (", *rank, ")");
  int64_t group = read_group(ctx);
  if (x.shape && w.shape && (*x.shape)[1].is_static() && (*w.shape)[0].is_static() &&
      (*x.shape)[1].value != (*w.shape)[0].value)
    ctx.fail("input has ", (*x.shape)[1].value, " channels but W ", ir::to_string(*w.shape), " expects ",
             (*w.shape)[0].value);
  ir::Dim m;
  if (w.shape && (*w.shape)[1].is_static()) m = ir::Dim((*w.shape)[1].value * group);
  ir::Shape out{std::vector<ir::Dim>(*rank)};
  out[1] = m;
  if (x.shape) out[0] = (*x.shape)[0];
  auto wsp = weight_spatial_of(w);
  if (x.shape && (ctx.has_attr("kernel_shape") || (wsp && all_static(*wsp)))) {
    WindowAttrs wa = read_window_attrs(ctx, read_kernel_shape(ctx, *rank - 2, wsp), false);
    std::vector<int64_t> in;
    for (size_t i = 2; i < *rank; ++i) in.push_back((*x.shape)[i].is_static() ? (*x.shape)[i].value : -1);
    TransposeGeometry g = transpose_geometry(ctx, wa, in);
    for (size_t i = 0; i + 2 < *rank; ++i)
      if (g.out[i] >= 0) out[i + 2] = ir::Dim(g.out[i]);
  }
  ctx.set_output(0, x.dtype, out);
}

void run_conv_transpose(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const ir::Tensor& w = ctx.input(1);
  require_dtype(ctx, x.dtype(), kFloatTypes, "input X");
  if (w.dtype() != x.dtype()) ctx.fail("W has element type ", w.dtype(), ", X has ", x.dtype());
  if (x.rank() < 3) ctx.fail("input X must have rank >= 3 (N, C, spatial...), got ", ir::to_string(x.shape()));
  if (w.rank() != x.rank())
    ctx.fail("weights W of shape ", ir::to_string(w.shape()), " must have the same rank as X ",
             ir::to_string(x.shape()));
  size_t nsp = x.rank() - 2;
  int64_t group = read_group(ctx);
  int64_t n = x.dim(0), c = x.dim(1), mg = w.dim(1), m = mg * group;
  if (w.dim(0) != c) ctx.fail("input has ", c, " channels but W ", ir::to_string(w.shape()), " expects ", w.dim(0));
  if (c % group != 0) ctx.fail("input channels ", c, " are not a multiple of group ", group);
  const ir::Tensor* b = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (b && (b->dtype() != x.dtype() || b->rank() != 1 || b->dim(0) != m))
    ctx.fail("bias B must be a 1-D ", x.dtype(), " tensor of ", m, " values, got ", b->dtype(),
             ir::to_string(b->shape()));
  std::vector<int64_t> wsp(w.shape().begin() + 2, w.shape().end());
  WindowAttrs wa = read_window_attrs(ctx, read_kernel_shape(ctx, nsp, wsp), false);
  std::vector<int64_t> in_sp(x.shape().begin() + 2, x.shape().end());
  TransposeGeometry geo = transpose_geometry(ctx, wa, in_sp);
  std::vector<int64_t> out_shape = {n, m};
  out_shape.insert(out_shape.end(), geo.out.begin(), geo.out.end());
  ir::Tensor y = ctx.make_tensor(x.dtype(), out_shape);
  if (y.numel() == 0) return ctx.set_output(0, y);

  std::vector<double> xv = to_doubles(x), wv = to_doubles(w);
  std::vector<double> yv(static_cast<size_t>(y.numel()), 0.0);
  auto taps = kernel_taps(wa.kernel);
  int64_t in_vol = product(in_sp), out_vol = product(geo.out), kvol = static_cast<int64_t>(taps.size());
  int64_t cg = c / group;
  std::vector<int64_t> out_strides = ir::strides_of(geo.out);
  std::vector<std::pair<int64_t, int64_t>> valid;  // (tap, offset in the output plane) inside the output
  std::vector<int64_t> ip(nsp, 0);
  int64_t i_lin = 0;
  if (in_vol > 0) {
    do {
      valid.clear();
      for (int64_t t = 0; t < kvol; ++t) {
        int64_t off = 0;
        bool inside = true;
        for (size_t i = 0; i < nsp && inside; ++i) {
          int64_t pos = ip[i] * wa.strides[i] - geo.pad_begin[i] + taps[t][i] * wa.dilations[i];
          inside = pos >= 0 && pos < geo.out[i];
          off += pos * out_strides[i];
        }
        if (inside) valid.emplace_back(t, off);
      }
      for (int64_t ni = 0; ni < n; ++ni) {
        for (int64_t ci = 0; ci < c; ++ci) {
          int64_t g = ci / cg;
          double xval = xv[(ni * c + ci) * in_vol + i_lin];
          for (int64_t mm = 0; mm < mg; ++mm) {
            double* yp = yv.data() + (ni * m + g * mg + mm) * out_vol;
            const double* wp = wv.data() + (ci * mg + mm) * kvol;
            for (const auto& [t, off] : valid) yp[off] += xval * wp[t];
          }
        }
      }
      ++i_lin;
    } while (next_index(ip, in_sp));
  }
  if (b) {
    std::vector<double> bv = to_doubles(*b);
    for (int64_t ni = 0; ni < n; ++ni)
      for (int64_t mi = 0; mi < m; ++mi)
        for (int64_t k = 0; k < out_vol; ++k) yv[(ni * m + mi) * out_vol + k] += bv[mi];
  }
  store_doubles(y, yv.data());
  ctx.set_output(0, y);
}

}  // namespace

void register_conv_ops(OpRegistry& r) {
  r.add(OpDef{"", "Conv", 1, kNoMaxOpset, infer_conv, run_conv});
  r.add(OpDef{"", "ConvTranspose", 1, kNoMaxOpset, infer_conv_transpose, run_conv_transpose});
}

}  // namespace kiln::ops::nn

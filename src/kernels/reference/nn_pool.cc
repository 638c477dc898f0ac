// Pooling: MaxPool (with Indices), AveragePool, LpPool, their Global variants, and MaxUnpool.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/reference/common.h"
#include "kernels/reference/nn_common.h"

namespace kiln::ops::nn {
namespace {

using ir::DType;

enum class PoolKind { kMax, kAverage, kLp };

// "p" of LpPool / GlobalLpPool: a float in opset 1, an int from opset 2 on.
double read_lp_p(const NodeView& node) {
  const ir::Attribute* a = node.node().find_attribute("p");
  double p = 2;
  if (a && a->kind == ir::Attribute::Kind::kFloat)
    p = a->f;
  else if (a)
    p = static_cast<double>(node.attr_int("p"));
  if (!(p > 0) || !std::isfinite(p)) node.fail("attribute p must be positive, got ", p);
  return p;
}

// Kernel indices j in [0, k) whose position start + j * d lies in [lo, hi), as a half-open range.
std::pair<int64_t, int64_t> tap_range(int64_t start, int64_t d, int64_t k, int64_t lo, int64_t hi) {
  int64_t first = start >= lo ? 0 : (lo - start + d - 1) / d;
  int64_t last = start >= hi ? 0 : (hi - 1 - start) / d + 1;  // one past the last
  first = std::min(first, k);
  last = std::clamp(last, first, k);
  return {first, last};
}

void check_pool_input(const NodeView& node, size_t rank) {
  if (rank < 3) node.fail("input X must have rank >= 3 (N, C, spatial...), got rank ", rank);
}

WindowAttrs pool_window(const NodeView& node, size_t rank) {
  return read_window_attrs(node, read_kernel_shape(node, rank - 2, std::nullopt), true);
}

void infer_pool(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  if (!x.shape) {
    ctx.set_output(0, x.dtype, std::nullopt);
    if (ctx.num_outputs() > 1) ctx.set_output(1, DType::kInt64, std::nullopt);
    return;
  }
  check_pool_input(ctx, x.shape->rank());
  WindowAttrs wa = pool_window(ctx, x.shape->rank());
  auto out = forward_window_shape(ctx, wa, *x.shape, (*x.shape)[1]);
  ctx.set_output(0, x.dtype, out);
  if (ctx.num_outputs() > 1) ctx.set_output(1, DType::kInt64, out);
}

void run_pool(KernelContext& ctx, PoolKind kind) {
  const ir::Tensor& x = ctx.input(0);
  if (kind == PoolKind::kMax)
    require_dtype(ctx, x.dtype(),
                  {DType::kFloat16, DType::kBFloat16, DType::kFloat32, DType::kFloat64, DType::kInt8, DType::kUInt8},
                  "input X");
  else
    require_dtype(ctx, x.dtype(), kFloatTypes, "input X");
  check_pool_input(ctx, x.rank());
  size_t nsp = x.rank() - 2;
  WindowAttrs wa = pool_window(ctx, x.rank());
  bool include_pad = kind == PoolKind::kAverage && ctx.attr_int("count_include_pad", 0) != 0;
  int64_t storage_order = kind == PoolKind::kMax ? ctx.attr_int("storage_order", 0) : 0;
  if (storage_order != 0 && storage_order != 1) ctx.fail("attribute storage_order must be 0 or 1, got ", storage_order);
  double p = kind == PoolKind::kLp ? read_lp_p(ctx) : 0;
  bool want_indices = kind == PoolKind::kMax && ctx.has_output(1);

  std::vector<int64_t> in_sp(x.shape().begin() + 2, x.shape().end()), out_sp(nsp), pad_begin(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    AxisWindow a = forward_window(ctx, wa, i, in_sp[i]);
    out_sp[i] = a.out;
    pad_begin[i] = a.pad_begin;
  }
  // Where the window may reach: the input plus its end padding (for count_include_pad).
  std::vector<int64_t> pad_end(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    int64_t full = (out_sp[i] - 1) * wa.strides[i] + wa.effective_kernel(i);
    pad_end[i] =
        wa.auto_pad == AutoPad::kNotSet ? wa.pads[i + nsp] : std::max<int64_t>(0, full - in_sp[i] - pad_begin[i]);
  }
  std::vector<int64_t> out_shape = {x.dim(0), x.dim(1)};
  out_shape.insert(out_shape.end(), out_sp.begin(), out_sp.end());
  ir::Tensor y = ctx.make_tensor(x.dtype(), out_shape);
  ir::Tensor indices;
  if (want_indices) indices = ctx.make_tensor(DType::kInt64, out_shape);
  if (y.numel() == 0) {
    ctx.set_output(0, y);
    if (want_indices) ctx.set_output(1, indices);
    return;
  }

  std::vector<double> xv = to_doubles(x);
  std::vector<double> yv(static_cast<size_t>(y.numel()));
  int64_t planes = x.dim(0) * x.dim(1);
  int64_t in_vol = product(in_sp), out_vol = product(out_sp);
  std::vector<int64_t> row_strides = ir::strides_of(in_sp), col_strides(nsp);
  for (size_t i = 0, s = 1; i < nsp; ++i) {
    col_strides[i] = static_cast<int64_t>(s);
    s *= static_cast<size_t>(in_sp[i]);
  }
  struct Tap {
    int64_t offset;     // row-major offset in the input plane
    int64_t col_major;  // the same element's column-major offset (storage_order 1)
  };
  std::vector<Tap> valid;
  std::vector<int64_t> o(nsp, 0), jlo(nsp), jn(nsp), j(nsp);
  int64_t o_lin = 0;
  do {
    // Only the kernel taps that land inside the input are visited, so huge kernels over mostly
    // padding cost what the input costs, not what the kernel does.
    valid.clear();
    int64_t count_with_pad = 1;
    bool any = true;
    for (size_t i = 0; i < nsp; ++i) {
      int64_t start = o[i] * wa.strides[i] - pad_begin[i];
      auto [lo, hi] = tap_range(start, wa.dilations[i], wa.kernel[i], 0, in_sp[i]);
      auto [plo, phi] = tap_range(start, wa.dilations[i], wa.kernel[i], -pad_begin[i], in_sp[i] + pad_end[i]);
      count_with_pad *= phi - plo;
      jlo[i] = lo;
      jn[i] = hi - lo;
      if (jn[i] == 0) any = false;
    }
    if (any) {
      std::fill(j.begin(), j.end(), 0);
      do {
        int64_t off = 0, col = 0;
        for (size_t i = 0; i < nsp; ++i) {
          int64_t pos = o[i] * wa.strides[i] - pad_begin[i] + (jlo[i] + j[i]) * wa.dilations[i];
          off += pos * row_strides[i];
          col += pos * col_strides[i];
        }
        valid.push_back({off, col});
      } while (next_index(j, jn));
    }
    for (int64_t pl = 0; pl < planes; ++pl) {
      const double* xp = xv.data() + pl * in_vol;
      int64_t yi = pl * out_vol + o_lin;
      switch (kind) {
        case PoolKind::kMax: {
          double best = -std::numeric_limits<double>::infinity();
          int64_t best_idx = -1;
          for (const Tap& t : valid) {
            double v = xp[t.offset];
            if (v > best || best_idx < 0) {
              best = v;
              best_idx = storage_order ? t.col_major : t.offset;
            }
          }
          yv[yi] = best;
          if (want_indices) indices.data<int64_t>()[yi] = best_idx < 0 ? -1 : pl * in_vol + best_idx;
          break;
        }
        case PoolKind::kAverage: {
          double sum = 0;
          for (const Tap& t : valid) sum += xp[t.offset];
          int64_t count = include_pad ? count_with_pad : static_cast<int64_t>(valid.size());
          yv[yi] = count > 0 ? sum / static_cast<double>(count) : 0.0;
          break;
        }
        case PoolKind::kLp: {
          double sum = 0;
          for (const Tap& t : valid) sum += std::pow(std::fabs(xp[t.offset]), p);
          yv[yi] = std::pow(sum, 1.0 / p);
          break;
        }
      }
    }
    ++o_lin;
  } while (next_index(o, out_sp));
  store_doubles(y, yv.data());
  ctx.set_output(0, y);
  if (want_indices) ctx.set_output(1, indices);
}

// ---- Global pools -------------------------------------------------------------------------------

void infer_global_pool(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  if (!x.shape) return ctx.set_output(0, x.dtype, std::nullopt);
  if (x.shape->rank() < 2) ctx.fail("input X must have rank >= 2 (N, C, spatial...), got rank ", x.shape->rank());
  ir::Shape out = *x.shape;
  for (size_t i = 2; i < out.rank(); ++i) out[i] = ir::Dim(1);
  ctx.set_output(0, x.dtype, out);
}

void run_global_pool(KernelContext& ctx, PoolKind kind) {
  const ir::Tensor& x = ctx.input(0);
  require_dtype(ctx, x.dtype(), kFloatTypes, "input X");
  if (x.rank() < 2) ctx.fail("input X must have rank >= 2 (N, C, spatial...), got ", ir::to_string(x.shape()));
  double p = kind == PoolKind::kLp ? read_lp_p(ctx) : 0;
  std::vector<int64_t> out_shape = x.shape();
  for (size_t i = 2; i < out_shape.size(); ++i) out_shape[i] = 1;
  ir::Tensor y = ctx.make_tensor(x.dtype(), out_shape);
  int64_t planes = x.dim(0) * x.dim(1);
  int64_t vol = planes == 0 ? 0 : x.numel() / planes;
  if (vol == 0 && planes > 0) ctx.fail("cannot pool over an empty spatial extent ", ir::to_string(x.shape()));
  std::vector<double> xv = to_doubles(x), yv(static_cast<size_t>(planes));
  for (int64_t pl = 0; pl < planes; ++pl) {
    const double* xp = xv.data() + pl * vol;
    double acc = kind == PoolKind::kMax ? -std::numeric_limits<double>::infinity() : 0.0;
    for (int64_t i = 0; i < vol; ++i) {
      switch (kind) {
        case PoolKind::kMax:
          acc = std::max(acc, xp[i]);
          break;
        case PoolKind::kAverage:
          acc += xp[i];
          break;
        case PoolKind::kLp:
          acc += std::pow(std::fabs(xp[i]), p);
          break;
      }
    }
    if (kind == PoolKind::kAverage) acc /= static_cast<double>(vol);
    if (kind == PoolKind::kLp) acc = std::pow(acc, 1.0 / p);
    yv[pl] = acc;
  }
  store_doubles(y, yv.data());
  ctx.set_output(0, y);
}

// ---- MaxUnpool ----------------------------------------------------------------------------------

// The spatial output size MaxPool's inverse would give: (in - 1) * stride + kernel - pads.
std::vector<int64_t> unpool_default_spatial(const NodeView& node, const WindowAttrs& wa,
                                            const std::vector<int64_t>& in) {
  std::vector<int64_t> out(wa.rank(), -1);
  for (size_t i = 0; i < wa.rank(); ++i) {
    if (in[i] < 0) continue;
    out[i] = (in[i] - 1) * wa.strides[i] + wa.kernel[i] - wa.pads[i] - wa.pads[i + wa.rank()];
    if (out[i] < 0) node.fail("pads ", ir::to_string(wa.pads), " leave a negative output size along spatial axis ", i);
  }
  return out;
}

WindowAttrs unpool_window(const NodeView& node, size_t rank) {
  return read_window_attrs(node, read_kernel_shape(node, rank - 2, std::nullopt), false);
}

void infer_max_unpool(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  if (!x.shape) return ctx.set_output(0, x.dtype, std::nullopt);
  check_pool_input(ctx, x.shape->rank());
  size_t rank = x.shape->rank();
  if (ctx.has_input(2)) {
    if (const ir::Tensor* os = ctx.input_value(2)) {
      std::vector<int64_t> v = os->to_int64_vector();
      if (v.size() != rank) ctx.fail("output_shape ", ir::to_string(v), " must have ", rank, " values");
      return ctx.set_output(0, x.dtype, ir::Shape::of(v));
    }
    return ctx.set_output(0, x.dtype, ir::Shape(std::vector<ir::Dim>(rank)));
  }
  WindowAttrs wa = unpool_window(ctx, rank);
  std::vector<int64_t> in;
  for (size_t i = 2; i < rank; ++i) in.push_back((*x.shape)[i].is_static() ? (*x.shape)[i].value : -1);
  std::vector<int64_t> sp = unpool_default_spatial(ctx, wa, in);
  ir::Shape out({(*x.shape)[0], (*x.shape)[1]});
  for (int64_t d : sp) out.dims.push_back(d >= 0 ? ir::Dim(d) : ir::Dim());
  ctx.set_output(0, x.dtype, out);
}

void run_max_unpool(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const ir::Tensor& ind = ctx.input(1);
  require_dtype(ctx, x.dtype(), kFloatTypes, "input X");
  if (ind.dtype() != DType::kInt64) ctx.fail("input I must be int64, got ", ind.dtype());
  if (ind.shape() != x.shape())
    ctx.fail("indices I ", ir::to_string(ind.shape()), " must have the shape of X ", ir::to_string(x.shape()));
  check_pool_input(ctx, x.rank());
  WindowAttrs wa = unpool_window(ctx, x.rank());
  std::vector<int64_t> in_sp(x.shape().begin() + 2, x.shape().end());
  std::vector<int64_t> def_shape = {x.dim(0), x.dim(1)};
  for (int64_t d : unpool_default_spatial(ctx, wa, in_sp)) def_shape.push_back(d);
  std::vector<int64_t> out_shape = def_shape;
  if (ctx.has_input(2) && ctx.input(2).numel() > 0) {
    out_shape = ctx.input(2).to_int64_vector();
    if (out_shape.size() != x.rank())
      ctx.fail("output_shape ", ir::to_string(out_shape), " must have ", x.rank(), " values");
    if (out_shape[0] != x.dim(0) || out_shape[1] != x.dim(1))
      ctx.fail("output_shape ", ir::to_string(out_shape), " must keep X's batch and channel dims ", x.dim(0), ", ",
               x.dim(1));
  }
  ir::Tensor y = ctx.make_tensor(x.dtype(), out_shape);
  int64_t def_numel = ir::Tensor::checked_numel(def_shape);
  // Indices count positions in the default output (what MaxPool saw); each is placed at the same
  // coordinates of the requested output, which may be larger.
  std::vector<int64_t> def_strides = ir::strides_of(def_shape), out_strides = ir::strides_of(out_shape);
  const int64_t* ip = ind.data<int64_t>();
  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      int64_t idx = ip[j];
      if (idx < 0 || idx >= def_numel)
        ctx.fail("index ", idx, " at position ", j, " of I is outside the unpooled tensor of shape ",
                 ir::to_string(def_shape));
      int64_t dst = 0, rem = idx;
      for (size_t a = 0; a < def_shape.size(); ++a) {
        int64_t coord = rem / def_strides[a];
        rem %= def_strides[a];
        if (coord >= out_shape[a])
          ctx.fail("index ", idx, " of I falls outside output_shape ", ir::to_string(out_shape));
        dst += coord * out_strides[a];
      }
      yp[dst] = xp[j];
    }
  });
  ctx.set_output(0, y);
}

}  // namespace

void register_pool_ops(OpRegistry& r) {
  r.add(OpDef{"", "MaxPool", 1, kNoMaxOpset, infer_pool, [](KernelContext& c) { run_pool(c, PoolKind::kMax); }});
  r.add(
      OpDef{"", "AveragePool", 1, kNoMaxOpset, infer_pool, [](KernelContext& c) { run_pool(c, PoolKind::kAverage); }});
  r.add(OpDef{"", "LpPool", 1, kNoMaxOpset, infer_pool, [](KernelContext& c) { run_pool(c, PoolKind::kLp); }});
  r.add(OpDef{"", "GlobalMaxPool", 1, kNoMaxOpset, infer_global_pool,
              [](KernelContext& c) { run_global_pool(c, PoolKind::kMax); }});
  r.add(OpDef{"", "GlobalAveragePool", 1, kNoMaxOpset, infer_global_pool,
              [](KernelContext& c) { run_global_pool(c, PoolKind::kAverage); }});
  r.add(OpDef{"", "GlobalLpPool", 1, kNoMaxOpset, infer_global_pool,
              [](KernelContext& c) { run_global_pool(c, PoolKind::kLp); }});
  r.add(OpDef{"", "MaxUnpool", 9, kNoMaxOpset, infer_max_unpool, run_max_unpool});
}

}  // namespace kiln::ops::nn

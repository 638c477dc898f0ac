// GridSample (opset 16: 2-D, modes bilinear/nearest/bicubic; opset 20: N-D, modes linear/nearest/cubic).
// Follows the ONNX reference (after PyTorch's grid_sampler): the grid's last axis lists coordinates
// in reverse axis order (x is the last spatial axis), normalized to [-1, 1].
#include <algorithm>
#include <cmath>

#include "kernels/reference/common.h"
#include "kernels/reference/nn_common.h"

namespace kiln::ops::nn {
namespace {

using ir::DType;

enum class GridMode { kLinear, kNearest, kCubic };
enum class Padding { kZeros, kBorder, kReflection };

struct GridSpec {
  GridMode mode = GridMode::kLinear;
  Padding padding = Padding::kZeros;
  bool align_corners = false;
};

GridSpec read_grid_spec(const NodeView& node) {
  GridSpec s;
  std::string m = node.attr_string("mode", node.opset() >= 20 ? "linear" : "bilinear");
  if (m == "bilinear" || m == "linear")
    s.mode = GridMode::kLinear;
  else if (m == "nearest")
    s.mode = GridMode::kNearest;
  else if (m == "bicubic" || m == "cubic")
    s.mode = GridMode::kCubic;
  else
    node.fail("attribute mode has unknown value \"", m, "\"");
  std::string p = node.attr_string("padding_mode", "zeros");
  if (p == "zeros")
    s.padding = Padding::kZeros;
  else if (p == "border")
    s.padding = Padding::kBorder;
  else if (p == "reflection")
    s.padding = Padding::kReflection;
  else
    node.fail("attribute padding_mode has unknown value \"", p, "\"");
  s.align_corners = node.attr_int("align_corners", 0) != 0;
  return s;
}

// Reflects x into [lo, hi] as often as needed.
double reflect(double x, double lo, double hi) {
  double range = hi - lo;
  if (range <= 0) return lo;
  if (x < lo) {
    double dx = lo - x;
    double n = std::floor(dx / range);
    double r = dx - n * range;
    return std::fmod(n, 2) == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    double dx = x - hi;
    double n = std::floor(dx / range);
    double r = dx - n * range;
    return std::fmod(n, 2) == 0 ? hi - r : lo + r;
  }
  return x;
}

void cubic_coeffs(double t, double c[4]) {
  constexpr double a = -0.75;
  double x = t + 1;
  c[0] = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  c[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
  x = 1 - t;
  c[2] = ((a + 2) * x - (a + 3)) * x * x + 1;
  x = 2 - t;
  c[3] = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
}

void infer_grid_sample(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  const ir::Type& g = ctx.input_type(1);
  if (!g.shape) {
    std::optional<ir::Shape> out;
    if (x.shape) out = ir::Shape(std::vector<ir::Dim>(x.shape->rank()));
    if (out && x.shape->rank() >= 2) {
      (*out)[0] = (*x.shape)[0];
      (*out)[1] = (*x.shape)[1];
    }
    return ctx.set_output(0, x.dtype, out);
  }
  size_t r = g.shape->rank();
  if (r < 3) ctx.fail("grid must have rank >= 3, got ", ir::to_string(*g.shape));
  if (x.shape && x.shape->rank() != r)
    ctx.fail("X ", ir::to_string(*x.shape), " and grid ", ir::to_string(*g.shape), " must have the same rank");
  const ir::Dim& last = (*g.shape)[r - 1];
  if (last.is_static() && last.value != static_cast<int64_t>(r - 2))
    ctx.fail("grid's last dim must be ", r - 2, " (one coordinate per spatial axis), got ", last.value);
  ir::Shape out{std::vector<ir::Dim>(r)};
  out[0] = (*g.shape)[0];
  if (x.shape) {
    if (!out[0].is_static() && !out[0].is_symbolic()) out[0] = (*x.shape)[0];
    out[1] = (*x.shape)[1];
  }
  for (size_t i = 1; i + 1 < r; ++i) out[i + 1] = (*g.shape)[i];
  ctx.set_output(0, x.dtype, out);
}

void run_grid_sample(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const ir::Tensor& grid = ctx.input(1);
  require_dtype(ctx, x.dtype(), kFloatTypes, "input X");
  require_dtype(ctx, grid.dtype(), kFloatTypes, "input grid");
  if (x.rank() < 3) ctx.fail("input X must have rank >= 3 (N, C, spatial...), got ", ir::to_string(x.shape()));
  size_t nsp = x.rank() - 2;
  if (ctx.opset() < 20 && nsp != 2)
    ctx.fail("GridSample before opset 20 takes 4-D input, got ", ir::to_string(x.shape()));
  if (grid.rank() != x.rank() || grid.dim(0) != x.dim(0) || grid.dim(grid.rank() - 1) != static_cast<int64_t>(nsp))
    ctx.fail("grid ", ir::to_string(grid.shape()), " does not fit X ", ir::to_string(x.shape()), "; expected [",
             x.dim(0), ", ...", nsp, " output dims..., ", nsp, "]");
  GridSpec spec = read_grid_spec(ctx);
  int64_t n = x.dim(0), c = x.dim(1);
  std::vector<int64_t> dims(x.shape().begin() + 2, x.shape().end());
  std::vector<int64_t> out_sp(grid.shape().begin() + 1, grid.shape().end() - 1);
  std::vector<int64_t> out_shape = {n, c};
  out_shape.insert(out_shape.end(), out_sp.begin(), out_sp.end());
  ir::Tensor y = ctx.make_tensor(x.dtype(), out_shape);
  if (y.numel() == 0) return ctx.set_output(0, y);
  for (int64_t d : dims)
    if (d == 0) ctx.fail("cannot sample from an empty input ", ir::to_string(x.shape()));

  std::vector<double> xv = to_doubles(x), gv = to_doubles(grid), yv(static_cast<size_t>(y.numel()));
  int64_t plane = product(dims), out_vol = product(out_sp);
  std::vector<int64_t> strides = ir::strides_of(dims);
  std::vector<double> lo(nsp), hi(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    lo[i] = spec.align_corners ? 0.0 : -0.5;
    hi[i] = spec.align_corners ? static_cast<double>(dims[i] - 1) : static_cast<double>(dims[i]) - 0.5;
  }
  // Maps an integer coordinate to a valid index under the padding mode; -1 means "reads zero".
  auto fetch_index = [&](size_t axis, int64_t i) -> int64_t {
    if (i >= 0 && i < dims[axis]) return i;
    switch (spec.padding) {
      case Padding::kZeros:
        return -1;
      case Padding::kBorder:
        return std::clamp<int64_t>(i, 0, dims[axis] - 1);
      case Padding::kReflection: {
        auto r = static_cast<int64_t>(reflect(static_cast<double>(i), lo[axis], hi[axis]));
        return std::clamp<int64_t>(r, 0, dims[axis] - 1);
      }
    }
    return -1;
  };

  // Per axis, the taps of the current sample: (index or -1, weight).
  std::vector<std::vector<std::pair<int64_t, double>>> taps(nsp);
  std::vector<int64_t> ntaps(nsp), t(nsp);
  for (int64_t ni = 0; ni < n; ++ni) {
    for (int64_t k = 0; k < out_vol; ++k) {
      const double* g = gv.data() + (ni * out_vol + k) * static_cast<int64_t>(nsp);
      for (size_t i = 0; i < nsp; ++i) {
        double nx = g[nsp - 1 - i];
        double len = static_cast<double>(dims[i]);
        double v = spec.align_corners ? (nx + 1) / 2 * (len - 1) : ((nx + 1) * len - 1) / 2;
        // Ties to even in every rank, as PyTorch and ONNX's reference (np.rint) do since ONNX 1.16.
        if (spec.mode == GridMode::kNearest) v = std::nearbyint(v);
        if (v < lo[i] || v > hi[i]) {
          if (spec.padding == Padding::kBorder)
            v = std::clamp(v, 0.0, len - 1);
          else if (spec.padding == Padding::kReflection)
            v = reflect(v, lo[i], hi[i]);
        }
        if (!std::isfinite(v)) v = -2;                 // NaN or inf grid: reads padding
        v = std::clamp(v, -4 - 2 * len, 4 + 2 * len);  // far outside is all the same; keeps ints in range
        auto& tp = taps[i];
        tp.clear();
        if (spec.mode == GridMode::kNearest) {
          tp.emplace_back(fetch_index(i, static_cast<int64_t>(v)), 1.0);
        } else if (spec.mode == GridMode::kLinear) {
          double f = std::floor(v);
          auto i0 = static_cast<int64_t>(f);
          tp.emplace_back(fetch_index(i, i0), 1 - (v - f));
          tp.emplace_back(fetch_index(i, i0 + 1), v - f);
        } else {
          double f = std::floor(v), cc[4];
          auto i0 = static_cast<int64_t>(f);
          cubic_coeffs(v - f, cc);
          for (int64_t j = 0; j < 4; ++j) tp.emplace_back(fetch_index(i, i0 - 1 + j), cc[j]);
        }
        ntaps[i] = static_cast<int64_t>(tp.size());
      }
      for (int64_t ci = 0; ci < c; ++ci) {
        const double* xp = xv.data() + (ni * c + ci) * plane;
        double acc = 0;
        std::fill(t.begin(), t.end(), 0);
        do {
          double w = 1;
          int64_t off = 0;
          bool zero = false;
          for (size_t i = 0; i < nsp; ++i) {
            const auto& [idx, wt] = taps[i][static_cast<size_t>(t[i])];
            if (idx < 0) zero = true;
            w *= wt;
            off += idx * strides[i];
          }
          if (!zero) acc += w * xp[off];
        } while (next_index(t, ntaps));
        yv[static_cast<size_t>((ni * c + ci) * out_vol + k)] = acc;
      }
    }
  }
  store_doubles(y, yv.data());
  ctx.set_output(0, y);
}

}  // namespace

void register_grid_sample_ops(OpRegistry& r) {
  r.add(OpDef{"", "GridSample", 16, kNoMaxOpset, infer_grid_sample, run_grid_sample});
}

}  // namespace kiln::ops::nn

// Fast kernels for the pooling a CNN runs between its convolutions: 2-D float32 MaxPool (without the
// Indices output) and GlobalAveragePool, over NCHW planes in parallel; and ai.kiln.MaxPool and
// ai.kiln.AveragePool with channels_last = 1, over [N, H, W, C] rows in parallel, vectorized across the
// contiguous channels. MaxPool gives the reference's results exactly (the same window arithmetic, the
// same tap order for its NaN handling), and so does the channels-last AveragePool (it sums the same taps
// in the same order in double, as the reference does); GlobalAveragePool sums in double in another
// order, within an ulp of the reference's. All at a small fraction of the reference's time, which
// converts every element to double first.
#include "kernels/cpu/fast_kernel_table.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/thread_buffer.h"
#include "kernels/reference/nn_common.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// Work per call below which one thread is faster than waking the others (with OMP_WAIT_POLICY=passive a
// wake-up costs tens of microseconds): MaxPool window taps, GlobalAveragePool elements.
constexpr int64_t kPoolParallelWork = 1 << 14;
constexpr int64_t kParallelSum = 1 << 18;

constexpr const char* kKilnPoolDomain = "ai.kiln";  // ai.kiln.MaxPool, ai.kiln.AveragePool

// The two spatial windows of a 2-D pool over a float32 4-D input whose H and W are dims h_axis and
// h_axis + 1, or nullopt where the fast kernels decline (Indices asked for, other types or ranks, or
// attributes the reference reports on).
std::optional<std::pair<ops::nn::AxisWindow, ops::nn::AxisWindow>> pool_windows_2d(
    ops::KernelContext& ctx, const ops::nn::WindowAttrs& window, size_t h_axis) {
  if (!is_f32(ctx, 0) || ctx.has_output(1)) return std::nullopt;
  const ir::Dims& s = ctx.input(0).shape();
  if (s.size() != 4) return std::nullopt;
  try {
    return std::make_pair(ops::nn::forward_window(ctx, window, 0, s[h_axis]),
                          ops::nn::forward_window(ctx, window, 1, s[h_axis + 1]));
  } catch (const Error&) {
    return std::nullopt;  // the reference reports it
  }
}

// Owner of the worker buffers that hold a plane's row maxima (MaxPoolKernel's separable path).
struct SeparableMaxRows;

// MaxPool over [N, C, H, W]: each output the largest input under its window, taps visited row by row as the
// reference does (so that a NaN wins only where it comes first there too); -inf where a window covers
// only padding.
class MaxPoolKernel : public FastKernel {
 public:
  explicit MaxPoolKernel(ops::nn::WindowAttrs window) : window_(std::move(window)) {}

  bool run(ops::KernelContext& ctx) const override {
    const auto windows = pool_windows_2d(ctx, window_, 2);
    if (!windows) return false;
    const ops::nn::AxisWindow wh = windows->first, ww = windows->second;
    const ir::Dims& s = ctx.input(0).shape();
    const int64_t planes = s[0] * s[1], h = s[2], w = s[3], oh = wh.out, ow = ww.out;
    if (planes == 0 || oh <= 0 || ow <= 0) return false;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, {s[0], s[1], oh, ow});
    const int64_t kh = window_.kernel[0], kw = window_.kernel[1];
    const int64_t sh = window_.strides[0], sw = window_.strides[1];
    const int64_t dh = window_.dilations[0], dw = window_.dilations[1];
    // Per output column: its first input column and the taps inside the input. The interior columns
    // [inner_begin, inner_end), whose every tap is inside, are computed taps-outer, columns-inner: the
    // columns' maxima are then independent (no chain of dependent maxss per output) and pipeline.
    // In the calling thread's scratch: a steady-state call allocates nothing.
    int64_t* col_start =
        reinterpret_cast<int64_t*>(thread_buffer<MaxPoolKernel>(3 * static_cast<size_t>(ow) * sizeof(int64_t)));
    int64_t* col_lo = col_start + ow;
    int64_t* col_hi = col_lo + ow;
    int64_t inner_begin = ow, inner_end = ow;
    for (int64_t ox = 0; ox < ow; ++ox) {
      col_start[ox] = ox * sw - ww.pad_begin;
      std::tie(col_lo[ox], col_hi[ox]) = taps_inside(col_start[ox], dw, kw, w);
      const bool inner = col_lo[ox] == 0 && col_hi[ox] == kw;
      if (inner && inner_begin == ow) inner_begin = ox;
      if (inner) inner_end = ox + 1;
    }
    const float* x = ctx.input(0).data<float>();
    float* out = y.data<float>();
    // Large windows, separably: the maxima of each input row under each output column's taps first,
    // then of those under each output row's taps, (h kw + oh kh) ow taps a plane for oh ow kh kw. In
    // that order the result is the reference's exactly: a window's maximum is its first (row-major) tap
    // holding the largest value, and so its NaN where that first tap is NaN. ddddocr-det's SPP pools
    // (5x5, 9x9 and 13x13 on [1,192,13,13]): 2.38 -> 0.56 ms a run (AMD EPYC Zen 4, 2 threads).
    if (2 * (h * kw + oh * kh) <= oh * kh * kw) {
      parallel_for_static(planes * (h * kw + oh * kh) * ow > kPoolParallelWork, planes, [&](int64_t p) {
        float* rows = reinterpret_cast<float*>(
            worker_thread_buffer<SeparableMaxRows>(static_cast<size_t>(h * ow) * sizeof(float)));
        const float* plane = x + p * h * w;
        for (int64_t r = 0; r < h; ++r) {
          const float* row = plane + r * w;
          float* rmax = rows + r * ow;
          for (int64_t ox = 0; ox < ow; ++ox) {
            if (ox == inner_begin) ox = inner_end;
            if (ox == ow) break;
            const int64_t kx_lo = col_lo[ox], kx_hi = col_hi[ox];
            if (kx_lo == kx_hi) {  // a column over padding only
              rmax[ox] = -std::numeric_limits<float>::infinity();
              continue;
            }
            const float* taps = row + col_start[ox];
            float best = taps[kx_lo * dw];
            for (int64_t kx = kx_lo + 1; kx < kx_hi; ++kx) best = taps[kx * dw] > best ? taps[kx * dw] : best;
            rmax[ox] = best;
          }
          for (int64_t kx = 0; kx < kw && inner_begin < inner_end; ++kx) {
            const int64_t offset = kx * dw - ww.pad_begin;
            for (int64_t ox = inner_begin; ox < inner_end; ++ox) {
              const float v = row[ox * sw + offset];
              rmax[ox] = kx == 0 || v > rmax[ox] ? v : rmax[ox];
            }
          }
        }
        for (int64_t oy = 0; oy < oh; ++oy) {
          const int64_t row_start = oy * sh - wh.pad_begin;
          const auto [ky_lo, ky_hi] = taps_inside(row_start, dh, kh, h);
          float* yrow = out + (p * oh + oy) * ow;
          if (ky_lo == ky_hi) {
            std::fill_n(yrow, ow, -std::numeric_limits<float>::infinity());
            continue;
          }
          std::copy_n(rows + (row_start + ky_lo * dh) * ow, ow, yrow);
          for (int64_t ky = ky_lo + 1; ky < ky_hi; ++ky) {
            const float* rmax = rows + (row_start + ky * dh) * ow;
            for (int64_t ox = 0; ox < ow; ++ox) yrow[ox] = rmax[ox] > yrow[ox] ? rmax[ox] : yrow[ox];
          }
        }
      });
      ctx.set_output(0, std::move(y));
      return true;
    }
    parallel_for_static(planes * oh * ow * kh * kw > kPoolParallelWork, planes, [&](int64_t p) {
      const float* plane = x + p * h * w;
      for (int64_t oy = 0; oy < oh; ++oy) {
        const int64_t row_start = oy * sh - wh.pad_begin;
        const auto [ky_lo, ky_hi] = taps_inside(row_start, dh, kh, h);
        float* yrow = out + (p * oh + oy) * ow;
        // Every output takes its first tap, then `v > best ? v : best` (one maxss, no branch) over the
        // rest in the reference's order, so a NaN counts only as the first tap, as there.
        for (int64_t ox = 0; ox < ow; ++ox) {
          if (ox == inner_begin && ky_lo < ky_hi) ox = inner_end;
          if (ox == ow) break;
          const int64_t kx_lo = col_lo[ox], kx_hi = col_hi[ox];
          if (ky_lo == ky_hi || kx_lo == kx_hi) {
            yrow[ox] = -std::numeric_limits<float>::infinity();
            continue;
          }
          const float* window = plane + row_start * w + col_start[ox];
          float best = window[ky_lo * dh * w + kx_lo * dw];
          for (int64_t ky = ky_lo; ky < ky_hi; ++ky) {
            const float* row = window + ky * dh * w;
            for (int64_t kx = ky == ky_lo ? kx_lo + 1 : kx_lo; kx < kx_hi; ++kx) {
              const float v = row[kx * dw];
              best = v > best ? v : best;
            }
          }
          yrow[ox] = best;
        }
        if (ky_lo == ky_hi || inner_begin == inner_end) continue;
        for (int64_t ky = ky_lo; ky < ky_hi; ++ky) {
          const float* row = plane + (row_start + ky * dh) * w;
          for (int64_t kx = 0; kx < kw; ++kx) {
            const int64_t offset = kx * dw - ww.pad_begin;  // input column of output column 0's tap
            if (ky == ky_lo && kx == 0) {
              for (int64_t ox = inner_begin; ox < inner_end; ++ox) yrow[ox] = row[ox * sw + offset];
            } else {
              for (int64_t ox = inner_begin; ox < inner_end; ++ox) {
                const float v = row[ox * sw + offset];
                yrow[ox] = v > yrow[ox] ? v : yrow[ox];
              }
            }
          }
        }
      }
    });
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  ops::nn::WindowAttrs window_;
};

// ai.kiln.MaxPool and ai.kiln.AveragePool over channels-last [N, H, W, C]: each output pixel's C values
// from its window's taps, each tap a contiguous run of C inputs, so the loops over channels vectorize.
// Taps are visited row by row as the reference does: the max takes the first tap, then `v > best ? v :
// best` (a NaN counts only as the first tap, as there); the average adds the taps in double in that
// order and divides by the reference's count, so both give its results exactly.
class ChannelsLastPoolKernel : public FastKernel {
 public:
  ChannelsLastPoolKernel(bool average, ops::nn::WindowAttrs window, bool count_include_pad)
      : average_(average), window_(std::move(window)), count_include_pad_(count_include_pad) {}

  bool run(ops::KernelContext& ctx) const override {
    const auto windows = pool_windows_2d(ctx, window_, 1);
    if (!windows) return false;
    const ops::nn::AxisWindow wh = windows->first, ww = windows->second;
    const ir::Dims& s = ctx.input(0).shape();
    const int64_t n = s[0], h = s[1], w = s[2], c = s[3], oh = wh.out, ow = ww.out;
    if (n == 0 || c == 0 || oh <= 0 || ow <= 0) return false;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, {n, oh, ow, c});
    const Axis rows = axis(0, h, oh, wh.pad_begin), cols = axis(1, w, ow, ww.pad_begin);
    const float* x = ctx.input(0).data<float>();
    float* out = y.data<float>();
    const int64_t work = n * oh * ow * c * window_.kernel[0] * window_.kernel[1];
    parallel_for_static(work > kPoolParallelWork, n * oh, [&](int64_t row) {
      const int64_t b = row / oh, oy = row % oh;
      const float* image = x + b * h * w * c;
      const Taps ty = rows.taps(oy);
      float* yrow = out + row * ow * c;
      for (int64_t ox = 0; ox < ow; ++ox) {
        const Taps tx = cols.taps(ox);
        Window win{image, c, w * c, ty, tx};
        if (average_)
          average(win, ty.padded * tx.padded, yrow + ox * c);
        else
          maximum(win, yrow + ox * c);
      }
    });
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  // One output position's taps along one axis: input positions start + k * d for k in [lo, hi), and
  // how many taps count for an average with count_include_pad (those over the input or its padding).
  struct Taps {
    int64_t start, lo, hi, padded;
  };
  struct Axis {
    int64_t stride, dilation, kernel, size, pad_begin, pad_end;
    Taps taps(int64_t o) const {
      const int64_t start = o * stride - pad_begin;
      const auto [lo, hi] = taps_inside(start, dilation, kernel, size);
      const auto [plo, phi] = taps_inside(start + pad_begin, dilation, kernel, size + pad_begin + pad_end);
      return {start, lo, hi, phi - plo};
    }
  };
  // The window of one output pixel: tap (ky, kx) reads the c channels at
  // image + (ty.start + ky * dh) * row_stride + (tx.start + kx * dw) * c.
  struct Window {
    const float* image;
    int64_t c, row_stride;
    Taps ty, tx;
  };

  // Axis i of the window over an input of `size` with `out` outputs; pad_end as the reference finds it
  // (the attribute's, or what auto_pad adds after the input).
  Axis axis(size_t i, int64_t size, int64_t out, int64_t pad_begin) const {
    const ops::nn::WindowAttrs& wa = window_;
    const int64_t full = (out - 1) * wa.strides[i] + wa.effective_kernel(i);
    const int64_t pad_end = wa.auto_pad == ops::nn::AutoPad::kNotSet ? wa.pads[i + wa.rank()]
                                                                     : std::max<int64_t>(0, full - size - pad_begin);
    return {wa.strides[i], wa.dilations[i], wa.kernel[i], size, pad_begin, pad_end};
  }

  const float* tap(const Window& win, int64_t ky, int64_t kx) const {
    return win.image + (win.ty.start + ky * window_.dilations[0]) * win.row_stride +
           (win.tx.start + kx * window_.dilations[1]) * win.c;
  }

  void maximum(const Window& win, float* y) const {
    const Taps &ty = win.ty, &tx = win.tx;
    if (ty.lo == ty.hi || tx.lo == tx.hi) {
      std::fill(y, y + win.c, -std::numeric_limits<float>::infinity());
      return;
    }
    std::copy_n(tap(win, ty.lo, tx.lo), win.c, y);
    for (int64_t ky = ty.lo; ky < ty.hi; ++ky)
      for (int64_t kx = ky == ty.lo ? tx.lo + 1 : tx.lo; kx < tx.hi; ++kx) {
        const float* v = tap(win, ky, kx);
        for (int64_t ch = 0; ch < win.c; ++ch) y[ch] = v[ch] > y[ch] ? v[ch] : y[ch];
      }
  }

  void average(const Window& win, int64_t padded_count, float* y) const {
    const Taps &ty = win.ty, &tx = win.tx;
    const int64_t count = count_include_pad_ ? padded_count : (ty.hi - ty.lo) * (tx.hi - tx.lo);
    const double scale = count > 0 ? static_cast<double>(count) : 1.0;
    // The channels in blocks whose double sums stay on the stack.
    constexpr int64_t kBlock = 64;
    for (int64_t c0 = 0; c0 < win.c; c0 += kBlock) {
      const int64_t len = std::min(kBlock, win.c - c0);
      double sum[kBlock];
      std::fill_n(sum, len, 0.0);
      for (int64_t ky = ty.lo; ky < ty.hi; ++ky)
        for (int64_t kx = tx.lo; kx < tx.hi; ++kx) {
          const float* v = tap(win, ky, kx) + c0;
          for (int64_t ch = 0; ch < len; ++ch) sum[ch] += v[ch];
        }
      for (int64_t ch = 0; ch < len; ++ch) y[c0 + ch] = static_cast<float>(sum[ch] / scale);
    }
  }

  bool average_;
  ops::nn::WindowAttrs window_;
  bool count_include_pad_;
};

// GlobalAveragePool over [N, C, spatial...]: each plane's mean, summed in double (in another order than
// the reference's, which can move the float result by an ulp).
class GlobalAveragePoolKernel : public FastKernel {
 public:
  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0)) return false;
    const ir::Tensor& x = ctx.input(0);
    if (x.rank() < 3) return false;
    const int64_t planes = x.dim(0) * x.dim(1);
    if (planes == 0 || x.numel() == 0) return false;
    const int64_t volume = x.numel() / planes;
    ir::Dims out_shape = x.shape();
    std::fill(out_shape.begin() + 2, out_shape.end(), 1);
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    const float* xp = x.data<float>();
    float* yp = y.data<float>();
    parallel_for_static(x.numel() > kParallelSum, planes, [&](int64_t p) {
      const float* plane = xp + p * volume;
      // Four running sums: one would be a chain of dependent adds, 4 cycles per element.
      double sum[4] = {0.0, 0.0, 0.0, 0.0};
      int64_t i = 0;
      for (; i + 4 <= volume; i += 4)
        for (int k = 0; k < 4; ++k) sum[k] += plane[i + k];
      for (; i < volume; ++i) sum[0] += plane[i];
      yp[p] = static_cast<float>(((sum[0] + sum[1]) + (sum[2] + sum[3])) / static_cast<double>(volume));
    });
    ctx.set_output(0, std::move(y));
    return true;
  }
};

// ai.kiln.MaxPool / AveragePool: the channels-last kernel; channels-first, the ONNX op's fast kernel.
std::unique_ptr<FastKernel> make_kiln_pool_kernel(const ir::Node& n, int64_t opset) {
  if (n.domain != kKilnPoolDomain || n.outputs.size() > 1) return nullptr;
  try {
    ops::NodeView v(n, opset);
    const int64_t last = v.attr_int("channels_last", 0);
    if (last != 1) return nullptr;  // channels-first: rare (the optimizer never writes it); the reference
    if (!v.has_attr("kernel_shape") || v.attr_ints("kernel_shape").size() != 2) return nullptr;
    const bool average = n.op_type == "AveragePool";
    const int64_t include_pad = average ? v.attr_int("count_include_pad", 0) : 0;
    if (include_pad != 0 && include_pad != 1) return nullptr;
    return std::make_unique<ChannelsLastPoolKernel>(
        average, ops::nn::read_window_attrs(v, v.attr_ints("kernel_shape"), true), include_pad == 1);
  } catch (const Error&) {
    return nullptr;  // attributes the reference kernel refuses, with its own message
  }
}

std::unique_ptr<FastKernel> make_pool_kernel(const ir::Node& n, int64_t opset) {
  if (!ir::is_default_domain(n.domain)) return make_kiln_pool_kernel(n, opset);
  if (n.op_type == "GlobalAveragePool") return std::make_unique<GlobalAveragePoolKernel>();
  if (n.op_type != "MaxPool") return nullptr;
  try {
    ops::NodeView v(n, opset);
    if (!v.has_attr("kernel_shape") || v.attr_ints("kernel_shape").size() != 2) return nullptr;
    const int64_t storage_order = v.attr_int("storage_order", 0);
    if (storage_order != 0 && storage_order != 1) return nullptr;
    return std::make_unique<MaxPoolKernel>(ops::nn::read_window_attrs(v, v.attr_ints("kernel_shape"), true));
  } catch (const Error&) {
    return nullptr;  // attributes the reference kernel refuses, with its own message
  }
}

}  // namespace

std::span<const FastKernelEntry> pool_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"", "MaxPool", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node& n, const ir::Graph&, int64_t opset) { return make_pool_kernel(n, opset); }},
      {"", "GlobalAveragePool", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node& n, const ir::Graph&, int64_t opset) { return make_pool_kernel(n, opset); }},
      {"ai.kiln", "MaxPool", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node& n, const ir::Graph&, int64_t opset) { return make_pool_kernel(n, opset); }},
      {"ai.kiln", "AveragePool", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node& n, const ir::Graph&, int64_t opset) { return make_pool_kernel(n, opset); }},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

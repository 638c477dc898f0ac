// Fast kernels for the pooling a CNN runs between its convolutions: 2-D float32 MaxPool (without the
// Indices output) and GlobalAveragePool, over NCHW planes in parallel. MaxPool gives the reference's
// results exactly (the same window arithmetic, the same tap order for its NaN handling); the average is
// summed in double, within an ulp of the reference's. Both at a small fraction of the reference's time,
// which converts every element to double first.
#include "kernels/cpu/fast_kernel_table.h"

#include <algorithm>
#include <limits>
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

// MaxPool over [N, C, H, W]: each output the largest input under its window, taps visited row by row as the
// reference does (so that a NaN wins only where it comes first there too); -inf where a window covers
// only padding.
class MaxPoolKernel : public FastKernel {
 public:
  explicit MaxPoolKernel(ops::nn::WindowAttrs window) : window_(std::move(window)) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0) || ctx.has_output(1)) return false;
    const ir::Dims& s = ctx.input(0).shape();
    if (s.size() != 4) return false;
    ops::nn::AxisWindow wh, ww;
    try {
      wh = ops::nn::forward_window(ctx, window_, 0, s[2]);
      ww = ops::nn::forward_window(ctx, window_, 1, s[3]);
    } catch (const Error&) {
      return false;  // the reference reports it
    }
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

std::unique_ptr<FastKernel> make_pool_kernel(const ir::Node& n, int64_t opset) {
  if (!ir::is_default_domain(n.domain)) return nullptr;
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
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

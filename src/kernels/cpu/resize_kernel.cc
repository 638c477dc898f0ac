// Resize (opsets 10 to 19) and Upsample (7 to 9) over float32, in the two modes CNNs use: nearest (every
// coordinate_transformation_mode and nearest_mode, tf_crop_and_resize's extrapolation included) over any
// axes, and linear over up to two neighbouring resized axes (bilinear in NCHW [.., H, W] or in NHWC's
// [N, H, W, C]), from scales or sizes, with the axes attribute.
//
// Each axis's taps (input index and weight per output coordinate) come from the reference kernel's
// arithmetic, copied here (kernels/reference/nn_resize.cc: original_coordinate and axis_taps), in double,
// once per call; so nearest picks the reference's elements exactly. Axes the taps leave unchanged are
// merged into an outer count and an inner run. Nearest then copies runs (a row whose source row is the
// previous output row's is one memcpy of that row); bilinear over [.., H, W] interpolates input rows
// along W once into a per-thread cache of two rows and blends them per output row, and over [.., H, W, C]
// blends whole runs of C. The blends are float32 where the reference sums in double: within a few ulps.
// Cubic, antialias, exclude_outside with linear, tf_crop_and_resize with linear, keep_aspect_ratio_policy
// other than stretch, and invalid inputs go to the reference.
#include "kernels/cpu/fast_kernel_table.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/thread_buffer.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// Output bytes from which a call is split across threads.
constexpr int64_t kResizeParallelBytes = 256 * 1024;
constexpr size_t kResizeMaxDims = 8;

enum class ResizeCoord {
  kHalfPixel,
  kHalfPixelSymmetric,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNn,
  kTfCropAndResize,
};
// kSimple: Upsample's and Resize-10's rule, floor when upsampling and ceil when downsampling.
enum class ResizeNearest { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kSimple };

struct ResizeAttrs {
  bool linear = false;
  ResizeCoord coord = ResizeCoord::kHalfPixel;
  ResizeNearest nearest = ResizeNearest::kRoundPreferFloor;
  float extrapolation = 0;
  std::vector<int64_t> axes;                  // empty: every axis
  std::optional<std::vector<double>> scales;  // Upsample 7 and 8: the scales attribute
  int scales_slot = -1, sizes_slot = -1, roi_slot = -1;
};

// The reference's original_coordinate: where output coordinate x lands in the input.
double resize_source_coordinate(ResizeCoord coord, double x, int64_t in, int64_t out_int, double scale,
                                double roi_start, double roi_end) {
  const double out_f = scale * static_cast<double>(in);  // the unrounded output length, as the reference
  const double len = static_cast<double>(in);
  switch (coord) {
    case ResizeCoord::kHalfPixel:
      return (x + 0.5) / scale - 0.5;
    case ResizeCoord::kHalfPixelSymmetric: {
      const double adjustment = static_cast<double>(out_int) / out_f;
      const double center = len / 2;
      return center * (1 - adjustment) + (x + 0.5) / scale - 0.5;
    }
    case ResizeCoord::kPytorchHalfPixel:
      return out_f == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    case ResizeCoord::kAlignCorners:
      return out_f == 1 ? 0.0 : x * (len - 1) / (out_f - 1);
    case ResizeCoord::kAsymmetric:
      return x / scale;
    case ResizeCoord::kTfHalfPixelForNn:
      return (x + 0.5) / scale;
    case ResizeCoord::kTfCropAndResize: {
      const double r =
          out_f == 1 ? (roi_end - roi_start) * (len - 1) / 2 : x * (roi_end - roi_start) * (len - 1) / (out_f - 1);
      return r + roi_start * (len - 1);
    }
  }
  return x;
}

// One output coordinate's taps: input index i0 with weight w0, and i1 with w1 unless w1 is 0 (one tap).
// Nearest: i0 alone, -1 where tf_crop_and_resize lands outside the input.
struct ResizeTap {
  int64_t i0 = 0, i1 = 0;
  float w0 = 1, w1 = 0;
};

// The reference's axis_taps for nearest and linear (no antialias, no exclude_outside), into taps[0, out).
void resize_axis_taps(const ResizeAttrs& attrs, int64_t in, int64_t out, double scale, double roi_start,
                      double roi_end, ResizeTap* taps) {
  auto clamp = [&](int64_t i) { return std::clamp<int64_t>(i, 0, in - 1); };
  for (int64_t xo = 0; xo < out; ++xo) {
    ResizeTap& t = taps[xo];
    t = ResizeTap{};
    if (in == 1 && attrs.coord != ResizeCoord::kTfCropAndResize) continue;  // every rule lands on the only element
    const double x =
        resize_source_coordinate(attrs.coord, static_cast<double>(xo), in, out, scale, roi_start, roi_end);
    if (attrs.coord == ResizeCoord::kTfCropAndResize && (x < 0 || x > static_cast<double>(in - 1))) {
      t.i0 = -1;
      continue;
    }
    double base_f = std::floor(x);
    base_f = std::clamp(base_f, -4.0 - static_cast<double>(in), 4.0 + 2 * static_cast<double>(in));
    const auto base = static_cast<int64_t>(base_f);
    const double r = x - std::floor(x);
    if (!attrs.linear) {
      int64_t idx = base;
      if (r != 0) {
        switch (attrs.nearest) {
          case ResizeNearest::kRoundPreferFloor:
            idx = r <= 0.5 ? base : base + 1;
            break;
          case ResizeNearest::kRoundPreferCeil:
            idx = r < 0.5 ? base : base + 1;
            break;
          case ResizeNearest::kFloor:
            idx = base;
            break;
          case ResizeNearest::kCeil:
            idx = base + 1;
            break;
          case ResizeNearest::kSimple:
            idx = scale < 1 ? base + 1 : base;
            break;
        }
      }
      t.i0 = clamp(idx);
      continue;
    }
    // (base, 1 - r) and (base + 1, r), zero weights dropped, taps clamped to the same index merged.
    const double raw_w[2] = {1 - r, r};
    const int64_t raw_i[2] = {base, base + 1};
    double w[2] = {0, 0};
    int64_t idx[2] = {0, 0};
    int n = 0;
    for (int k = 0; k < 2; ++k) {
      if (raw_w[k] == 0) continue;
      const int64_t i = clamp(raw_i[k]);
      if (n > 0 && idx[n - 1] == i) {
        w[n - 1] += raw_w[k];
      } else {
        idx[n] = i;
        w[n] = raw_w[k];
        ++n;
      }
    }
    t.i0 = idx[0];
    t.w0 = static_cast<float>(w[0]);
    t.i1 = n == 2 ? idx[1] : idx[0];
    t.w1 = n == 2 ? static_cast<float>(w[1]) : 0.0f;
  }
}

bool resize_taps_identity(const ResizeTap* taps, int64_t in, int64_t out) {
  if (in != out) return false;
  for (int64_t i = 0; i < out; ++i)
    if (taps[i].i0 != i || taps[i].w0 != 1.0f || taps[i].w1 != 0.0f) return false;
  return true;
}

// Scratch names for thread_buffer: the calling thread's tap tables, each worker's cached rows.
struct ResizeTapTables {};
struct ResizeRowCache {};

// A dim of the resize once identity axes are merged: resized (its taps) or not (taps null).
struct ResizeDim {
  int64_t in = 1, out = 1;
  const ResizeTap* taps = nullptr;
};

class ResizeKernel : public FastKernel {
 public:
  explicit ResizeKernel(ResizeAttrs attrs) : attrs_(std::move(attrs)) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0)) return false;
    const ir::Tensor& x = ctx.input(0);
    const ir::Dims& s = x.shape();
    const size_t rank = s.size();
    if (rank == 0 || rank > kResizeMaxDims || x.numel() == 0) return false;

    // The resized axes and their scales or sizes, as the reference's plan_resize reads them.
    std::array<int64_t, kResizeMaxDims> axes{};
    size_t na = 0;
    if (attrs_.axes.empty()) {
      for (size_t a = 0; a < rank; ++a) axes[na++] = static_cast<int64_t>(a);
    } else {
      if (attrs_.axes.size() > rank) return false;
      std::array<bool, kResizeMaxDims> seen{};
      for (int64_t a : attrs_.axes) {
        const auto r = static_cast<int64_t>(rank);
        if (a < -r || a >= r) return false;
        if (a < 0) a += r;
        if (seen[static_cast<size_t>(a)]) return false;
        seen[static_cast<size_t>(a)] = true;
        axes[na++] = a;
      }
    }
    auto given = [&](int slot) { return slot >= 0 && ctx.has_input(static_cast<size_t>(slot)) && ctx.input(static_cast<size_t>(slot)).numel() > 0; };
    const bool has_scales = attrs_.scales || given(attrs_.scales_slot);
    const bool has_sizes = given(attrs_.sizes_slot);
    if (has_scales == has_sizes) return false;
    std::array<int64_t, kResizeMaxDims> out{};
    std::array<double, kResizeMaxDims> scale{}, roi_start{}, roi_end{};
    for (size_t a = 0; a < rank; ++a) {
      out[a] = s[a];
      scale[a] = 1.0;
      roi_start[a] = 0.0;
      roi_end[a] = 1.0;
    }
    if (has_scales) {
      const float* f = nullptr;
      const double* d = nullptr;
      int64_t count = 0;
      if (attrs_.scales) {
        d = attrs_.scales->data();
        count = static_cast<int64_t>(attrs_.scales->size());
      } else {
        const ir::Tensor& t = ctx.input(static_cast<size_t>(attrs_.scales_slot));
        if (t.dtype() != ir::DType::kFloat32) return false;
        f = t.data<float>();
        count = t.numel();
      }
      if (count != static_cast<int64_t>(na)) return false;
      for (size_t i = 0; i < na; ++i) {
        const double sc = d ? d[i] : static_cast<double>(f[i]);
        const auto a = static_cast<size_t>(axes[i]);
        if (!(sc > 0) || !std::isfinite(sc)) return false;
        const double o = std::floor(sc * static_cast<double>(s[a]));
        if (o > static_cast<double>(int64_t{1} << 40)) return false;
        scale[a] = sc;
        out[a] = static_cast<int64_t>(o);
      }
    } else {
      const ir::Tensor& t = ctx.input(static_cast<size_t>(attrs_.sizes_slot));
      if (t.dtype() != ir::DType::kInt64 || t.numel() != static_cast<int64_t>(na)) return false;
      for (size_t i = 0; i < na; ++i) {
        const auto a = static_cast<size_t>(axes[i]);
        const int64_t sz = t.data<int64_t>()[i];
        if (sz < 0) return false;
        out[a] = sz;
        scale[a] = static_cast<double>(sz) / static_cast<double>(s[a]);
      }
    }
    // The reference reads a given roi whatever the mode, and fails on one that is not float.
    if (given(attrs_.roi_slot) && !ir::is_float(ctx.input(static_cast<size_t>(attrs_.roi_slot)).dtype())) return false;
    if (attrs_.coord == ResizeCoord::kTfCropAndResize) {
      if (!given(attrs_.roi_slot)) return false;
      const ir::Tensor& t = ctx.input(static_cast<size_t>(attrs_.roi_slot));
      if (t.dtype() != ir::DType::kFloat32 || t.numel() != static_cast<int64_t>(2 * na)) return false;
      for (size_t i = 0; i < na; ++i) {
        roi_start[static_cast<size_t>(axes[i])] = t.data<float>()[i];
        roi_end[static_cast<size_t>(axes[i])] = t.data<float>()[i + na];
      }
    }
    int64_t numel = 1, taps_needed = 0;
    for (size_t a = 0; a < rank; ++a) {
      numel *= out[a];
      taps_needed += out[a];
    }
    if (numel == 0) return false;

    // Taps per axis (the calling thread's scratch; the workers only read it).
    auto* taps = reinterpret_cast<ResizeTap*>(thread_buffer<ResizeTapTables>(sizeof(ResizeTap) * static_cast<size_t>(taps_needed)));
    std::array<const ResizeTap*, kResizeMaxDims> axis_taps{};
    std::array<bool, kResizeMaxDims> identity{};
    for (size_t a = 0, at = 0; a < rank; at += static_cast<size_t>(out[a]), ++a) {
      resize_axis_taps(attrs_, s[a], out[a], scale[a], roi_start[a], roi_end[a], taps + at);
      axis_taps[a] = taps + at;
      identity[a] = resize_taps_identity(taps + at, s[a], out[a]);
    }
    // Identity axes merged (size-1 ones dropped); the trailing identity axes are the inner run.
    std::array<ResizeDim, kResizeMaxDims> dims{};
    size_t nd = 0;
    for (size_t a = 0; a < rank; ++a) {
      if (identity[a]) {
        if (s[a] == 1) continue;
        if (nd > 0 && !dims[nd - 1].taps) {
          dims[nd - 1].in *= s[a];
          dims[nd - 1].out *= s[a];
          continue;
        }
        dims[nd++] = ResizeDim{s[a], s[a], nullptr};
      } else {
        dims[nd++] = ResizeDim{s[a], out[a], axis_taps[a]};
      }
    }
    int64_t inner = 1;
    if (nd > 0 && !dims[nd - 1].taps) inner = dims[--nd].in;

    ir::Dims out_shape(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(rank));
    if (attrs_.linear && !linear_layout(dims, nd)) return false;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    const float* xp = x.data<float>();
    float* yp = y.data<float>();
    const bool parallel = worth_threads(static_cast<int64_t>(y.nbytes()), kResizeParallelBytes);
    if (nd == 0) {
      std::memcpy(yp, xp, x.nbytes());
    } else if (attrs_.linear) {
      run_linear(xp, yp, dims, nd, inner, parallel);
    } else {
      run_nearest(xp, yp, dims, nd, inner, parallel);
    }
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  // Linear covers [outer, W, inner] and [outer, H, W, inner]: the resized dims are the last one or two.
  static bool linear_layout(const std::array<ResizeDim, kResizeMaxDims>& dims, size_t nd) {
    size_t resized = 0;
    for (size_t k = 0; k < nd; ++k) resized += dims[k].taps != nullptr;
    if (resized > 2) return false;
    return resized < 2 || (nd >= 2 && dims[nd - 2].taps);
  }

  // Nearest: output rows along the last resized dim, each gathered from the row its outer taps select.
  void run_nearest(const float* x, float* y, const std::array<ResizeDim, kResizeMaxDims>& dims, size_t nd,
                   int64_t inner, bool parallel) const {
    const size_t last = nd - 1;
    std::array<int64_t, kResizeMaxDims> in_stride{};
    int64_t stride = inner;
    for (size_t k = nd; k-- > 0;) {
      in_stride[k] = stride;
      stride *= dims[k].in;
    }
    int64_t rows = 1;
    for (size_t k = 0; k < last; ++k) rows *= dims[k].out;
    const int64_t width = dims[last].out, row_len = width * inner;
    const ResizeTap* col_taps = dims[last].taps;
    const float fill = attrs_.extrapolation;
    parallel_for_ranges(parallel, rows, [&](int64_t begin, int64_t end) {
      std::array<int64_t, kResizeMaxDims> idx{};
      int64_t r = begin;
      for (size_t k = last; k-- > 0;) {
        idx[k] = r % dims[k].out;
        r /= dims[k].out;
      }
      int64_t prev_off = -1;
      for (int64_t row = begin; row < end; ++row) {
        float* out = y + row * row_len;
        int64_t off = 0;
        for (size_t k = 0; k < last; ++k) {
          const int64_t i = dims[k].taps ? dims[k].taps[idx[k]].i0 : idx[k];
          if (i < 0) {
            off = -1;
            break;
          }
          off += i * in_stride[k];
        }
        if (off < 0) {
          std::fill_n(out, row_len, fill);
        } else if (off == prev_off) {
          std::memcpy(out, out - row_len, sizeof(float) * static_cast<size_t>(row_len));
        } else {
          const float* src = x + off;
          if (inner == 1) {
            for (int64_t j = 0; j < width; ++j) {
              const int64_t i = col_taps[j].i0;
              out[j] = i < 0 ? fill : src[i];
            }
          } else {
            for (int64_t j = 0; j < width; ++j) {
              const int64_t i = col_taps[j].i0;
              if (i < 0)
                std::fill_n(out + j * inner, inner, fill);
              else
                std::memcpy(out + j * inner, src + i * inner, sizeof(float) * static_cast<size_t>(inner));
            }
          }
        }
        prev_off = off;
        for (size_t k = last; k-- > 0;) {  // the next row's odometer
          if (++idx[k] < dims[k].out) break;
          idx[k] = 0;
        }
      }
    });
  }

  // Linear over [outer, H, W, inner] (H absent: one row of height 1).
  static void run_linear(const float* x, float* y, const std::array<ResizeDim, kResizeMaxDims>& dims, size_t nd,
                         int64_t inner, bool parallel) {
    const ResizeDim& w = dims[nd - 1];
    const ResizeTap one_row{};  // H absent: row 0 with weight 1
    const bool has_h = nd >= 2 && dims[nd - 2].taps;
    const ResizeDim h = has_h ? dims[nd - 2] : ResizeDim{1, 1, &one_row};
    int64_t outer = 1;
    for (size_t k = 0; k + (has_h ? 2 : 1) < nd; ++k) outer *= dims[k].out;
    const int64_t out_plane = h.out * w.out * inner;
    // Rows along W interpolated once into a two-row cache per thread, blended per output row: each input
    // row is interpolated along W once however many output rows it feeds (an upsampling by 8 reads each
    // 8 times), and the blend is one long vectorized loop over w.out * inner floats, channels last or not.
    const int64_t row_len = w.out * inner, in_row_len = w.in * inner;
    parallel_for_ranges(parallel, outer * h.out, [&](int64_t begin, int64_t end) {
      float* cache = reinterpret_cast<float*>(worker_thread_buffer<ResizeRowCache>(sizeof(float) * 2 * static_cast<size_t>(row_len)));
      // The input row (plane * h.in + row) each cache row holds, -1 for none; `next` is the one to refill
      // next. row_of(key, other) gives row `key`, refilling a cache row that does not hold `other` (the
      // row the same output row needs besides, -2 for none).
      int64_t held[2] = {-1, -1};
      int next = 0;
      auto row_of = [&](int64_t key, int64_t other) -> const float* {
        for (int c = 0; c < 2; ++c)
          if (held[c] == key) return cache + c * row_len;
        const int c = held[next] == other ? 1 - next : next;
        next = 1 - c;
        held[c] = key;
        float* dst = cache + c * row_len;
        const float* src = x + key * in_row_len;
        if (inner == 1) {
          for (int64_t j = 0; j < w.out; ++j) {
            const ResizeTap& t = w.taps[j];
            float v = t.w0 * src[t.i0];
            if (t.w1 != 0) v += t.w1 * src[t.i1];
            dst[j] = v;
          }
        } else {
          for (int64_t j = 0; j < w.out; ++j) {
            const ResizeTap& t = w.taps[j];
            const float* a = src + t.i0 * inner;
            float* d = dst + j * inner;
            if (t.w1 == 0) {
              const float w0 = t.w0;
              for (int64_t c = 0; c < inner; ++c) d[c] = w0 * a[c];
            } else {
              const float* b = src + t.i1 * inner;
              const float w0 = t.w0, w1 = t.w1;
              for (int64_t c = 0; c < inner; ++c) d[c] = w0 * a[c] + w1 * b[c];
            }
          }
        }
        return dst;
      };
      for (int64_t task = begin; task < end; ++task) {
        const int64_t o = task / h.out, oh = task % h.out;
        const ResizeTap& t = h.taps[oh];
        float* out = y + o * out_plane + oh * row_len;
        const int64_t k0 = o * h.in + t.i0, k1 = o * h.in + t.i1;
        const float* r0 = row_of(k0, t.w1 != 0 ? k1 : -2);
        if (t.w1 == 0) {
          const float w0 = t.w0;
          if (w0 == 1.0f)
            std::memcpy(out, r0, sizeof(float) * static_cast<size_t>(row_len));
          else
            for (int64_t j = 0; j < row_len; ++j) out[j] = w0 * r0[j];
        } else {
          const float* r1 = row_of(k1, k0);
          const float w0 = t.w0, w1 = t.w1;
          for (int64_t j = 0; j < row_len; ++j) out[j] = w0 * r0[j] + w1 * r1[j];
        }
      }
    });
  }

  ResizeAttrs attrs_;
};

// Reads the node's attributes as the reference's read_spec does, or nullptr for what this kernel leaves to
// the reference.
std::unique_ptr<FastKernel> make_resize_kernel(const ir::Node& n, int64_t opset, bool is_upsample) {
  ops::NodeView v(n, opset);
  ResizeAttrs a;
  const std::string mode = v.attr_string("mode", "nearest");
  if (mode == "linear" || mode == "bilinear" || mode == "trilinear")
    a.linear = true;
  else if (mode != "nearest")
    return nullptr;  // cubic, or unknown (the reference says so)
  const bool legacy = is_upsample || opset < 11;
  if (legacy) {
    a.coord = ResizeCoord::kAsymmetric;
    a.nearest = ResizeNearest::kSimple;
  } else {
    const std::string c = v.attr_string("coordinate_transformation_mode", "half_pixel");
    if (c == "half_pixel")
      a.coord = ResizeCoord::kHalfPixel;
    else if (c == "half_pixel_symmetric")
      a.coord = ResizeCoord::kHalfPixelSymmetric;
    else if (c == "pytorch_half_pixel")
      a.coord = ResizeCoord::kPytorchHalfPixel;
    else if (c == "align_corners")
      a.coord = ResizeCoord::kAlignCorners;
    else if (c == "asymmetric")
      a.coord = ResizeCoord::kAsymmetric;
    else if (c == "tf_half_pixel_for_nn")
      a.coord = ResizeCoord::kTfHalfPixelForNn;
    else if (c == "tf_crop_and_resize")
      a.coord = ResizeCoord::kTfCropAndResize;
    else
      return nullptr;
    const std::string nm = v.attr_string("nearest_mode", "round_prefer_floor");
    if (nm == "round_prefer_floor")
      a.nearest = ResizeNearest::kRoundPreferFloor;
    else if (nm == "round_prefer_ceil")
      a.nearest = ResizeNearest::kRoundPreferCeil;
    else if (nm == "floor")
      a.nearest = ResizeNearest::kFloor;
    else if (nm == "ceil")
      a.nearest = ResizeNearest::kCeil;
    else
      return nullptr;
    a.extrapolation = v.attr_float("extrapolation_value", 0.0f);
    // Nearest ignores these; linear would weigh its taps otherwise.
    if (a.linear && (v.attr_int("exclude_outside", 0) != 0 || v.attr_int("antialias", 0) != 0 ||
                     a.coord == ResizeCoord::kTfCropAndResize))
      return nullptr;
    if (v.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch") return nullptr;
    a.axes = v.attr_ints("axes");
  }
  if (is_upsample) {
    if (opset >= 9) {
      a.scales_slot = 1;
    } else {
      if (!v.has_attr("scales")) return nullptr;
      const std::vector<float> f = v.attr_floats("scales");
      a.scales = std::vector<double>(f.begin(), f.end());
    }
  } else if (opset < 11) {
    a.scales_slot = 1;
  } else {
    a.roi_slot = 1;
    a.scales_slot = 2;
    a.sizes_slot = 3;
  }
  return std::make_unique<ResizeKernel>(std::move(a));
}

std::unique_ptr<FastKernel> make_resize(const ir::Node& n, const ir::Graph&, int64_t opset) {
  return make_resize_kernel(n, opset, false);
}

std::unique_ptr<FastKernel> make_upsample(const ir::Node& n, const ir::Graph&, int64_t opset) {
  return make_resize_kernel(n, opset, true);
}

}  // namespace

std::span<const FastKernelEntry> resize_kernel_entries() {
  constexpr uint64_t kF32 = dtype_set({ir::DType::kFloat32});
  static const FastKernelEntry kEntries[] = {
      {"", "Resize", 10, kLatestOpset, kF32, make_resize},
      // Upsample 7 to 9: numpy-style scales per axis (opset 1's height_scale / width_scale aside); it was
      // deprecated at 10 in favour of Resize.
      {"", "Upsample", 7, 9, kF32, make_upsample},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

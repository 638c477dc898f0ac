// The portable build of depthwise_conv.h (plain loops, channels innermost, the reference's activation),
// the choice of build per ISA, and PackedDepthwiseConv, which packs the weights and splits the rows
// across threads.
#include <algorithm>
#include <cstdint>
#include <tuple>

#include "common/error.h"
#include "kernels/cpu/depthwise_conv.h"
#include "kernels/cpu/fast_kernel_util.h"

namespace kiln::kernels::cpu {
namespace {

void depthwise_rows_scalar(const DepthwiseConvArgs& a, int64_t begin, int64_t end) {
  const int64_t ch = a.channels, cp = a.packed_channels;
  const int64_t image = a.in_h * a.in_w * ch;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / a.out_h, oh = row % a.out_h;
    const float* x = a.x + n * image;
    const int64_t ih0 = oh * a.stride_h - a.pad_top;
    const auto [i_begin, i_end] = taps_inside(ih0, a.dilation_h, a.kernel_h, a.in_h);
    float* y_row = a.y + row * a.out_w * ch;
    for (int64_t ow = 0; ow < a.out_w; ++ow) {
      const int64_t iw0 = ow * a.stride_w - a.pad_left;
      const auto [j_begin, j_end] = taps_inside(iw0, a.dilation_w, a.kernel_w, a.in_w);
      float* y = y_row + ow * ch;
      std::copy(a.bias, a.bias + ch, y);
      for (int64_t i = i_begin; i < i_end; ++i) {
        for (int64_t j = j_begin; j < j_end; ++j) {
          const float* xp = x + ((ih0 + i * a.dilation_h) * a.in_w + iw0 + j * a.dilation_w) * ch;
          const float* wp = a.w + (i * a.kernel_w + j) * cp;
          for (int64_t c = 0; c < ch; ++c) y[c] += xp[c] * wp[c];
        }
      }
    }
    const float* z = a.z ? a.z + row * a.out_w * ch : nullptr;
    if (a.activation == ConvActivation::kNone && !z) continue;
    for (int64_t k = 0; k < a.out_w * ch; ++k)
      y_row[k] = conv_activate(a.activation, a.alpha, a.beta, z ? y_row[k] + z[k] : y_row[k]);
  }
}

// Multiply-adds per call below which the calling thread runs it alone: a wake-up of the OpenMP team costs
// more than the second thread saves.
constexpr int64_t kDepthwiseParallelMacs = int64_t{1} << 16;

// Output planes from which this kernel beats oneDNN's on one thread (112x112x32 3x3 SiLU: 0.27 vs 0.35
// ms; 28x28x120 5x5: 0.099 vs 0.075 ms), and from which it does with the work split across two threads
// (14x14x480 3x3: 0.024 vs 0.043 ms; 7x7x960 5x5 stayed slower, as the previous measurement found).
constexpr int64_t kDepthwiseAlonePlane = 56 * 56;
constexpr int64_t kDepthwiseThreadedPlane = 14 * 14;

}  // namespace

DepthwiseConvRows scalar_depthwise_conv_rows() { return depthwise_rows_scalar; }

DepthwiseConvRows depthwise_conv_rows_for(Isa isa) {
  if (!isa_supported(isa)) return nullptr;
  switch (isa) {
    case Isa::kAvx512:
      return avx512_depthwise_conv_rows();
    case Isa::kAvx2:
      return avx2_depthwise_conv_rows();
    case Isa::kScalar:
      return scalar_depthwise_conv_rows();
  }
  return nullptr;
}

bool is_depthwise_conv(const ConvSpec& s) {
  return s.spatial_dims == 2 && s.channels_last && !s.transposed && s.group == s.in_channels &&
         s.group == s.out_channels && s.group > 0;
}

PackedDepthwiseConv::PackedDepthwiseConv(const ConvSpec& spec, const float* w, const float* bias, Isa isa)
    : spec_(spec), isa_(std::min(isa, best_supported_isa())) {
  KILN_CHECK(is_depthwise_conv(spec), "[PackedDepthwiseConv] not a 2-D channels-last depthwise convolution");
  rows_ = depthwise_conv_rows_for(isa_);
  const int64_t ch = spec.out_channels, taps = spec.kernel[0] * spec.kernel[1];
  packed_channels_ = (ch + kDepthwiseChannelBlock - 1) / kDepthwiseChannelBlock * kDepthwiseChannelBlock;
  w_.assign(static_cast<size_t>(taps * packed_channels_), 0.0f);
  for (int64_t c = 0; c < ch; ++c)
    for (int64_t t = 0; t < taps; ++t) w_[t * packed_channels_ + c] = w[c * taps + t];
  bias_.assign(static_cast<size_t>(packed_channels_), 0.0f);
  if (spec.has_bias) std::copy(bias, bias + ch, bias_.begin());
}

bool PackedDepthwiseConv::preferred(int64_t n, int64_t out_h, int64_t out_w) const {
  const int64_t plane = out_h * out_w;
  if (plane >= kDepthwiseAlonePlane) return true;
  const int64_t macs = n * plane * spec_.out_channels * spec_.kernel[0] * spec_.kernel[1];
  return plane >= kDepthwiseThreadedPlane && worth_threads(macs, kDepthwiseParallelMacs);
}

void PackedDepthwiseConv::run(int64_t n, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w, int64_t pad_top,
                              int64_t pad_left, const float* x, float* y, const float* z, bool threads) const {
  DepthwiseConvArgs a;
  a.batch = n;
  a.channels = spec_.out_channels;
  a.in_h = in_h;
  a.in_w = in_w;
  a.out_h = out_h;
  a.out_w = out_w;
  a.kernel_h = spec_.kernel[0];
  a.kernel_w = spec_.kernel[1];
  a.stride_h = spec_.strides[0];
  a.stride_w = spec_.strides[1];
  a.dilation_h = spec_.dilations[0];
  a.dilation_w = spec_.dilations[1];
  a.pad_top = pad_top;
  a.pad_left = pad_left;
  a.packed_channels = packed_channels_;
  a.x = x;
  a.w = w_.data();
  a.bias = bias_.data();
  a.z = spec_.add_sum ? z : nullptr;
  a.y = y;
  a.activation = spec_.activation;
  a.alpha = spec_.alpha;
  a.beta = spec_.beta;
  const int64_t rows = n * out_h;
  const int64_t macs = rows * out_w * a.channels * a.kernel_h * a.kernel_w;
  const DepthwiseConvRows run_rows = rows_;
  parallel_for_ranges(threads && worth_threads(macs, kDepthwiseParallelMacs), rows,
                      [&](int64_t begin, int64_t end) { run_rows(a, begin, end); });
}

}  // namespace kiln::kernels::cpu

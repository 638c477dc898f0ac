// kiln's own float32 depthwise 2-D convolution on channels-last activations, for ai.kiln.FusedConv with
// channels_last = 1 whose group equals its input and output channels (a multiplier of 1):
//
//     y[n, oh, ow, c] = act(bias[c] + sum_{i,j} x[n, oh*sh - pt + i*dh, ow*sw - pl + j*dw, c] w[c, 0, i, j]
//                           (+ z[n, oh, ow, c]))
//
// taps that fall in the padding left out. Any kernel size, strides, dilations and (asymmetric) pads, an
// optional bias, residual z and fused activation (ConvActivation, as the reference FusedConv computes it).
// Why not oneDNN's: its NHWC depthwise kernel (brdgmm_dw on AVX-512) measured 3-5x slower than ONNX
// Runtime's per layer on EfficientNet and MobileNet's depthwise convolutions. Not everywhere: on tiny
// planes (7x7) oneDNN's stays faster, so the caller asks preferred() per call and keeps oneDNN's too.
//
// The algorithm (depthwise_conv_simd.h), vectorized across channels: for each output row, output pixels
// in tiles of a few, each tile's channels a vector at a time, every tap's weight vector loaded once and
// multiplied into every pixel of the tile; the pixels whose window reaches into the left or right padding
// go one at a time with the taps clipped. The weights are packed once as [kh * kw][C rounded up to 16],
// zero past C, so that weight and bias loads never need a mask; x, z and y are read and written with the
// channel tail masked. Each ISA has its build (depthwise_conv_avx512.cc, _avx2.cc; _scalar.cc holds the
// plain twin and the driver), chosen at run time as vector_kernels.h's are. Output rows of all images are
// split across the OpenMP team.
//
// Numerics: taps summed in float32 in (i, j) order onto the bias, then z, then the activation; sigmoid
// (and SiLU) to a few ulp with the SIMD builds (the reference computes it in double).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/onednn_conv.h"

namespace kiln::kernels::cpu {

// Channels are packed in multiples of this (the widest vector's lanes).
inline constexpr int64_t kDepthwiseChannelBlock = 16;

// One call's geometry and buffers; w and bias as PackedDepthwiseConv packs them.
struct DepthwiseConvArgs {
  int64_t batch = 0, channels = 0;
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;  // the end pads follow from the sizes
  int64_t packed_channels = 0;        // channels rounded up to kDepthwiseChannelBlock
  const float* x = nullptr;           // [batch, in_h, in_w, channels]
  const float* w = nullptr;           // [kernel_h * kernel_w, packed_channels]
  const float* bias = nullptr;        // [packed_channels] (zeros when the convolution has none)
  const float* z = nullptr;           // optional, y's shape
  float* y = nullptr;                 // [batch, out_h, out_w, channels]
  ConvActivation activation = ConvActivation::kNone;
  float alpha = 0.0f, beta = 0.0f;
};

// Output rows [begin, end) of all images (row r is image r / out_h, row r % out_h).
using DepthwiseConvRows = void (*)(const DepthwiseConvArgs& args, int64_t begin, int64_t end);

// The build for `isa`, or nullptr when this machine cannot run it.
DepthwiseConvRows depthwise_conv_rows_for(Isa isa);
// The per-ISA builds, defined in their files; use depthwise_conv_rows_for(), which checks the CPU first.
DepthwiseConvRows avx512_depthwise_conv_rows();
DepthwiseConvRows avx2_depthwise_conv_rows();
DepthwiseConvRows scalar_depthwise_conv_rows();

// Whether `spec` is a convolution PackedDepthwiseConv computes: 2-D, channels-last, not transposed,
// group == in_channels == out_channels.
bool is_depthwise_conv(const ConvSpec& spec);

class PackedDepthwiseConv {
 public:
  // w [C, 1, kh, kw] row-major, bias [C] (read only when spec.has_bias); neither is kept. `isa` picks the
  // build (lowered to what the machine runs). Throws kiln::Error when !is_depthwise_conv(spec).
  PackedDepthwiseConv(const ConvSpec& spec, const float* w, const float* bias, Isa isa = selected_isa());

  // y = ... for x [n, in_h, in_w, C], y [n, out_h, out_w, C] (and z, of y's shape, iff spec.add_sum), the
  // output sizes and begin pads as the caller computed them (ONNX's window arithmetic, auto_pad
  // resolved). Splits rows across the OpenMP team when the work is worth it and `threads` allows.
  void run(int64_t n, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w, int64_t pad_top, int64_t pad_left,
           const float* x, float* y, const float* z, bool threads = true) const;

  // Whether this kernel is expected to beat oneDNN's on this call (measured on Zen 4, see the .cc): large
  // output planes always, mid-sized ones when the OpenMP team can split them (oneDNN runs such small
  // convolutions on one thread), never tiny ones (7x7), where oneDNN's kernel keeps its weights in
  // registers across the whole plane.
  bool preferred(int64_t n, int64_t out_h, int64_t out_w) const;

  const ConvSpec& spec() const { return spec_; }
  Isa isa() const { return isa_; }

 private:
  ConvSpec spec_;
  Isa isa_;
  DepthwiseConvRows rows_;
  int64_t packed_channels_;
  std::vector<float> w_;     // [kh * kw, packed_channels]
  std::vector<float> bias_;  // [packed_channels]
};

}  // namespace kiln::kernels::cpu

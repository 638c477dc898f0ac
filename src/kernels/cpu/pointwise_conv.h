// kiln's own float32 1x1 convolution on channels-last activations, for ai.kiln.FusedConv with
// channels_last = 1, a 1x1 kernel, stride 1, no padding and one group: a matrix product over pixels,
//
//     y[p, m] = act(bias[m] + sum_c x[p, c] s[n(p), c] w[m, c, 1...] (+ z[p, m]))      p over N * spatial pixels
//
// with the activation applied to the sums in registers, before they are stored. z is FusedConv's residual
// Z; s, optional, its channel scale S (a squeeze-and-excitation gate, per image n and input channel):
// each task scales its K x 64 block of weights by its image's s into the worker's buffer, K x 64
// multiplies against the task's 96 x 64 x K multiply-adds, so that x * s is never written out. Why not oneDNN's: its
// AVX-512 1x1 convolution (brgconv_1x1) is as fast as this on the product, but its SiLU post-op (swish)
// costs about 2 cycles an element, as much as the product itself on EfficientNet's expansions
// ([1,112,112,16] -> 96: 0.21 ms without it, 0.56 with it, 2 threads); kiln's SiLU costs ~1.2.
//
// The algorithm (pointwise_conv_avx512.cc): the weights packed once as [C][M rounded up to 16], zero past
// M; blocks of 6 pixels x 64 output channels held in 24 registers, each input channel's weight row loaded
// once for the block's 6 pixels. A task is a chunk of pixels by one 64-channel block, so that the chunk's
// rows of x stay in L2 while every channel block reads them; tasks go to the OpenMP team in contiguous
// ranges. AVX-512 only: with 16 registers, AVX2 holds too few sums for this shape, and oneDNN runs there.
//
// Numerics: each sum runs over c in order from the bias in float32 with FMAs; SiLU and Sigmoid to a few
// ulp (vector_kernels.h's sigmoid).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/onednn_conv.h"

namespace kiln::kernels::cpu {

// Output channels are packed in multiples of this (one AVX-512 register).
inline constexpr int64_t kPointwiseChannelBlock = 16;
// Pixels the kernel sums together (its block's rows).
inline constexpr int64_t kPointwiseBlockPixels = 6;

struct PointwiseConvArgs {
  int64_t in_channels = 0, out_channels = 0;  // K and M
  int64_t packed_channels = 0;                // M rounded up to kPointwiseChannelBlock
  const float* x = nullptr;                   // [pixels, K]
  const float* w = nullptr;                   // [K, w_stride]: w's first column is y's channel w_column
  int64_t w_stride = 0, w_column = 0;
  const float* bias = nullptr;  // [packed_channels]
  const float* z = nullptr;     // [pixels, M], optional: added before the activation
  float* y = nullptr;           // [pixels, M]
  ConvActivation activation = ConvActivation::kNone;
};

// Pixels [p_begin, p_end) times output channels [c_begin, c_end) (c_begin a multiple of 64; c_end a
// multiple of 64 or M).
void pointwise_conv_avx512(const PointwiseConvArgs& args, int64_t p_begin, int64_t p_end, int64_t c_begin,
                           int64_t c_end);

// Whether PackedPointwiseConv computes `spec` (the shape above; an activation of None, Relu, Sigmoid or
// SiLU) on this machine: kiln's selected ISA is AVX-512.
bool pointwise_conv_supported(const ConvSpec& spec);

class PackedPointwiseConv {
 public:
  // w [M, C, 1...] row-major, bias [M] (read only when spec.has_bias); neither is kept. Throws kiln::Error
  // when !pointwise_conv_supported(spec).
  PackedPointwiseConv(const ConvSpec& spec, const float* w, const float* bias);

  // y [images, plane, M] = ... for x [images, plane, C], z of y's shape (iff spec.add_sum; may be y) and s
  // [images, C] (optional). Splits the work across the OpenMP team when it is worth it.
  void run(int64_t images, int64_t plane, const float* x, float* y, const float* z, const float* s) const;

 private:
  // `pixels` rows from a.x into a.y: every image's, or, with s, one image's, its weights scaled by s.
  void run_pixels(PointwiseConvArgs a, int64_t pixels, const float* s) const;

  ConvSpec spec_;
  int64_t packed_channels_ = 0;
  std::vector<float> w_, bias_;
};

}  // namespace kiln::kernels::cpu

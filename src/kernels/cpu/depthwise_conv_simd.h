// The SIMD algorithm of depthwise_conv.h, written once over a vector type V (avx2::F32x8, avx512::F32x16)
// and instantiated by depthwise_conv_avx2.cc and depthwise_conv_avx512.cc. Include it as
// vector_kernels_simd.h is included (whose sigmoid and tanh it uses): from an ISA file, after the ISA's
// vector header and KILN_SIMD_TARGET.
//
// Per output row: the pixels whose window lies inside the row's width go in tiles of kDepthwiseTile, each
// channel vector of the tile summed tap by tap (the tap's weights loaded once for the tile's pixels); the
// few pixels whose window reaches into the left or right padding go one at a time with their taps
// clipped; rows in the top or bottom padding just have fewer taps. 5- and 7-wide kernels at stride 1 first
// take the inner pixels in tiles of 8 (dilation_w apart) that load each input column once for every pixel
// it feeds (depthwise_block_unit). Then one pass over the row, still in L1, adds z and applies the activation.
#pragma once

#include <algorithm>
#include <cstdint>
#include <tuple>

#include "kernels/cpu/depthwise_conv.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/vector_kernels_simd.h"

namespace kiln::kernels::cpu {
namespace {
namespace simd {

// Output pixels summed together: each tap's weight vector is loaded once per this many FMAs.
constexpr int kDepthwiseTile = 4;

// One output row's place in x.
struct DepthwiseRow {
  const float* x;          // the image
  int64_t ih0;             // the input row of tap row 0 (may be in the padding)
  int64_t i_begin, i_end;  // the tap rows inside the input
};

// kTile output pixels from `ow` (stride_w input columns apart) times kBlocks channel vectors from c (one
// vector, the lanes of m, when kMasked), taps of rows [i_begin, i_end) and columns [j_begin, j_end), summed
// onto the bias and written to y (pixel ow's channel 0). kTile * kBlocks independent sums keep the FMA
// units busy through each FMA's latency.
template <class V, int kTile, int kBlocks, bool kMasked>
KILN_SIMD_TARGET inline void depthwise_block(const DepthwiseConvArgs& a, const DepthwiseRow& r, int64_t iw0,
                                             int64_t j_begin, int64_t j_end, int64_t c, typename V::Mask m, float* y) {
  static_assert(!kMasked || kBlocks == 1);
  constexpr int64_t kLanes = V::kLanes;
  const int64_t ch = a.channels, cp = a.packed_channels;
  const int64_t step = a.stride_w * ch;
  V acc[kTile][kBlocks];
  for (int k = 0; k < kBlocks; ++k) {
    const V b = V::load(a.bias + c + k * kLanes);
    for (int t = 0; t < kTile; ++t) acc[t][k] = b;
  }
  for (int64_t i = r.i_begin; i < r.i_end; ++i) {
    const float* xr = r.x + ((r.ih0 + i * a.dilation_h) * a.in_w + iw0 + j_begin * a.dilation_w) * ch + c;
    const float* wr = a.w + (i * a.kernel_w + j_begin) * cp + c;
    for (int64_t j = j_begin; j < j_end; ++j, xr += a.dilation_w * ch, wr += cp) {
      for (int k = 0; k < kBlocks; ++k) {
        const V w = V::load(wr + k * kLanes);
        for (int t = 0; t < kTile; ++t) {
          const float* p = xr + t * step + k * kLanes;
          acc[t][k] = fma(kMasked ? V::load(p, m) : V::load(p), w, acc[t][k]);
        }
      }
    }
  }
  for (int t = 0; t < kTile; ++t) {
    for (int k = 0; k < kBlocks; ++k) {
      if (kMasked)
        acc[t][k].store(y + t * ch + c, m);
      else
        acc[t][k].store(y + t * ch + c + k * kLanes);
    }
  }
}

// kTile output pixels from `ow`, every channel: as many channel vectors at once as make about 8 sums.
template <class V, int kTile>
KILN_SIMD_TARGET inline void depthwise_pixels(const DepthwiseConvArgs& a, const DepthwiseRow& r, int64_t ow,
                                              int64_t j_begin, int64_t j_end, float* y_row) {
  constexpr int64_t kLanes = V::kLanes;
  constexpr int kBlocks = kTile >= 8 ? 1 : 8 / kTile;
  const int64_t ch = a.channels, full = ch - ch % kLanes;
  const int64_t iw0 = ow * a.stride_w - a.pad_left;
  float* y = y_row + ow * ch;
  const typename V::Mask all = V::first(kLanes);
  int64_t c = 0;
  if constexpr (kBlocks >= 8)
    for (; c + 8 * kLanes <= full; c += 8 * kLanes)
      depthwise_block<V, kTile, 8, false>(a, r, iw0, j_begin, j_end, c, all, y);
  if constexpr (kBlocks >= 4)
    for (; c + 4 * kLanes <= full; c += 4 * kLanes)
      depthwise_block<V, kTile, 4, false>(a, r, iw0, j_begin, j_end, c, all, y);
  if constexpr (kBlocks >= 2)
    for (; c + 2 * kLanes <= full; c += 2 * kLanes)
      depthwise_block<V, kTile, 2, false>(a, r, iw0, j_begin, j_end, c, all, y);
  for (; c < full; c += kLanes) depthwise_block<V, kTile, 1, false>(a, r, iw0, j_begin, j_end, c, all, y);
  if (full < ch) depthwise_block<V, kTile, 1, true>(a, r, iw0, j_begin, j_end, full, V::first(ch - full), y);
}

// kTile output pixels of one channel vector (c; the lanes of m when kMasked), `dilation_w` apart from the
// one at iw0 + pad_left, for a kernel kKw wide at stride 1, every tap column inside the row: such pixels
// share input columns (pixel t's tap j reads column iw0 + dilation_w (t + j)), so each of the kTile + kKw -
// 1 columns a tap row covers is loaded once and feeds every pixel whose window holds it, against one load
// per pixel and tap in depthwise_block (5x5: 12 loads for 40 FMAs instead of 40). The row's kKw weight
// vectors stay in registers.
template <class V, int kTile, int kKw, bool kMasked>
KILN_SIMD_TARGET inline void depthwise_block_unit(const DepthwiseConvArgs& a, const DepthwiseRow& r, int64_t iw0,
                                                  int64_t c, typename V::Mask m, float* y) {
  const int64_t ch = a.channels, cp = a.packed_channels, step = a.dilation_w * ch;
  V acc[kTile];
  const V b = kMasked ? V::load(a.bias + c, m) : V::load(a.bias + c);
  for (int t = 0; t < kTile; ++t) acc[t] = b;
  for (int64_t i = r.i_begin; i < r.i_end; ++i) {
    const float* xr = r.x + ((r.ih0 + i * a.dilation_h) * a.in_w + iw0) * ch + c;
    const float* wr = a.w + i * kKw * cp + c;
    V w[kKw];
    for (int j = 0; j < kKw; ++j) w[j] = V::load(wr + j * cp);
#pragma GCC unroll 16
    for (int u = 0; u < kTile + kKw - 1; ++u) {
      const V xv = kMasked ? V::load(xr + u * step, m) : V::load(xr + u * step);
#pragma GCC unroll 16
      for (int t = 0; t < kTile; ++t)
        if (u - t >= 0 && u - t < kKw) acc[t] = fma(xv, w[u - t], acc[t]);
    }
  }
  for (int t = 0; t < kTile; ++t) {
    if (kMasked)
      acc[t].store(y + t * step + c, m);
    else
      acc[t].store(y + t * step + c);
  }
}

// Pixels ow, ow + dilation_w, ... (kTile of them) for a kernel kKw wide at stride 1, every tap column
// inside the row.
template <class V, int kTile, int kKw>
KILN_SIMD_TARGET inline void depthwise_pixels_unit(const DepthwiseConvArgs& a, const DepthwiseRow& r, int64_t ow,
                                                   float* y_row) {
  constexpr int64_t kLanes = V::kLanes;
  const int64_t ch = a.channels, full = ch - ch % kLanes;
  const int64_t iw0 = ow - a.pad_left;
  float* y = y_row + ow * ch;
  const typename V::Mask all = V::first(kLanes);
  for (int64_t c = 0; c < full; c += kLanes) depthwise_block_unit<V, kTile, kKw, false>(a, r, iw0, c, all, y);
  if (full < ch) depthwise_block_unit<V, kTile, kKw, true>(a, r, iw0, full, V::first(ch - full), y);
}

// Pixels per tile of the stride-1 path: kTile accumulators, kKw weights and the column loaded fit the
// registers (16 on AVX2, where a 7-wide kernel takes all of them).
constexpr int kDepthwiseUnitTile = 8;

// y = act(y + z) over `count` floats of one row; the activation chosen once per row.
template <class V, class Act>
KILN_SIMD_TARGET inline void depthwise_finish(float* y, const float* z, int64_t count, const Act& act) {
  int64_t i = 0;
  for (; i + V::kLanes <= count; i += V::kLanes) {
    V v = V::load(y + i);
    if (z) v = v + V::load(z + i);
    act(v).store(y + i);
  }
  if (i < count) {
    const typename V::Mask m = V::first(count - i);
    V v = V::load(y + i, m);
    if (z) v = v + V::load(z + i, m);
    act(v).store(y + i, m);
  }
}

// The activations as the reference computes them (onednn_conv.h's conv_activate), NaN passed through
// (min and max return their second operand on a NaN, so the clamp bound goes first). Function objects
// rather than lambdas, so that their call operators carry the ISA's target attribute.
template <class V>
struct DepthwiseAct {
  ConvActivation kind;
  V alpha, beta;
  KILN_SIMD_TARGET V operator()(V v) const {
    const V zero = V::zero(), one(1.0f);
    switch (kind) {
      case ConvActivation::kNone:
        return v;
      case ConvActivation::kRelu:
        return max(zero, v);
      case ConvActivation::kLeakyRelu:
        return select(v >= zero, v, alpha * v);
      case ConvActivation::kClip:
        return min(beta, max(alpha, v));
      case ConvActivation::kSigmoid:
        return sigmoid_ps(v);
      case ConvActivation::kTanh:
        return tanh_ps(v);
      case ConvActivation::kHardSigmoid:
        return min(one, max(zero, alpha * v + beta));
      case ConvActivation::kHardSwish:
        return v * min(one, max(zero, v * V(1.0f / 6.0f) + V(0.5f)));
      case ConvActivation::kSilu:
        return v * sigmoid_ps(v);
    }
    return v;
  }
};

// One instantiation of depthwise_finish per activation, so that the switch above folds away.
template <class V, ConvActivation kKind>
struct DepthwiseFixedAct {
  V alpha, beta;
  KILN_SIMD_TARGET V operator()(V v) const { return DepthwiseAct<V>{kKind, alpha, beta}(v); }
};

template <class V>
KILN_SIMD_TARGET void depthwise_activate_row(const DepthwiseConvArgs& a, float* y, const float* z, int64_t count) {
  const V alpha(a.alpha), beta(a.beta);
  using K = ConvActivation;
  switch (a.activation) {
    case K::kNone:
      if (z) depthwise_finish<V>(y, z, count, DepthwiseFixedAct<V, K::kNone>{alpha, beta});
      return;
    case K::kRelu:
      return depthwise_finish<V>(y, z, count, DepthwiseFixedAct<V, K::kRelu>{alpha, beta});
    case K::kLeakyRelu:
      return depthwise_finish<V>(y, z, count, DepthwiseFixedAct<V, K::kLeakyRelu>{alpha, beta});
    case K::kClip:
      return depthwise_finish<V>(y, z, count, DepthwiseFixedAct<V, K::kClip>{alpha, beta});
    case K::kSigmoid:
      return depthwise_finish<V>(y, z, count, DepthwiseFixedAct<V, K::kSigmoid>{alpha, beta});
    case K::kTanh:
      return depthwise_finish<V>(y, z, count, DepthwiseFixedAct<V, K::kTanh>{alpha, beta});
    case K::kHardSigmoid:
      return depthwise_finish<V>(y, z, count, DepthwiseFixedAct<V, K::kHardSigmoid>{alpha, beta});
    case K::kHardSwish:
      return depthwise_finish<V>(y, z, count, DepthwiseFixedAct<V, K::kHardSwish>{alpha, beta});
    case K::kSilu:
      return depthwise_finish<V>(y, z, count, DepthwiseFixedAct<V, K::kSilu>{alpha, beta});
  }
}

template <class V>
KILN_SIMD_TARGET void depthwise_conv_rows(const DepthwiseConvArgs& a, int64_t begin, int64_t end) {
  const int64_t ch = a.channels, ow_count = a.out_w;
  // Pixels [inner_begin, inner_end) have every tap column inside the input.
  int64_t inner_begin = std::min((a.pad_left + a.stride_w - 1) / a.stride_w, ow_count);
  const int64_t last_start = a.in_w - 1 - (a.kernel_w - 1) * a.dilation_w + a.pad_left;  // of iw0 + pad_left
  int64_t inner_end = last_start < 0 ? 0 : std::min(last_start / a.stride_w + 1, ow_count);
  if (inner_end < inner_begin) inner_end = inner_begin;
  const int64_t image = a.in_h * a.in_w * ch;
  // Stride 1: tiles of pixels that share input columns, dilation_w apart; a span of kTile * dilation_w
  // consecutive pixels is dilation_w such tiles. 3x3 kernels stay on depthwise_pixels: timed per shape
  // (AMD EPYC Zen 4, avx512, 1 thread), the shared columns gained on 5x5 (240 channels 28x28 0.230 ->
  // 0.206 ms, 120 channels 0.094 -> 0.077) and lost 7 % on 3x3 (144 channels 56x56 0.310 -> 0.334).
  // Dilated 5x5 (lraspp-mobilenetv3's, dilation 2 on [1,32,32,960]), fastest of 3 runs: 1 thread 0.86-1.07
  // -> 0.79-1.0 ms, 2 threads 0.74-0.79 -> 0.71-0.76 (bound by memory there).
  const bool unit = a.stride_w == 1;
  const bool unit_5 = unit && a.kernel_w == 5, unit_7 = unit && a.kernel_w == 7;
  const int64_t unit_span = kDepthwiseUnitTile * a.dilation_w;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / a.out_h, oh = row % a.out_h;
    DepthwiseRow r;
    r.x = a.x + n * image;
    r.ih0 = oh * a.stride_h - a.pad_top;
    std::tie(r.i_begin, r.i_end) = taps_inside(r.ih0, a.dilation_h, a.kernel_h, a.in_h);
    float* y = a.y + row * ow_count * ch;
    for (int64_t ow = 0; ow < ow_count; ++ow) {
      if (ow == inner_begin) {  // the inner pixels, in tiles
        if (unit_5) {
          for (; ow + unit_span <= inner_end; ow += unit_span)
            for (int64_t phase = 0; phase < a.dilation_w; ++phase)
              depthwise_pixels_unit<V, kDepthwiseUnitTile, 5>(a, r, ow + phase, y);
        } else if (unit_7) {
          for (; ow + unit_span <= inner_end; ow += unit_span)
            for (int64_t phase = 0; phase < a.dilation_w; ++phase)
              depthwise_pixels_unit<V, kDepthwiseUnitTile, 7>(a, r, ow + phase, y);
        }
        for (; ow + kDepthwiseTile <= inner_end; ow += kDepthwiseTile)
          depthwise_pixels<V, kDepthwiseTile>(a, r, ow, 0, a.kernel_w, y);
        if (ow + 2 <= inner_end) {
          depthwise_pixels<V, 2>(a, r, ow, 0, a.kernel_w, y);
          ow += 2;
        }
        if (ow < inner_end) depthwise_pixels<V, 1>(a, r, ow++, 0, a.kernel_w, y);
        if (ow == ow_count) break;
      }
      const auto [j_begin, j_end] = taps_inside(ow * a.stride_w - a.pad_left, a.dilation_w, a.kernel_w, a.in_w);
      depthwise_pixels<V, 1>(a, r, ow, j_begin, j_end, y);
    }
    depthwise_activate_row<V>(a, y, a.z ? a.z + row * ow_count * ch : nullptr, ow_count * ch);
  }
}

}  // namespace simd
}  // namespace
}  // namespace kiln::kernels::cpu

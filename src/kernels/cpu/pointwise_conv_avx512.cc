// The AVX-512 (F, BW, DQ, VL) kernel of pointwise_conv.h: blocks of kRows pixels x up to kBlocks vectors
// of 16 output channels, summed in registers over the input channels, activated there and stored, the
// channel tail under a mask. PackedPointwiseConv calls it only after the CPU check.
#include "kernels/cpu/simd_avx512.h"  // first: it includes immintrin.h

#define KILN_SIMD_TARGET KILN_TARGET_AVX512
#include "kernels/cpu/pointwise_conv.h"
#include "kernels/cpu/vector_kernels_simd.h"

// GCC 12 reports _mm512_undefined_ps() inside its own max intrinsic as "used uninitialized" once it is
// inlined into these blocks (simd_avx512.h's note); the value is a don't-care operand.
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace kiln::kernels::cpu {
namespace {

using V = avx512::F32x16;

constexpr int kRows =
    kPointwiseBlockPixels;  // pixels per block: 6 x 4 sums, 4 weight vectors and a broadcast in 32 registers
constexpr int kBlocks = 4;  // vectors of output channels per block (64 channels)

template <ConvActivation kAct>
KILN_TARGET_AVX512 inline V activate(V v) {
  if constexpr (kAct == ConvActivation::kRelu) return max(V::zero(), v);
  if constexpr (kAct == ConvActivation::kSigmoid) return simd::sigmoid_ps(v);
  if constexpr (kAct == ConvActivation::kSilu) return v * simd::sigmoid_ps(v);
  return v;
}

// R pixels from x (row stride K) times B channel vectors from channel c, onto y (row stride M), z added
// when given; the last vector's lanes past M are masked by `tail`.
template <int R, int B, ConvActivation kAct>
KILN_TARGET_AVX512 void pointwise_block(const PointwiseConvArgs& a, const float* x, const float* z, float* y, int64_t c,
                                        V::Mask tail) {
  const int64_t k_count = a.in_channels, m = a.out_channels, cp = a.w_stride;
  // Every loop over R or B unrolled, so that acc lives in registers from the start to the stores.
  V acc[R][B];
#pragma GCC unroll 4
  for (int j = 0; j < B; ++j) {
    const V b = V::load(a.bias + c + j * 16);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) acc[r][j] = b;
  }
  const float* w = a.w + (c - a.w_column);
  for (int64_t k = 0; k < k_count; ++k, w += cp) {
    V wv[B];
#pragma GCC unroll 4
    for (int j = 0; j < B; ++j) wv[j] = V::load(w + j * 16);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const V xv(x[r * k_count + k]);
#pragma GCC unroll 4
      for (int j = 0; j < B; ++j) acc[r][j] = fma(xv, wv[j], acc[r][j]);
    }
  }
  if (z != nullptr) {
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (int j = 0; j + 1 < B; ++j) acc[r][j] = acc[r][j] + V::load(z + r * m + c + j * 16);
      acc[r][B - 1] = acc[r][B - 1] + V::load(z + r * m + c + (B - 1) * 16, tail);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    float* yr = y + r * m + c;
#pragma GCC unroll 4
    for (int j = 0; j + 1 < B; ++j) activate<kAct>(acc[r][j]).store(yr + j * 16);
    activate<kAct>(acc[r][B - 1]).store(yr + (B - 1) * 16, tail);
  }
}

template <int B, ConvActivation kAct>
KILN_TARGET_AVX512 void pointwise_pixels(const PointwiseConvArgs& a, int64_t p_begin, int64_t p_end, int64_t c) {
  const int64_t lanes_left = a.out_channels - c - (B - 1) * 16;
  const V::Mask tail = V::first(lanes_left < 16 ? lanes_left : 16);
  const int64_t k = a.in_channels, m = a.out_channels;
  const float* x = a.x + p_begin * k;
  const float* z = a.z ? a.z + p_begin * m : nullptr;
  float* y = a.y + p_begin * m;
  int64_t p = p_begin;
  for (; p + kRows <= p_end; p += kRows, x += kRows * k, y += kRows * m, z = z ? z + kRows * m : nullptr)
    pointwise_block<kRows, B, kAct>(a, x, z, y, c, tail);
  for (; p < p_end; ++p, x += k, y += m, z = z ? z + m : nullptr) pointwise_block<1, B, kAct>(a, x, z, y, c, tail);
}

template <ConvActivation kAct>
KILN_TARGET_AVX512 void pointwise_range(const PointwiseConvArgs& a, int64_t p_begin, int64_t p_end, int64_t c_begin,
                                        int64_t c_end) {
  for (int64_t c = c_begin; c < c_end; c += kBlocks * 16) {
    const int64_t vectors = std::min<int64_t>(kBlocks, (std::min(c_end, c + kBlocks * 16) - c + 15) / 16);
    switch (vectors) {
      case 1:
        pointwise_pixels<1, kAct>(a, p_begin, p_end, c);
        break;
      case 2:
        pointwise_pixels<2, kAct>(a, p_begin, p_end, c);
        break;
      case 3:
        pointwise_pixels<3, kAct>(a, p_begin, p_end, c);
        break;
      default:
        pointwise_pixels<4, kAct>(a, p_begin, p_end, c);
        break;
    }
  }
}

}  // namespace

void pointwise_conv_avx512(const PointwiseConvArgs& args, int64_t p_begin, int64_t p_end, int64_t c_begin,
                           int64_t c_end) {
  switch (args.activation) {
    case ConvActivation::kRelu:
      return pointwise_range<ConvActivation::kRelu>(args, p_begin, p_end, c_begin, c_end);
    case ConvActivation::kSigmoid:
      return pointwise_range<ConvActivation::kSigmoid>(args, p_begin, p_end, c_begin, c_end);
    case ConvActivation::kSilu:
      return pointwise_range<ConvActivation::kSilu>(args, p_begin, p_end, c_begin, c_end);
    default:
      return pointwise_range<ConvActivation::kNone>(args, p_begin, p_end, c_begin, c_end);
  }
}

}  // namespace kiln::kernels::cpu

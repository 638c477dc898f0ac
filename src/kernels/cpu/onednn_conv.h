// PackedConv: a float32 1-D, 2-D or 3-D convolution with constant weights, run through oneDNN's
// convolution primitive, the weights reordered once into the layout the primitive prefers.
//
//     y[N, M, out...] = act(conv(x[N, C, in...], w[M, C / group, k...]) + bias[M] (+ z[N, M, out...]))
//
// with ONNX Conv's per-axis strides, dilations (1 = dense), pads (begin and end apart) or auto_pad, and
// groups (depthwise included). With ConvSpec::transposed, ONNX ConvTranspose through oneDNN's
// deconvolution primitive, everything else as below:
//
//     y[N, M, out...] = conv_transpose(x[N, C, in...], w[C, M / group, k...]) + bias[M]
//
// its output size from strides, dilations, pads, output_padding, output_shape or auto_pad as ONNX (and
// kernels/reference/nn_conv.cc) computes it. Where that output reaches past what the deconvolution
// writes (output_padding or output_shape beyond the last window), the rest holds the bias alone.
// This covers ONNX Conv, ConvTranspose and FusedConv (com.microsoft and ai.kiln) when W and B are
// initializers.
// Choices, and why:
// - x, y and z are NCHW (NCW, NCDHW), as kiln's tensors are, or NHWC (NWC, NDHWC) with
//   ConvSpec::channels_last (what ai.kiln.FusedConv channels_last = 1 holds, written by
//   passes/conv_channels_last.cc). Below, NCHW and NHWC stand for every rank's. oneDNN's fast
//   AVX2 kernels want channel-blocked activations (nChw8c) or NHWC, its AVX-512 ones (brgconv) NHWC; its
//   plain-NCHW path is im2col + sgemm ("gemm:jit"). Per convolution PackedConv either lets oneDNN choose
//   the activation layout and reorders x in and y out around each call ("blocked"), or runs on the
//   caller's layout as given ("plain"). On NCHW, timed per convolution on ResNet-50 and MobileNetV3
//   (choose_layout in the .cc), blocked was faster in total for every kind, reorders included (a few
//   stride-1 1x1s excepted, by under 10 %), so kAuto is blocked there (plain only where oneDNN would
//   otherwise fall back to its reference loops). On NHWC the JIT kernels run as given, so kAuto is plain
//   there, blocked only where oneDNN has nothing but gemm or its reference loops for NHWC and a JIT kernel
//   for its own layout. Transposed convolutions on NCHW run blocked too, but plain (gemm + col2im) where
//   they have few output channels per group, which the JIT kernels pad to a block. ConvSpec::layout can
//   force either, for tests and measurements.
// - A transposed convolution's bias is added after oneDNN's deconvolution, by PackedConv: oneDNN 2.6
//   adds it in a loop of its own that cost 15x the deconvolution itself.
// - Weights are reordered into the layout the primitive asks for (format_tag::any) once, in the
//   constructor, for a nominal input size; the weights' layout depends on channels and kernel, not on the
//   spatial size, so later shapes reuse it. A shape whose primitive asks for another layout gets its own
//   copy, made once from the first.
// - One primitive (and its reorders) per input shape (N and the spatial sizes), created on the first
//   call for that shape or ahead of it by prepare(), kept in a 16-entry LRU cache; never created in
//   steady state.
// - The activation is a chain of eltwise post-ops (HardSigmoid is linear then clip: oneDNN 2.6 has no
//   hard_sigmoid); z is oneDNN's sum post-op placed before the activation, z first copied (or reordered)
//   into the destination, which is the "sum, then eltwise" order oneDNN's JIT convolutions fuse.
// - The scratchpad and the blocked x / y buffers are user-managed: one buffer per calling thread, grown on
//   first need, so concurrent calls never share one and steady-state calls allocate no scratch.
// - The memory objects and argument lists of the convolution and its reorders are made once per shape
//   (one set per call running at once) and rebound to each call's pointers, as PackedMatMul's are; what
//   still allocates per call is oneDNN 2.6's own bookkeeping inside each execute (see onednn_matmul.h).
// - Threads: oneDNN runs on OpenMP (omp_set_num_threads), the process's one pool. A convolution under
//   1 MFLOP runs on the calling thread alone: waking the pool for it and its two reorders costs more
//   than the second thread gives back.
// - A 3x3 stride-1 convolution of 100 MFLOP or more (not with ConvLayout::kPlain) runs as oneDNN's
//   Winograd convolution where oneDNN has one for it (AVX-512), on oneDNN's blocked layout: 1.3-2.7x
//   faster than the direct kernel, reorders included, outputs ~1e-6 of their magnitude apart.
//   KILN_WINOGRAD=off keeps the direct kernel.
//
// This header keeps oneDNN out of its includes (the runtime includes it; only kernels/cpu/ knows oneDNN).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace kiln::kernels::cpu {

// The activations FusedConv names; oneDNN 2.6 has an eltwise post-op (or a chain of two) for each.
enum class ConvActivation {
  kNone,
  kRelu,
  kLeakyRelu,  // x >= 0 ? x : alpha x
  kClip,       // min(max(x, alpha), beta)
  kSigmoid,
  kTanh,
  kHardSigmoid,  // min(max(alpha x + beta, 0), 1)
  kHardSwish,    // x min(max(x / 6 + 0.5, 0), 1)
  kSilu,         // x sigmoid(x)
};

// The activation as the reference FusedConv computes it (kernels/reference/contrib_fused_conv.cc), for
// the kernels that apply it themselves (padding-only outputs, depthwise_conv.h's portable build).
inline float conv_activate(ConvActivation a, float alpha, float beta, float x) {
  switch (a) {
    case ConvActivation::kNone:
      return x;
    case ConvActivation::kRelu:
      return std::max(x, 0.0f);
    case ConvActivation::kLeakyRelu:
      return x >= 0 ? x : alpha * x;
    case ConvActivation::kClip:
      return std::min(std::max(x, alpha), beta);
    case ConvActivation::kSigmoid:
      return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(x))));
    case ConvActivation::kTanh:
      return std::tanh(x);
    case ConvActivation::kHardSigmoid:
      return std::min(std::max(alpha * x + beta, 0.0f), 1.0f);
    case ConvActivation::kHardSwish:
      return x * std::min(std::max(x / 6.0f + 0.5f, 0.0f), 1.0f);
    case ConvActivation::kSilu:
      return static_cast<float>(x / (1.0 + std::exp(-static_cast<double>(x))));
  }
  return x;
}

// ONNX Conv's auto_pad: explicit pads, or pads derived from each input's size.
enum class ConvPadding { kExplicit, kSameUpper, kSameLower, kValid };

// Where the activations are while oneDNN convolves (see the header comment).
enum class ConvLayout {
  kAuto,     // PackedConv picks, per kind of convolution
  kPlain,    // the caller's NCHW or NHWC as given, no reorders
  kBlocked,  // oneDNN's choice, with x reordered in and y (and z) reordered around each call
};

// One value per spatial axis, outermost first (D, H, W; H, W; or W): the first spatial_dims are read.
inline constexpr int kMaxConvSpatialDims = 3;
using ConvDims = std::array<int64_t, kMaxConvSpatialDims>;

struct ConvSpec {
  int64_t in_channels = 0, out_channels = 0, group = 1;  // C, M (both multiples of group)
  int spatial_dims = 2;                                  // 1, 2 or 3
  ConvDims kernel = {1, 1, 1};
  ConvDims strides = {1, 1, 1};
  ConvDims dilations = {1, 1, 1};  // ONNX's: 1 is a dense kernel
  ConvPadding padding = ConvPadding::kExplicit;
  ConvDims pads_begin = {0, 0, 0}, pads_end = {0, 0, 0};  // read with kExplicit only
  bool has_bias = false;
  ConvActivation activation = ConvActivation::kNone;
  float alpha = 0.0f, beta = 0.0f;  // the activation's parameters, as commented on ConvActivation
  bool add_sum = false;             // z given to run(), added before the activation
  bool channels_last = false;       // x, y and z are [N, spatial..., C] rather than [N, C, spatial...]
  ConvLayout layout = ConvLayout::kAuto;
  // ConvTranspose: w is [C, M / group, k...]; no activation, no z. pads_begin / pads_end are the pads
  // trimmed off the full result; output_shape (all positive, or all 0: not given) overrides them, as
  // ONNX's output_shape does.
  bool transposed = false;
  ConvDims output_padding = {0, 0, 0};
  ConvDims output_shape = {0, 0, 0};
};

class PackedConv {
 public:
  static constexpr size_t kMaxCachedPrimitives = 16;

  // Packs `w` ([M, C / group, k...] row-major; [C, M / group, k...] when transposed) and copies `bias` ([M]; read only
  // when spec.has_bias). Neither pointer is kept. Throws kiln::Error on a bad spec.
  PackedConv(const ConvSpec& spec, const float* w, const float* bias);
  ~PackedConv();
  PackedConv(const PackedConv&) = delete;
  PackedConv& operator=(const PackedConv&) = delete;

  // The output's spatial size for an input of spatial size `in`, as ONNX Conv (ConvTranspose) computes
  // it; false when the (padded) input is smaller than the dilated kernel (the pads leave no output), or a
  // size is not positive.
  bool output_size(const ConvDims& in, ConvDims* out) const;

  // y = ... for x [n, C, in...] and y [n, M, out...] (output_size's), both dense channels-first (with
  // spec.channels_last: x [n, in..., C], y [n, out..., M]); z (required iff spec.add_sum, of y's shape)
  // is y itself (in place) or must not overlap it. n == 0 does nothing. Thread-safe: concurrent calls with
  // different y buffers are fine.
  void run(int64_t n, const ConvDims& in, const float* x, float* y, const float* z = nullptr) const;

  // Creates (or finds) the primitive for this input shape now, so that run() on it only executes.
  // Returns oneDNN's name for the implementation, e.g. "jit:avx2" or "gemm:jit", followed by
  // " (blocked)" when activations are reordered around it.
  std::string prepare(int64_t n, const ConvDims& in) const;

  const ConvSpec& spec() const;
  // Bytes held for weights (every packed layout) and bias.
  size_t packed_bytes() const;
  // Primitives in the cache now (at most kMaxCachedPrimitives).
  size_t cached_primitives() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::kernels::cpu

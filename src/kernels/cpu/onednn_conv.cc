#include "kernels/cpu/onednn_conv.h"

#include <dnnl_debug.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/onednn_engine.h"
#include "kernels/cpu/primitive_lru.h"
#include "kernels/cpu/thread_buffer.h"

namespace kiln::kernels::cpu {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr memory::data_type kF32 = memory::data_type::f32;

// The input size along each spatial axis the weights' layout is chosen for when the constructor packs
// them: a mid-network ResNet size. oneDNN's weight layout follows channels, groups and kernel, not
// spatial size.
constexpr int64_t kLayoutSpatial = 28;

// Convolutions below this many FLOPs run on the calling thread alone: waking the other OpenMP thread for
// the convolution and its reorders costs more than it saves. OpenMP's default wait policy (threads spin a
// while after a parallel region before they sleep) makes a wake-up cheap when convolutions follow one
// another: paired runs, AMD EPYC Zen 4, 2 threads, medians of 6, mobilenetv3-large 4.24 ms at 10 MFLOP,
// 3.63 at 1 MFLOP, 3.82 at 0.3; ssdlite320-mobilenetv3 8.70, 8.25, 8.26. (Measured before with
// OMP_WAIT_POLICY=passive, where a wake-up costs tens of microseconds, 10 MFLOP had been best.)
constexpr double kParallelFlops = 1e6;

// A 3x3 stride-1 convolution of at least this many FLOPs (and KILN_WINOGRAD not off) runs as oneDNN's
// Winograd convolution where it has one (AVX-512), on its blocked layout with x and y reordered around
// it: 2.25x (F(2x2,3x3)) to 4x (F(4x4,3x3)) fewer multiplies, where the direct kernels already run at the
// FMA ceiling. Timed per convolution, reorders included, AMD EPYC Zen 4, avx512_core, 2 threads, C = M,
// bias and Relu (direct brgconv on NHWC -> Winograd): 64ch 56x56 1.01 -> 0.57 ms, 128ch 28x28
// 0.98 -> 0.36, 256ch 14x14 0.93 -> 0.48, 512ch 7x7 0.85 -> 0.64, 96ch 20x20 0.34 -> 0.19 (all 66-231
// MFLOP, ResNet-50's four among them); below ~60 MFLOP it was a loss as often as a gain (128ch 14x14
// 0.28 -> 0.30, 24ch 56x56 0.21 -> 0.27, 64ch 14x14 0.09 -> 0.11). Its outputs differ from the direct
// kernel's by ~1e-6 of their magnitude (its transforms round differently), far inside what the
// reference tests and the corpus check (rtol 1e-3) allow.
constexpr double kWinogradFlops = 100e6;

// KILN_WINOGRAD=off keeps every convolution on the direct kernels (to compare, or for bit-closer outputs).
bool winograd_allowed() {
  const char* v = std::getenv("KILN_WINOGRAD");
  return !(v && (std::string(v) == "off" || std::string(v) == "0"));
}

// The convolutions oneDNN 2.6 has a Winograd kernel for: 2-D, 3x3, stride 1, dense, one group.
bool winograd_shape(const ConvSpec& s) {
  return !s.transposed && s.spatial_dims == 2 && s.group == 1 && s.kernel[0] == 3 && s.kernel[1] == 3 &&
         s.strides[0] == 1 && s.strides[1] == 1 && s.dilations[0] == 1 && s.dilations[1] == 1;
}

// Outputs below this many elements get a transposed convolution's bias added on the calling thread alone.
constexpr size_t kParallelBiasElements = size_t{1} << 16;

// Makes the calling thread's OpenMP team one thread for a scope (`single`), or leaves it alone. oneDNN
// sizes its parallel regions from omp_get_max_threads(), both when a primitive is created and when it
// (or a reorder) runs; the setting is per thread, so other callers are not affected.
class ScopedThreads {
 public:
  explicit ScopedThreads(bool single) : saved_(single ? omp_get_max_threads() : 0) {
    if (single) omp_set_num_threads(1);
  }
  ~ScopedThreads() {
    if (saved_ > 0) omp_set_num_threads(saved_);
  }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int saved_;
};

constexpr size_t kAlign = 64;
constexpr size_t align_up(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

// Everything a primitive is specialized on besides the spec: the input's shape (spatial sizes past
// spec.spatial_dims are 0).
struct Geometry {
  int64_t n = 0;
  ConvDims in = {0, 0, 0};
  bool operator==(const Geometry&) const = default;
};

// oneDNN's tags for 1-D, 2-D and 3-D tensors: activations channels-first and channels-last, weights
// plain and grouped.
Tag channels_first_tag(int dims) { return dims == 1 ? Tag::ncw : dims == 2 ? Tag::nchw : Tag::ncdhw; }
Tag channels_last_tag(int dims) { return dims == 1 ? Tag::nwc : dims == 2 ? Tag::nhwc : Tag::ndhwc; }
Tag weights_tag(int dims, bool grouped, bool transposed) {
  if (transposed) {  // ONNX's [C, M / group, k...] is oneDNN's [(G,) IC, OC, k...]: the i and o swapped
    if (grouped) return dims == 1 ? Tag::acbd : dims == 2 ? Tag::giohw : Tag::giodhw;
    return dims == 1 ? Tag::bac : dims == 2 ? Tag::iohw : Tag::iodhw;
  }
  if (grouped) return dims == 1 ? Tag::goiw : dims == 2 ? Tag::goihw : Tag::goidhw;
  return dims == 1 ? Tag::oiw : dims == 2 ? Tag::oihw : Tag::oidhw;
}

std::string dims_text(const ConvDims& d, int count) {
  std::string t;
  for (int i = 0; i < count; ++i) t += (i ? "x" : "") + std::to_string(d[static_cast<size_t>(i)]);
  return t;
}

// One spatial axis of the convolution: output size and the pads actually applied.
struct AxisWindow {
  int64_t out = 0, pad_begin = 0, pad_end = 0;
};
using AxisWindows = std::array<AxisWindow, kMaxConvSpatialDims>;

// ONNX ConvTranspose's output along axis i (kernels/reference/nn_conv.cc transpose_geometry): its size,
// how far its first element sits into the full result (pad_begin), and oneDNN's end padding, which is
// negative where the output reaches past the full result's end (output_padding, a large output_shape);
// false when the pads leave no output.
bool transposed_axis_window(const ConvSpec& s, size_t i, int64_t in, AxisWindow* r) {
  if (in <= 0) return false;
  const int64_t extent = (s.kernel[i] - 1) * s.dilations[i] + 1;
  const int64_t full = s.strides[i] * (in - 1) + s.output_padding[i] + extent;
  const bool same = s.padding == ConvPadding::kSameUpper || s.padding == ConvPadding::kSameLower;
  if (s.output_shape[0] > 0 || same) {
    const int64_t target = s.output_shape[0] > 0 ? s.output_shape[i] : in * s.strides[i];
    const int64_t total = std::max<int64_t>(0, full - target);
    r->pad_begin = s.padding == ConvPadding::kSameUpper ? total / 2 : total - total / 2;
    r->out = target;
  } else {
    const bool valid = s.padding == ConvPadding::kValid;
    r->pad_begin = valid ? 0 : s.pads_begin[i];
    r->out = full - r->pad_begin - (valid ? 0 : s.pads_end[i]);
    if (r->out <= 0) return false;
  }
  r->pad_end = full - s.output_padding[i] - r->pad_begin - r->out;
  return true;
}

// ONNX Conv's output size along one axis (kernels/reference/nn_common.cc forward_window, without
// ceil_mode); false when the padded input is smaller than the dilated kernel.
bool axis_window(ConvPadding padding, int64_t in, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad_begin,
                 int64_t pad_end, AxisWindow* r) {
  if (in <= 0) return false;
  const int64_t extent = (kernel - 1) * dilation + 1;
  switch (padding) {
    case ConvPadding::kSameUpper:
    case ConvPadding::kSameLower: {
      r->out = (in + stride - 1) / stride;
      const int64_t total = std::max<int64_t>(0, (r->out - 1) * stride + extent - in);
      r->pad_begin = padding == ConvPadding::kSameUpper ? total / 2 : total - total / 2;
      r->pad_end = total - r->pad_begin;
      return true;
    }
    case ConvPadding::kValid:
      if (in < extent) return false;
      *r = {(in - extent) / stride + 1, 0, 0};
      return true;
    case ConvPadding::kExplicit:
      break;
  }
  const int64_t padded = in + pad_begin + pad_end;
  if (padded < extent) return false;
  *r = {(padded - extent) / stride + 1, pad_begin, pad_end};
  return true;
}

// Which layout kAuto means. Blocked, for every kind of convolution: timed one by one on this AVX2 machine
// (batch 1, each the fastest of 15 interleaved calls, reorders included), ResNet-50's 53 convolutions
// took 101 ms blocked against 126 ms plain at one thread, 107 against 129 at two; the first convolution
// (3 channels in, 7x7/2) 2.7 against 5.0 ms, 3x3s 1.1-1.8x faster blocked, 1x1s from 8 % slower
// (stride-1 1x1s at 56x56 with 64 channels on one side, where the reorders weigh most) to 2.2x faster
// (strided 1x1s, which plain must im2col). MobileNetV3-Small's 52: 2.7 against 22.8 ms, its depthwise
// convolutions 17x faster blocked (oneDNN has no plain-layout depthwise kernel besides gemm).
// On NHWC, plain: oneDNN's JIT kernels (jit:avx2, jit_1x1, jit_dw, brgconv, brdgmm_dw) take NHWC directly,
// so the reorders around each call, ~75 % of oneDNN's time on PicoDet, go away. Timed per convolution
// against NCHW blocked (the corpus models at level all, 1 thread, Xeon with AVX-512; the sum of each
// kind's convolutions, NHWC / NCHW blocked): PicoDet 1x1 0.40, depthwise 3x3 0.34, depthwise 5x5 0.37;
// ResNet-50 1x1 0.57, 3x3 0.91, 7x7 stem 0.36; MobileNetV3-Large 1x1 0.57, depthwise 3x3 0.21, 5x5 0.51.
// Held to AVX2 (ONEDNN_MAX_CPU_ISA): PicoDet 1x1 0.64, depthwise 0.32 and 0.56; MobileNetV3-Large 1x1
// 0.59, depthwise 3x3 0.17. No kind was slower, so every convolution the layout pass converts runs so.
// Transposed on NCHW, blocked too, but for few output channels per group: oneDNN's JIT deconvolutions pad
// the output channels to a block of 8 or 16, where its NCHW one (gemm + col2im) does not. Timed one by one
// (1 thread, best of 15, thread CPU time on a loaded machine; bias added by add_bias), plain against
// blocked, on AVX-512 and held to AVX2: PP-OCRv4-det's 24 -> 1 2x2/2 on 320x320 0.9 against 23-31 ms
// (1.6-2.2 against 16), 32 -> 2 4x4/2 0.47 against 1.3 (a tie on AVX2, where both are gemm); but 64 -> 32
// 2x2/2 on 64x64 1.1 against 0.88 (1.5-1.8 against 1.2-1.4), 128 -> 64 4x4/2 on 32x32 3.2 against 2.2
// (4.7 against 3.1), 16 -> 16 3x3/2 1.2-1.3 against 0.43 (1.5-1.8 against 0.53), depthwise 64 4x4/2 2.0
// against 0.31 (2.0 against 0.32); PP-OCRv4-det's 24 -> 24 2x2/2 on 160x160 and 256 -> 128 2x2/2 on 28x28
// about even.
bool transposed_prefers_blocked(const ConvSpec& s) {
  const bool depthwise = s.in_channels == s.group && s.out_channels == s.group;
  return depthwise || s.out_channels / s.group >= 8;
}

ConvLayout choose_layout(const ConvSpec& s) {
  if (s.layout != ConvLayout::kAuto) return s.layout;
  if (s.channels_last) return ConvLayout::kPlain;
  if (s.transposed) return transposed_prefers_blocked(s) ? ConvLayout::kBlocked : ConvLayout::kPlain;
  return ConvLayout::kBlocked;
}

void append_activation(dnnl::post_ops& ops, const ConvSpec& s) {
  using dnnl::algorithm;
  auto eltwise = [&](algorithm a, float alpha, float beta) { ops.append_eltwise(1.0f, a, alpha, beta); };
  switch (s.activation) {
    case ConvActivation::kNone:
      return;
    case ConvActivation::kRelu:
      return eltwise(algorithm::eltwise_relu, 0.0f, 0.0f);
    case ConvActivation::kLeakyRelu:
      return eltwise(algorithm::eltwise_relu, s.alpha, 0.0f);
    case ConvActivation::kClip:
      return eltwise(algorithm::eltwise_clip_v2, s.alpha, s.beta);
    case ConvActivation::kSigmoid:
      return eltwise(algorithm::eltwise_logistic, 0.0f, 0.0f);
    case ConvActivation::kTanh:
      return eltwise(algorithm::eltwise_tanh, 0.0f, 0.0f);
    case ConvActivation::kHardSigmoid:
      // oneDNN 2.6 has no hard_sigmoid: alpha x + beta, then clipped to [0, 1].
      eltwise(algorithm::eltwise_linear, s.alpha, s.beta);
      return eltwise(algorithm::eltwise_clip_v2, 0.0f, 1.0f);
    case ConvActivation::kHardSwish:
      return eltwise(algorithm::eltwise_hardswish, 0.0f, 0.0f);
    case ConvActivation::kSilu:
      return eltwise(algorithm::eltwise_swish, 1.0f, 0.0f);
  }
}

// The memory objects of one running call, made once and rebound to each call's pointers, and the
// argument lists of its (up to) four oneDNN calls, which name them.
struct BoundArgs {
  memory x, y, z;   // the caller's NCHW / NHWC tensors (z only when it is reordered in)
  memory src, dst;  // what the convolution reads and writes: x and y, or blocked copies in the workspace
  memory scratch;   // the workspace's start
  OneDnnArgs src_in, sum_in, conv, dst_out;
};

// One input shape's primitive, the reorders around it, and where its buffers go in the thread workspace.
struct Entry {
  Geometry geometry;
  size_t y_count = 0;         // elements of y
  dnnl::primitive primitive;  // a convolution_forward, or a deconvolution_forward when transposed; none
                              // when the output holds the bias alone (every window past its end)
  memory weights;             // a handle on one of Impl::weights
  memory::desc user_src_md, user_dst_md, src_md, dst_md;
  // y's part the primitive writes: user_dst_md, or with a margin its leading block (a view into y).
  memory::desc user_written_md;
  // A transposed convolution's output reaches past what the deconvolution writes: y is first zeroed, the
  // primitive's output reordered into its leading block, and the bias added to the whole.
  bool margin = false;
  bool reorder_src = false, reorder_dst = false;
  bool single_thread = false;             // made for, and run on, the calling thread alone
  dnnl::reorder src_in, dst_out, sum_in;  // user -> src_md; dst_md -> user (written); user -> dst_md (z)
  size_t scratch_bytes = 0, src_offset = 0, dst_offset = 0, workspace_bytes = 0;
  std::string implementation;
  mutable IdlePool<BoundArgs> bound;  // one per call running at once
};

// The calling thread's workspace is thread_buffer<PackedConv>: the scratchpad, then the blocked x and y.

// oneDNN's reference implementation ("ref:any"): correct, and an order of magnitude slower than its JIT ones.
bool is_reference(const dnnl::primitive_desc_base& pd) { return std::string(pd.impl_info_str()).rfind("ref", 0) == 0; }

// Neither a JIT convolution nor brgconv: im2col + sgemm ("gemm:jit") or the reference loops.
bool is_gemm_or_reference(const dnnl::primitive_desc_base& pd) {
  return is_reference(pd) || std::string(pd.impl_info_str()).find("gemm") != std::string::npos;
}

}  // namespace

struct PackedConv::Impl {
  ConvSpec spec;
  ConvLayout layout = ConvLayout::kBlocked;
  // kAuto on NHWC: blocked where plain finds only gemm or the reference loops (see choose_layout).
  bool blocked_if_plain_is_gemm = false;
  // Shapes of at least kWinogradFlops try oneDNN's Winograd convolution first (not with ConvLayout::kPlain,
  // which asks for no reorders).
  bool winograd = false;
  Tag user_tag = Tag::nchw;  // the caller's activations: channels-first, or channels-last with spec.channels_last
  size_t axes = 2;           // spec.spatial_dims
  memory bias;               // empty without a bias

  mutable std::mutex mutex;
  // Packed weights, one per layout some primitive wanted; [0] is the constructor's. Only grows.
  mutable std::vector<memory> weights;
  mutable PrimitiveLru<Entry> cache{kMaxCachedPrimitives};

  memory::dims weight_dims() const {
    const ConvSpec& s = spec;
    memory::dims d = s.group == 1 ? memory::dims{s.out_channels, s.in_channels}
                                  : memory::dims{s.group, s.out_channels / s.group, s.in_channels / s.group};
    d.insert(d.end(), s.kernel.begin(), s.kernel.begin() + static_cast<std::ptrdiff_t>(axes));
    return d;
  }
  // The bias as oneDNN's bias argument; a transposed convolution's is added after it instead (add_bias):
  // oneDNN 2.6's deconvolution adds it in a slow loop of its own, 25 ms against 1.6 for the
  // deconvolution itself on PP-OCRv4-det's 24 -> 24 2x2/2 on 160x160.
  bool fused_bias() const { return spec.has_bias && !spec.transposed; }

  memory::desc user_weights_md() const {
    return memory::desc(weight_dims(), kF32, weights_tag(spec.spatial_dims, spec.group > 1, spec.transposed));
  }

  bool windows(const Geometry& g, AxisWindows* r) const {
    const ConvSpec& s = spec;
    for (size_t i = 0; i < axes; ++i) {
      const bool fits = s.transposed ? transposed_axis_window(s, i, g.in[i], &(*r)[i])
                                     : axis_window(s.padding, g.in[i], s.kernel[i], s.strides[i], s.dilations[i],
                                                   s.pads_begin[i], s.pads_end[i], &(*r)[i]);
      if (!fits) return false;
    }
    return true;
  }
  Geometry checked_geometry(int64_t n, const ConvDims& in) const {
    Geometry g{n, {0, 0, 0}};
    for (size_t i = 0; i < axes; ++i) g.in[i] = in[i];
    AxisWindows win;
    KILN_CHECK(windows(g, &win), "[PackedConv] ",
               spec.transposed ? "the pads leave no output for" : "the kernel does not fit", " an input of ",
               dims_text(g.in, spec.spatial_dims));
    return g;
  }
  // What the primitive writes of a transposed convolution's output along each axis (the output less its
  // margin); the output itself otherwise. A size of 0 or less: nothing (the output is the bias alone).
  ConvDims written_dims(const AxisWindows& w) const {
    ConvDims d = {0, 0, 0};
    for (size_t i = 0; i < axes; ++i) d[i] = w[i].out + (spec.transposed ? std::min<int64_t>(w[i].pad_end, 0) : 0);
    return d;
  }

  // [n, channels, spatial...] as oneDNN's dims.
  memory::dims activation_dims(int64_t n, int64_t channels, const ConvDims& spatial) const {
    memory::dims d = {n, channels};
    d.insert(d.end(), spatial.begin(), spatial.begin() + static_cast<std::ptrdiff_t>(axes));
    return d;
  }
  ConvDims output_dims(const AxisWindows& w) const {
    ConvDims out = {0, 0, 0};
    for (size_t i = 0; i < axes; ++i) out[i] = w[i].out;
    return out;
  }

  dnnl::primitive_desc primitive_desc(const Geometry& g, const memory::desc& weights_md, ConvLayout activation_layout,
                                      dnnl::algorithm algorithm = dnnl::algorithm::convolution_direct) const {
    const ConvSpec& s = spec;
    AxisWindows win;
    windows(checked_geometry(g.n, g.in), &win);
    const Tag activations = activation_layout == ConvLayout::kPlain ? user_tag : Tag::any;
    const memory::desc src_md(activation_dims(g.n, s.in_channels, g.in), kF32, activations);
    const memory::desc dst_md(activation_dims(g.n, s.out_channels, written_dims(win)), kF32, activations);
    const memory::desc bias_md = fused_bias() ? memory::desc({s.out_channels}, kF32, Tag::x) : memory::desc();
    memory::dims strides, dilations, pads_begin, pads_end;
    for (size_t i = 0; i < axes; ++i) {
      strides.push_back(s.strides[i]);
      dilations.push_back(s.dilations[i] - 1);  // oneDNN's: 0 is a dense kernel
      pads_begin.push_back(win[i].pad_begin);
      pads_end.push_back(std::max<int64_t>(win[i].pad_end, 0));  // a margin is written apart (Entry::margin)
    }
    dnnl::post_ops ops;
    if (s.add_sum) ops.append_sum(1.0f);  // before the activation: act(conv + bias + z)
    append_activation(ops, s);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (s.transposed) {
      const dnnl::deconvolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                                   dnnl::algorithm::deconvolution_direct, src_md, weights_md, bias_md,
                                                   dst_md, strides, dilations, pads_begin, pads_end);
      return dnnl::deconvolution_forward::primitive_desc(desc, attr, onednn_engine());
    }
    const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, algorithm, src_md, weights_md,
                                               bias_md, dst_md, strides, dilations, pads_begin, pads_end);
    return dnnl::convolution_forward::primitive_desc(desc, attr, onednn_engine());
  }

  std::string describe(const Geometry& g) const {
    const ConvSpec& s = spec;
    return str("N=", g.n, " C=", s.in_channels, " in ", dims_text(g.in, s.spatial_dims), " M=", s.out_channels,
               " kernel ", dims_text(s.kernel, s.spatial_dims), " group ", s.group,
               s.channels_last ? " channels-last" : "", s.transposed ? " transposed" : "");
  }

  // Called with `mutex` held. Picks the packed weights for this geometry, packing a new layout if needed.
  std::shared_ptr<const Entry> make_entry(const Geometry& g) const {
    const dnnl::engine& engine = onednn_engine();
    auto e = std::make_shared<Entry>();
    e->geometry = g;
    AxisWindows win;
    windows(g, &win);
    // Multiply-adds: each output's window, or (transposed) each input's.
    double flops = 2.0 * static_cast<double>(g.n) * static_cast<double>(spec.out_channels) *
                   static_cast<double>(spec.in_channels / spec.group);
    for (size_t i = 0; i < axes; ++i)
      flops *= static_cast<double>(spec.transposed ? g.in[i] : win[i].out) * static_cast<double>(spec.kernel[i]);
    e->single_thread = flops < kParallelFlops;
    e->user_dst_md = memory::desc(activation_dims(g.n, spec.out_channels, output_dims(win)), kF32, user_tag);
    e->y_count = e->user_dst_md.get_size() / sizeof(float);
    const ConvDims written = written_dims(win);
    for (size_t i = 0; i < axes; ++i) e->margin = e->margin || written[i] != win[i].out;
    if (std::any_of(written.begin(), written.begin() + static_cast<std::ptrdiff_t>(axes),
                    [](int64_t d) { return d <= 0; })) {
      e->implementation = "bias only";  // every window of x lies past the output's end
      return e;
    }
    ScopedThreads threads(e->single_thread);
    try {
      const memory::desc any_weights(weight_dims(), kF32, Tag::any);
      ConvLayout activations = layout;
      dnnl::primitive_desc pd = primitive_desc(g, any_weights, activations);
      if (activations == ConvLayout::kBlocked && is_reference(pd)) {
        // No JIT kernel for this shape on blocked activations (none was seen to happen): oneDNN's gemm
        // on plain ones beats its reference loops by far.
        dnnl::primitive_desc plain = primitive_desc(g, any_weights, ConvLayout::kPlain);
        if (!is_reference(plain)) {
          pd = plain;
          activations = ConvLayout::kPlain;
        }
      } else if (activations == ConvLayout::kPlain &&
                 (is_reference(pd) || (blocked_if_plain_is_gemm && is_gemm_or_reference(pd)))) {
        // The reference loops on the caller's layout, or NHWC with no JIT kernel (AVX2's grouped
        // convolutions of 8 input channels or fewer per group, which oneDNN's own layout sends to gemm
        // too): a JIT one on oneDNN's layout, if there is one, is worth its reorders (and its gemm beats
        // the reference loops).
        dnnl::primitive_desc blocked = primitive_desc(g, any_weights, ConvLayout::kBlocked);
        if (is_reference(pd) ? !is_reference(blocked) : !is_gemm_or_reference(blocked)) {
          pd = blocked;
          activations = ConvLayout::kBlocked;
        }
      }
      dnnl::algorithm algorithm = dnnl::algorithm::convolution_direct;
      if (winograd && flops >= kWinogradFlops) {
        try {
          dnnl::primitive_desc w =
              primitive_desc(g, any_weights, ConvLayout::kBlocked, dnnl::algorithm::convolution_winograd);
          if (!is_reference(w)) {
            pd = w;
            activations = ConvLayout::kBlocked;
            algorithm = dnnl::algorithm::convolution_winograd;
          }
        } catch (const dnnl::error&) {
          // no Winograd kernel on this CPU (AVX2) or for this shape, padding or post-ops: the direct one
        }
      }
      for (const memory& w : weights) {
        if (w.get_desc() == pd.weights_desc(0)) e->weights = w;
      }
      if (!e->weights) {
        // Another layout for this shape. Keep the first one if the same kernel runs on it, else pack this one.
        dnnl::primitive_desc fixed;
        try {
          fixed = primitive_desc(g, weights[0].get_desc(), activations, algorithm);
        } catch (const dnnl::error&) {
          // no implementation takes the first layout for this shape: pack the one it wants
        }
        if (fixed && std::string(fixed.impl_info_str()) == pd.impl_info_str()) {
          pd = fixed;
          e->weights = weights[0];
        } else {
          e->weights = memory(pd.weights_desc(0), engine);
          repack(weights[0], e->weights);
          weights.push_back(e->weights);
        }
      }
      e->primitive = dnnl::primitive(pd);
      e->src_md = pd.src_desc(0);
      e->dst_md = pd.dst_desc(0);
      e->user_src_md = memory::desc(activation_dims(g.n, spec.in_channels, g.in), kF32, user_tag);
      e->user_written_md =
          e->margin ? e->user_dst_md.submemory_desc(e->dst_md.dims(), memory::dims(e->dst_md.dims().size(), 0))
                    : e->user_dst_md;
      e->reorder_src = e->src_md != e->user_src_md;
      e->reorder_dst = e->dst_md != e->user_written_md;
      e->scratch_bytes = pd.scratchpad_desc().get_size();
      dnnl::primitive_attr reorder_attr;
      reorder_attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      // The reorders run one after another and after / before the convolution, so they share its scratchpad.
      auto make_reorder = [&](const memory::desc& from, const memory::desc& to) {
        dnnl::reorder::primitive_desc rpd(engine, from, engine, to, reorder_attr);
        e->scratch_bytes = std::max(e->scratch_bytes, rpd.scratchpad_desc().get_size());
        return dnnl::reorder(rpd);
      };
      if (e->reorder_src) e->src_in = make_reorder(e->user_src_md, e->src_md);
      if (e->reorder_dst) {
        e->dst_out = make_reorder(e->dst_md, e->user_written_md);
        if (spec.add_sum) e->sum_in = make_reorder(e->user_dst_md, e->dst_md);
      }
      e->implementation = pd.impl_info_str();
      if (e->reorder_src || (e->reorder_dst && !e->margin)) e->implementation += " (blocked)";
      if (e->margin) e->implementation += " (margin)";
    } catch (const dnnl::error& err) {
      fail("[PackedConv] oneDNN has no convolution for ", describe(g), ": ", err.what());
    }
    e->src_offset = align_up(e->scratch_bytes);
    e->dst_offset = e->src_offset + (e->reorder_src ? align_up(e->src_md.get_size()) : 0);
    e->workspace_bytes = e->dst_offset + (e->reorder_dst ? align_up(e->dst_md.get_size()) : 0);
    return e;
  }

  // `to` = `from`, another packing of the same weights. oneDNN reorders into its Winograd layout only from
  // a plain one, so a blocked `from` goes through the plain layout first.
  void repack(memory from, memory to) const {
    const dnnl::engine& engine = onednn_engine();
    dnnl::stream& stream = onednn_stream();
    std::unique_ptr<dnnl::reorder> direct;
    try {
      direct = std::make_unique<dnnl::reorder>(from, to);
    } catch (const dnnl::error&) {
      memory plain(user_weights_md(), engine);
      dnnl::reorder(from, plain).execute(stream, from, plain);
      dnnl::reorder(plain, to).execute(stream, plain, to);
    }
    if (direct) direct->execute(stream, from, to);
    stream.wait();
  }

  std::shared_ptr<const Entry> entry(const Geometry& g) const {
    std::lock_guard<std::mutex> lock(mutex);
    // A miss creates the primitive under the lock: once per geometry, at plan time when the caller uses
    // prepare().
    return cache.find_or_make(g, [&] { return make_entry(g); });
  }

  // A BoundArgs for `e`: an idle one, or a new one when every one made is in use.
  IdlePool<BoundArgs>::Lease bound_args(const Entry& e) const {
    return e.bound.take([&] {
      auto b = std::make_unique<BoundArgs>();
      try {
        b->x = unbound_memory(e.user_src_md);
        b->y = unbound_memory(e.user_written_md);
        b->src = e.reorder_src ? unbound_memory(e.src_md) : b->x;
        b->dst = e.reorder_dst ? unbound_memory(e.dst_md) : b->y;
        if (e.scratch_bytes > 0) {
          b->scratch = unbound_scratchpad(e.scratch_bytes);
        }
        // The reorders run one after another and after / before the convolution, so they share its scratchpad.
        auto add_scratch = [&](OneDnnArgs& args) {
          if (b->scratch) args.add(DNNL_ARG_SCRATCHPAD, b->scratch);
        };
        if (e.reorder_src) {
          b->src_in.add(DNNL_ARG_FROM, b->x);
          b->src_in.add(DNNL_ARG_TO, b->src);
          add_scratch(b->src_in);
        }
        if (spec.add_sum && e.reorder_dst) {
          b->z = unbound_memory(e.user_dst_md);
          b->sum_in.add(DNNL_ARG_FROM, b->z);
          b->sum_in.add(DNNL_ARG_TO, b->dst);
          add_scratch(b->sum_in);
        }
        b->conv.add(DNNL_ARG_SRC, b->src);
        b->conv.add(DNNL_ARG_WEIGHTS, e.weights);
        if (fused_bias()) b->conv.add(DNNL_ARG_BIAS, bias);
        b->conv.add(DNNL_ARG_DST, b->dst);
        add_scratch(b->conv);
        if (e.reorder_dst) {
          b->dst_out.add(DNNL_ARG_FROM, b->dst);
          b->dst_out.add(DNNL_ARG_TO, b->y);
          add_scratch(b->dst_out);
        }
      } catch (const dnnl::error& err) {
        fail("[PackedConv] oneDNN cannot make the memory objects for ", describe(e.geometry), ": ", err.what());
      }
      return b;
    });
  }

  Geometry geometry(int64_t n, const ConvDims& in) const {
    KILN_CHECK(n >= 0, "[PackedConv] N must be >= 0, got ", n);
    return checked_geometry(n, in);
  }

  // y += the bias, per output channel, after a transposed convolution.
  void add_bias(const Entry& e, float* y) const {
    const int64_t m = spec.out_channels;
    const int64_t planes = e.geometry.n * m;  // (image, channel) pairs
    const int64_t plane = static_cast<int64_t>(e.y_count) / planes;
    const float* b = static_cast<const float*>(bias.get_data_handle());
    const bool parallel = !e.single_thread && e.y_count >= kParallelBiasElements;
    if (spec.channels_last) {
      parallel_for_static(parallel, e.geometry.n * plane, [&](int64_t row) {
        float* yr = y + row * m;
        for (int64_t c = 0; c < m; ++c) yr[c] += b[c];
      });
    } else {
      parallel_for_static(parallel, planes, [&](int64_t p) {
        float* yp = y + p * plane;
        const float v = b[p % m];
        for (int64_t j = 0; j < plane; ++j) yp[j] += v;
      });
    }
  }
};

PackedConv::PackedConv(const ConvSpec& spec, const float* w, const float* bias) : impl_(new Impl) {
  const ConvSpec& s = spec;
  KILN_CHECK(s.group >= 1 && s.in_channels >= 1 && s.out_channels >= 1 && s.in_channels % s.group == 0 &&
                 s.out_channels % s.group == 0,
             "[PackedConv] channels C=", s.in_channels, " M=", s.out_channels, " must be positive multiples of group ",
             s.group);
  KILN_CHECK(s.spatial_dims >= 1 && s.spatial_dims <= kMaxConvSpatialDims, "[PackedConv] ", s.spatial_dims,
             " spatial dims: 1, 2 or 3 are taken");
  for (size_t i = 0; i < static_cast<size_t>(s.spatial_dims); ++i) {
    KILN_CHECK(s.kernel[i] >= 1 && s.strides[i] >= 1 && s.dilations[i] >= 1,
               "[PackedConv] kernel, strides and dilations must be positive");
    KILN_CHECK(s.pads_begin[i] >= 0 && s.pads_end[i] >= 0, "[PackedConv] pads must not be negative");
    KILN_CHECK(s.output_padding[i] >= 0 && s.output_shape[i] >= 0 && (s.output_shape[i] > 0) == (s.output_shape[0] > 0),
               "[PackedConv] output_padding must not be negative, output_shape all positive or all 0");
  }
  KILN_CHECK(!s.transposed || (!s.add_sum && s.activation == ConvActivation::kNone),
             "[PackedConv] a transposed convolution takes no sum and no activation");
  KILN_CHECK(w != nullptr, "[PackedConv] no weights");
  KILN_CHECK(!s.has_bias || bias != nullptr, "[PackedConv] has_bias but no bias");
  impl_->spec = spec;
  impl_->layout = choose_layout(spec);
  impl_->blocked_if_plain_is_gemm = s.channels_last && s.layout == ConvLayout::kAuto;
  impl_->winograd = s.layout != ConvLayout::kPlain && winograd_shape(s) && winograd_allowed();
  impl_->axes = static_cast<size_t>(s.spatial_dims);
  impl_->user_tag = s.channels_last ? channels_last_tag(s.spatial_dims) : channels_first_tag(s.spatial_dims);
  const dnnl::engine& engine = onednn_engine();
  dnnl::stream& stream = onednn_stream();
  // A nominal input the kernel fits, for choosing the weights' layout.
  Geometry g{1, {0, 0, 0}};
  for (size_t i = 0; i < impl_->axes; ++i) g.in[i] = std::max(kLayoutSpatial, (s.kernel[i] - 1) * s.dilations[i] + 1);
  try {
    memory user(impl_->user_weights_md(), engine, const_cast<float*>(w));
    const auto pd = impl_->primitive_desc(g, memory::desc(impl_->weight_dims(), kF32, Tag::any), impl_->layout);
    memory packed(pd.weights_desc(), engine);
    dnnl::reorder(user, packed).execute(stream, user, packed);
    if (s.has_bias) {
      impl_->bias = memory(memory::desc({s.out_channels}, kF32, Tag::x), engine);
      std::memcpy(impl_->bias.get_data_handle(), bias, static_cast<size_t>(s.out_channels) * sizeof(float));
    }
    stream.wait();
    impl_->weights.push_back(packed);
  } catch (const dnnl::error& e) {
    fail("[PackedConv] oneDNN cannot pack the weights for ", impl_->describe(g), ": ", e.what());
  }
}

PackedConv::~PackedConv() = default;

bool PackedConv::output_size(const ConvDims& in, ConvDims* out) const {
  Geometry g{1, {0, 0, 0}};
  for (size_t i = 0; i < impl_->axes; ++i) g.in[i] = in[i];
  AxisWindows win;
  if (!impl_->windows(g, &win)) return false;
  *out = impl_->output_dims(win);
  return true;
}

void PackedConv::run(int64_t n, const ConvDims& in, const float* x, float* y, const float* z) const {
  const ConvSpec& spec = impl_->spec;
  const Geometry g = impl_->geometry(n, in);
  KILN_CHECK(spec.add_sum == (z != nullptr), "[PackedConv] ",
             spec.add_sum ? "needs the sum input z" : "was built without a sum, but got z");
  if (n == 0) return;
  const std::shared_ptr<const Entry> e = impl_->entry(g);
  const size_t y_count = e->y_count;
  if (z && z != y) KILN_CHECK(!ranges_overlap(y, y_count, z, y_count), "[PackedConv] z must be y or not overlap it");
  // The margin holds the bias alone: zeros here, the bias added below.
  if (e->margin) std::memset(y, 0, y_count * sizeof(float));
  if (!e->primitive) {  // every window past the output's end
    if (spec.has_bias) impl_->add_bias(*e, y);
    return;
  }
  ScopedThreads threads(e->single_thread);
  std::byte* workspace = thread_buffer<PackedConv>(e->workspace_bytes);
  const auto b = impl_->bound_args(*e);
  const char* step = "binding";  // for the error message
  dnnl_status_t status = onednn_rebind(b->x, x);
  if (status == dnnl_success) status = onednn_rebind(b->y, y);
  if (status == dnnl_success && b->z) status = onednn_rebind(b->z, z);
  if (status == dnnl_success && e->reorder_src) status = onednn_rebind(b->src, workspace + e->src_offset);
  if (status == dnnl_success && e->reorder_dst) status = onednn_rebind(b->dst, workspace + e->dst_offset);
  if (status == dnnl_success && b->scratch) status = onednn_rebind(b->scratch, workspace);
  if (status == dnnl_success && e->reorder_src) {
    step = "reordering x";
    status = onednn_execute(e->src_in, b->src_in);
  }
  if (status == dnnl_success && z) {
    // The sum post-op adds what the destination holds.
    step = "reordering z";
    if (e->reorder_dst)
      status = onednn_execute(e->sum_in, b->sum_in);
    else if (z != y)  // z == y: in place, y holds z already
      std::memcpy(y, z, y_count * sizeof(float));
  }
  if (status == dnnl_success) {
    step = "convolving";
    status = onednn_execute(e->primitive, b->conv);
  }
  if (status == dnnl_success && e->reorder_dst) {
    step = "reordering y";
    status = onednn_execute(e->dst_out, b->dst_out);
  }
  if (status != dnnl_success) {
    fail("[PackedConv] oneDNN convolution ", impl_->describe(g), " failed ", step, ": ", dnnl_status2str(status));
  }
  if (spec.has_bias && !impl_->fused_bias()) impl_->add_bias(*e, y);
}

std::string PackedConv::prepare(int64_t n, const ConvDims& in) const {
  const Geometry g = impl_->geometry(n, in);
  if (n == 0) return "none";
  const std::shared_ptr<const Entry> e = impl_->entry(g);
  // One set of memory objects now, so that the first run, too, only executes.
  if (e->primitive) impl_->bound_args(*e);
  return e->implementation;
}

const ConvSpec& PackedConv::spec() const { return impl_->spec; }

size_t PackedConv::packed_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  size_t bytes = impl_->bias ? impl_->bias.get_desc().get_size() : 0;
  for (const memory& w : impl_->weights) bytes += w.get_desc().get_size();
  return bytes;
}

size_t PackedConv::cached_primitives() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->cache.size();
}

}  // namespace kiln::kernels::cpu

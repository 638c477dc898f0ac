// The fast kernel for 1-D, 2-D and 3-D float32 convolutions with constant weights: ONNX Conv,
// com.microsoft.FusedConv and ai.kiln.FusedConv (Conv, an optional residual Z added, then an activation;
// channels-last X, Z and Y with channels_last = 1) through PackedConv, the weights (and bias) packed once
// when the kernel is made. The kernel absorbs W and B (the session then releases them, so the weights are
// held once) and answers every call: an invalid one fails with the reference kernel's message.
// 2-D channels-last depthwise convolutions (group == C == M) also get kiln's own kernel
// (depthwise_conv.h), run per call where PackedDepthwiseConv::preferred says it beats oneDNN's.
// Channels-last 1x1 convolutions with SiLU or Sigmoid (EfficientNet's expansions) or with ai.kiln.FusedConv's
// channel scale S run on kiln's own (pointwise_conv.h) on AVX-512, the activation applied in registers and S
// to the weights: oneDNN 2.6's swish post-op cost as much as its convolution, and oneDNN's convolution would
// need X * S written out first (which this kernel does where it cannot run).
#include "kernels/cpu/fast_kernel_table.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/depthwise_conv.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/onednn_conv.h"
#include "kernels/cpu/pointwise_conv.h"
#include "kernels/cpu/vector_kernels.h"
#include "kernels/reference/contrib_common.h"
#include "kernels/reference/fused_activation.h"
#include "kernels/reference/nn_common.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

constexpr const char* kMsDomain = "com.microsoft";
constexpr const char* kKilnDomain = "ai.kiln";

// Window attributes past this are left to the reference kernel (and keep oneDNN's size arithmetic far
// from overflow).
constexpr int64_t kLargestWindow = int64_t{1} << 20;

// KILN_DEPTHWISE=kiln runs every depthwise convolution on kiln's kernel (PackedDepthwiseConv), the sizes
// where oneDNN's is faster included, so that tests reach it on any shape; KILN_DEPTHWISE=onednn runs every
// one on oneDNN's (to compare the two on a model). Read when a kernel is made.
enum class DepthwiseChoice { kBySize, kKiln, kOneDnn };
DepthwiseChoice depthwise_choice() {
  const char* v = std::getenv("KILN_DEPTHWISE");
  if (v && std::string(v) == "kiln") return DepthwiseChoice::kKiln;
  if (v && std::string(v) == "onednn") return DepthwiseChoice::kOneDnn;
  return DepthwiseChoice::kBySize;
}

// KILN_POINTWISE=kiln runs every channels-last 1x1 convolution PackedPointwiseConv computes on it,
// whatever its activation; KILN_POINTWISE=onednn runs none there (to compare the two). By default SiLU
// and Sigmoid go there, and every one with a channel scale S (which the kernel applies to its weights,
// where oneDNN's convolution needs X * S written out first): oneDNN's 1x1 convolution is as fast on the
// product, and its post-ops for the other activations cost next to nothing. Read when a kernel is made.
bool use_pointwise_conv(const ConvSpec& spec, bool scaled) {
  const char* v = std::getenv("KILN_POINTWISE");
  const std::string choice = v ? v : "";
  if (choice == "onednn" || !pointwise_conv_supported(spec)) return false;
  return choice == "kiln" || scaled || spec.activation == ConvActivation::kSilu ||
         spec.activation == ConvActivation::kSigmoid;
}

// [N, spatial..., C] as [N, C, spatial...]: the channels-first shape the reference Conv sees (and names in
// its messages) when the reference FusedConv runs it on channels-last X.
ir::Dims conv_channels_first_shape(const ir::Dims& s) {
  ir::Dims r = s;
  if (r.size() >= 3) std::rotate(r.begin() + 1, r.end() - 1, r.end());
  return r;
}

// X [N, C, in...] -> Y [N, M, out...] (or X [N, in..., C] -> Y [N, out..., M] for ai.kiln.FusedConv
// channels_last = 1) over 1 to 3 spatial axes, with Z of Y's shape when the FusedConv names one. W and B
// are absorbed: every call is answered here, an invalid one failing with the reference kernel's message
// (its own checks, reused where they are callable, in its order), so that the session can release the
// initializers and hold the weights once.
class ConvKernel : public FastKernel {
 public:
  std::string implementation() const override {
    if (!pointwise_rows_.empty()) return std::string("pointwise rows ") + isa_name(vector_kernels().isa);
    if (pointwise_) return "pointwise avx512";
    return depthwise_ ? std::string("depthwise ") + isa_name(depthwise_->isa()) : "onednn";
  }
  // `pointwise_on_pool`: a 1x1 convolution fed by a global pool, which gets a copy of its weights as
  // [M, C] rows for its calls on a 1x1 plane (see run_pointwise_rows).
  // `scaled`: ai.kiln.FusedConv's channel scale S is given (see run_scaled).
  ConvKernel(const ConvSpec& spec, const float* w, const float* bias, std::vector<int64_t> w_shape,
             ops::nn::WindowAttrs window, bool fused, bool pointwise_on_pool, bool scaled)
      : spec_(spec),
        scaled_(scaled),
        pointwise_(use_pointwise_conv(spec, scaled) ? std::make_unique<PackedPointwiseConv>(spec, w, bias) : nullptr),
        conv_(pointwise_ ? nullptr : std::make_unique<PackedConv>(spec, w, bias)),
        depthwise_(is_depthwise_conv(spec) && depthwise_choice() != DepthwiseChoice::kOneDnn
                       ? std::make_unique<PackedDepthwiseConv>(spec, w, bias)
                       : nullptr),
        bias_(bias ? std::vector<float>(bias, bias + spec.out_channels) : std::vector<float>()),
        w_shape_(std::move(w_shape)),
        window_(std::move(window)),
        fused_(fused),
        force_depthwise_(depthwise_ && depthwise_choice() == DepthwiseChoice::kKiln) {
    if (pointwise_on_pool) pointwise_rows_.assign(w, w + spec.out_channels * spec.in_channels);
  }

  bool run(ops::KernelContext& ctx) const override {
    if (!scaled_) return run_scaled(ctx, ctx.input(0), nullptr);
    // X * S, checked as the reference does; made here unless kiln's pointwise kernel takes S itself.
    const ir::Tensor& x = ctx.input(0);
    ops::contrib::require_float32(ctx, x.dtype(), "input X");
    if (!spec_.channels_last) ctx.fail("input S needs channels_last = 1");
    const ir::Tensor& st = ctx.input(4);
    ops::contrib::require_channel_scale(ctx, x, st);
    const size_t rank = x.rank();
    if (pointwise_) return run_scaled(ctx, x, st.data<float>());
    ir::Tensor scaled = ctx.make_tensor(ir::DType::kFloat32, x.shape());
    const int64_t images = x.dim(0), c = x.dim(rank - 1), image = images > 0 ? x.numel() / images : 0;
    for (int64_t n = 0; n < images && c > 0; ++n)
      binary_f32(BinaryOp::kMul, x.data<float>() + n * image, st.data<float>() + n * c, c,
                 scaled.data<float>() + n * image, image);
    return run_scaled(ctx, scaled, nullptr);
  }

  // The convolution of x (X, or X * S made by run), scaled by `scale` (S's values) on kiln's pointwise
  // kernel when given.
  bool run_scaled(ops::KernelContext& ctx, const ir::Tensor& x, const float* scale) const {
    const ConvSpec& spec = spec_;
    const bool last = spec.channels_last;
    if (fused_) ops::contrib::require_float32(ctx, x.dtype(), "input X");
    if (last && x.rank() < 3)
      ctx.fail("input X must have rank >= 3 (N, spatial..., C), got ", ir::to_string(x.shape()));
    // From here on the reference FusedConv runs the reference Conv on X made channels-first.
    const ir::Dims s = last ? conv_channels_first_shape(x.shape()) : x.shape();
    ops::nn::require_dtype(ctx, x.dtype(), ops::nn::kFloatTypes, "input X");
    if (x.dtype() != ir::DType::kFloat32) ctx.fail("W has element type ", ir::DType::kFloat32, ", X has ", x.dtype());
    if (x.rank() < 3) ctx.fail("input X must have rank >= 3 (N, C, spatial...), got ", ir::to_string(x.shape()));
    if (x.rank() != w_shape_.size())
      ctx.fail("weights W of shape ", ir::to_string(w_shape_), " must have the same rank as X ", ir::to_string(s));
    if (s[1] != spec.in_channels)
      ctx.fail("input has ", s[1], " channels but W ", ir::to_string(w_shape_), " with group ", spec.group, " expects ",
               spec.in_channels);
    // The reference's window arithmetic, which also fails as it does on a kernel larger than the input.
    ConvDims in = {0, 0, 0}, out = {0, 0, 0}, pad_begin = {0, 0, 0};
    int64_t plane = 1;
    ir::Dims out_shape = {s[0]};
    if (!last) out_shape.push_back(spec.out_channels);
    for (size_t i = 0; i < static_cast<size_t>(spec.spatial_dims); ++i) {
      in[i] = s[i + 2];
      const ops::nn::AxisWindow axis = ops::nn::forward_window(ctx, window_, i, in[i]);
      out[i] = axis.out;
      pad_begin[i] = axis.pad_begin;
      plane *= out[i];
      out_shape.push_back(out[i]);
    }
    if (last) out_shape.push_back(spec.out_channels);
    const float* z = nullptr;
    if (spec.add_sum) {
      const ir::Tensor& zt = ctx.input(3);
      ops::contrib::require_float32(ctx, zt.dtype(), "input Z");
      if (zt.shape() != out_shape)
        ctx.fail("Z of shape ", ir::to_string(zt.shape()), " must have the output's shape ", ir::to_string(out_shape));
      z = zt.data<float>();
    }
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    if (y.numel() > 0 && x.numel() == 0) {
      padding_only(y.numel(), last ? 1 : plane, y.data<float>(), z);
    } else if (y.numel() > 0 && !pointwise_rows_.empty() && !scale && spec.spatial_dims == 2 && in[0] * in[1] == 1 &&
               plane == 1) {
      run_pointwise_rows(s[0], x.data<float>(), y.data<float>(), z);
    } else if (y.numel() > 0 && depthwise_ && !scale &&
               (force_depthwise_ || depthwise_->preferred(s[0], out[0], out[1]))) {
      depthwise_->run(s[0], in[0], in[1], out[0], out[1], pad_begin[0], pad_begin[1], x.data<float>(), y.data<float>(),
                      z);
    } else if (y.numel() > 0 && pointwise_) {
      KILN_CHECK(out == in, "internal: [", ctx.node().label(),
                 "] a 1x1 convolution's output size differs from its input's");
      pointwise_->run(s[0], plane, x.data<float>(), y.data<float>(), z, scale);
    } else if (y.numel() > 0) {
      ConvDims conv_out = {0, 0, 0};
      KILN_CHECK(conv_->output_size(in, &conv_out) && conv_out == out, "internal: [", ctx.node().label(),
                 "] PackedConv's output size differs from the reference's");
      conv_->run(s[0], in, x.data<float>(), y.data<float>(), z);
    }
    ctx.set_output(0, std::move(y));
    return true;
  }

  // An input with an empty spatial dim and pads wide enough for an output (oneDNN takes no empty input):
  // every window covers padding only, so y = act(bias (+ z)) over `count` values, each output channel's
  // in runs of `run` (the output plane channels-first, 1 channels-last).
  void padding_only(int64_t count, int64_t run, float* y, const float* z) const {
    const int64_t m = spec_.out_channels;
    for (int64_t k = 0; k < count; ++k)
      y[k] = conv_activate(spec_.activation, spec_.alpha, spec_.beta,
                           (bias_.empty() ? 0.0f : bias_[(k / run) % m]) + (z ? z[k] : 0.0f));
  }

  // A 1x1 convolution on a 1x1 plane (squeeze-and-excitation's two, after a global pool) is, per image, the
  // [M, C] weights times the C input values: kiln's matrix-vector product, where oneDNN's convolution on
  // one pixel costs ~1.5x ORT's on mobilenetv3-large's and gains little from a second thread. Either
  // layout: an image's C values (and M results) are contiguous on a 1x1 plane.
  void run_pointwise_rows(int64_t batch, const float* x, float* y, const float* z) const {
    const ConvSpec& spec = spec_;
    const int64_t m = spec.out_channels, c = spec.in_channels;
    for (int64_t n = 0; n < batch; ++n) dot_rows_f32(pointwise_rows_.data(), c, x + n * c, m, y + n * m);
    for (int64_t k = 0; k < batch * m; ++k)
      y[k] = conv_activate(spec.activation, spec.alpha, spec.beta,
                           y[k] + (bias_.empty() ? 0.0f : bias_[k % m]) + (z ? z[k] : 0.0f));
  }

  std::vector<size_t> absorbed_inputs() const override {
    return spec_.has_bias ? std::vector<size_t>{1, 2} : std::vector<size_t>{1};
  }
  // Z may be Y's memory on oneDNN's path: its sum post-op accumulates into what Y holds, so Z in place
  // saves copying Z into Y first (ResNet-50's 16 residual 1x1 convolutions: ~10 % of each). kiln's
  // depthwise and pointwise-rows paths write Y before they read Z, so kernels that may take them do not;
  // its pointwise kernel reads each value of Z before it writes Y's at the same place.
  std::vector<size_t> in_place_inputs() const override {
    if (!spec_.add_sum || depthwise_ || !pointwise_rows_.empty()) return {};
    return {3};
  }

 private:
  ConvSpec spec_;
  bool scaled_;                                     // S given: X * S is convolved
  std::unique_ptr<PackedPointwiseConv> pointwise_;  // kiln's 1x1 convolution, for every call where it runs
  std::unique_ptr<PackedConv> conv_;                // oneDNN's, where it does not
  std::unique_ptr<PackedDepthwiseConv> depthwise_;  // kiln's own kernel, for the depthwise convolutions it runs
  std::vector<float> bias_;                         // for padding_only and run_pointwise_rows
  std::vector<float> pointwise_rows_;               // [M, C]: W of a 1x1 convolution fed by a global pool
  std::vector<int64_t> w_shape_;                    // for messages
  ops::nn::WindowAttrs window_;
  bool fused_;
  bool force_depthwise_;  // KILN_DEPTHWISE=kiln: every depthwise call on kiln's kernel (tests), whatever its size
};

ConvPadding padding_of(ops::nn::AutoPad p) {
  switch (p) {
    case ops::nn::AutoPad::kSameUpper:
      return ConvPadding::kSameUpper;
    case ops::nn::AutoPad::kSameLower:
      return ConvPadding::kSameLower;
    case ops::nn::AutoPad::kValid:
      return ConvPadding::kValid;
    case ops::nn::AutoPad::kNotSet:
      break;
  }
  return ConvPadding::kExplicit;
}

ConvActivation conv_activation(ops::FusedActivationKind kind) {
  using K = ops::FusedActivationKind;
  switch (kind) {
    case K::kIdentity:
      return ConvActivation::kNone;
    case K::kRelu:
      return ConvActivation::kRelu;
    case K::kTanh:
      return ConvActivation::kTanh;
    case K::kSigmoid:
      return ConvActivation::kSigmoid;
    case K::kLeakyRelu:
      return ConvActivation::kLeakyRelu;
    case K::kClip:
      return ConvActivation::kClip;
    case K::kHardSigmoid:
      return ConvActivation::kHardSigmoid;
    case K::kHardSwish:
      return ConvActivation::kHardSwish;
    case K::kSilu:
      return ConvActivation::kSilu;
  }
  return ConvActivation::kNone;
}

// FusedConv's activation and activation_params into the spec, as the reference kernel
// (kernels/reference/contrib_fused_conv.cc) reads them; false for what it would refuse.
bool read_activation(const ops::NodeView& v, ConvSpec& spec) {
  if (!v.has_attr("activation")) return true;
  const std::string name = v.attr_string("activation");
  const bool kiln_domain = v.node().domain == kKilnDomain;
  const std::optional<ops::FusedActivationName> found = ops::fused_activation_by_name(name, kiln_domain);
  if (!found) return false;
  spec.activation = conv_activation(found->kind);
  const size_t params = found->params;
  if (params == 0) return true;
  const std::vector<float> p = v.attr_floats("activation_params", {});
  if (p.size() != params) return false;
  spec.alpha = p[0];
  if (params == 2) spec.beta = p[1];
  return true;
}

// Whether n's input X comes from a global pool (GlobalAveragePool, GlobalMaxPool, or the ReduceMean /
// ReduceMax that push_transposes writes for one on channels-last data), directly or, up to `depth` nodes
// back, through convolutions: the two convolutions of a squeeze-and-excitation block. Their calls are
// then on a 1x1 plane, as a rule (the kernel checks each call's shape).
bool fed_by_global_pool(const ir::Graph& g, const ir::Node& n, int depth) {
  if (depth <= 0 || n.inputs.empty()) return false;
  for (const ir::Node& p : g.nodes) {
    if (std::find(p.outputs.begin(), p.outputs.end(), n.inputs[0]) == p.outputs.end()) continue;
    if (ir::is_default_domain(p.domain) && (p.op_type == "GlobalAveragePool" || p.op_type == "GlobalMaxPool" ||
                                            p.op_type == "ReduceMean" || p.op_type == "ReduceMax"))
      return true;
    const bool conv = (p.op_type == "Conv" && ir::is_default_domain(p.domain)) ||
                      (p.op_type == "FusedConv" && (p.domain == kMsDomain || p.domain == kKilnDomain));
    // (Its weights may be gone from the graph already: its kernel, made first, took them.)
    return conv && fed_by_global_pool(g, p, depth - 1);
  }
  return false;
}

std::unique_ptr<FastKernel> make_conv_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset) {
  const bool fused = n.op_type == "FusedConv" && (n.domain == kMsDomain || n.domain == kKilnDomain);
  if (!fused && !(n.op_type == "Conv" && ir::is_default_domain(n.domain))) return nullptr;
  const bool kiln_fused = fused && n.domain == kKilnDomain;
  if (n.inputs.size() > (kiln_fused ? 5u : fused ? 4u : 3u)) return nullptr;
  const ir::Tensor* w = float_constant(g, n, 1);
  if (!w || w->rank() < 3 || w->rank() > 2 + kMaxConvSpatialDims || w->numel() == 0) return nullptr;
  const size_t axes = w->rank() - 2;
  const ir::Tensor* b = nullptr;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    b = float_constant(g, n, 2);
    if (!b || b->rank() != 1 || b->dim(0) != w->dim(0)) return nullptr;
  }
  ConvSpec spec;
  ops::nn::WindowAttrs window;
  try {
    ops::NodeView v(n, opset);
    spec.group = v.attr_int("group", 1);
    if (spec.group < 1 || w->dim(0) % spec.group != 0) return nullptr;
    // The reference's reading of the window attributes (kernel_shape against W, lengths, signs, auto_pad),
    // kept for its output sizes and messages per call.
    window = ops::nn::read_window_attrs(
        v, ops::nn::read_kernel_shape(v, axes, std::vector<int64_t>(w->shape().begin() + 2, w->shape().end())), false);
    if (fused && !read_activation(v, spec)) return nullptr;
    // ai.kiln.FusedConv's layout (com.microsoft's and Conv have none: the reference ignores the attribute).
    if (n.domain == kKilnDomain && v.has_attr("channels_last")) {
      const int64_t last = v.attr_int("channels_last");
      if (last != 0 && last != 1) return nullptr;  // the reference's message
      spec.channels_last = last == 1;
    }
  } catch (const Error&) {
    return nullptr;  // attributes the reference kernel refuses, with its own message
  }
  spec.out_channels = w->dim(0);
  spec.in_channels = w->dim(1) * spec.group;
  spec.spatial_dims = static_cast<int>(axes);
  spec.padding = padding_of(window.auto_pad);
  for (size_t i = 0; i < axes; ++i) {
    if (window.kernel[i] > kLargestWindow || window.strides[i] > kLargestWindow ||
        window.dilations[i] > kLargestWindow || window.pads[i] > kLargestWindow ||
        window.pads[i + axes] > kLargestWindow)
      return nullptr;
    spec.kernel[i] = w->dim(i + 2);
    spec.strides[i] = window.strides[i];
    spec.dilations[i] = window.dilations[i];
    spec.pads_begin[i] = window.pads[i];  // ONNX pads: all begins, then all ends
    spec.pads_end[i] = window.pads[i + axes];
  }
  spec.add_sum = fused && n.inputs.size() > 3 && !n.inputs[3].empty();
  spec.has_bias = b != nullptr;
  const bool pointwise = axes == 2 && spec.group == 1 && spec.kernel[0] == 1 && spec.kernel[1] == 1;
  const bool scaled = kiln_fused && n.inputs.size() > 4 && !n.inputs[4].empty();
  return std::make_unique<ConvKernel>(spec, w->data<float>(), b ? b->data<float>() : nullptr, w->shape(),
                                      std::move(window), fused, pointwise && fed_by_global_pool(g, n, 2), scaled);
}

}  // namespace

std::span<const FastKernelEntry> conv_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"", "Conv", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}), make_conv_kernel},
      {kMsDomain, "FusedConv", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}), make_conv_kernel},
      {kKilnDomain, "FusedConv", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}), make_conv_kernel},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

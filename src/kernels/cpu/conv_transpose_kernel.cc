// The fast kernel for ONNX ConvTranspose in float32 with constant weights (and bias), over 1, 2 or 3
// spatial axes: oneDNN's deconvolution primitive through PackedConv (ConvSpec::transposed), the weights
// packed once when the kernel is made. Groups, strides, dilations, pads, output_padding, output_shape and
// auto_pad as ONNX (and the reference, kernels/reference/nn_conv.cc) reads them; the output geometry per
// call is the reference's own transpose_geometry, which also fails as the reference does on a bad input.
// The kernel absorbs W and B and answers every call: an invalid one fails with the reference's message.
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/onednn_conv.h"
#include "kernels/reference/nn_common.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// Attribute values past this are left to the reference kernel (and keep oneDNN's size arithmetic far
// from overflow).
constexpr int64_t kConvTransposeLargestWindow = int64_t{1} << 20;

// X [N, C, in...] -> Y [N, M, out...] with W [C, M / group, k...] and B [M] absorbed.
class ConvTransposeKernel : public FastKernel {
 public:
  std::string implementation() const override { return "onednn"; }
  ConvTransposeKernel(const ConvSpec& spec, const float* w, const float* bias, std::vector<int64_t> w_shape,
                      ops::nn::WindowAttrs window)
      : conv_(spec, w, bias), w_shape_(std::move(w_shape)), window_(std::move(window)) {}

  bool run(ops::KernelContext& ctx) const override {
    const ConvSpec& spec = conv_.spec();
    const ir::Tensor& x = ctx.input(0);
    // The reference's checks, in its order (W and B are known good: they were checked when made).
    ops::nn::require_dtype(ctx, x.dtype(), ops::nn::kFloatTypes, "input X");
    if (x.dtype() != ir::DType::kFloat32) ctx.fail("W has element type ", ir::DType::kFloat32, ", X has ", x.dtype());
    if (x.rank() < 3) ctx.fail("input X must have rank >= 3 (N, C, spatial...), got ", ir::to_string(x.shape()));
    if (x.rank() != w_shape_.size())
      ctx.fail("weights W of shape ", ir::to_string(w_shape_), " must have the same rank as X ",
               ir::to_string(x.shape()));
    if (x.dim(1) != spec.in_channels)
      ctx.fail("input has ", x.dim(1), " channels but W ", ir::to_string(w_shape_), " expects ", spec.in_channels);
    const std::vector<int64_t> in_sp(x.shape().begin() + 2, x.shape().end());
    const ops::nn::TransposeGeometry geo = ops::nn::transpose_geometry(ctx, window_, in_sp);
    ir::Dims out_shape = {x.dim(0), spec.out_channels};
    out_shape.insert(out_shape.end(), geo.out.begin(), geo.out.end());
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, out_shape);
    if (y.numel() > 0) {
      // No spatial dim of X is 0 (transpose_geometry fails on one) and C > 0 (W is not empty): X is not.
      ConvDims in = {0, 0, 0}, out = {0, 0, 0}, conv_out = {0, 0, 0};
      for (size_t i = 0; i < in_sp.size(); ++i) {
        in[i] = in_sp[i];
        out[i] = geo.out[i];
      }
      KILN_CHECK(conv_.output_size(in, &conv_out) && conv_out == out, "internal: [", ctx.node().label(),
                 "] PackedConv's output size differs from the reference's");
      conv_.run(x.dim(0), in, x.data<float>(), y.data<float>());
    }
    ctx.set_output(0, std::move(y));
    return true;
  }

  std::vector<size_t> absorbed_inputs() const override {
    return conv_.spec().has_bias ? std::vector<size_t>{1, 2} : std::vector<size_t>{1};
  }

 private:
  PackedConv conv_;
  std::vector<int64_t> w_shape_;  // for messages
  ops::nn::WindowAttrs window_;
};

ConvPadding conv_transpose_padding(ops::nn::AutoPad p) {
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

std::unique_ptr<FastKernel> make_conv_transpose_kernel(const ir::Node& n, const ir::Graph& g, int64_t opset) {
  if (n.inputs.size() > 3) return nullptr;
  const ir::Tensor* w = float_constant(g, n, 1);
  if (!w || w->rank() < 3 || w->rank() > 2 + kMaxConvSpatialDims || w->numel() == 0) return nullptr;
  const size_t axes = w->rank() - 2;
  ConvSpec spec;
  ops::nn::WindowAttrs window;
  std::vector<int64_t> output_padding, output_shape;
  try {
    ops::NodeView v(n, opset);
    spec.group = v.attr_int("group", 1);
    if (spec.group < 1 || w->dim(0) % spec.group != 0) return nullptr;  // every call fails: the reference says how
    window = ops::nn::read_window_attrs(
        v, ops::nn::read_kernel_shape(v, axes, std::vector<int64_t>(w->shape().begin() + 2, w->shape().end())), false);
    // output_padding and output_shape, checked as the reference checks them (no input size yet).
    ops::nn::transpose_geometry(v, window, std::vector<int64_t>(axes, -1));
    output_padding = v.attr_ints("output_padding", std::vector<int64_t>(axes, 0));
    if (output_padding.empty()) output_padding.assign(axes, 0);
    output_shape = v.attr_ints("output_shape", {});
    if (output_shape.size() == axes + 2) output_shape.erase(output_shape.begin(), output_shape.begin() + 2);
  } catch (const Error&) {
    return nullptr;  // attributes the reference kernel refuses, with its own message
  }
  const int64_t m = w->dim(1) * spec.group;
  const ir::Tensor* b = nullptr;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    b = float_constant(g, n, 2);
    if (!b || b->rank() != 1 || b->dim(0) != m) return nullptr;
  }
  spec.transposed = true;
  spec.in_channels = w->dim(0);
  spec.out_channels = m;
  spec.spatial_dims = static_cast<int>(axes);
  spec.padding = conv_transpose_padding(window.auto_pad);
  for (size_t i = 0; i < axes; ++i) {
    for (int64_t a : {window.kernel[i], window.strides[i], window.dilations[i], window.pads[i], window.pads[i + axes],
                      output_padding[i], output_shape.empty() ? int64_t{0} : output_shape[i]})
      if (a > kConvTransposeLargestWindow) return nullptr;
    spec.kernel[i] = w->dim(i + 2);
    spec.strides[i] = window.strides[i];
    spec.dilations[i] = window.dilations[i];
    spec.pads_begin[i] = window.pads[i];  // ONNX pads: all begins, then all ends
    spec.pads_end[i] = window.pads[i + axes];
    spec.output_padding[i] = output_padding[i];
    if (!output_shape.empty()) spec.output_shape[i] = output_shape[i];
  }
  spec.has_bias = b != nullptr;
  return std::make_unique<ConvTransposeKernel>(spec, w->data<float>(), b ? b->data<float>() : nullptr, w->shape(),
                                               std::move(window));
}

}  // namespace

std::span<const FastKernelEntry> conv_transpose_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"", "ConvTranspose", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}), make_conv_transpose_kernel},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

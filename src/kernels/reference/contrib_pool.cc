// ai.kiln.MaxPool and ai.kiln.AveragePool (version 1): ONNX's MaxPool and AveragePool, with every one of
// their attributes (kernel_shape, strides, pads, dilations, auto_pad, ceil_mode; count_include_pad for the
// average), and one more, `channels_last` (default 0). With channels_last = 1, X and Y are channels-last,
// [N, spatial..., C]: what push_transposes (passes/transpose_pushing.cc) writes for a pool between two
// channels-last convolutions, so that the layout changes around it cancel
//
//   x [N, H, W, C] -> Transpose(0, 3, 1, 2) -> MaxPool -> y
//     =>
//   x -> ai.kiln.MaxPool(channels_last = 1) -> Transpose(0, 3, 1, 2) -> y
//
// MaxPool has no Indices output here (they would count positions of the channels-first layout). The
// reference kernel is ONNX's, run on the channels-first view of X; ONNX Runtime cannot load these ops, so
// a model holding them runs in kiln only.
#include <string>
#include <vector>

#include "kernels/reference/contrib_common.h"
#include "kernels/reference/tensor_util.h"

namespace kiln::ops::contrib {
namespace {

// The ONNX pool this kiln op extends; kiln declares one version of each for every opset.
const OpDef& onnx_pool_def(const std::string& op) {
  const OpDef* def = OpRegistry::instance().find("", op, 19);
  KILN_CHECK(def && def->infer && def->kernel, "internal: ", op, " is not registered");
  return *def;
}

void check_single_output(const NodeView& node) {
  if (node.node().outputs.size() > 1) node.fail("has no Indices output (only Y)");
}

void infer_channels_last_pool(InferenceContext& ctx) {
  check_single_output(ctx);
  const OpDef& def = onnx_pool_def(ctx.node().op_type);
  if (!channels_last(ctx)) return def.infer(ctx);
  // ONNX's inference on the channels-first view of X, its output turned channels-last.
  ir::Type first = ctx.input_type(0);
  if (first.shape && first.shape->rank() >= 3)
    first.shape = permuted(*first.shape, channel_perm(first.shape->rank(), false));
  InferenceContext inner(ctx.node(), ctx.opset(), {&first}, {nullptr});
  def.infer(inner);
  ir::Type out = inner.output_types().empty() ? ir::Type() : inner.output_types()[0];
  if (out.shape && out.shape->rank() >= 3) out.shape = permuted(*out.shape, channel_perm(out.shape->rank(), true));
  ctx.set_output_type(0, out);
}

void run_channels_last_pool(KernelContext& ctx) {
  check_single_output(ctx);
  const OpDef& def = onnx_pool_def(ctx.node().op_type);
  if (!channels_last(ctx)) return def.kernel(ctx);
  const ir::Tensor& x = ctx.input(0);
  if (x.rank() < 3) ctx.fail("input X must have rank >= 3 (N, spatial..., C), got ", ir::to_string(x.shape()));
  ir::Datum first(tensor_detail::permute(ctx, x, x.shape(), channel_perm(x.rank(), false)));
  KernelContext inner(ctx.node(), ctx.opset(), {&first}, ctx.limits(), nullptr);
  def.kernel(inner);
  const ir::Tensor& y = inner.outputs()[0].tensor;
  ctx.set_output(0, tensor_detail::permute(ctx, y, y.shape(), channel_perm(y.rank(), true)));
}

}  // namespace

void register_pool_ops(OpRegistry& r) {
  // Version 1 of ai.kiln, valid in later versions like the com.microsoft ops.
  for (const char* op : {"MaxPool", "AveragePool"})
    r.add(OpDef{kKilnDomain, op, 1, kMsMaxOpset, infer_channels_last_pool, run_channels_last_pool});
}

}  // namespace kiln::ops::contrib

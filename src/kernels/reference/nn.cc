// The nn op family: each group of ops lives in its own nn_<group>.cc file and registers from there.
#include "kernels/reference/nn_common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace onnx_attention {
void register_ops(OpRegistry& r);  // nn_attention.cc: Attention, RotaryEmbedding (opset 23)
}  // namespace onnx_attention

void register_nn_ops(OpRegistry& r) {
  nn::register_matmul_ops(r);
  nn::register_conv_ops(r);
  nn::register_pool_ops(r);
  nn::register_resize_ops(r);
  nn::register_grid_sample_ops(r);
  nn::register_einsum_ops(r);
  nn::register_detection_ops(r);
  void register_affine_grid_ops(OpRegistry&);  // nn_affine_grid.cc: AffineGrid
  void register_deform_conv_ops(OpRegistry&);  // nn_deform_conv.cc: DeformConv
  register_affine_grid_ops(r);
  register_deform_conv_ops(r);
  onnx_attention::register_ops(r);
}

}  // namespace kiln::ops

// LayerNormalization over the last axis and com.microsoft.SkipLayerNormalization, on vector_kernels'
// layer_norm_f32.
#include <vector>

#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/vector_kernels.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// LayerNormalization over the last dim (axis -1), or com.microsoft.SkipLayerNormalization with a skip of
// the input's shape; the mean / inverse-std outputs are left to the reference kernel.
class LayerNormKernel : public FastKernel {
 public:
  LayerNormKernel(bool skip, float epsilon) : skip_(skip), epsilon_(epsilon) {}

  bool run(ops::KernelContext& ctx) const override {
    // Inputs: LayerNormalization (X, Scale, B); SkipLayerNormalization (input, skip, gamma, beta, bias).
    const size_t gamma_i = skip_ ? 2 : 1, beta_i = skip_ ? 3 : 2;
    if (!is_f32(ctx, 0) || !is_f32(ctx, gamma_i)) return false;
    if (ctx.has_output(1) || ctx.has_output(2)) return false;
    const ir::Tensor& x = ctx.input(0);
    const ir::Dims& s = x.shape();
    if (s.empty()) return false;
    const int64_t n = s.back();
    if (ctx.input(gamma_i).numel() != n) return false;
    LayerNormArgs a;
    a.rows = rows_of(s);
    a.n = n;
    a.x = x.data<float>();
    a.gamma = ctx.input(gamma_i).data<float>();
    if (ctx.has_input(beta_i)) {
      if (!is_f32(ctx, beta_i) || ctx.input(beta_i).numel() != n) return false;
      a.beta = ctx.input(beta_i).data<float>();
    }
    a.epsilon = epsilon_;
    ir::Tensor sum;
    if (skip_) {
      if (!is_f32(ctx, 1) || ctx.input(1).shape() != s) return false;
      a.skip = ctx.input(1).data<float>();
      if (ctx.has_input(4)) {
        if (!is_f32(ctx, 4) || ctx.input(4).numel() != n) return false;
        a.bias = ctx.input(4).data<float>();
      }
      if (ctx.has_output(3)) {
        sum = ctx.make_tensor(ir::DType::kFloat32, s);
        a.sum = sum.data<float>();
      }
    }
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, s);
    a.y = y.data<float>();
    if (a.rows > 0 && n > 0) layer_norm_f32(a);
    ctx.set_output(0, std::move(y));
    if (sum.defined()) ctx.set_output(3, std::move(sum));
    return true;
  }
  // layer_norm_f32 writes a row of y after reading that row of x (and skip): y may be either.
  std::vector<size_t> in_place_inputs() const override { return skip_ ? std::vector<size_t>{0, 1} : std::vector<size_t>{0}; }

 private:
  bool skip_;
  float epsilon_;
};

std::unique_ptr<FastKernel> make_layer_norm(const ir::Node& n, int64_t opset, bool skip) {
  ops::NodeView v(n, opset);
  if (!skip && v.attr_int("axis", -1) != -1) return nullptr;
  if (!skip && v.attr_int("stash_type", 1) != 1) return nullptr;
  return std::make_unique<LayerNormKernel>(skip, v.attr_float("epsilon", skip ? 1e-12f : 1e-5f));
}

}  // namespace

std::span<const FastKernelEntry> layer_norm_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      // From opset 1, not 17 where ONNX defines it: kiln (as ONNX Runtime) runs LayerNormalization at every
      // opset, and the optimizer's layer_norm_fusion writes it into models of any opset (ppocrv4-rec's 12).
      {"", "LayerNormalization", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node& n, const ir::Graph&, int64_t opset) { return make_layer_norm(n, opset, false); }},
      {"com.microsoft", "SkipLayerNormalization", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node& n, const ir::Graph&, int64_t opset) { return make_layer_norm(n, opset, true); }},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

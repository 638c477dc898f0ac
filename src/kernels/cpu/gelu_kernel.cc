// The GELUs: ONNX Gelu (20), com.microsoft Gelu, BiasGelu and FastGelu, on vector_kernels' gelu_f32.
#include <string>
#include <vector>

#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/vector_kernels.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// Gelu(X), FastGelu(X [, bias]), BiasGelu(A, bias): y = gelu(x + bias), the bias a row over the last dim.
class GeluKernel : public FastKernel {
 public:
  explicit GeluKernel(GeluKind kind) : kind_(kind) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0)) return false;
    const ir::Tensor& x = ctx.input(0);
    const ir::Dims& s = x.shape();
    const int64_t n = s.empty() ? 1 : s.back();
    const float* bias = nullptr;
    if (ctx.has_input(1)) {
      if (!is_f32(ctx, 1) || ctx.input(1).shape().size() != 1 || ctx.input(1).numel() != n) return false;
      bias = ctx.input(1).data<float>();
    }
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, s);
    if (x.numel() > 0) gelu_f32(kind_, x.data<float>(), bias, y.data<float>(), x.numel() / n, n);
    ctx.set_output(0, std::move(y));
    return true;
  }
  std::vector<size_t> in_place_inputs() const override { return {0}; }

 private:
  GeluKind kind_;
};

std::unique_ptr<FastKernel> make_gelu(GeluKind kind) { return std::make_unique<GeluKernel>(kind); }

// ONNX Gelu (opset 20): approximate "none" is the erf form, "tanh" the tanh form; one input, no bias.
std::unique_ptr<FastKernel> make_onnx_gelu(const ir::Node& n, const ir::Graph&, int64_t opset) {
  if (n.inputs.size() != 1) return nullptr;
  std::string approximate = ops::NodeView(n, opset).attr_string("approximate", "none");
  if (approximate == "none") return make_gelu(GeluKind::kErf);
  if (approximate == "tanh") return make_gelu(GeluKind::kTanh);
  return nullptr;  // the reference kernel refuses it with its message
}

}  // namespace

std::span<const FastKernelEntry> gelu_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"", "Gelu", 20, kLatestOpset, dtype_set({ir::DType::kFloat32}), make_onnx_gelu},
      {"com.microsoft", "Gelu", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node&, const ir::Graph&, int64_t) { return make_gelu(GeluKind::kErf); }},
      {"com.microsoft", "BiasGelu", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node&, const ir::Graph&, int64_t) { return make_gelu(GeluKind::kErf); }},
      {"com.microsoft", "FastGelu", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}),
       [](const ir::Node&, const ir::Graph&, int64_t) { return make_gelu(GeluKind::kTanh); }},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

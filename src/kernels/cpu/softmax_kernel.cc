// Softmax along the last axis, on vector_kernels' softmax_f32.
#include <algorithm>
#include <vector>

#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/vector_kernels.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// ONNX Softmax over the last axis: opset 13's per-axis softmax, or an older opset's softmax over the
// dims flattened from `axis` on, when that is the last dim alone. Other axes stay with the reference.
// (Attention fused by the optimizer has its own softmax; this serves graphs where it was not fused.)
class SoftmaxKernel : public FastKernel {
 public:
  explicit SoftmaxKernel(int64_t axis) : axis_(axis) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0)) return false;
    const ir::Tensor& x = ctx.input(0);
    const ir::Dims& s = x.shape();
    const auto rank = static_cast<int64_t>(s.size());
    if (rank == 0 || (axis_ < 0 ? axis_ + rank : axis_) != rank - 1) return false;
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, s);
    SoftmaxArgs a;
    a.rows = rows_of(s);
    a.n = s.back();
    a.x = x.data<float>();
    a.y = y.data<float>();
    if (a.rows > 0 && a.n > 0) softmax_f32(a);
    ctx.set_output(0, std::move(y));
    return true;
  }
  std::vector<size_t> in_place_inputs() const override { return {0}; }  // softmax_f32: y may be x

 private:
  int64_t axis_;
};

std::unique_ptr<FastKernel> make_softmax(const ir::Node& n, const ir::Graph&, int64_t opset) {
  return std::make_unique<SoftmaxKernel>(ops::NodeView(n, opset).attr_int("axis", opset >= 13 ? -1 : 1));
}

}  // namespace

std::span<const FastKernelEntry> softmax_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"", "Softmax", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}), make_softmax},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

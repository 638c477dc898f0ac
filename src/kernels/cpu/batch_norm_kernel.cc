// BatchNormalization in inference mode, float32, [N, C, D1, ..., Dn] (rank 2 and up): per channel
//   y = (x - mean) / sqrt(var + epsilon) * scale + B  =  x * k + (B - mean * k),  k = scale / sqrt(var + epsilon)
// k and the shift are computed in double (as the reference computes everything) and rounded to float once:
// when scale, B, mean and var are constants, once when the session is prepared; else per (n, c) plane on
// each call, from the inputs. Each plane is then one multiply-add pass the compiler vectorizes, planes
// split across the OpenMP team for large inputs.
//
// Conv -> BatchNormalization is folded into the Conv's weights by the optimizer (conv_batch_norm_folding);
// this kernel runs the BNs that remain (after a ConvTranspose, an Add, a concat, ...). Left to the
// reference: training (training_mode=1 from opset 14; before it, any of the statistics outputs read),
// spatial=0 before opset 9, parameters not one per channel or not float32, other element types.
#include <cmath>
#include <vector>

#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

// Planes below this many elements in total run on the calling thread.
constexpr int64_t kBatchNormParallelElements = 32 * 1024;

// y[0, n) = x[0, n) * k + shift.
inline void batch_norm_plane(const float* x, float* y, int64_t n, float k, float shift) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * k + shift;
}

class BatchNormKernel : public FastKernel {
 public:
  // scale / shift: one per channel, precomputed from constant parameters; empty: from the inputs per call.
  BatchNormKernel(double epsilon, std::vector<float> scale, std::vector<float> shift)
      : epsilon_(epsilon), scale_(std::move(scale)), shift_(std::move(shift)) {}

  bool run(ops::KernelContext& ctx) const override {
    for (size_t i = 1; i < ctx.num_outputs(); ++i)
      if (ctx.has_output(i)) return false;  // training statistics: the reference's
    if (!is_f32(ctx, 0)) return false;
    const ir::Tensor& x = ctx.input(0);
    const ir::Dims& s = x.shape();
    if (s.size() < 2) return false;
    const int64_t c = s[1];
    int64_t inner = 1;
    for (size_t d = 2; d < s.size(); ++d) inner *= s[d];
    const bool constant = !scale_.empty();
    if (constant) {
      if (static_cast<int64_t>(scale_.size()) != c) return false;
    } else {
      for (size_t i = 1; i <= 4; ++i)
        if (!is_f32(ctx, i) || ctx.input(i).numel() != c) return false;
    }
    if (x.numel() == 0) return false;
    const float* scale = constant ? nullptr : ctx.input(1).data<float>();
    const float* bias = constant ? nullptr : ctx.input(2).data<float>();
    const float* mean = constant ? nullptr : ctx.input(3).data<float>();
    const float* var = constant ? nullptr : ctx.input(4).data<float>();
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, s);
    const float* in = x.data<float>();
    float* out = y.data<float>();
    parallel_for_ranges(worth_threads(x.numel(), kBatchNormParallelElements), s[0] * c,
                        [&](int64_t begin, int64_t end) {
                          for (int64_t p = begin; p < end; ++p) {
                            const auto ch = static_cast<size_t>(p % c);
                            float k, shift;
                            if (constant) {
                              k = scale_[ch];
                              shift = shift_[ch];
                            } else {
                              fold(scale[ch], bias[ch], mean[ch], var[ch], epsilon_, k, shift);
                            }
                            batch_norm_plane(in + p * inner, out + p * inner, inner, k, shift);
                          }
                        });
    ctx.set_output(0, std::move(y));
    return true;
  }
  // Each element of y is written after its element of x is read, and nothing else: y may be x.
  std::vector<size_t> in_place_inputs() const override { return {0}; }

  // k = scale / sqrt(var + epsilon), shift = B - mean * k, in double as the reference, rounded once.
  static void fold(double scale, double bias, double mean, double var, double epsilon, float& k, float& shift) {
    const double kd = scale / std::sqrt(var + epsilon);
    k = static_cast<float>(kd);
    shift = static_cast<float>(bias - mean * kd);
  }

 private:
  double epsilon_;
  std::vector<float> scale_, shift_;
};

std::unique_ptr<FastKernel> make_batch_norm(const ir::Node& n, const ir::Graph& g, int64_t opset) {
  ops::NodeView v(n, opset);
  if (opset >= 14 && v.attr_int("training_mode", 0) != 0) return nullptr;
  if (opset < 9 && v.attr_int("spatial", 1) == 0) return nullptr;
  if (n.inputs.size() < 5) return nullptr;  // the reference says why
  const double epsilon = v.attr_float("epsilon", 1e-5f);
  const ir::Tensor* params[4];
  bool constant = true;
  for (size_t i = 0; i < 4; ++i) {
    params[i] = float_constant(g, n, i + 1);
    constant = constant && params[i] && params[i]->numel() == params[0]->numel();
  }
  std::vector<float> scale, shift;
  if (constant) {
    const auto c = static_cast<size_t>(params[0]->numel());
    scale.resize(c);
    shift.resize(c);
    for (size_t ch = 0; ch < c; ++ch)
      BatchNormKernel::fold(params[0]->data<float>()[ch], params[1]->data<float>()[ch], params[2]->data<float>()[ch],
                            params[3]->data<float>()[ch], epsilon, scale[ch], shift[ch]);
  }
  return std::make_unique<BatchNormKernel>(epsilon, std::move(scale), std::move(shift));
}

}  // namespace

std::span<const FastKernelEntry> batch_norm_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"", "BatchNormalization", 1, kLatestOpset, dtype_set({ir::DType::kFloat32}), make_batch_norm},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

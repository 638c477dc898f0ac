// Optimizer ops of the ai.onnx.preview.training domain: Adagrad, Adam and Momentum. Each takes the
// learning rate R and the update count T, then n tensors to optimize followed by their gradients and
// accumulators (variadic), and returns the updated tensors and accumulators. Computed in double.
//
// Gradient (autodiff of the enclosing graph) is not provided: a kernel sees only its node's inputs, not
// the graph that computes `y` from `xs`.
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/reference/common.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_training_ops(OpRegistry& r);

namespace {

const char* const kTrainingDomain = "ai.onnx.preview.training";

// Number of optimized tensors n, from 2 + groups * n inputs.
size_t tensor_count(const NodeView& node, size_t num_inputs, size_t groups, const char* layout) {
  if (num_inputs < 2 + groups || (num_inputs - 2) % groups != 0)
    node.fail("expected inputs ", layout, ", got ", num_inputs, " inputs");
  size_t n = (num_inputs - 2) / groups;
  if (node.node().outputs.size() > n * (groups - 1))
    node.fail("expected at most ", n * (groups - 1), " outputs for ", n, " optimized tensors, got ",
              node.node().outputs.size());
  return n;
}

// Output types: X_new like X, and each accumulator output like its input; all groups after the gradient.
void infer_optimizer(InferenceContext& ctx, size_t groups, const char* layout) {
  size_t n = tensor_count(ctx, ctx.num_inputs(), groups, layout);
  for (size_t i = 0; i < 2; ++i) {
    ir::DType t = ctx.input_type(i).dtype;
    if (i == 0 && t != ir::DType::kUndefined && t != ir::DType::kFloat32 && t != ir::DType::kFloat64)
      ctx.fail("R must be float or double, got ", ir::dtype_name(t));
    if (i == 1 && t != ir::DType::kUndefined && t != ir::DType::kInt64)
      ctx.fail("T must be int64, got ", ir::dtype_name(t));
  }
  for (size_t k = 0; k < n; ++k) {
    const ir::Type& x = ctx.input_type(2 + k);
    if (x.dtype != ir::DType::kUndefined && x.dtype != ir::DType::kFloat32 && x.dtype != ir::DType::kFloat64)
      ctx.fail("optimized tensors must be float or double, got ", ir::dtype_name(x.dtype));
    // Inputs after X and G are the accumulators, in the same order as the outputs after X_new.
    ctx.set_output_type(k, x);
    for (size_t g = 2; g < groups; ++g) ctx.set_output_type((g - 1) * n + k, ctx.input_type(2 + g * n + k));
  }
}

double scalar(const KernelContext& ctx, size_t i, const char* what) {
  const ir::Tensor& t = ctx.input(i);
  if (t.numel() != 1) ctx.fail(what, " must be a scalar, got shape ", ir::to_string(t.shape()));
  if (t.dtype() == ir::DType::kString || t.dtype() == ir::DType::kComplex64 || t.dtype() == ir::DType::kComplex128)
    ctx.fail(what, " must be numeric, got ", ir::dtype_name(t.dtype()));
  return t.as_double(0);
}

int64_t step_count(const KernelContext& ctx) {
  const ir::Tensor& t = ctx.input(1);
  if (!ir::is_integer(t.dtype())) ctx.fail("T must be an integer tensor, got ", ir::dtype_name(t.dtype()));
  if (t.numel() != 1) ctx.fail("T must be a scalar, got shape ", ir::to_string(t.shape()));
  return t.as_int64(0);
}

// The tensors of one optimized parameter: X, G and the accumulators, all of X's shape.
std::vector<const ir::Tensor*> group_inputs(const KernelContext& ctx, size_t n, size_t groups, size_t k) {
  std::vector<const ir::Tensor*> ts;
  for (size_t g = 0; g < groups; ++g) {
    const ir::Tensor& t = ctx.input(2 + g * n + k);
    if (!ir::is_float(t.dtype()))
      ctx.fail("input ", 2 + g * n + k, " must be a floating-point tensor, got ", ir::dtype_name(t.dtype()));
    if (g > 0 && t.shape() != ts[0]->shape())
      ctx.fail("input ", 2 + g * n + k, " has shape ", ir::to_string(t.shape()), ", expected ",
               ir::to_string(ts[0]->shape()), " like the optimized tensor");
    ts.push_back(&t);
  }
  return ts;
}

// Runs `update(values)` for each element of parameter k: values holds X, G and the accumulators on entry
// and the new X and accumulators (same slots, G's slot unused) on exit. Writes the outputs that are used.
template <class Update>
void apply_optimizer(KernelContext& ctx, size_t groups, const char* layout, Update update) {
  size_t n = tensor_count(ctx, ctx.num_inputs(), groups, layout);
  for (size_t k = 0; k < n; ++k) {
    std::vector<const ir::Tensor*> in = group_inputs(ctx, n, groups, k);
    int64_t count = in[0]->numel();
    // New values of each group, in double until stored; the gradient's slot (1) is not an output.
    std::vector<std::vector<double>> next(groups, std::vector<double>(static_cast<size_t>(count)));
    std::vector<double> v(groups);
    for (int64_t e = 0; e < count; ++e) {
      for (size_t g = 0; g < groups; ++g) v[g] = in[g]->as_double(e);
      update(v);
      for (size_t g = 0; g < groups; ++g) next[g][static_cast<size_t>(e)] = v[g];
    }
    std::vector<ir::Tensor> out(groups);
    for (size_t g = 0; g < groups; ++g) {
      if (g == 1) continue;
      out[g] = ctx.make_tensor(in[g]->dtype(), in[g]->shape());
      ir::visit_float_dtype(out[g].dtype(), [&]<class T>() {
        T* o = out[g].data<T>();
        for (int64_t e = 0; e < count; ++e) {
          double d = next[g][static_cast<size_t>(e)];
          if constexpr (std::is_same_v<T, double>)
            o[e] = d;
          else
            o[e] = T(static_cast<float>(d));
        }
      });
    }
    ctx.set_output(k, std::move(out[0]));
    for (size_t g = 2; g < groups; ++g) ctx.set_output((g - 1) * n + k, std::move(out[g]));
  }
}

constexpr const char* kAdagradLayout = "R, T, X1..Xn, G1..Gn, H1..Hn";
constexpr const char* kAdamLayout = "R, T, X1..Xn, G1..Gn, V1..Vn, H1..Hn";
constexpr const char* kMomentumLayout = "R, T, X1..Xn, G1..Gn, V1..Vn";

void run_adagrad(KernelContext& ctx) {
  double r = scalar(ctx, 0, "R");
  int64_t t = step_count(ctx);
  double decay = ctx.attr_float("decay_factor", 0.0f);
  double epsilon = ctx.attr_float("epsilon", 0.0f);
  double norm = ctx.attr_float("norm_coefficient", 0.0f);
  double rate = r / (1.0 + static_cast<double>(t) * decay);
  apply_optimizer(ctx, 3, kAdagradLayout, [&](std::vector<double>& v) {
    double& x = v[0];
    double g = norm * x + v[1];
    double& h = v[2];
    h += g * g;
    x -= rate * g / (std::sqrt(h) + epsilon);
  });
}

void run_adam(KernelContext& ctx) {
  double r = scalar(ctx, 0, "R");
  int64_t t = step_count(ctx);
  double alpha = ctx.attr_float("alpha", 0.9f);
  double beta = ctx.attr_float("beta", 0.999f);
  double epsilon = ctx.attr_float("epsilon", 0.0f);
  double norm = ctx.attr_float("norm_coefficient", 0.0f);
  double norm_post = ctx.attr_float("norm_coefficient_post", 0.0f);
  // Bias correction of the moments applies once training has started.
  double rate = r;
  if (t > 0) {
    auto td = static_cast<double>(t);
    rate = r * std::sqrt(1.0 - std::pow(beta, td)) / (1.0 - std::pow(alpha, td));
  }
  apply_optimizer(ctx, 4, kAdamLayout, [&](std::vector<double>& v) {
    double& x = v[0];
    double g = norm * x + v[1];
    double& m = v[2];
    double& h = v[3];
    m = alpha * m + (1.0 - alpha) * g;
    h = beta * h + (1.0 - beta) * g * g;
    x = (1.0 - norm_post) * (x - rate * m / (std::sqrt(h) + epsilon));
  });
}

void run_momentum(KernelContext& ctx) {
  double r = scalar(ctx, 0, "R");
  int64_t t = step_count(ctx);
  double alpha = ctx.attr_float("alpha");
  double beta = ctx.attr_float("beta");
  double norm = ctx.attr_float("norm_coefficient");
  std::string mode = ctx.attr_string("mode");
  if (mode != "standard" && mode != "nesterov") ctx.fail("mode must be standard or nesterov, got \"", mode, "\"");
  bool nesterov = mode == "nesterov";
  // The gradient's coefficient is 1 on the first update.
  double beta_t = t > 0 ? beta : 1.0;
  apply_optimizer(ctx, 3, kMomentumLayout, [&](std::vector<double>& v) {
    double& x = v[0];
    double g = norm * x + v[1];
    double& m = v[2];
    m = alpha * m + beta_t * g;
    x -= nesterov ? r * (g + alpha * m) : r * m;
  });
}

}  // namespace

void register_training_ops(OpRegistry& r) {
  r.add(OpDef{kTrainingDomain, "Adagrad", 1, kMaxOnnxOpset,
              [](InferenceContext& ctx) { infer_optimizer(ctx, 3, kAdagradLayout); }, run_adagrad});
  r.add(OpDef{kTrainingDomain, "Adam", 1, kMaxOnnxOpset,
              [](InferenceContext& ctx) { infer_optimizer(ctx, 4, kAdamLayout); }, run_adam});
  r.add(OpDef{kTrainingDomain, "Momentum", 1, kMaxOnnxOpset,
              [](InferenceContext& ctx) { infer_optimizer(ctx, 3, kMomentumLayout); }, run_momentum});
}

}  // namespace kiln::ops

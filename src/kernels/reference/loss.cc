// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (which is NLL over log_softmax(scores, axis=1)).
// Inputs are (N, C, d1, ..., dk) with targets (N, d1, ..., dk). Each target selects one class; a target
// equal to ignore_index contributes 0 with weight 0. reduction "mean" divides the weighted sum by the sum
// of the weights that were used, as the ONNX reference does.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/reference/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

template <class T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, double>)
    return v;
  else
    return T(static_cast<float>(v));
}

std::string loss_reduction(const NodeView& node) {
  std::string r = node.attr_string("reduction", "mean");
  if (r != "none" && r != "sum" && r != "mean") node.fail("reduction must be none, sum or mean, got \"", r, "\"");
  return r;
}

void infer_loss(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  const ir::Type& target = ctx.input_type(1);
  std::string reduction = loss_reduction(ctx);
  if (target.dtype != ir::DType::kInt32 && target.dtype != ir::DType::kInt64 && target.dtype != ir::DType::kUndefined)
    ctx.fail("target must be int32 or int64, got ", ir::dtype_name(target.dtype));
  if (in.shape && in.shape->rank() < 2)
    ctx.fail("input must have shape (N, C, d1, ..., dk), got rank ", in.shape->rank());
  if (in.shape && target.shape && target.shape->rank() + 1 != in.shape->rank())
    ctx.fail("target of rank ", target.shape->rank(), " does not match input of rank ", in.shape->rank(),
             ": expected rank ", in.shape->rank() - 1);
  std::optional<ir::Shape> out;
  if (reduction != "none") {
    out = ir::Shape();
  } else if (target.shape) {
    out = target.shape;
  } else if (in.shape) {
    // (N, d1, ..., dk): the input's dims without C.
    out = in.shape;
    out->dims.erase(out->dims.begin() + 1);
  }
  ctx.set_output(0, in.dtype, out);
  if (ctx.num_outputs() > 1) ctx.set_output_type(1, in);
}

// The loss from log-probabilities `logp` laid out as the (N, C, d1, ..., dk) input.
ir::Tensor nll(const KernelContext& ctx, const std::vector<double>& logp, const std::vector<int64_t>& in_shape,
               ir::DType dtype) {
  if (in_shape.size() < 2) ctx.fail("input must have shape (N, C, d1, ..., dk), got ", ir::to_string(in_shape));
  const ir::Tensor& target_t = ctx.input(1);
  if (target_t.dtype() != ir::DType::kInt32 && target_t.dtype() != ir::DType::kInt64)
    ctx.fail("target must be int32 or int64, got ", ir::dtype_name(target_t.dtype()));
  std::vector<int64_t> expected = in_shape;
  expected.erase(expected.begin() + 1);
  if (target_t.shape() != expected)
    ctx.fail("target of shape ", ir::to_string(target_t.shape()), " does not match input of shape ",
             ir::to_string(in_shape), ": expected ", ir::to_string(expected));
  std::string reduction = loss_reduction(ctx);
  std::optional<int64_t> ignore;
  if (ctx.has_attr("ignore_index")) ignore = ctx.attr_int("ignore_index");

  int64_t n = in_shape[0], c = in_shape[1];
  int64_t d = 1;
  for (size_t i = 2; i < in_shape.size(); ++i) d *= in_shape[i];
  std::vector<double> weight;
  if (ctx.has_input(2)) {
    const ir::Tensor& w = ctx.input(2);
    if (w.rank() != 1 || w.dim(0) != c)
      ctx.fail("weight must have shape [", c, "] (one per class), got ", ir::to_string(w.shape()));
    weight.resize(static_cast<size_t>(c));
    for (int64_t i = 0; i < c; ++i) weight[static_cast<size_t>(i)] = w.as_double(i);
  }

  std::vector<int64_t> target = target_t.to_int64_vector();
  std::vector<double> loss(target.size());
  double weight_sum = 0;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < d; ++k) {
      size_t i = static_cast<size_t>(b * d + k);
      int64_t t = target[i];
      if (ignore && t == *ignore) continue;  // loss and weight stay 0
      if (t < 0 || t >= c) ctx.fail("target value ", t, " is out of range for ", c, " classes");
      double w = weight.empty() ? 1.0 : weight[static_cast<size_t>(t)];
      loss[i] = -logp[static_cast<size_t>((b * c + t) * d + k)] * w;
      weight_sum += w;
    }

  if (reduction == "none") {
    ir::Tensor out = ctx.make_tensor(dtype, target_t.shape());
    ir::visit_float_dtype(dtype, [&]<class T>() {
      for (size_t i = 0; i < loss.size(); ++i) out.data<T>()[i] = from_double<T>(loss[i]);
    });
    return out;
  }
  double total = 0;
  for (double v : loss) total += v;
  // Without weights or ignore_index, weight_sum is the element count: np.mean.
  if (reduction == "mean") total /= weight_sum;
  ir::Tensor out = ctx.make_tensor(dtype, {});
  ir::visit_float_dtype(dtype, [&]<class T>() { *out.data<T>() = from_double<T>(total); });
  return out;
}

std::vector<double> to_doubles_float(const ir::Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  ir::visit_float_dtype(t.dtype(), [&]<class T>() {
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(t.data<T>()[i]);
  });
  return v;
}

void nll_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  ctx.set_output(0, nll(ctx, to_doubles_float(x), x.shape(), x.dtype()));
}

void sce_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  if (x.rank() < 2) ctx.fail("scores must have shape (N, C, d1, ..., dk), got ", ir::to_string(x.shape()));
  std::vector<double> logp = to_doubles_float(x);
  int64_t n = x.dim(0), c = x.dim(1);
  int64_t d = 1;
  for (size_t i = 2; i < x.rank(); ++i) d *= x.dim(i);
  // log_softmax over the class axis, shifted by the maximum to stay finite.
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < d; ++k) {
      auto at = [&](int64_t j) -> double& { return logp[static_cast<size_t>((b * c + j) * d + k)]; };
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < c; ++j) mx = std::max(mx, at(j));
      double sum = 0;
      for (int64_t j = 0; j < c; ++j) sum += std::exp(at(j) - mx);
      double log_sum = std::log(sum);
      for (int64_t j = 0; j < c; ++j) at(j) = at(j) - mx - log_sum;
    }
  ctx.set_output(0, nll(ctx, logp, x.shape(), x.dtype()));
  if (ctx.has_output(1)) {
    ir::Tensor lp = ctx.make_tensor(x.dtype(), x.shape());
    ir::visit_float_dtype(x.dtype(), [&]<class T>() {
      for (size_t i = 0; i < logp.size(); ++i) lp.data<T>()[i] = from_double<T>(logp[i]);
    });
    ctx.set_output(1, std::move(lp));
  }
}

}  // namespace

void register_loss_ops(OpRegistry& r) {
  r.add(OpDef{"", "NegativeLogLikelihoodLoss", 12, kMaxOnnxOpset, infer_loss, nll_kernel});
  r.add(OpDef{"", "SoftmaxCrossEntropyLoss", 12, kMaxOnnxOpset, infer_loss, sce_kernel});
}

}  // namespace kiln::ops

// Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to 2-D at `axis` (default 1) and
// the op runs over the flattened trailing dims; from 13 it runs along the single `axis` (default -1).
// Computed in double, with the row maximum subtracted so that large inputs do not overflow.
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/reference/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

enum class SoftmaxKind { kSoftmax, kLogSoftmax, kHardmax };

// The input viewed as [outer, len, inner], the op running along `len`.
struct SoftmaxPlan {
  int64_t outer = 1, len = 1, inner = 1;
};

// Validates `axis` against the rank and returns the index where the reduced span starts.
int64_t softmax_axis(const NodeView& node, int64_t rank) {
  if (node.opset() < 13) {
    int64_t axis = node.attr_int("axis", 1);
    if (axis < -rank || axis > rank) node.fail("axis ", axis, " is out of range for an input of rank ", rank);
    return axis < 0 ? axis + rank : axis;
  }
  int64_t axis = node.attr_int("axis", -1);
  if (axis < -rank || axis >= rank) node.fail("axis ", axis, " is out of range for an input of rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

SoftmaxPlan softmax_plan(const NodeView& node, const std::vector<int64_t>& shape) {
  int64_t rank = static_cast<int64_t>(shape.size());
  int64_t axis = softmax_axis(node, rank);
  SoftmaxPlan p;
  bool coerce_2d = node.opset() < 13;
  for (int64_t i = 0; i < rank; ++i) {
    int64_t d = shape[static_cast<size_t>(i)];
    if (i < axis)
      p.outer *= d;
    else if (i == axis || coerce_2d)
      p.len *= d;
    else
      p.inner *= d;
  }
  return p;
}

void infer_softmax(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (in.shape) softmax_axis(ctx, static_cast<int64_t>(in.shape->rank()));
  ctx.set_output_type(0, in);
}

template <class T>
void softmax_typed(SoftmaxKind kind, const SoftmaxPlan& p, const T* in, T* out) {
  std::vector<double> row(static_cast<size_t>(p.len));
  for (int64_t o = 0; o < p.outer; ++o) {
    for (int64_t k = 0; k < p.inner; ++k) {
      int64_t base = o * p.len * p.inner + k;
      double mx = -std::numeric_limits<double>::infinity();
      int64_t arg = 0;
      for (int64_t j = 0; j < p.len; ++j) {
        double v = static_cast<double>(in[base + j * p.inner]);
        row[static_cast<size_t>(j)] = v;
        // The first NaN counts as the maximum, as in numpy's argmax.
        if (std::isnan(mx)) continue;
        if (std::isnan(v) || v > mx) {
          mx = v;
          arg = j;
        }
      }
      if (kind == SoftmaxKind::kHardmax) {
        for (int64_t j = 0; j < p.len; ++j) out[base + j * p.inner] = T(j == arg ? 1.0f : 0.0f);
        continue;
      }
      double sum = 0;
      for (int64_t j = 0; j < p.len; ++j) sum += std::exp(row[static_cast<size_t>(j)] - mx);
      double log_sum = std::log(sum);
      for (int64_t j = 0; j < p.len; ++j) {
        double d = row[static_cast<size_t>(j)] - mx;
        double y = kind == SoftmaxKind::kSoftmax ? std::exp(d) / sum : d - log_sum;
        if constexpr (std::is_same_v<T, double>)
          out[base + j * p.inner] = y;
        else
          out[base + j * p.inner] = T(static_cast<float>(y));
      }
    }
  }
}

void softmax_kernel(KernelContext& ctx, SoftmaxKind kind) {
  const ir::Tensor& x = ctx.input(0);
  SoftmaxPlan p = softmax_plan(ctx, x.shape());
  ir::Tensor y = ctx.make_tensor(x.dtype(), x.shape());
  ir::visit_float_dtype(x.dtype(), [&]<class T>() { softmax_typed<T>(kind, p, x.data<T>(), y.data<T>()); });
  ctx.set_output(0, std::move(y));
}

}  // namespace

void register_softmax_ops(OpRegistry& r) {
  r.add(OpDef{"", "Softmax", 1, kMaxOnnxOpset, infer_softmax,
              [](KernelContext& ctx) { softmax_kernel(ctx, SoftmaxKind::kSoftmax); }});
  r.add(OpDef{"", "LogSoftmax", 1, kMaxOnnxOpset, infer_softmax,
              [](KernelContext& ctx) { softmax_kernel(ctx, SoftmaxKind::kLogSoftmax); }});
  r.add(OpDef{"", "Hardmax", 1, kMaxOnnxOpset, infer_softmax,
              [](KernelContext& ctx) { softmax_kernel(ctx, SoftmaxKind::kHardmax); }});
}

}  // namespace kiln::ops

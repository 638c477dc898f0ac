// Normalizations: LayerNormalization, RMSNormalization, BatchNormalization, InstanceNormalization, GroupNormalization,
// LpNormalization, LRN and MeanVarianceNormalization. Statistics are computed in double with two passes
// (mean, then the mean of squared deviations), which is at least as accurate as the ONNX reference's
// float32 and E[x^2] - E[x]^2 formulas; outputs are rounded once on store.
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/from_double.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

// A parameter tensor (scale, bias, mean, ...) read into doubles; any numeric type is accepted.
std::vector<double> to_doubles(const ir::Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  ir::visit_numeric_dtype(t.dtype(), [&]<class T>() {
    const T* p = t.data<T>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(p[i]);
  });
  return v;
}

// Fails unless the parameter input `i` (named `what`) holds exactly `n` values.
std::vector<double> param(const KernelContext& ctx, size_t i, const char* what, int64_t n, const char* expected) {
  const ir::Tensor& t = ctx.input(i);
  if (t.numel() != n)
    ctx.fail(what, " must have ", n, " values (", expected, "), got shape ", ir::to_string(t.shape()));
  return to_doubles(t);
}

int64_t product(const std::vector<int64_t>& shape, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to && i < shape.size(); ++i) p *= shape[i];
  return p;
}

void require_rank(const NodeView& node, size_t rank, size_t min_rank, const char* layout) {
  if (rank < min_rank) node.fail("input must have rank >= ", min_rank, " ", layout, ", got rank ", rank);
}

// Mean and population variance of `n` values read through `at(j)`.
template <class F>
std::pair<double, double> moments(int64_t n, F&& at) {
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += at(j);
  double mean = sum / static_cast<double>(n);
  double sq = 0;
  for (int64_t j = 0; j < n; ++j) {
    double d = at(j) - mean;
    sq += d * d;
  }
  return {mean, sq / static_cast<double>(n)};
}

// ---------------------------------------------------------------------------------------------------
// LayerNormalization (opset 17): normalizes over dims [axis, rank); Scale and B broadcast to X.

ir::DType stash_dtype(const NodeView& node) {
  int64_t stash = node.attr_int("stash_type", 1);
  if (!ir::dtype_is_valid(static_cast<int32_t>(stash)) || !ir::is_float(static_cast<ir::DType>(stash)))
    node.fail("stash_type ", stash, " is not a floating-point type");
  return static_cast<ir::DType>(stash);
}

void infer_layer_norm(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  ctx.set_output_type(0, x);
  ir::DType stash = stash_dtype(ctx);
  std::optional<ir::Shape> stat_shape;
  if (x.shape) {
    int64_t rank = static_cast<int64_t>(x.shape->rank());
    if (rank == 0) ctx.fail("input must have rank >= 1");
    int64_t axis = normalize_axis(ctx, ctx.attr_int("axis", -1), rank);
    stat_shape = ir::Shape();
    for (int64_t i = 0; i < rank; ++i)
      stat_shape->dims.push_back(i < axis ? x.shape->dims[static_cast<size_t>(i)] : ir::Dim(1));
  }
  if (ctx.num_outputs() > 1) ctx.set_output(1, stash, stat_shape);
  if (ctx.num_outputs() > 2) ctx.set_output(2, stash, stat_shape);
}

// Offsets of a broadcast parameter for each element of x; fails unless it broadcasts to x's shape.
std::vector<int64_t> param_offsets(const KernelContext& ctx, const ir::Tensor& p, const char* what,
                                   const std::vector<int64_t>& x_shape) {
  bool ok = p.rank() <= x_shape.size();
  for (size_t i = 0; ok && i < p.rank(); ++i) {
    int64_t d = p.dim(i), xd = x_shape[x_shape.size() - p.rank() + i];
    ok = d == xd || d == 1;
  }
  if (!ok)
    ctx.fail(what, " of shape ", ir::to_string(p.shape()), " does not broadcast to X's shape ", ir::to_string(x_shape));
  return broadcast_offsets(p.shape(), x_shape);
}

// LayerNormalization's and RMSNormalization's rows: X viewed as [outer, inner] at `axis`.
struct NormRows {
  int64_t axis = 0, outer = 1, inner = 1;
  double epsilon = 1e-5;
};

NormRows norm_rows(KernelContext& ctx, const ir::Tensor& x) {
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank == 0) ctx.fail("input must have rank >= 1");
  NormRows r;
  r.axis = normalize_axis(ctx, ctx.attr_int("axis", -1), rank);
  r.epsilon = ctx.attr_float("epsilon", 1e-5f);
  r.outer = product(x.shape(), 0, static_cast<size_t>(r.axis));
  r.inner = product(x.shape(), static_cast<size_t>(r.axis), x.rank());
  return r;
}

void layer_norm_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const auto [axis, outer, inner, epsilon] = norm_rows(ctx, x);
  ir::DType stash = stash_dtype(ctx);

  const ir::Tensor& scale_t = ctx.input(1);
  std::vector<double> scale = to_doubles(scale_t);
  std::vector<int64_t> scale_off = param_offsets(ctx, scale_t, "Scale", x.shape());
  std::vector<double> bias;
  std::vector<int64_t> bias_off;
  if (ctx.has_input(2)) {
    bias = to_doubles(ctx.input(2));
    bias_off = param_offsets(ctx, ctx.input(2), "B", x.shape());
  }

  std::vector<int64_t> stat_shape(x.shape().begin(), x.shape().begin() + axis);
  stat_shape.resize(x.rank(), 1);
  ir::Tensor y = ctx.make_tensor(x.dtype(), x.shape());
  ir::Tensor mean_t, inv_t;
  if (ctx.has_output(1)) mean_t = ctx.make_tensor(stash, stat_shape);
  if (ctx.has_output(2)) inv_t = ctx.make_tensor(stash, stat_shape);

  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      const T* row = in + o * inner;
      auto [mean, var] = moments(inner, [&](int64_t j) { return static_cast<double>(row[j]); });
      double inv = 1.0 / std::sqrt(var + epsilon);
      for (int64_t j = 0; j < inner; ++j) {
        size_t e = static_cast<size_t>(o * inner + j);
        double v = (static_cast<double>(row[j]) - mean) * inv * scale[static_cast<size_t>(scale_off[e])];
        if (!bias.empty()) v += bias[static_cast<size_t>(bias_off[e])];
        out[e] = from_double<T>(v);
      }
      ir::visit_float_dtype(stash, [&]<class U>() {
        if (mean_t.defined()) mean_t.data<U>()[o] = from_double<U>(mean);
        if (inv_t.defined()) inv_t.data<U>()[o] = from_double<U>(inv);
      });
    }
  });
  ctx.set_output(0, std::move(y));
  if (mean_t.defined()) ctx.set_output(1, std::move(mean_t));
  if (inv_t.defined()) ctx.set_output(2, std::move(inv_t));
}

// ---------------------------------------------------------------------------------------------------
// BatchNormalization. Inference: y = (x - mean) / sqrt(var + epsilon) * scale + B per channel (dim 1).
// Training (training_mode=1 from opset 14; before, when the statistics outputs are requested and, before
// opset 7, is_test is 0) normalizes with the batch statistics (population variance) and outputs the
// running statistics: running = input * momentum + batch * (1 - momentum). Before opset 14 the extra
// saved_mean / saved_var outputs are the batch mean and 1/sqrt(batch var + epsilon), as ONNX Runtime does.
// Before opset 9, spatial=0 gives per-element parameters of shape (C, D1, ..., Dn).

bool batch_norm_training(const KernelContext& ctx) {
  if (ctx.opset() >= 14) return ctx.attr_int("training_mode", 0) != 0;
  if (ctx.opset() < 7 && ctx.attr_int("is_test", 0) != 0) return false;
  for (size_t i = 1; i < ctx.num_outputs(); ++i)
    if (ctx.has_output(i)) return true;
  return false;
}

void infer_batch_norm(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  if (x.shape) require_rank(ctx, x.shape->rank(), 2, "(N x C x ...)");
  ctx.set_output_type(0, x);
  for (size_t i = 1; i < ctx.num_outputs() && i < 5; ++i) {
    // running_mean / running_var take the types of the mean / var inputs; saved_* match them.
    size_t src = (i % 2 == 1) ? 3 : 4;
    if (ctx.has_input(src)) ctx.set_output_type(i, ctx.input_type(src));
  }
}

void batch_norm_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  require_rank(ctx, x.rank(), 2, "(N x C x ...)");
  int64_t opset = ctx.opset();
  bool spatial = opset >= 9 || ctx.attr_int("spatial", 1) != 0;
  double epsilon = ctx.attr_float("epsilon", 1e-5f);
  double momentum = ctx.attr_float("momentum", 0.9f);
  bool training = batch_norm_training(ctx);

  int64_t n = x.dim(0), c = x.dim(1);
  int64_t inner = product(x.shape(), 2, x.rank());
  // Parameters are indexed per channel, or per (channel, position) when not spatial.
  int64_t groups = spatial ? c : c * inner;
  int64_t group_inner = spatial ? inner : 1;
  const char* expected = spatial ? "one per channel" : "one per element of C x D1 x ... x Dn";
  std::vector<double> scale = param(ctx, 1, "scale", groups, expected);
  std::vector<double> bias = param(ctx, 2, "B", groups, expected);
  std::vector<double> mean = param(ctx, 3, "mean", groups, expected);
  std::vector<double> var = param(ctx, 4, "var", groups, expected);

  // Element e of group g in batch b: x[b, g * group_inner + e] in the (N, groups * group_inner) view.
  int64_t row = groups * group_inner;
  std::vector<double> xd = to_doubles(x);
  auto at = [&](int64_t g, int64_t k) {  // k-th of the N * group_inner elements of group g
    int64_t b = k / group_inner, e = k % group_inner;
    return xd[static_cast<size_t>(b * row + g * group_inner + e)];
  };

  std::vector<double> use_mean = mean, use_inv(static_cast<size_t>(groups));
  std::vector<double> batch_mean, batch_var;
  if (training) {
    batch_mean.resize(static_cast<size_t>(groups));
    batch_var.resize(static_cast<size_t>(groups));
    for (int64_t g = 0; g < groups; ++g) {
      auto [m, v] = moments(n * group_inner, [&](int64_t k) { return at(g, k); });
      batch_mean[static_cast<size_t>(g)] = m;
      batch_var[static_cast<size_t>(g)] = v;
    }
    use_mean = batch_mean;
    for (int64_t g = 0; g < groups; ++g)
      use_inv[static_cast<size_t>(g)] = 1.0 / std::sqrt(batch_var[static_cast<size_t>(g)] + epsilon);
  } else {
    for (int64_t g = 0; g < groups; ++g)
      use_inv[static_cast<size_t>(g)] = 1.0 / std::sqrt(var[static_cast<size_t>(g)] + epsilon);
  }

  ir::Tensor y = ctx.make_tensor(x.dtype(), x.shape());
  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    T* out = y.data<T>();
    for (int64_t b = 0; b < n; ++b)
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t e = 0; e < group_inner; ++e) {
          size_t i = static_cast<size_t>(b * row + g * group_inner + e);
          size_t gi = static_cast<size_t>(g);
          out[i] = from_double<T>((xd[i] - use_mean[gi]) * use_inv[gi] * scale[gi] + bias[gi]);
        }
  });
  ctx.set_output(0, std::move(y));
  if (!training) return;

  // Outputs 1..4: running mean, running var, then (before opset 14) saved mean and saved inverse std.
  auto emit = [&](size_t out_index, size_t like_input, auto value_of) {
    if (!ctx.has_output(out_index)) return;
    const ir::Tensor& like = ctx.input(like_input);
    ir::Tensor t = ctx.make_tensor(like.dtype(), like.shape());
    ir::visit_float_dtype(t.dtype(), [&]<class U>() {
      for (int64_t g = 0; g < groups; ++g) t.data<U>()[g] = from_double<U>(value_of(static_cast<size_t>(g)));
    });
    ctx.set_output(out_index, std::move(t));
  };
  emit(1, 3, [&](size_t g) { return mean[g] * momentum + batch_mean[g] * (1 - momentum); });
  emit(2, 4, [&](size_t g) { return var[g] * momentum + batch_var[g] * (1 - momentum); });
  if (opset < 14) {
    emit(3, 3, [&](size_t g) { return batch_mean[g]; });
    emit(4, 4, [&](size_t g) { return 1.0 / std::sqrt(batch_var[g] + epsilon); });
  }
}

// ---------------------------------------------------------------------------------------------------
// InstanceNormalization and GroupNormalization: per-sample statistics over groups of channels (one
// channel per group for InstanceNormalization) and all spatial positions.

// x viewed as (N, C, inner); statistics per (n, group) over channels_per_group * inner elements; scale and
// bias either per channel (`per_channel`) or per group.
void grouped_norm(KernelContext& ctx, int64_t num_groups, const std::vector<double>& scale,
                  const std::vector<double>& bias, bool per_channel, double epsilon) {
  const ir::Tensor& x = ctx.input(0);
  int64_t n = x.dim(0), c = x.dim(1);
  int64_t inner = product(x.shape(), 2, x.rank());
  int64_t cpg = c / num_groups;
  int64_t span = cpg * inner;
  ir::Tensor y = ctx.make_tensor(x.dtype(), x.shape());
  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for (int64_t b = 0; b < n; ++b)
      for (int64_t g = 0; g < num_groups; ++g) {
        int64_t base = (b * num_groups + g) * span;
        auto [mean, var] = moments(span, [&](int64_t k) { return static_cast<double>(in[base + k]); });
        double inv = 1.0 / std::sqrt(var + epsilon);
        for (int64_t k = 0; k < span; ++k) {
          size_t p = static_cast<size_t>(per_channel ? g * cpg + k / inner : g);
          out[base + k] = from_double<T>((static_cast<double>(in[base + k]) - mean) * inv * scale[p] + bias[p]);
        }
      }
  });
  ctx.set_output(0, std::move(y));
}

void instance_norm_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  require_rank(ctx, x.rank(), 2, "(N x C x D1 x ...)");
  int64_t c = x.dim(1);
  std::vector<double> scale = param(ctx, 1, "scale", c, "one per channel");
  std::vector<double> bias = param(ctx, 2, "B", c, "one per channel");
  grouped_norm(ctx, c == 0 ? 1 : c, scale, bias, true, ctx.attr_float("epsilon", 1e-5f));
}

void infer_channel_norm(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  if (x.shape) require_rank(ctx, x.shape->rank(), 2, "(N x C x D1 x ...)");
  ctx.set_output_type(0, x);
}

// Opset 18 declared scale and bias per group, opset 21 per channel; both layouts are told apart by size.
void group_norm_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  require_rank(ctx, x.rank(), 2, "(N x C x D1 x ...)");
  int64_t groups = ctx.attr_int("num_groups");
  int64_t c = x.dim(1);
  if (groups <= 0) ctx.fail("num_groups must be positive, got ", groups);
  if (c % groups != 0) ctx.fail("channel count ", c, " is not divisible by num_groups ", groups);
  if (ctx.has_attr("stash_type")) stash_dtype(ctx);
  const ir::Tensor& scale_t = ctx.input(1);
  const ir::Tensor& bias_t = ctx.input(2);
  bool per_channel = scale_t.numel() == c;
  if (!per_channel && scale_t.numel() != groups)
    ctx.fail("scale must have C=", c, " values (or num_groups=", groups, " before opset 21), got shape ",
             ir::to_string(scale_t.shape()));
  if (bias_t.numel() != scale_t.numel())
    ctx.fail("bias of shape ", ir::to_string(bias_t.shape()), " does not match scale of shape ",
             ir::to_string(scale_t.shape()));
  grouped_norm(ctx, groups, to_doubles(scale_t), to_doubles(bias_t), per_channel, ctx.attr_float("epsilon", 1e-5f));
}

// ---------------------------------------------------------------------------------------------------
// LpNormalization: x / ||x||_p along `axis` (p is 1 or 2); a zero vector stays zero, as in ONNX's
// reference since 1.16 and ONNX Runtime (not 0 / 0 = NaN).

void infer_lp_norm(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  if (x.shape) {
    if (x.shape->rank() == 0) ctx.fail("input must have rank >= 1");
    normalize_axis(ctx, ctx.attr_int("axis", -1), static_cast<int64_t>(x.shape->rank()));
  }
  int64_t p = ctx.attr_int("p", 2);
  if (p != 1 && p != 2) ctx.fail("p must be 1 or 2, got ", p);
  ctx.set_output_type(0, x);
}

void lp_norm_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  int64_t rank = static_cast<int64_t>(x.rank());
  if (rank == 0) ctx.fail("input must have rank >= 1");
  int64_t axis = normalize_axis(ctx, ctx.attr_int("axis", -1), rank);
  int64_t p = ctx.attr_int("p", 2);
  if (p != 1 && p != 2) ctx.fail("p must be 1 or 2, got ", p);
  int64_t outer = product(x.shape(), 0, static_cast<size_t>(axis));
  int64_t len = x.dim(static_cast<size_t>(axis));
  int64_t inner = product(x.shape(), static_cast<size_t>(axis) + 1, x.rank());
  ir::Tensor y = ctx.make_tensor(x.dtype(), x.shape());
  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < inner; ++k) {
        int64_t base = o * len * inner + k;
        double norm = 0;
        for (int64_t j = 0; j < len; ++j) {
          double v = static_cast<double>(in[base + j * inner]);
          norm += p == 1 ? std::fabs(v) : v * v;
        }
        if (p == 2) norm = std::sqrt(norm);
        for (int64_t j = 0; j < len; ++j)
          out[base + j * inner] = from_double<T>(norm == 0 ? 0.0 : static_cast<double>(in[base + j * inner]) / norm);
      }
  });
  ctx.set_output(0, std::move(y));
}

// ---------------------------------------------------------------------------------------------------
// LRN: y = x / (bias + alpha / size * sum of x^2 over the channel window)^beta, the window spanning
// floor((size-1)/2) channels before and ceil((size-1)/2) after.

void infer_lrn(InferenceContext& ctx) {
  int64_t size = ctx.attr_int("size");
  if (size <= 0) ctx.fail("size must be positive, got ", size);
  infer_channel_norm(ctx);
}

void lrn_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  require_rank(ctx, x.rank(), 2, "(N x C x D1 x ...)");
  int64_t size = ctx.attr_int("size");
  if (size <= 0) ctx.fail("size must be positive, got ", size);
  double alpha = ctx.attr_float("alpha", 1e-4f);
  double beta = ctx.attr_float("beta", 0.75f);
  double bias = ctx.attr_float("bias", 1.0f);
  int64_t n = x.dim(0), c = x.dim(1);
  int64_t inner = product(x.shape(), 2, x.rank());
  int64_t before = (size - 1) / 2, after = size - 1 - before;
  ir::Tensor y = ctx.make_tensor(x.dtype(), x.shape());
  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for (int64_t b = 0; b < n; ++b)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t k = 0; k < inner; ++k) {
          double sq = 0;
          for (int64_t j = std::max<int64_t>(0, ch - before); j <= std::min(c - 1, ch + after); ++j) {
            double v = static_cast<double>(in[(b * c + j) * inner + k]);
            sq += v * v;
          }
          int64_t i = (b * c + ch) * inner + k;
          out[i] = from_double<T>(static_cast<double>(in[i]) /
                                  std::pow(bias + alpha / static_cast<double>(size) * sq, beta));
        }
  });
  ctx.set_output(0, std::move(y));
}

// ---------------------------------------------------------------------------------------------------
// MeanVarianceNormalization: (x - mean) / (std + 1e-9) over `axes` (default [0, 2, 3]), as its ONNX
// function body defines it.

std::vector<bool> mvn_mask(const NodeView& node, int64_t rank) {
  std::vector<int64_t> axes = node.attr_ints("axes", {0, 2, 3});
  std::vector<bool> mask(static_cast<size_t>(rank), false);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank) node.fail("axis ", a, " is out of range for an input of rank ", rank);
    size_t k = static_cast<size_t>(a < 0 ? a + rank : a);
    if (mask[k]) node.fail("axis ", a, " is repeated in axes");
    mask[k] = true;
  }
  return mask;
}

void infer_mvn(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  if (x.shape) mvn_mask(ctx, static_cast<int64_t>(x.shape->rank()));
  ctx.set_output_type(0, x);
}

void mvn_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  size_t rank = x.rank();
  std::vector<bool> mask = mvn_mask(ctx, static_cast<int64_t>(rank));
  // Group index of every element: its position with the reduced dims collapsed.
  std::vector<int64_t> group(static_cast<size_t>(x.numel()));
  int64_t groups = 1, count = 1;
  {
    std::vector<int64_t> stride(rank, 0);
    for (size_t i = rank; i-- > 0;) {
      if (mask[i]) {
        count *= x.dim(i);
      } else {
        stride[i] = groups;
        groups *= x.dim(i);
      }
    }
    std::vector<int64_t> idx(rank, 0);
    int64_t g = 0;
    for (size_t k = 0; k < group.size(); ++k) {
      group[k] = g;
      for (size_t i = rank; i-- > 0;) {
        ++idx[i];
        g += stride[i];
        if (idx[i] < x.dim(i)) break;
        g -= stride[i] * idx[i];
        idx[i] = 0;
      }
    }
  }
  std::vector<double> xd = to_doubles(x);
  std::vector<double> mean(static_cast<size_t>(groups), 0.0), sq(static_cast<size_t>(groups), 0.0);
  for (size_t k = 0; k < xd.size(); ++k) mean[static_cast<size_t>(group[k])] += xd[k];
  for (double& m : mean) m /= static_cast<double>(count);
  for (size_t k = 0; k < xd.size(); ++k) {
    double d = xd[k] - mean[static_cast<size_t>(group[k])];
    sq[static_cast<size_t>(group[k])] += d * d;
  }
  ir::Tensor y = ctx.make_tensor(x.dtype(), x.shape());
  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    T* out = y.data<T>();
    for (size_t k = 0; k < xd.size(); ++k) {
      size_t g = static_cast<size_t>(group[k]);
      double sd = std::sqrt(sq[g] / static_cast<double>(count));
      out[k] = from_double<T>((xd[k] - mean[g]) / (sd + 1e-9));
    }
  });
  ctx.set_output(0, std::move(y));
}

// ---------------------------------------------------------------------------------------------------
// RMSNormalization (opset 23): X / sqrt(mean(X^2 over dims [axis, rank)) + epsilon) * Scale, Scale
// broadcast to X.

void infer_rms_norm(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  ctx.set_output_type(0, x);
  stash_dtype(ctx);
  if (x.shape) {
    int64_t rank = static_cast<int64_t>(x.shape->rank());
    if (rank == 0) ctx.fail("input must have rank >= 1");
    normalize_axis(ctx, ctx.attr_int("axis", -1), rank);
  }
}

void rms_norm_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  const auto [axis, outer, inner, epsilon] = norm_rows(ctx, x);
  stash_dtype(ctx);
  const ir::Tensor& scale_t = ctx.input(1);
  std::vector<double> scale = to_doubles(scale_t);
  std::vector<int64_t> scale_off = param_offsets(ctx, scale_t, "Scale", x.shape());
  ir::Tensor y = ctx.make_tensor(x.dtype(), x.shape());
  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      const T* row = in + o * inner;
      double sq = 0;
      for (int64_t j = 0; j < inner; ++j) sq += static_cast<double>(row[j]) * static_cast<double>(row[j]);
      double inv = 1.0 / std::sqrt(sq / static_cast<double>(inner) + epsilon);
      for (int64_t j = 0; j < inner; ++j) {
        size_t e = static_cast<size_t>(o * inner + j);
        out[e] = from_double<T>(static_cast<double>(row[j]) * inv * scale[static_cast<size_t>(scale_off[e])]);
      }
    }
  });
  ctx.set_output(0, std::move(y));
}

}  // namespace

void register_normalization_ops(OpRegistry& r) {
  // From opset 1, not 17: ONNX Runtime registers LayerNormalization in the onnx domain as a contrib op
  // from version 1 and its optimizer writes it into older models (opset 14); the semantics are the same.
  r.add(OpDef{"", "LayerNormalization", 1, kMaxOnnxOpset, infer_layer_norm, layer_norm_kernel});
  r.add(OpDef{"", "RMSNormalization", 23, kMaxOnnxOpset, infer_rms_norm, rms_norm_kernel});
  r.add(OpDef{"", "BatchNormalization", 1, kMaxOnnxOpset, infer_batch_norm, batch_norm_kernel});
  r.add(OpDef{"", "InstanceNormalization", 1, kMaxOnnxOpset, infer_channel_norm, instance_norm_kernel});
  r.add(OpDef{"", "GroupNormalization", 18, kMaxOnnxOpset, infer_channel_norm, group_norm_kernel});
  r.add(OpDef{"", "LpNormalization", 1, kMaxOnnxOpset, infer_lp_norm, lp_norm_kernel});
  r.add(OpDef{"", "LRN", 1, kMaxOnnxOpset, infer_lrn, lrn_kernel});
  r.add(OpDef{"", "MeanVarianceNormalization", 9, kMaxOnnxOpset, infer_mvn, mvn_kernel});
}

}  // namespace kiln::ops

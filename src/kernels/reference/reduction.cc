// Reductions over axes (Reduce*) and ArgMax/ArgMin. This file also registers the rest of the
// reduction family, whose ops live in reduction_softmax.cc, normalization.cc and loss.cc.
//
// Accumulation is in double for floating inputs (and for the integer means, norms and logs, as numpy
// does), and in wrapping 64-bit integer arithmetic for integer sums and products, so that results match
// numpy's reference outputs. A reduction over an empty set gives the operation's identity: 0 for sums,
// 1 for products, -inf/+inf (or the integer type's lowest/highest) for max/min, NaN for the mean.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/from_double.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_softmax_ops(OpRegistry& r);        // reduction_softmax.cc
void register_normalization_ops(OpRegistry& r);  // normalization.cc
void register_loss_ops(OpRegistry& r);           // loss.cc

namespace {

enum class ReduceKind { kSum, kSumSquare, kL1, kL2, kLogSum, kLogSumExp, kMean, kProd, kMax, kMin };

// Axes of a reduction, from the `axes` attribute (older opsets) or the optional second input (ReduceSum
// since 13, the others since 18). nullopt when the axes input exists but its value is not known yet.
std::optional<std::vector<int64_t>> raw_reduce_axes(const NodeView& node, bool has_axes_input,
                                                    const ir::Tensor* axes_value) {
  if (has_axes_input) {
    if (node.has_attr("axes")) node.fail("axes are given both as an attribute and as an input");
    if (!axes_value) return std::nullopt;
    if (!ir::is_integer(axes_value->dtype()))
      node.fail("axes input must be int64, got ", ir::dtype_name(axes_value->dtype()));
    if (axes_value->rank() > 1) node.fail("axes input must be 1-D, got shape ", ir::to_string(axes_value->shape()));
    return axes_value->to_int64_vector();
  }
  return node.attr_ints("axes", {});
}

// Per input dim, whether it is reduced; fails on out-of-range or repeated axes.
std::vector<bool> reduced_mask(const NodeView& node, const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<bool> mask(static_cast<size_t>(rank), false);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank) node.fail("axis ", a, " is out of range for an input of rank ", rank);
    size_t k = static_cast<size_t>(a < 0 ? a + rank : a);
    if (mask[k]) node.fail("axis ", a, " is repeated in axes");
    mask[k] = true;
  }
  return mask;
}

void infer_reduce(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  bool keepdims = ctx.attr_int("keepdims", 1) != 0;
  bool noop_if_empty = ctx.attr_int("noop_with_empty_axes", 0) != 0;
  bool has_axes_input = ctx.has_input(1);
  std::optional<std::vector<int64_t>> axes = raw_reduce_axes(ctx, has_axes_input, ctx.input_value(1));
  if (!axes) {
    // Which dims are reduced is unknown: with keepdims each output dim is the input dim or 1.
    std::optional<ir::Shape> shape;
    if (keepdims && in.shape) {
      shape = ir::Shape();
      for (const ir::Dim& d : in.shape->dims)
        shape->dims.push_back(d.is_static() && d.value == 1 ? ir::Dim(1) : ir::Dim());
    }
    ctx.set_output(0, in.dtype, shape);
    return;
  }
  if (axes->empty() && noop_if_empty) {
    ctx.set_output_type(0, in);
    return;
  }
  if (axes->empty() && !keepdims) {
    ctx.set_output(0, in.dtype, ir::Shape());
    return;
  }
  if (!in.shape) {
    ctx.set_output(0, in.dtype, std::nullopt);
    return;
  }
  int64_t rank = static_cast<int64_t>(in.shape->rank());
  std::vector<bool> mask =
      axes->empty() ? std::vector<bool>(static_cast<size_t>(rank), true) : reduced_mask(ctx, *axes, rank);
  ir::Shape out;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (!mask[i])
      out.dims.push_back(in.shape->dims[i]);
    else if (keepdims)
      out.dims.emplace_back(1);
  }
  ctx.set_output(0, in.dtype, out);
}

// Calls f(input_index, output_index) for every input element in row-major order; output_index is the
// element's position in the output, where the reduced dims are collapsed.
template <class F>
void for_each_reduced(const ir::Dims& in_shape, const std::vector<bool>& reduced, F&& f) {
  size_t rank = in_shape.size();
  int64_t n = 1;
  for (int64_t d : in_shape) n *= d;
  if (n == 0) return;
  std::vector<int64_t> out_stride(rank, 0);
  int64_t s = 1;
  for (size_t i = rank; i-- > 0;) {
    if (reduced[i]) continue;
    out_stride[i] = s;
    s *= in_shape[i];
  }
  std::vector<int64_t> idx(rank, 0);
  int64_t o = 0;
  for (int64_t k = 0; k < n; ++k) {
    f(k, o);
    for (size_t i = rank; i-- > 0;) {
      ++idx[i];
      o += out_stride[i];
      if (idx[i] < in_shape[i]) break;
      o -= out_stride[i] * idx[i];
      idx[i] = 0;
    }
  }
}

template <class T>
void reduce_typed(const NodeView& node, ReduceKind kind, const ir::Tensor& x, const std::vector<bool>& reduced,
                  ir::Tensor& y) {
  const T* in = x.data<T>();
  T* out = y.data<T>();
  size_t m = static_cast<size_t>(y.numel());
  int64_t count = 1;
  for (size_t i = 0; i < reduced.size(); ++i)
    if (reduced[i]) count *= x.dim(i);

  if (kind == ReduceKind::kMax || kind == ReduceKind::kMin) {
    bool is_max = kind == ReduceKind::kMax;
    if constexpr (kIsFloatLike<T>) {
      double init = is_max ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
      std::vector<double> acc(m, init);
      // NaN propagates, as numpy's maximum/minimum do.
      for_each_reduced(x.shape(), reduced, [&](int64_t i, int64_t o) {
        double v = static_cast<double>(in[i]);
        double& a = acc[static_cast<size_t>(o)];
        if (std::isnan(a)) return;
        if (std::isnan(v) || (is_max ? v > a : v < a)) a = v;
      });
      for (size_t o = 0; o < m; ++o) out[o] = from_double<T>(acc[o]);
    } else if constexpr (std::is_same_v<T, bool>) {
      std::vector<char> acc(m, is_max ? 0 : 1);  // max is "any", min is "all"
      for_each_reduced(x.shape(), reduced, [&](int64_t i, int64_t o) {
        if (is_max)
          acc[static_cast<size_t>(o)] |= in[i] ? 1 : 0;
        else
          acc[static_cast<size_t>(o)] &= in[i] ? 1 : 0;
      });
      for (size_t o = 0; o < m; ++o) out[o] = acc[o] != 0;
    } else {
      std::vector<T> acc(m, is_max ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max());
      for_each_reduced(x.shape(), reduced, [&](int64_t i, int64_t o) {
        T& a = acc[static_cast<size_t>(o)];
        if (is_max ? in[i] > a : in[i] < a) a = in[i];
      });
      for (size_t o = 0; o < m; ++o) out[o] = acc[o];
    }
    return;
  }

  if constexpr (std::is_same_v<T, bool>) {
    node.fail("bool input is not supported by this reduction");
  } else {
    bool exact_integer = !kIsFloatLike<T> && (kind == ReduceKind::kSum || kind == ReduceKind::kSumSquare ||
                                              kind == ReduceKind::kL1 || kind == ReduceKind::kProd);
    if constexpr (!kIsFloatLike<T>) {
      if (exact_integer) {
        // Unsigned 64-bit arithmetic wraps like numpy's fixed-width integers; the final cast to T is modular.
        std::vector<uint64_t> acc(m, kind == ReduceKind::kProd ? 1 : 0);
        for_each_reduced(x.shape(), reduced, [&](int64_t i, int64_t o) {
          uint64_t v = static_cast<uint64_t>(in[i]);
          uint64_t& a = acc[static_cast<size_t>(o)];
          switch (kind) {
            case ReduceKind::kSum:
              a += v;
              break;
            case ReduceKind::kSumSquare:
              a += v * v;
              break;
            case ReduceKind::kL1:
              a += in[i] < 0 ? uint64_t{0} - v : v;
              break;
            default:
              a *= v;
              break;
          }
        });
        for (size_t o = 0; o < m; ++o) out[o] = static_cast<T>(acc[o]);
        return;
      }
    }
    std::vector<double> shift(m, 0.0);
    if (kind == ReduceKind::kLogSumExp) {
      // Subtracting the maximum keeps exp() finite for large inputs.
      std::vector<double> mx(m, -std::numeric_limits<double>::infinity());
      for_each_reduced(x.shape(), reduced, [&](int64_t i, int64_t o) {
        mx[static_cast<size_t>(o)] = std::max(mx[static_cast<size_t>(o)], static_cast<double>(in[i]));
      });
      for (size_t o = 0; o < m; ++o) shift[o] = std::isfinite(mx[o]) ? mx[o] : 0.0;
    }
    std::vector<double> acc(m, kind == ReduceKind::kProd ? 1.0 : 0.0);
    for_each_reduced(x.shape(), reduced, [&](int64_t i, int64_t o) {
      double v = static_cast<double>(in[i]);
      double& a = acc[static_cast<size_t>(o)];
      switch (kind) {
        case ReduceKind::kSumSquare:
        case ReduceKind::kL2:
          a += v * v;
          break;
        case ReduceKind::kL1:
          a += std::fabs(v);
          break;
        case ReduceKind::kLogSumExp:
          a += std::exp(v - shift[static_cast<size_t>(o)]);
          break;
        case ReduceKind::kProd:
          a *= v;
          break;
        default:
          a += v;
          break;  // sum, mean, log-sum
      }
    });
    for (size_t o = 0; o < m; ++o) {
      double a = acc[o];
      switch (kind) {
        case ReduceKind::kL2:
          a = std::sqrt(a);
          break;
        case ReduceKind::kLogSum:
          a = std::log(a);
          break;
        case ReduceKind::kLogSumExp:
          a = std::log(a) + shift[o];
          break;
        case ReduceKind::kMean:
          a = a / static_cast<double>(count);
          break;
        default:
          break;
      }
      out[o] = from_double<T>(a);
    }
  }
}

void reduce_kernel(KernelContext& ctx, ReduceKind kind) {
  const ir::Tensor& x = ctx.input(0);
  bool keepdims = ctx.attr_int("keepdims", 1) != 0;
  bool noop_if_empty = ctx.attr_int("noop_with_empty_axes", 0) != 0;
  bool has_axes_input = ctx.has_input(1);
  std::vector<int64_t> axes = *raw_reduce_axes(ctx, has_axes_input, has_axes_input ? &ctx.input(1) : nullptr);
  int64_t rank = static_cast<int64_t>(x.rank());
  if (axes.empty() && noop_if_empty) {
    ctx.set_output(0, x.clone());
    return;
  }
  std::vector<bool> reduced =
      axes.empty() ? std::vector<bool>(static_cast<size_t>(rank), true) : reduced_mask(ctx, axes, rank);
  std::vector<int64_t> out_shape;
  for (size_t i = 0; i < reduced.size(); ++i) {
    if (!reduced[i])
      out_shape.push_back(x.dim(i));
    else if (keepdims)
      out_shape.push_back(1);
  }
  ir::Tensor y = ctx.make_tensor(x.dtype(), out_shape);
  ir::visit_numeric_dtype(x.dtype(), [&]<class T>() { reduce_typed<T>(ctx, kind, x, reduced, y); });
  ctx.set_output(0, std::move(y));
}

// ArgMax / ArgMin: index of the first (or, with select_last_index, last) extreme value along one axis.
// A NaN counts as the extreme, as in numpy.
void infer_arg(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  bool keepdims = ctx.attr_int("keepdims", 1) != 0;
  if (!in.shape) {
    ctx.set_output(0, ir::DType::kInt64, std::nullopt);
    return;
  }
  int64_t rank = static_cast<int64_t>(in.shape->rank());
  if (rank == 0) ctx.fail("input must have rank >= 1");
  int64_t axis = normalize_axis(ctx, ctx.attr_int("axis", 0), rank);
  ir::Shape out;
  for (int64_t i = 0; i < rank; ++i) {
    if (i != axis)
      out.dims.push_back(in.shape->dims[static_cast<size_t>(i)]);
    else if (keepdims)
      out.dims.emplace_back(1);
  }
  ctx.set_output(0, ir::DType::kInt64, out);
}

void arg_kernel(KernelContext& ctx, bool is_max) {
  const ir::Tensor& x = ctx.input(0);
  int64_t rank = static_cast<int64_t>(x.rank());
  if (rank == 0) ctx.fail("input must have rank >= 1");
  int64_t axis = normalize_axis(ctx, ctx.attr_int("axis", 0), rank);
  bool keepdims = ctx.attr_int("keepdims", 1) != 0;
  bool last = ctx.attr_int("select_last_index", 0) != 0;
  int64_t outer = 1, len = x.dim(static_cast<size_t>(axis)), inner = 1;
  std::vector<int64_t> out_shape;
  for (int64_t i = 0; i < rank; ++i) {
    int64_t d = x.dim(static_cast<size_t>(i));
    if (i < axis) outer *= d;
    if (i > axis) inner *= d;
    if (i != axis)
      out_shape.push_back(d);
    else if (keepdims)
      out_shape.push_back(1);
  }
  ir::Tensor y = ctx.make_tensor(ir::DType::kInt64, out_shape);
  if (len == 0 && y.numel() > 0) ctx.fail("cannot take ", ctx.node().op_type, " over axis ", axis, " of size 0");
  int64_t* out = y.data<int64_t>();
  ir::visit_numeric_dtype(x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t k = 0; k < inner; ++k) {
        const T* p = in + o * len * inner + k;
        int64_t best = 0;
        for (int64_t j = 1; j < len; ++j) {
          bool better;
          if constexpr (kIsFloatLike<T>) {
            double b = static_cast<double>(p[best * inner]), v = static_cast<double>(p[j * inner]);
            if (std::isnan(b))
              better = last && std::isnan(v);
            else if (std::isnan(v))
              better = true;
            else
              better = (is_max ? v > b : v < b) || (last && v == b);
          } else {
            T b = p[best * inner], v = p[j * inner];
            better = (is_max ? v > b : v < b) || (last && v == b);
          }
          if (better) best = j;
        }
        out[o * inner + k] = best;
      }
    }
  });
  ctx.set_output(0, std::move(y));
}

}  // namespace

void register_reduction_ops(OpRegistry& r) {
  const std::pair<const char*, ReduceKind> reductions[] = {
      {"ReduceSum", ReduceKind::kSum},       {"ReduceSumSquare", ReduceKind::kSumSquare},
      {"ReduceL1", ReduceKind::kL1},         {"ReduceL2", ReduceKind::kL2},
      {"ReduceLogSum", ReduceKind::kLogSum}, {"ReduceLogSumExp", ReduceKind::kLogSumExp},
      {"ReduceMean", ReduceKind::kMean},     {"ReduceProd", ReduceKind::kProd},
      {"ReduceMax", ReduceKind::kMax},       {"ReduceMin", ReduceKind::kMin},
  };
  for (const auto& [name, kind] : reductions) {
    ReduceKind k = kind;
    r.add(OpDef{"", name, 1, kMaxOnnxOpset, infer_reduce, [k](KernelContext& ctx) { reduce_kernel(ctx, k); }});
  }
  r.add(OpDef{"", "ArgMax", 1, kMaxOnnxOpset, infer_arg, [](KernelContext& ctx) { arg_kernel(ctx, true); }});
  r.add(OpDef{"", "ArgMin", 1, kMaxOnnxOpset, infer_arg, [](KernelContext& ctx) { arg_kernel(ctx, false); }});

  register_softmax_ops(r);
  register_normalization_ops(r);
  register_loss_ops(r);
}

}  // namespace kiln::ops

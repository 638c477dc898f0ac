// Ops that change only a tensor's shape or make tensors from attributes and shapes: Reshape, Flatten,
// Squeeze, Unsqueeze, Shape, Size, Identity, Dropout (inference), Constant, ConstantOfShape, Range, EyeLike.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/reference/nn_common.h"
#include "kernels/reference/tensor_util.h"

namespace kiln::ops::tensor_detail {

namespace {

using ir::Dim;
using ir::DType;
using ir::Shape;
using ir::Tensor;

// ---- Reshape ----

std::vector<int64_t> reshape_spec(const KernelContext& ctx) {
  if (ctx.opset() < 5) return ctx.attr_ints("shape");
  return int_values(ctx, ctx.input(1), "shape");
}

bool reshape_allowzero(const NodeView& node) { return node.opset() >= 14 && node.attr_int("allowzero", 0) != 0; }

// The concrete output shape; fails with a message naming the input element count and the request.
std::vector<int64_t> reshape_target(const NodeView& node, const std::vector<int64_t>& in,
                                    const std::vector<int64_t>& spec, bool allowzero) {
  int64_t numel = Tensor::checked_numel(in);
  auto bad = [&](const auto&... why) {
    node.fail("cannot reshape ", numel, " elements into ", ir::to_string(spec), ": ", why...);
  };
  std::vector<int64_t> out(spec.size());
  int64_t infer_at = -1, known = 1;
  bool has_zero = false;
  for (size_t i = 0; i < spec.size(); ++i) {
    int64_t d = spec[i];
    if (d == -1) {
      if (infer_at >= 0) bad("more than one -1");
      infer_at = static_cast<int64_t>(i);
      continue;
    }
    if (d < -1) bad("dimension ", d, " is negative");
    if (d == 0 && !allowzero) {
      if (i >= in.size()) bad("0 at index ", i, " copies an input dimension the input (", ir::to_string(in), ") lacks");
      d = in[i];
    }
    if (spec[i] == 0) has_zero = true;
    out[i] = d;
    if (__builtin_mul_overflow(known, d, &known)) bad("the element count overflows");
  }
  if (allowzero && has_zero && infer_at >= 0) bad("with allowzero, 0 and -1 cannot both appear");
  if (infer_at >= 0) {
    if (known == 0 || numel % known != 0) bad("the input has shape ", ir::to_string(in));
    out[static_cast<size_t>(infer_at)] = numel / known;
  } else if (known != numel) {
    bad("the input has shape ", ir::to_string(in));
  }
  return out;
}

void reshape_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.set_output(0, x.reshaped(reshape_target(ctx, x.shape(), reshape_spec(ctx), reshape_allowzero(ctx))));
}

// Symbolic reshape: 0 copies the input dim (symbol included); -1 is solved when the input's dims,
// after cancelling the symbols that appear on both sides, leave a static quotient or a single symbol.
void reshape_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  std::optional<std::vector<int64_t>> spec;
  if (ctx.opset() < 5) {
    spec = ctx.attr_ints("shape");
  } else {
    check_index_dtype(ctx, ctx.input_type(1).dtype, "shape");
    spec = known_ints(ctx, 1);
  }
  if (!spec) {
    const auto& s = ctx.input_type(1).shape;
    if (s && s->rank() != 1) ctx.fail("shape must be 1-D, got rank ", s->rank());
    if (s && s->dims[0].is_static())
      ctx.set_output(0, in.dtype, Shape(std::vector<Dim>(static_cast<size_t>(s->dims[0].value))));
    else
      ctx.set_output(0, in.dtype, std::nullopt);
    return;
  }
  bool allowzero = reshape_allowzero(ctx);
  if (auto st = static_shape(in)) {
    ctx.set_output(0, in.dtype, Shape::of(reshape_target(ctx, *st, *spec, allowzero)));
    return;
  }
  Shape out;
  int64_t infer_at = -1;
  for (size_t i = 0; i < spec->size(); ++i) {
    int64_t d = (*spec)[i];
    if (d == -1) {
      if (infer_at >= 0) ctx.fail("cannot reshape into ", ir::to_string(*spec), ": more than one -1");
      infer_at = static_cast<int64_t>(i);
      out.dims.emplace_back();
    } else if (d < -1) {
      ctx.fail("cannot reshape into ", ir::to_string(*spec), ": dimension ", d, " is negative");
    } else if (d == 0 && !allowzero) {
      if (in.shape && i >= in.shape->rank())
        ctx.fail("cannot reshape into ", ir::to_string(*spec), ": 0 at index ", i, " copies a dimension the input (",
                 ir::to_string(*in.shape), ") lacks");
      out.dims.push_back(in.shape ? in.shape->dims[i] : Dim());
    } else {
      out.dims.emplace_back(d);
    }
  }
  if (infer_at >= 0 && in.shape) {
    // Cancel symbols present on both sides, then divide the static parts.
    std::vector<std::string> in_syms;
    int64_t in_static = 1, out_static = 1;
    bool ok = true;
    for (const auto& d : in.shape->dims) {
      if (d.is_static())
        ok = ok && !__builtin_mul_overflow(in_static, d.value, &in_static);
      else if (d.is_symbolic())
        in_syms.push_back(d.symbol);
      else
        ok = false;
    }
    for (size_t i = 0; i < out.rank() && ok; ++i) {
      if (static_cast<int64_t>(i) == infer_at) continue;
      const Dim& d = out.dims[i];
      if (d.is_static()) {
        ok = !__builtin_mul_overflow(out_static, d.value, &out_static);
      } else if (d.is_symbolic()) {
        auto it = std::find(in_syms.begin(), in_syms.end(), d.symbol);
        if (it == in_syms.end())
          ok = false;
        else
          in_syms.erase(it);
      } else {
        ok = false;
      }
    }
    if (ok && out_static != 0 && in_static % out_static == 0) {
      int64_t q = in_static / out_static;
      if (in_syms.empty())
        out.dims[static_cast<size_t>(infer_at)] = Dim(q);
      else if (in_syms.size() == 1 && q == 1)
        out.dims[static_cast<size_t>(infer_at)] = Dim::symbolic(in_syms[0]);
    }
  }
  ctx.set_output(0, in.dtype, out);
}

// ---- Flatten ----

int64_t flatten_axis(const NodeView& node, int64_t rank) {
  int64_t axis = node.attr_int("axis", 1);
  if (axis < -rank || axis > rank) node.fail("axis ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

void flatten_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t axis = flatten_axis(ctx, static_cast<int64_t>(x.rank()));
  int64_t outer = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.dim(static_cast<size_t>(i));
  int64_t inner = 1;
  for (size_t i = static_cast<size_t>(axis); i < x.rank(); ++i) inner *= x.dim(i);
  ctx.set_output(0, x.reshaped({outer, inner}));
}

void flatten_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (!in.shape) {
    ctx.set_output(0, in.dtype, Shape(std::vector<Dim>(2)));
    return;
  }
  const auto& d = in.shape->dims;
  auto axis = static_cast<size_t>(flatten_axis(ctx, static_cast<int64_t>(d.size())));
  ctx.set_output(0, in.dtype,
                 Shape({dim_product({d.begin(), d.begin() + static_cast<std::ptrdiff_t>(axis)}),
                        dim_product({d.begin() + static_cast<std::ptrdiff_t>(axis), d.end()})}));
}

// ---- Squeeze / Unsqueeze ----

// Axes from the attribute (opset < 13) or input 1; nullopt when not given (squeeze every 1).
std::optional<std::vector<int64_t>> squeeze_axes_kernel(const KernelContext& ctx) {
  if (ctx.opset() < 13) {
    if (!ctx.has_attr("axes")) return std::nullopt;
    return ctx.attr_ints("axes");
  }
  if (!ctx.has_input(1)) return std::nullopt;
  return int_values(ctx, ctx.input(1), "axes");
}

std::vector<int64_t> normalize_axes(const NodeView& node, const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<int64_t> out = axes;
  for (auto& a : out) a = normalize_axis(node, a, rank);
  std::vector<int64_t> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    node.fail("axes ", ir::to_string(axes), " repeat an axis");
  return out;
}

void squeeze_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  auto axes = squeeze_axes_kernel(ctx);
  std::vector<int64_t> out;
  if (!axes) {
    for (int64_t d : x.shape())
      if (d != 1) out.push_back(d);
  } else {
    std::vector<bool> drop(x.rank(), false);
    for (int64_t a : normalize_axes(ctx, *axes, static_cast<int64_t>(x.rank()))) {
      if (x.dim(static_cast<size_t>(a)) != 1)
        ctx.fail("cannot squeeze axis ", a, " of size ", x.dim(static_cast<size_t>(a)), " (input shape ",
                 ir::to_string(x.shape()), ")");
      drop[static_cast<size_t>(a)] = true;
    }
    for (size_t i = 0; i < x.rank(); ++i)
      if (!drop[i]) out.push_back(x.dim(i));
  }
  ctx.set_output(0, x.reshaped(out));
}

void squeeze_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  std::optional<std::vector<int64_t>> axes;
  bool given = false;
  if (ctx.opset() < 13) {
    given = ctx.has_attr("axes");
    if (given) axes = ctx.attr_ints("axes");
  } else if (ctx.has_input(1)) {
    given = true;
    axes = known_ints(ctx, 1);
  }
  if (!in.shape || (given && !axes)) {
    std::optional<Shape> out;
    if (in.shape && given) {
      const auto& s = ctx.input_type(1).shape;
      if (s && s->rank() == 1 && s->dims[0].is_static() && s->dims[0].value <= static_cast<int64_t>(in.shape->rank()))
        out = Shape(std::vector<Dim>(in.shape->rank() - static_cast<size_t>(s->dims[0].value)));
    }
    ctx.set_output(0, in.dtype, out);
    return;
  }
  const auto& d = in.shape->dims;
  Shape out;
  if (!given) {
    for (const auto& x : d) {
      if (!x.is_static()) {  // might be 1: the rank is not known
        ctx.set_output(0, in.dtype, std::nullopt);
        return;
      }
      if (x.value != 1) out.dims.push_back(x);
    }
  } else {
    std::vector<bool> drop(d.size(), false);
    for (int64_t a : normalize_axes(ctx, *axes, static_cast<int64_t>(d.size()))) {
      if (d[static_cast<size_t>(a)].is_static() && d[static_cast<size_t>(a)].value != 1)
        ctx.fail("cannot squeeze axis ", a, " of size ", d[static_cast<size_t>(a)].value, " (input shape ",
                 ir::to_string(*in.shape), ")");
      drop[static_cast<size_t>(a)] = true;
    }
    for (size_t i = 0; i < d.size(); ++i)
      if (!drop[i]) out.dims.push_back(d[i]);
  }
  ctx.set_output(0, in.dtype, out);
}

// Output shape of Unsqueeze over any dim type: inserts 1s at the axes of the output rank.
template <class D>
std::vector<D> unsqueeze_dims(const NodeView& node, const std::vector<D>& in, const std::vector<int64_t>& axes_in) {
  int64_t out_rank = static_cast<int64_t>(in.size() + axes_in.size());
  std::vector<bool> is_new(static_cast<size_t>(out_rank), false);
  for (int64_t a : normalize_axes(node, axes_in, out_rank)) is_new[static_cast<size_t>(a)] = true;
  std::vector<D> out;
  size_t k = 0;
  for (int64_t i = 0; i < out_rank; ++i) out.push_back(is_new[static_cast<size_t>(i)] ? D(1) : in[k++]);
  return out;
}

std::vector<int64_t> unsqueeze_axes_attr(const NodeView& node) {
  if (!node.has_attr("axes")) node.fail("missing required attribute \"axes\"");
  return node.attr_ints("axes");
}

std::vector<int64_t> unsqueeze_axes_kernel(const KernelContext& ctx) {
  if (ctx.opset() < 13) return unsqueeze_axes_attr(ctx);
  return int_values(ctx, ctx.input(1), "axes");
}

void unsqueeze_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.set_output(0, x.reshaped(unsqueeze_dims(ctx, x.shape().vec(), unsqueeze_axes_kernel(ctx))));
}

void unsqueeze_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  std::optional<std::vector<int64_t>> axes;
  std::optional<int64_t> count;
  if (ctx.opset() < 13) {
    axes = unsqueeze_axes_attr(ctx);
  } else {
    axes = known_ints(ctx, 1);
    const auto& s = ctx.input_type(1).shape;
    if (s && s->rank() == 1 && s->dims[0].is_static()) count = s->dims[0].value;
  }
  if (axes) count = static_cast<int64_t>(axes->size());
  if (!in.shape) {
    ctx.set_output(0, in.dtype, std::nullopt);
  } else if (axes) {
    ctx.set_output(0, in.dtype, Shape(unsqueeze_dims(ctx, in.shape->dims, *axes)));
  } else if (count) {
    ctx.set_output(0, in.dtype, Shape(std::vector<Dim>(in.shape->rank() + static_cast<size_t>(*count))));
  } else {
    ctx.set_output(0, in.dtype, std::nullopt);
  }
}

// ---- Shape / Size ----

std::pair<int64_t, int64_t> shape_range(const NodeView& node, int64_t rank) {
  int64_t start = 0, end = rank;
  if (node.opset() >= 15) {
    start = node.attr_int("start", 0);
    end = node.attr_int("end", rank);
  }
  auto clamp = [&](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
  start = clamp(start);
  end = std::max(clamp(end), start);
  return {start, end};
}

void shape_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  auto [start, end] = shape_range(ctx, static_cast<int64_t>(x.rank()));
  std::vector<int64_t> dims(x.shape().begin() + start, x.shape().begin() + end);
  ctx.set_output(0, Tensor::from_vector(dims, {end - start}));
}

void shape_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (!in.shape) {
    ctx.set_output(0, DType::kInt64, Shape({Dim()}));
    return;
  }
  auto [start, end] = shape_range(ctx, static_cast<int64_t>(in.shape->rank()));
  ctx.set_output(0, DType::kInt64, Shape({Dim(end - start)}));
  std::vector<int64_t> dims;
  for (int64_t i = start; i < end; ++i) {
    const Dim& d = in.shape->dims[static_cast<size_t>(i)];
    if (!d.is_static()) return;
    dims.push_back(d.value);
  }
  ctx.set_output_value(0, Tensor::from_vector(dims, {end - start}));
}

void size_kernel(KernelContext& ctx) { ctx.set_output(0, Tensor::scalar<int64_t>(ctx.input(0).numel())); }

void size_infer(InferenceContext& ctx) {
  ctx.set_output(0, DType::kInt64, Shape());
  if (auto s = static_shape(ctx.input_type(0)))
    ctx.set_output_value(0, Tensor::scalar<int64_t>(Tensor::checked_numel(*s)));
}

// ---- Identity / Dropout ----

void identity_kernel(KernelContext& ctx) { ctx.set_output_datum(0, ctx.input_datum(0)); }

void identity_infer(InferenceContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  if (const Tensor* v = ctx.input_value(0)) ctx.set_output_value(0, *v);
}

DType dropout_mask_dtype(const NodeView& node, DType in) { return node.opset() >= 10 ? DType::kBool : in; }

void dropout_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (ctx.opset() >= 12 && ctx.has_input(2)) {
    const Tensor& training = ctx.input(2);
    if (training.numel() != 1)
      ctx.fail("training_mode must hold one value, got shape ", ir::to_string(training.shape()));
    if (training.as_double(0) != 0) {
      double ratio = 0.5;
      if (ctx.has_input(1)) {
        const Tensor& r = ctx.input(1);
        if (r.numel() != 1) ctx.fail("ratio must hold one value, got shape ", ir::to_string(r.shape()));
        ratio = r.as_double(0);
      }
      if (ratio != 0) ctx.fail("training-mode Dropout is not supported (ratio ", ratio, ")");
    }
  }
  ctx.set_output(0, x);
  if (ctx.has_output(1)) {
    Tensor mask = ctx.make_tensor(dropout_mask_dtype(ctx, x.dtype()), x.shape());
    visit_numeric_dtype(mask.dtype(), [&]<class T>() {
      T* m = mask.data<T>();
      for (int64_t i = 0; i < mask.numel(); ++i) m[i] = static_cast<T>(1);
    });
    ctx.set_output(1, mask);
  }
}

void dropout_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  ctx.set_output(0, in.dtype, in.shape);
  if (ctx.has_output(1)) ctx.set_output(1, dropout_mask_dtype(ctx, in.dtype), in.shape);
}

// ---- Constant ----

Tensor constant_value(const NodeView& node) {
  if (node.has_attr("sparse_value")) node.fail("sparse_value constants are not supported");
  if (const Tensor* t = node.attr_tensor("value")) return *t;
  if (node.has_attr("value_float")) return Tensor::scalar<float>(node.attr_float("value_float"));
  if (node.has_attr("value_int")) return Tensor::scalar<int64_t>(node.attr_int("value_int"));
  if (node.has_attr("value_string")) return Tensor::scalar<std::string>(node.attr_string("value_string"));
  if (node.has_attr("value_floats")) {
    auto v = node.attr_floats("value_floats");
    return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
  }
  if (node.has_attr("value_ints")) {
    auto v = node.attr_ints("value_ints");
    return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
  }
  if (node.has_attr("value_strings")) {
    auto v = node.attr_strings("value_strings");
    return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
  }
  node.fail("Constant has none of the value attributes");
}

void constant_kernel(KernelContext& ctx) { ctx.set_output(0, constant_value(ctx)); }

void constant_infer(InferenceContext& ctx) {
  Tensor t = constant_value(ctx);
  ctx.set_output(0, t.dtype(), Shape::of(t.shape()));
  ctx.set_output_value(0, t);
}

// ---- ConstantOfShape ----

Tensor constant_of_shape_fill(const NodeView& node) {
  const Tensor* v = node.attr_tensor("value");
  if (!v) return Tensor::scalar<float>(0.0f);
  if (v->numel() != 1) node.fail("value must hold one element, got shape ", ir::to_string(v->shape()));
  return *v;
}

void constant_of_shape_kernel(KernelContext& ctx) {
  Tensor fill = constant_of_shape_fill(ctx);
  const Tensor& s = ctx.input(0);
  if (s.rank() != 1) ctx.fail("input must be 1-D, got shape ", ir::to_string(s.shape()));
  std::vector<int64_t> shape = int_values(ctx, s, "input");
  for (int64_t d : shape)
    if (d < 0) ctx.fail("shape ", ir::to_string(shape), " has a negative dimension");
  Tensor out = ctx.make_tensor(fill.dtype(), shape);
  visit_storage(fill.dtype(), [&]<class S>() {
    S value = storage<S>(fill)[0];
    S* o = storage<S>(out);
    std::fill(o, o + out.numel(), value);
  });
  ctx.set_output(0, out);
}

void constant_of_shape_infer(InferenceContext& ctx) {
  DType dtype = constant_of_shape_fill(ctx).dtype();
  if (auto v = known_ints(ctx, 0)) {
    for (int64_t d : *v)
      if (d < 0) ctx.fail("shape ", ir::to_string(*v), " has a negative dimension");
    ctx.set_output(0, dtype, Shape::of(*v));
    return;
  }
  const auto& s = ctx.input_type(0).shape;
  if (s && s->rank() != 1) ctx.fail("input must be 1-D, got rank ", s->rank());
  if (s && s->dims[0].is_static())
    ctx.set_output(0, dtype, Shape(std::vector<Dim>(static_cast<size_t>(s->dims[0].value))));
  else
    ctx.set_output(0, dtype, std::nullopt);
}

// ---- Range ----

// Opset 27 added float16 and bfloat16, computed in stash_type (float32 by default) and rounded on store.
bool range_dtype_ok(const NodeView& node, DType t) {
  if ((t == DType::kFloat16 || t == DType::kBFloat16) && node.opset() >= 27) return true;
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kInt16 || t == DType::kInt32 || t == DType::kInt64;
}

// Number of elements, computed without overflow (int128 for integers, double for floats).
int64_t range_count(const NodeView& node, const Tensor& start, const Tensor& limit, const Tensor& delta) {
  for (const Tensor* t : {&start, &limit, &delta}) {
    if (t->numel() != 1) node.fail("start, limit and delta must be scalars, got shape ", ir::to_string(t->shape()));
    if (t->dtype() != start.dtype())
      node.fail("start, limit and delta must have one type, got ", ir::dtype_name(start.dtype()), " and ",
                ir::dtype_name(t->dtype()));
  }
  if (!range_dtype_ok(node, start.dtype())) node.fail("unsupported element type ", ir::dtype_name(start.dtype()));
  constexpr double kMax = 9.2e18;
  if (ir::is_float(start.dtype())) {
    double s = start.as_double(0), l = limit.as_double(0), d = delta.as_double(0);
    if (d == 0) node.fail("delta must not be zero");
    double n = std::ceil((l - s) / d);
    if (std::isnan(n)) node.fail("start ", s, ", limit ", l, " and delta ", d, " give no element count");
    if (n > kMax) node.fail("range from ", s, " to ", l, " by ", d, " has too many elements");
    return n > 0 ? static_cast<int64_t>(n) : 0;
  }
  __int128 s = start.as_int64(0), l = limit.as_int64(0), d = delta.as_int64(0);
  if (d == 0) node.fail("delta must not be zero");
  __int128 diff = l - s;
  __int128 n = diff / d;
  if (diff % d != 0 && ((diff > 0) == (d > 0))) ++n;
  if (n <= 0) return 0;
  if (n > static_cast<__int128>(std::numeric_limits<int64_t>::max()))
    node.fail("range from ", start.as_int64(0), " to ", limit.as_int64(0), " by ", delta.as_int64(0),
              " has too many elements");
  return static_cast<int64_t>(n);
}

void range_kernel(KernelContext& ctx) {
  const Tensor &start = ctx.input(0), &limit = ctx.input(1), &delta = ctx.input(2);
  int64_t n = range_count(ctx, start, limit, delta);
  Tensor out = ctx.make_tensor(start.dtype(), {n});
  if (start.dtype() == DType::kFloat16 || start.dtype() == DType::kBFloat16) {
    const int64_t stash = ctx.attr_int("stash_type", 1);
    if (stash != 1 && stash != 11) ctx.fail("stash_type must be 1 (float) or 11 (double), got ", stash);
    std::vector<double> v(static_cast<size_t>(n));
    double s = start.as_double(0), d = delta.as_double(0);
    for (int64_t i = 0; i < n; ++i)
      v[static_cast<size_t>(i)] =
          stash == 1 ? static_cast<double>(static_cast<float>(s) + static_cast<float>(i) * static_cast<float>(d))
                     : s + static_cast<double>(i) * d;
    ops::nn::store_doubles(out, v.data());
    ctx.set_output(0, out);
    return;
  }
  visit_numeric_dtype(start.dtype(), [&]<class T>() {
    T* o = out.data<T>();
    if constexpr (std::is_floating_point_v<T>) {
      double s = start.as_double(0), d = delta.as_double(0);
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(s + static_cast<double>(i) * d);
    } else {
      int64_t s = start.as_int64(0), d = delta.as_int64(0);
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(s + i * d);  // within [start, limit): no overflow
    }
  });
  ctx.set_output(0, out);
}

void range_infer(InferenceContext& ctx) {
  DType t = ctx.input_type(0).dtype;
  for (size_t i = 1; i < 3; ++i) {
    DType u = ctx.input_type(i).dtype;
    if (t != DType::kUndefined && u != DType::kUndefined && u != t)
      ctx.fail("start, limit and delta must have one type, got ", ir::dtype_name(t), " and ", ir::dtype_name(u));
  }
  if (t != DType::kUndefined && !range_dtype_ok(ctx, t)) ctx.fail("unsupported element type ", ir::dtype_name(t));
  const Tensor *s = ctx.input_value(0), *l = ctx.input_value(1), *d = ctx.input_value(2);
  if (s && l && d)
    ctx.set_output(0, t, Shape({Dim(range_count(ctx, *s, *l, *d))}));
  else
    ctx.set_output(0, t, Shape({Dim()}));
}

// ---- EyeLike ----

DType eyelike_dtype(const NodeView& node, DType in) {
  if (!node.has_attr("dtype")) return in;
  int64_t code = node.attr_int("dtype");
  if (!ir::dtype_is_valid(static_cast<int32_t>(code))) node.fail("dtype ", code, " is not a valid element type");
  return static_cast<DType>(code);
}

void eyelike_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 2) ctx.fail("input must be 2-D, got shape ", ir::to_string(x.shape()));
  int64_t k = ctx.attr_int("k", 0);
  Tensor out = ctx.make_tensor(eyelike_dtype(ctx, x.dtype()), x.shape());
  int64_t rows = x.dim(0), cols = x.dim(1);
  visit_numeric_dtype(out.dtype(), [&]<class T>() {
    T* o = out.data<T>();
    for (int64_t i = 0; i < rows; ++i) {
      if (k > cols || k < -rows) break;  // the diagonal misses the matrix; also keeps i + k in range
      int64_t j = i + k;
      if (j >= 0 && j < cols) o[i * cols + j] = static_cast<T>(1);
    }
  });
  ctx.set_output(0, out);
}

void eyelike_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (in.shape && in.shape->rank() != 2) ctx.fail("input must be 2-D, got rank ", in.shape->rank());
  ctx.set_output(0, eyelike_dtype(ctx, in.dtype), in.shape ? in.shape : Shape(std::vector<Dim>(2)));
}

}  // namespace

void register_shape_ops(OpRegistry& r) {
  r.add(OpDef{"", "Reshape", 1, kMaxOnnxOpset, reshape_infer, reshape_kernel});
  r.add(OpDef{"", "Flatten", 1, kMaxOnnxOpset, flatten_infer, flatten_kernel});
  r.add(OpDef{"", "Squeeze", 1, kMaxOnnxOpset, squeeze_infer, squeeze_kernel});
  r.add(OpDef{"", "Unsqueeze", 1, kMaxOnnxOpset, unsqueeze_infer, unsqueeze_kernel});
  r.add(OpDef{"", "Shape", 1, kMaxOnnxOpset, shape_infer, shape_kernel});
  r.add(OpDef{"", "Size", 1, kMaxOnnxOpset, size_infer, size_kernel});
  r.add(OpDef{"", "Identity", 1, kMaxOnnxOpset, identity_infer, identity_kernel});
  r.add(OpDef{"", "Dropout", 1, kMaxOnnxOpset, dropout_infer, dropout_kernel});
  r.add(OpDef{"", "Constant", 1, kMaxOnnxOpset, constant_infer, constant_kernel});
  r.add(OpDef{"", "ConstantOfShape", 9, kMaxOnnxOpset, constant_of_shape_infer, constant_of_shape_kernel});
  r.add(OpDef{"", "Range", 11, kMaxOnnxOpset, range_infer, range_kernel});
  r.add(OpDef{"", "EyeLike", 9, kMaxOnnxOpset, eyelike_infer, eyelike_kernel});
}

}  // namespace kiln::ops::tensor_detail

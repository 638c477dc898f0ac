// Random ops: RandomNormal, RandomUniform, RandomNormalLike, RandomUniformLike, Bernoulli, Multinomial.
// With a `seed` attribute a node draws the same numbers on every run; without one each run is seeded
// from std::random_device. The generator is mt19937_64 (its output is fixed by the C++ standard) and the
// distributions are written out here, so seeded results are the same on every platform. They cannot
// match numpy's numbers, which is why the conformance cases of these ops compare shapes only.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>
#include <type_traits>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/from_double.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_random_ops(OpRegistry& r);

namespace {

class Rng {
 public:
  explicit Rng(const NodeView& node) {
    if (node.has_attr("seed")) {
      float seed = node.attr_float("seed");
      uint32_t bits;
      std::memcpy(&bits, &seed, sizeof bits);
      engine_.seed(bits);
    } else {
      std::random_device device;
      engine_.seed((static_cast<uint64_t>(device()) << 32) ^ device());
    }
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

  // Standard normal by the Box-Muller transform; 1 - u keeps the logarithm's argument in (0, 1].
  double normal() {
    double u1 = 1.0 - uniform();
    double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  std::mt19937_64 engine_;
};

ir::DType dtype_attr(const NodeView& node, ir::DType dflt) {
  if (!node.has_attr("dtype")) return dflt;
  int64_t code = node.attr_int("dtype");
  if (!ir::dtype_is_valid(static_cast<int32_t>(code))) node.fail("dtype ", code, " is not a valid type");
  return static_cast<ir::DType>(code);
}

// The output type of RandomNormal/RandomUniform(Like): a floating type, from `dtype` or else `dflt`.
ir::DType random_float_dtype(const NodeView& node, ir::DType dflt) {
  ir::DType t = dtype_attr(node, dflt);
  if (t == ir::DType::kUndefined) return t;  // inference before the input type is known
  if (!ir::is_float(t)) node.fail("output type must be a floating-point type, got ", ir::dtype_name(t));
  return t;
}

std::vector<int64_t> shape_attr(const NodeView& node) {
  std::vector<int64_t> shape = node.attr_ints("shape");
  if (!node.has_attr("shape")) node.fail("missing required attribute \"shape\"");
  for (int64_t d : shape)
    if (d < 0) node.fail("attribute shape ", ir::to_string(shape), " has a negative dimension");
  return shape;
}

enum class Dist { kNormal, kUniform };

// Parameters of the distribution from the node's attributes.
struct DistParams {
  Dist dist;
  double a, b;  // mean and scale, or low and high
};

DistParams dist_params(const NodeView& node, Dist dist) {
  if (dist == Dist::kNormal) return {dist, node.attr_float("mean", 0.0f), node.attr_float("scale", 1.0f)};
  double low = node.attr_float("low", 0.0f), high = node.attr_float("high", 1.0f);
  if (!(low <= high)) node.fail("low (", low, ") must not exceed high (", high, ")");
  return {dist, low, high};
}

void fill_random(const KernelContext& ctx, ir::Tensor& out, DistParams p) {
  Rng rng(ctx);
  ir::visit_float_dtype(out.dtype(), [&]<class T>() {
    T* o = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) {
      double v = p.dist == Dist::kNormal ? p.a + p.b * rng.normal() : p.a + (p.b - p.a) * rng.uniform();
      o[i] = from_double<T>(v);
    }
  });
}

OpDef random_op(const char* name, Dist dist) {
  auto infer = [](InferenceContext& ctx) {
    ctx.set_output(0, random_float_dtype(ctx, ir::DType::kFloat32), ir::Shape::of(shape_attr(ctx)));
  };
  auto kernel = [dist](KernelContext& ctx) {
    DistParams p = dist_params(ctx, dist);
    ir::Tensor out = ctx.make_tensor(random_float_dtype(ctx, ir::DType::kFloat32), shape_attr(ctx));
    fill_random(ctx, out, p);
    ctx.set_output(0, std::move(out));
  };
  return OpDef{"", name, 1, kMaxOnnxOpset, infer, kernel};
}

OpDef random_like_op(const char* name, Dist dist) {
  auto infer = [](InferenceContext& ctx) {
    const ir::Type& in = ctx.input_type(0);
    ctx.set_output(0, random_float_dtype(ctx, in.dtype), in.shape);
  };
  auto kernel = [dist](KernelContext& ctx) {
    const ir::Tensor& x = ctx.input(0);
    DistParams p = dist_params(ctx, dist);
    ir::Tensor out = ctx.make_tensor(random_float_dtype(ctx, x.dtype()), x.shape());
    fill_random(ctx, out, p);
    ctx.set_output(0, std::move(out));
  };
  return OpDef{"", name, 1, kMaxOnnxOpset, infer, kernel};
}

// Bernoulli: each output element is 1 with the probability given by the input element.

ir::DType bernoulli_dtype(const NodeView& node, ir::DType input) {
  ir::DType t = dtype_attr(node, input);
  if (t == ir::DType::kUndefined) return t;
  if (!ir::is_float(t) && !ir::is_integer(t) && t != ir::DType::kBool)
    node.fail("output type must be numeric or bool, got ", ir::dtype_name(t));
  return t;
}

void infer_bernoulli(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (in.dtype != ir::DType::kUndefined && !ir::is_float(in.dtype))
    ctx.fail("input must be a floating-point tensor of probabilities, got ", ir::dtype_name(in.dtype));
  ctx.set_output(0, bernoulli_dtype(ctx, in.dtype), in.shape);
}

void run_bernoulli(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  if (!ir::is_float(x.dtype()))
    ctx.fail("input must be a floating-point tensor of probabilities, got ", ir::dtype_name(x.dtype()));
  ir::Tensor out = ctx.make_tensor(bernoulli_dtype(ctx, x.dtype()), x.shape());
  Rng rng(ctx);
  ir::visit_numeric_dtype(out.dtype(), [&]<class T>() {
    T* o = out.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double p = x.as_double(i);
      if (std::isnan(p) || p < 0 || p > 1) ctx.fail("probability ", p, " at index ", i, " is outside [0, 1]");
      o[i] = from_double<T>(rng.uniform() < p ? 1.0 : 0.0);
    }
  });
  ctx.set_output(0, std::move(out));
}

// Multinomial: sample_size class indices per batch row, drawn from the softmax of the row's logits.

ir::DType multinomial_dtype(const NodeView& node) {
  ir::DType t = dtype_attr(node, ir::DType::kInt32);
  if (t != ir::DType::kInt32 && t != ir::DType::kInt64)
    node.fail("dtype must be int32 or int64, got ", ir::dtype_name(t));
  return t;
}

int64_t sample_size_attr(const NodeView& node) {
  int64_t n = node.attr_int("sample_size", 1);
  if (n < 1) node.fail("sample_size must be positive, got ", n);
  return n;
}

void infer_multinomial(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (in.dtype != ir::DType::kUndefined && !ir::is_float(in.dtype))
    ctx.fail("input must be a floating-point tensor of logits, got ", ir::dtype_name(in.dtype));
  ir::DType t = multinomial_dtype(ctx);
  int64_t n = sample_size_attr(ctx);
  ir::Dim batch;
  if (in.shape) {
    if (in.shape->rank() != 2) ctx.fail("input must have shape [batch_size, class_size], got rank ", in.shape->rank());
    batch = (*in.shape)[0];
  }
  ctx.set_output(0, t, ir::Shape(std::vector<ir::Dim>{batch, ir::Dim(n)}));
}

void run_multinomial(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  if (!ir::is_float(x.dtype()))
    ctx.fail("input must be a floating-point tensor of logits, got ", ir::dtype_name(x.dtype()));
  if (x.rank() != 2) ctx.fail("input must have shape [batch_size, class_size], got ", ir::to_string(x.shape()));
  ir::DType t = multinomial_dtype(ctx);
  int64_t n = sample_size_attr(ctx);
  int64_t batch = x.dim(0), classes = x.dim(1);
  ir::Tensor out = ctx.make_tensor(t, {batch, n});
  if (batch > 0 && classes == 0) ctx.fail("cannot sample from zero classes");
  Rng rng(ctx);
  std::vector<double> cdf(static_cast<size_t>(classes));
  for (int64_t b = 0; b < batch; ++b) {
    double max_logit = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < classes; ++c) max_logit = std::max(max_logit, x.as_double(b * classes + c));
    if (!std::isfinite(max_logit)) ctx.fail("row ", b, " has no finite maximum logit");
    double total = 0;
    for (int64_t c = 0; c < classes; ++c) {
      double v = x.as_double(b * classes + c);
      if (std::isnan(v)) ctx.fail("row ", b, " has a NaN logit");
      total += std::exp(v - max_logit);
      cdf[static_cast<size_t>(c)] = total;
    }
    for (int64_t s = 0; s < n; ++s) {
      double u = rng.uniform() * total;
      int64_t c = static_cast<int64_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
      if (c >= classes) c = classes - 1;  // u == total only through rounding
      if (t == ir::DType::kInt32)
        out.data<int32_t>()[b * n + s] = static_cast<int32_t>(c);
      else
        out.data<int64_t>()[b * n + s] = c;
    }
  }
  ctx.set_output(0, std::move(out));
}

}  // namespace

void register_random_ops(OpRegistry& r) {
  r.add(random_op("RandomNormal", Dist::kNormal));
  r.add(random_op("RandomUniform", Dist::kUniform));
  r.add(random_like_op("RandomNormalLike", Dist::kNormal));
  r.add(random_like_op("RandomUniformLike", Dist::kUniform));
  r.add(OpDef{"", "Bernoulli", 15, kMaxOnnxOpset, infer_bernoulli, run_bernoulli});
  r.add(OpDef{"", "Multinomial", 7, kMaxOnnxOpset, infer_multinomial, run_multinomial});
}

}  // namespace kiln::ops

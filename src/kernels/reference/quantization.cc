// Reference kernels for the quantization ops: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
// MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv; and ONNX Runtime's
// com.microsoft.DynamicQuantizeMatMul, which its quantize_dynamic models run as, and
// com.microsoft.MatMulIntegerToFloat, which kiln runs quantize_static's QDQ products as.
//
// Numerics follow ONNX's reference implementation (onnx.reference), including where it rounds: integer
// products are exact (int64) and wrap to int32 where ONNX accumulates in int32; float intermediates are
// rounded to the type numpy would use, because a one-ulp difference before rounding to an integer can
// change the quantized result. Rounding is always half to even.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "ir/narrow_types.h"
#include "kernels/reference/common.h"
#include "kernels/reference/dynamic_quantization.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

using ir::DType;
using ir::Tensor;

double round_half_even(double v) {
  double r = std::round(v);  // half away from zero
  if (std::fabs(v - std::trunc(v)) == 0.5) r = 2.0 * std::round(v / 2.0);
  return r;
}

// Clamps an integral value into Q's range; NaN (undefined in ONNX) becomes 0.
template <class Q>
Q saturate(double v) {
  if (std::isnan(v)) return Q(0);
  v = std::clamp(v, static_cast<double>(std::numeric_limits<Q>::min()),
                 static_cast<double>(std::numeric_limits<Q>::max()));
  return static_cast<Q>(v);
}

// Rounds a float to a 16-bit float type, as numpy does when both operands have that type.
float round_to(DType t, float f) {
  if (t == DType::kFloat16) return Float16(f);
  if (t == DType::kBFloat16) return BFloat16(f);
  return f;
}

// Product of v[begin:].
int64_t product(const std::vector<int64_t>& v, size_t begin = 0) {
  int64_t n = 1;
  for (auto it = v.begin() + static_cast<std::ptrdiff_t>(std::min(begin, v.size())); it != v.end(); ++it) n *= *it;
  return n;
}

std::vector<double> values_as_double(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  if (ir::is_narrow(t.dtype())) {
    for (size_t i = 0; i < v.size(); ++i) v[i] = t.as_double(static_cast<int64_t>(i));
    return v;
  }
  ir::visit_numeric_dtype(t.dtype(), [&]<class T>() {
    const T* p = t.data<T>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(p[i]);
  });
  return v;
}

const Tensor* optional_input(const KernelContext& ctx, size_t i) { return ctx.has_input(i) ? &ctx.input(i) : nullptr; }

// The types kiln quantizes to: ONNX's, 8- and 16-bit integers, the 4- and 2-bit integers, float8 (not
// e8m0, a scale type) and float4e2m1.
void check_quantized_type(const NodeView& ctx, int64_t code, const char* what) {
  switch (code) {
    case static_cast<int64_t>(DType::kUInt8):
    case static_cast<int64_t>(DType::kInt8):
    case static_cast<int64_t>(DType::kUInt16):
    case static_cast<int64_t>(DType::kInt16):
    case static_cast<int64_t>(DType::kUInt4):
    case static_cast<int64_t>(DType::kInt4):
    case static_cast<int64_t>(DType::kUInt2):
    case static_cast<int64_t>(DType::kInt2):
    case static_cast<int64_t>(DType::kFloat8E4M3FN):
    case static_cast<int64_t>(DType::kFloat8E4M3FNUZ):
    case static_cast<int64_t>(DType::kFloat8E5M2):
    case static_cast<int64_t>(DType::kFloat8E5M2FNUZ):
    case static_cast<int64_t>(DType::kFloat4E2M1):
      return;
    default:
      ctx.fail(what, " has type ", ir::onnx_type_code_name(code),
               ", expected an 8/16/4/2-bit integer, float8 (not e8m0) or float4e2m1 type");
  }
}

template <class F>
void visit_quantized(const NodeView& ctx, DType t, const char* what, F&& f) {
  switch (t) {
    case DType::kUInt8:
      return f.template operator()<uint8_t>();
    case DType::kInt8:
      return f.template operator()<int8_t>();
    case DType::kUInt16:
      return f.template operator()<uint16_t>();
    case DType::kInt16:
      return f.template operator()<int16_t>();
    default:
      check_quantized_type(ctx, static_cast<int64_t>(t), what);
  }
}

// 8-bit operands of the integer matmul and conv ops.
void check_8bit(const NodeView& ctx, DType t, const char* what) {
  if (t != DType::kUInt8 && t != DType::kInt8) ctx.fail(what, " must be uint8 or int8, got ", ir::dtype_name(t));
}

void check_same_type(const NodeView& ctx, DType zp, DType x, const char* zp_name, const char* x_name) {
  if (zp != x)
    ctx.fail(zp_name, " has type ", ir::dtype_name(zp), " but ", x_name, " has type ", ir::dtype_name(x),
             "; they must match");
}

// ---------------------------------------------------------------------------------------------------------
// QuantizeLinear / DequantizeLinear: scale and zero point per tensor, per axis (opset 13) or per block (21).

// Maps an element index of x to the index of its scale or zero point.
struct AxisParam {
  bool per_tensor = true;
  int64_t axis_dim = 1;
  int64_t inner = 1;
  int64_t block = 0;  // 0: one value per index along the axis
  int64_t blocks = 1;

  int64_t index(int64_t i) const {
    if (per_tensor) return 0;
    int64_t in = i % inner;
    int64_t rest = i / inner;
    int64_t a = rest % axis_dim;
    if (block == 0) return a;
    int64_t outer = rest / axis_dim;
    return (outer * blocks + a / block) * inner + in;
  }
};

AxisParam axis_param(const NodeView& ctx, const char* what, const std::vector<int64_t>& x_shape, const Tensor& p,
                     int64_t axis, int64_t block_size) {
  AxisParam m;
  // One value is per-tensor whatever its rank, as in ONNX's reference.
  if (p.numel() == 1) return m;
  int64_t rank = static_cast<int64_t>(x_shape.size());
  if (rank == 0)
    ctx.fail(what, " of shape ", ir::to_string(p.shape()), " has ", p.numel(), " values but x is a scalar");
  int64_t ax = normalize_axis(ctx, axis, rank);
  m.per_tensor = false;
  m.axis_dim = x_shape[static_cast<size_t>(ax)];
  m.inner = product(x_shape, static_cast<size_t>(ax) + 1);
  if (block_size == 0) {
    if (p.rank() != 1)
      ctx.fail(what, " must be a scalar or a 1-D tensor for per-axis quantization, got shape ",
               ir::to_string(p.shape()), " (blocked quantization needs opset 21 and the block_size attribute)");
    if (p.dim(0) != m.axis_dim)
      ctx.fail(what, " has ", p.dim(0), " values but x ", ir::to_string(x_shape), " has ", m.axis_dim, " along axis ",
               ax);
    return m;
  }
  if (block_size < 0) ctx.fail("block_size must be positive, got ", block_size);
  if (static_cast<int64_t>(p.rank()) != rank)
    ctx.fail(what, " of shape ", ir::to_string(p.shape()), " must have the rank of x ", ir::to_string(x_shape),
             " for blocked quantization");
  m.block = block_size;
  m.blocks = m.axis_dim / block_size + (m.axis_dim % block_size != 0 ? 1 : 0);
  for (int64_t d = 0; d < rank; ++d) {
    int64_t want = d == ax ? m.blocks : x_shape[static_cast<size_t>(d)];
    if (p.dim(static_cast<size_t>(d)) != want)
      ctx.fail(what, " of shape ", ir::to_string(p.shape()), " does not fit x ", ir::to_string(x_shape),
               " with block_size ", block_size, " along axis ", ax, ": dim ", d, " should be ", want);
  }
  return m;
}

int64_t quant_axis(const NodeView& ctx) { return ctx.opset() >= 13 ? ctx.attr_int("axis", 1) : 1; }
int64_t quant_block_size(const NodeView& ctx) { return ctx.opset() >= 21 ? ctx.attr_int("block_size", 0) : 0; }

// QuantizeLinear's output type: the zero point's, else output_dtype (opset 21), else uint8.
DType quantize_output_type(const NodeView& ctx, std::optional<DType> zero_point_type) {
  int64_t code = ctx.opset() >= 21 ? ctx.attr_int("output_dtype", 0) : 0;
  if (zero_point_type) {
    if (code != 0 && code != static_cast<int64_t>(*zero_point_type))
      ctx.fail("output_dtype ", ir::onnx_type_code_name(code), " differs from the zero point's type ",
               ir::dtype_name(*zero_point_type));
    code = static_cast<int64_t>(*zero_point_type);
  }
  if (code == 0) code = static_cast<int64_t>(DType::kUInt8);
  check_quantized_type(ctx, code, "the quantized output");
  return static_cast<DType>(code);
}

void infer_quantize_linear(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  std::optional<DType> zp;
  if (ctx.has_input(2)) zp = ctx.input_type(2).dtype;
  ctx.set_output(0, quantize_output_type(ctx, zp), x.shape);
}

void quantize_linear(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor* zp = optional_input(ctx, 2);
  DType xt = x.dtype();
  if (!ir::is_float(xt) && xt != DType::kInt32)
    ctx.fail("x must be float, float16, bfloat16, double or int32, got ", ir::dtype_name(xt));
  if (!ir::is_float(scale.dtype())) ctx.fail("y_scale must be a float tensor, got ", ir::dtype_name(scale.dtype()));
  DType out_type = quantize_output_type(ctx, zp ? std::optional<DType>(zp->dtype()) : std::nullopt);
  int64_t axis = quant_axis(ctx), block = quant_block_size(ctx);
  AxisParam sm = axis_param(ctx, "y_scale", x.shape(), scale, axis, block);
  AxisParam zm;
  std::vector<int64_t> zps{0};
  if (zp) {
    zm = axis_param(ctx, "y_zero_point", x.shape(), *zp, axis, block);
    zps = zp->to_int64_vector();
  }
  std::vector<double> xs = values_as_double(x), ss = values_as_double(scale);
  // numpy divides in float32 unless an operand is wider, and in float16 when both are float16; opset 23's
  // `precision` names the type both are cast to first.
  bool wide = xt == DType::kFloat64 || xt == DType::kInt32 || scale.dtype() == DType::kFloat64;
  DType narrow = xt == scale.dtype() ? xt : DType::kFloat32;
  if (int64_t precision = ctx.opset() >= 23 ? ctx.attr_int("precision", 0) : 0; precision != 0) {
    const auto p = static_cast<DType>(precision);
    if (p != DType::kFloat32 && p != DType::kFloat16 && p != DType::kBFloat16 && p != DType::kFloat64)
      ctx.fail("precision must be float, float16, bfloat16 or double, got ", ir::onnx_type_code_name(precision));
    wide = p == DType::kFloat64;
    narrow = p;
  }
  Tensor y = ctx.make_tensor(out_type, x.shape());
  auto quotient = [&](int64_t i) {
    double xv = xs[static_cast<size_t>(i)], sv = ss[static_cast<size_t>(sm.index(i))];
    return wide ? xv / sv
                : static_cast<double>(round_to(
                      narrow, round_to(narrow, static_cast<float>(xv)) / round_to(narrow, static_cast<float>(sv))));
  };
  if (ir::is_narrow_integer(out_type)) {
    const auto lo = static_cast<double>(ir::narrow_int_min(out_type));
    const auto hi = static_cast<double>(ir::narrow_int_max(out_type));
    auto* out = static_cast<uint8_t*>(y.raw());
    for (int64_t i = 0; i < x.numel(); ++i) {
      double v = round_half_even(quotient(i)) + static_cast<double>(zps[static_cast<size_t>(zm.index(i))]);
      out[i] = ir::narrow_int_from_int64(out_type, std::isnan(v) ? 0 : static_cast<int64_t>(std::clamp(v, lo, hi)));
    }
    ctx.set_output(0, std::move(y));
    return;
  }
  if (ir::is_narrow_float(out_type)) {
    // float8: x / scale, converted (the zero point is zero); float4e2m1: plus the zero point's value.
    const bool saturate = ctx.opset() < 19 || ctx.attr_int("saturate", 1) != 0;
    std::vector<double> zvals = zp && out_type == DType::kFloat4E2M1 ? values_as_double(*zp) : std::vector<double>{0};
    if (zvals.size() == 1) zm = AxisParam();
    auto* out = static_cast<uint8_t*>(y.raw());
    for (int64_t i = 0; i < x.numel(); ++i) {
      double q = quotient(i), z = zvals[static_cast<size_t>(zm.index(i))];
      if (z != 0) q = wide ? q + z : static_cast<double>(static_cast<float>(q) + static_cast<float>(z));
      out[i] = ir::narrow_float_from_double(out_type, q, saturate);
    }
    ctx.set_output(0, std::move(y));
    return;
  }
  visit_quantized(ctx, out_type, "the quantized output", [&]<class Q>() {
    Q* out = y.data<Q>();
    for (int64_t i = 0; i < x.numel(); ++i)
      out[i] = saturate<Q>(round_half_even(quotient(i)) + static_cast<double>(zps[static_cast<size_t>(zm.index(i))]));
  });
  ctx.set_output(0, std::move(y));
}

void check_dequantize_input(const NodeView& ctx, DType t) {
  if (t == DType::kInt32) return;
  check_quantized_type(ctx, static_cast<int64_t>(t), "x");
}

// DequantizeLinear's output type: x_scale's, unless opset 23's output_dtype names another float type.
DType dequantize_output_type(const NodeView& ctx, DType scale) {
  if (!ir::is_float(scale)) ctx.fail("x_scale must be a float tensor, got ", ir::dtype_name(scale));
  const int64_t code = ctx.opset() >= 23 ? ctx.attr_int("output_dtype", 0) : 0;
  if (code == 0) return scale;
  const auto out = static_cast<DType>(code);
  if (out != DType::kFloat32 && out != DType::kFloat16 && out != DType::kBFloat16 && out != DType::kFloat64)
    ctx.fail("output_dtype must be float, float16, bfloat16 or double, got ", ir::onnx_type_code_name(code));
  return out;
}

void infer_dequantize_linear(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  check_dequantize_input(ctx, x.dtype);
  if (ctx.has_input(2)) check_same_type(ctx, ctx.input_type(2).dtype, x.dtype, "x_zero_point", "x");
  ctx.set_output(0, dequantize_output_type(ctx, ctx.input_type(1).dtype), x.shape);
}

void dequantize_linear(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor* zp = optional_input(ctx, 2);
  check_dequantize_input(ctx, x.dtype());
  const DType out_type = dequantize_output_type(ctx, scale.dtype());
  int64_t axis = quant_axis(ctx), block = quant_block_size(ctx);
  AxisParam sm = axis_param(ctx, "x_scale", x.shape(), scale, axis, block);
  AxisParam zm;
  std::vector<int64_t> zps{0};
  // A float8 or float4 zero point is zero (ONNX's reference ignores it).
  if (zp) {
    check_same_type(ctx, zp->dtype(), x.dtype(), "x_zero_point", "x");
    if (!ir::is_narrow_float(x.dtype())) {
      zm = axis_param(ctx, "x_zero_point", x.shape(), *zp, axis, block);
      zps = zp->to_int64_vector();
    }
  }
  std::vector<double> xs = values_as_double(x), ss = values_as_double(scale);
  // ONNX's reference casts x to float32 first; int32 minus an int32 zero point then goes to float64.
  bool wide = scale.dtype() == DType::kFloat64 || (x.dtype() == DType::kInt32 && zp);
  // Computed as in x_scale's type (above), then converted to the output type, as ONNX's reference does.
  Tensor y = ctx.make_tensor(out_type, x.shape());
  ir::visit_float_dtype(out_type, [&]<class T>() {
    T* out = y.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double dx = static_cast<double>(static_cast<float>(xs[static_cast<size_t>(i)])) -
                  static_cast<double>(zps[static_cast<size_t>(zm.index(i))]);
      double sv = ss[static_cast<size_t>(sm.index(i))];
      double v = wide ? dx * sv : static_cast<double>(static_cast<float>(dx) * static_cast<float>(sv));
      out[i] = static_cast<T>(v);
    }
  });
  ctx.set_output(0, std::move(y));
}

// ---------------------------------------------------------------------------------------------------------
// DynamicQuantizeLinear: uint8 with scale and zero point from the data's range (extended to include 0).

void infer_dynamic_quantize_linear(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  if (!ir::is_float(x.dtype)) ctx.fail("x must be a float tensor, got ", ir::dtype_name(x.dtype));
  ctx.set_output(0, DType::kUInt8, x.shape);
  ctx.set_output(1, x.dtype, ir::Shape());
  ctx.set_output(2, DType::kUInt8, ir::Shape());
}

void dynamic_quantize_linear(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ir::visit_float_dtype(x.dtype(), [&]<class T>() {
    const T* xs = x.data<T>();
    float maxx = 0, minx = 0;  // NaNs are skipped by these comparisons
    for (int64_t i = 0; i < x.numel(); ++i) {
      float v = static_cast<float>(xs[i]);
      if (v > maxx) maxx = v;
      if (v < minx) minx = v;
    }
    const DynamicQuantization params = dynamic_quantization(minx, maxx);
    const float scale = params.scale;
    const double zpi = params.zero_point;
    Tensor y = ctx.make_tensor(DType::kUInt8, x.shape());
    uint8_t* out = y.data<uint8_t>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      if constexpr (std::is_same_v<T, double>) {
        out[i] = saturate<uint8_t>(round_half_even(xs[i] / static_cast<double>(scale)) + zpi);
      } else {
        out[i] = quantize_u8(static_cast<float>(xs[i]), params);  // float32 division, as ONNX's reference
      }
    }
    ctx.set_output(0, std::move(y));
    if (ctx.has_output(1)) ctx.set_output(1, Tensor::scalar<T>(static_cast<T>(scale)));
    if (ctx.has_output(2)) ctx.set_output(2, Tensor::scalar<uint8_t>(static_cast<uint8_t>(zpi)));
  });
}

// ---------------------------------------------------------------------------------------------------------
// Integer matmul (MatMulInteger, QLinearMatMul), numpy-style: 1-D operands are promoted and batch dims
// broadcast.

struct MatMulPlan {
  std::vector<int64_t> a_shape, b_shape;  // promoted to rank >= 2
  std::vector<int64_t> out_shape;         // numpy's result shape, promoted dims removed
  int64_t m = 0, k = 0, n = 0;
  std::vector<int64_t> a_mat, b_mat;  // per output matrix, the matrix index within A and B
};

MatMulPlan plan_matmul(const NodeView& ctx, std::vector<int64_t> a, std::vector<int64_t> b) {
  if (a.empty() || b.empty())
    ctx.fail("matmul operands must have rank >= 1, got ", ir::to_string(a), " and ", ir::to_string(b));
  MatMulPlan p;
  bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec) a.insert(a.begin(), 1);
  if (b_vec) b.push_back(1);
  p.m = a[a.size() - 2];
  p.k = a.back();
  p.n = b.back();
  if (b[b.size() - 2] != p.k)
    ctx.fail("cannot multiply A ", ir::to_string(a), " by B ", ir::to_string(b), ": inner dimensions differ");
  std::vector<int64_t> ab(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  std::vector<int64_t> batch = broadcast_shapes(ctx, {ab, bb});
  p.a_mat = broadcast_offsets(ab, batch);
  p.b_mat = broadcast_offsets(bb, batch);
  p.out_shape = batch;
  if (!a_vec) p.out_shape.push_back(p.m);
  if (!b_vec) p.out_shape.push_back(p.n);
  p.a_shape = std::move(a);
  p.b_shape = std::move(b);
  return p;
}

std::optional<ir::Shape> infer_matmul_shape(const NodeView& ctx, const ir::Type& a, const ir::Type& b) {
  if (!a.shape || !b.shape) return std::nullopt;
  std::vector<ir::Dim> ad = a.shape->dims, bd = b.shape->dims;
  if (ad.empty() || bd.empty()) ctx.fail("matmul operands must have rank >= 1");
  bool a_vec = ad.size() == 1, b_vec = bd.size() == 1;
  if (a_vec) ad.insert(ad.begin(), ir::Dim(1));
  if (b_vec) bd.push_back(ir::Dim(1));
  const ir::Dim& ka = ad.back();
  const ir::Dim& kb = bd[bd.size() - 2];
  if (ka.is_static() && kb.is_static() && ka.value != kb.value)
    ctx.fail("cannot multiply A ", ir::to_string(*a.shape), " by B ", ir::to_string(*b.shape),
             ": inner dimensions differ");
  std::optional<ir::Shape> batch = broadcast_shapes(ctx, {ir::Shape(std::vector<ir::Dim>(ad.begin(), ad.end() - 2)),
                                                          ir::Shape(std::vector<ir::Dim>(bd.begin(), bd.end() - 2))});
  ir::Shape out = *batch;
  if (!a_vec) out.dims.push_back(ad[ad.size() - 2]);
  if (!b_vec) out.dims.push_back(bd.back());
  return out;
}

// Offsets into a scale or zero point for every element of `target`. A single value is per-tensor; other
// shapes must broadcast (numpy-style) to target without growing it.
std::vector<int64_t> param_offsets(const NodeView& ctx, const char* what, const Tensor& p, std::vector<int64_t> p_shape,
                                   const std::vector<int64_t>& target, const char* expected) {
  if (p.numel() == 1) p_shape.clear();
  bool fits = p_shape.size() <= target.size();
  for (size_t i = 0; fits && i < p_shape.size(); ++i) {
    int64_t t = target[target.size() - p_shape.size() + i];
    fits = p_shape[i] == 1 || p_shape[i] == t;
  }
  if (!fits) ctx.fail(what, " of shape ", ir::to_string(p.shape()), " must be a scalar or ", expected);
  return broadcast_offsets(p_shape, target);
}

// A scale or zero point of matmul operand A (per row) or B (per column): offsets for each row of every
// matrix of A (batch x M) or each column of every matrix of B (batch x N).
std::vector<int64_t> operand_param_offsets(const NodeView& ctx, const char* what, const Tensor& p,
                                           const MatMulPlan& plan, bool is_a) {
  std::vector<int64_t> target = is_a ? plan.a_shape : plan.b_shape;
  std::vector<int64_t> shape = p.shape();
  if (is_a) {
    target.back() = 1;
    // The spec's per-row vector has M values; numpy alignment would put them on K.
    if (shape.size() == 1) shape.push_back(1);
  } else {
    target[target.size() - 2] = 1;
  }
  return param_offsets(
      ctx, what, p, shape, target,
      is_a ? "per row of A (M values, or shape [..., M, 1])" : "per column of B (N values, or shape [..., 1, N])");
}

// Zero-point-corrected operand as int32: A (is_a) or B, with their shapes promoted to rank >= 2.
std::vector<int32_t> centered_operand(const NodeView& ctx, const Tensor& q, const Tensor* zp, const char* zp_name,
                                      const MatMulPlan& plan, bool is_a) {
  std::vector<int64_t> qs = q.to_int64_vector();
  std::vector<int32_t> out(qs.size());
  std::vector<int64_t> zps{0};
  std::vector<int64_t> offs;
  if (zp) {
    zps = zp->to_int64_vector();
    offs = operand_param_offsets(ctx, zp_name, *zp, plan, is_a);
  }
  int64_t rows = is_a ? plan.m : plan.k, cols = is_a ? plan.k : plan.n;
  int64_t mats = rows * cols == 0 ? 0 : static_cast<int64_t>(qs.size()) / (rows * cols);
  for (int64_t mat = 0; mat < mats; ++mat)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        size_t i = static_cast<size_t>((mat * rows + r) * cols + c);
        int64_t z = 0;
        if (zp) z = zps[static_cast<size_t>(offs[static_cast<size_t>(is_a ? mat * rows + r : mat * cols + c)])];
        out[i] = static_cast<int32_t>(qs[i] - z);
      }
  return out;
}

// The int32 product, accumulating in int64 and wrapping to int32 as ONNX allows.
std::vector<int32_t> int_matmul(const MatMulPlan& p, const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t mats = p.a_mat.size();
  std::vector<int32_t> out(mats * static_cast<size_t>(p.m * p.n));
  std::vector<int64_t> row(static_cast<size_t>(p.n));
  for (size_t mat = 0; mat < mats; ++mat) {
    const int32_t* am = a.data() + p.a_mat[mat] * p.m * p.k;
    const int32_t* bm = b.data() + p.b_mat[mat] * p.k * p.n;
    int32_t* om = out.data() + static_cast<int64_t>(mat) * p.m * p.n;
    for (int64_t i = 0; i < p.m; ++i) {
      std::fill(row.begin(), row.end(), 0);
      for (int64_t kk = 0; kk < p.k; ++kk) {
        int64_t av = am[i * p.k + kk];
        const int32_t* br = bm + kk * p.n;
        for (int64_t j = 0; j < p.n; ++j) row[static_cast<size_t>(j)] += av * br[j];
      }
      for (int64_t j = 0; j < p.n; ++j) om[i * p.n + j] = static_cast<int32_t>(row[static_cast<size_t>(j)]);
    }
  }
  return out;
}

void infer_matmul_integer(InferenceContext& ctx) {
  const ir::Type& a = ctx.input_type(0);
  const ir::Type& b = ctx.input_type(1);
  check_8bit(ctx, a.dtype, "A");
  check_8bit(ctx, b.dtype, "B");
  if (ctx.has_input(2)) check_same_type(ctx, ctx.input_type(2).dtype, a.dtype, "a_zero_point", "A");
  if (ctx.has_input(3)) check_same_type(ctx, ctx.input_type(3).dtype, b.dtype, "b_zero_point", "B");
  ctx.set_output(0, DType::kInt32, infer_matmul_shape(ctx, a, b));
}

void matmul_integer(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  const Tensor* azp = optional_input(ctx, 2);
  const Tensor* bzp = optional_input(ctx, 3);
  check_8bit(ctx, a.dtype(), "A");
  check_8bit(ctx, b.dtype(), "B");
  if (azp) check_same_type(ctx, azp->dtype(), a.dtype(), "a_zero_point", "A");
  if (bzp) check_same_type(ctx, bzp->dtype(), b.dtype(), "b_zero_point", "B");
  MatMulPlan plan = plan_matmul(ctx, a.shape(), b.shape());
  Tensor y = ctx.make_tensor(DType::kInt32, plan.out_shape);
  std::vector<int32_t> c = int_matmul(plan, centered_operand(ctx, a, azp, "a_zero_point", plan, true),
                                      centered_operand(ctx, b, bzp, "b_zero_point", plan, false));
  std::copy(c.begin(), c.end(), y.data<int32_t>());
  ctx.set_output(0, std::move(y));
}

// com.microsoft.DynamicQuantizeMatMul: the subgraph ONNX Runtime's quantize_dynamic writes for a MatMul
// (DynamicQuantizeLinear(A) -> MatMulInteger with B -> Cast to float -> Mul by a_scale * b_scale), plus an
// optional bias, as one op:
//
//     Y = float(sum_k (qA - zpA) (B - zpB)) * (a_scale * b_scale) + bias
//
// with qA, a_scale, zpA from A as DynamicQuantizeLinear computes them; b_scale and b_zero_point are
// per tensor or per column of B; the float products are rounded in that order, as the subgraph rounds.

void infer_dynamic_quantize_matmul(InferenceContext& ctx) {
  const ir::Type& a = ctx.input_type(0);
  const ir::Type& b = ctx.input_type(1);
  if (a.dtype != DType::kFloat32) ctx.fail("A must be float32, got ", ir::dtype_name(a.dtype));
  check_8bit(ctx, b.dtype, "B");
  if (ctx.input_type(2).dtype != DType::kFloat32)
    ctx.fail("b_scale must be float32, got ", ir::dtype_name(ctx.input_type(2).dtype));
  if (ctx.has_input(3)) check_same_type(ctx, ctx.input_type(3).dtype, b.dtype, "b_zero_point", "B");
  if (ctx.has_input(4) && ctx.input_type(4).dtype != DType::kFloat32)
    ctx.fail("bias must be float32, got ", ir::dtype_name(ctx.input_type(4).dtype));
  ctx.set_output(0, DType::kFloat32, infer_matmul_shape(ctx, a, b));
}

void dynamic_quantize_matmul(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  const Tensor& b_scale = ctx.input(2);
  const Tensor* bzp = optional_input(ctx, 3);
  const Tensor* bias = optional_input(ctx, 4);
  if (a.dtype() != DType::kFloat32) ctx.fail("A must be float32, got ", ir::dtype_name(a.dtype()));
  check_8bit(ctx, b.dtype(), "B");
  if (b_scale.dtype() != DType::kFloat32) ctx.fail("b_scale must be float32, got ", ir::dtype_name(b_scale.dtype()));
  if (bzp) check_same_type(ctx, bzp->dtype(), b.dtype(), "b_zero_point", "B");
  MatMulPlan plan = plan_matmul(ctx, a.shape(), b.shape());
  if (bias) {
    if (bias->dtype() != DType::kFloat32) ctx.fail("bias must be float32, got ", ir::dtype_name(bias->dtype()));
    if (bias->rank() != 1 || bias->dim(0) != plan.n)
      ctx.fail("bias must be a 1-D tensor of ", plan.n, " values (B's columns), got shape ",
               ir::to_string(bias->shape()));
  }
  Tensor y = ctx.make_tensor(DType::kFloat32, plan.out_shape);
  const float* x = a.data<float>();
  float lo = 0.0f, hi = 0.0f;  // NaNs are skipped by these comparisons
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (x[i] > hi) hi = x[i];
    if (x[i] < lo) lo = x[i];
  }
  const DynamicQuantization q = dynamic_quantization(lo, hi);
  Tensor qa(DType::kUInt8, a.shape());
  for (int64_t i = 0; i < a.numel(); ++i) qa.data<uint8_t>()[i] = quantize_u8(x[i], q);
  const Tensor azp = Tensor::scalar<uint8_t>(q.zero_point);
  std::vector<int32_t> c = int_matmul(plan, centered_operand(ctx, qa, &azp, "a_zero_point", plan, true),
                                      centered_operand(ctx, b, bzp, "b_zero_point", plan, false));
  const std::vector<int64_t> scale_at = operand_param_offsets(ctx, "b_scale", b_scale, plan, false);
  const float* bs = b_scale.data<float>();
  const float* bias_data = bias ? bias->data<float>() : nullptr;
  float* out = y.data<float>();
  for (size_t mat = 0; mat < plan.a_mat.size(); ++mat)
    for (int64_t i = 0; i < plan.m; ++i)
      for (int64_t j = 0; j < plan.n; ++j) {
        const size_t o = (mat * static_cast<size_t>(plan.m) + static_cast<size_t>(i)) * static_cast<size_t>(plan.n) +
                         static_cast<size_t>(j);
        const float scale = q.scale * bs[scale_at[static_cast<size_t>(plan.b_mat[mat] * plan.n + j)]];
        out[o] = static_cast<float>(c[o]) * scale + (bias_data ? bias_data[j] : 0.0f);
      }
  ctx.set_output(0, std::move(y));
}

// com.microsoft.MatMulIntegerToFloat: the integer product of two quantized operands, scaled to float32 and
// biased, as one op (what kiln folds quantize_static's QDQ products into, passes/qdq_matmul_fusion.cc):
//
//     Y = float(sum_k (A - a_zero_point) (B - b_zero_point)) * (a_scale * b_scale) + bias
//
// a_scale and a_zero_point are per tensor; b_scale and b_zero_point per tensor or per column of B; bias is
// a vector over B's columns. The float products are rounded in that order, as ONNX Runtime's kernel does.

void infer_matmul_integer_to_float(InferenceContext& ctx) {
  const ir::Type& a = ctx.input_type(0);
  const ir::Type& b = ctx.input_type(1);
  check_8bit(ctx, a.dtype, "A");
  check_8bit(ctx, b.dtype, "B");
  const std::pair<size_t, const char*> floats[] = {{2, "a_scale"}, {3, "b_scale"}, {6, "bias"}};
  for (const auto& [i, name] : floats)
    if (ctx.has_input(i) && ctx.input_type(i).dtype != DType::kFloat32)
      ctx.fail(name, " must be float32, got ", ir::dtype_name(ctx.input_type(i).dtype));
  if (ctx.has_input(4)) check_same_type(ctx, ctx.input_type(4).dtype, a.dtype, "a_zero_point", "A");
  if (ctx.has_input(5)) check_same_type(ctx, ctx.input_type(5).dtype, b.dtype, "b_zero_point", "B");
  ctx.set_output(0, DType::kFloat32, infer_matmul_shape(ctx, a, b));
}

void matmul_integer_to_float(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  const Tensor& a_scale = ctx.input(2);
  const Tensor& b_scale = ctx.input(3);
  const Tensor* azp = optional_input(ctx, 4);
  const Tensor* bzp = optional_input(ctx, 5);
  const Tensor* bias = optional_input(ctx, 6);
  check_8bit(ctx, a.dtype(), "A");
  check_8bit(ctx, b.dtype(), "B");
  if (a_scale.dtype() != DType::kFloat32) ctx.fail("a_scale must be float32, got ", ir::dtype_name(a_scale.dtype()));
  if (b_scale.dtype() != DType::kFloat32) ctx.fail("b_scale must be float32, got ", ir::dtype_name(b_scale.dtype()));
  if (a_scale.numel() != 1) ctx.fail("a_scale must be one value, got shape ", ir::to_string(a_scale.shape()));
  if (azp) {
    check_same_type(ctx, azp->dtype(), a.dtype(), "a_zero_point", "A");
    if (azp->numel() != 1) ctx.fail("a_zero_point must be one value, got shape ", ir::to_string(azp->shape()));
  }
  if (bzp) check_same_type(ctx, bzp->dtype(), b.dtype(), "b_zero_point", "B");
  MatMulPlan plan = plan_matmul(ctx, a.shape(), b.shape());
  if (bias) {
    if (bias->dtype() != DType::kFloat32) ctx.fail("bias must be float32, got ", ir::dtype_name(bias->dtype()));
    if (bias->rank() != 1 || bias->dim(0) != plan.n)
      ctx.fail("bias must be a 1-D tensor of ", plan.n, " values (B's columns), got shape ",
               ir::to_string(bias->shape()));
  }
  std::vector<int32_t> c = int_matmul(plan, centered_operand(ctx, a, azp, "a_zero_point", plan, true),
                                      centered_operand(ctx, b, bzp, "b_zero_point", plan, false));
  const std::vector<int64_t> scale_at = operand_param_offsets(ctx, "b_scale", b_scale, plan, false);
  const float as = a_scale.data<float>()[0];
  const float* bs = b_scale.data<float>();
  const float* bias_data = bias ? bias->data<float>() : nullptr;
  Tensor y = ctx.make_tensor(DType::kFloat32, plan.out_shape);
  float* out = y.data<float>();
  for (size_t mat = 0; mat < plan.a_mat.size(); ++mat)
    for (int64_t i = 0; i < plan.m; ++i)
      for (int64_t j = 0; j < plan.n; ++j) {
        const size_t o = (mat * static_cast<size_t>(plan.m) + static_cast<size_t>(i)) * static_cast<size_t>(plan.n) +
                         static_cast<size_t>(j);
        const float scale = as * bs[scale_at[static_cast<size_t>(plan.b_mat[mat] * plan.n + j)]];
        out[o] = static_cast<float>(c[o]) * scale + (bias_data ? bias_data[j] : 0.0f);
      }
  ctx.set_output(0, std::move(y));
}

// QLinear* output type: y_zero_point's, else the first quantized input's.
DType qlinear_output_type(const NodeView& ctx, DType zp, DType a) {
  DType t = zp != DType::kUndefined ? zp : a;
  check_8bit(ctx, t, "y_zero_point");
  return t;
}

void infer_qlinear_matmul(InferenceContext& ctx) {
  const ir::Type& a = ctx.input_type(0);
  const ir::Type& b = ctx.input_type(3);
  check_8bit(ctx, a.dtype, "a");
  check_8bit(ctx, b.dtype, "b");
  DType zp = ctx.has_input(7) ? ctx.input_type(7).dtype : DType::kUndefined;
  ctx.set_output(0, qlinear_output_type(ctx, zp, a.dtype), infer_matmul_shape(ctx, a, b));
}

void qlinear_matmul(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& a_scale = ctx.input(1);
  const Tensor* azp = optional_input(ctx, 2);
  const Tensor& b = ctx.input(3);
  const Tensor& b_scale = ctx.input(4);
  const Tensor* bzp = optional_input(ctx, 5);
  const Tensor& y_scale = ctx.input(6);
  const Tensor* yzp = optional_input(ctx, 7);
  check_8bit(ctx, a.dtype(), "a");
  check_8bit(ctx, b.dtype(), "b");
  if (azp) check_same_type(ctx, azp->dtype(), a.dtype(), "a_zero_point", "a");
  if (bzp) check_same_type(ctx, bzp->dtype(), b.dtype(), "b_zero_point", "b");
  for (const Tensor* s : {&a_scale, &b_scale, &y_scale})
    if (!ir::is_float(s->dtype())) ctx.fail("scales must be float tensors, got ", ir::dtype_name(s->dtype()));
  DType out_type = qlinear_output_type(ctx, yzp ? yzp->dtype() : DType::kUndefined, a.dtype());

  MatMulPlan plan = plan_matmul(ctx, a.shape(), b.shape());
  Tensor y = ctx.make_tensor(out_type, plan.out_shape);  // first: it enforces the memory budget
  std::vector<int32_t> c = int_matmul(plan, centered_operand(ctx, a, azp, "a_zero_point", plan, true),
                                      centered_operand(ctx, b, bzp, "b_zero_point", plan, false));
  std::vector<int64_t> as_off = operand_param_offsets(ctx, "a_scale", a_scale, plan, true);
  std::vector<int64_t> bs_off = operand_param_offsets(ctx, "b_scale", b_scale, plan, false);
  std::vector<int64_t> ys_off =
      param_offsets(ctx, "y_scale", y_scale, y_scale.shape(), plan.out_shape, "broadcastable to the output");
  std::vector<int64_t> yz_off, yzs{0};
  if (yzp) {
    yz_off = param_offsets(ctx, "y_zero_point", *yzp, yzp->shape(), plan.out_shape, "broadcastable to the output");
    yzs = yzp->to_int64_vector();
  }
  std::vector<double> as = values_as_double(a_scale), bs = values_as_double(b_scale), ys = values_as_double(y_scale);
  // numpy computes a_scale * b_scale / y_scale in the scales' common type (float32 unless all are 16-bit).
  DType st =
      a_scale.dtype() == b_scale.dtype() && b_scale.dtype() == y_scale.dtype() ? a_scale.dtype() : DType::kFloat32;
  bool wide = st == DType::kFloat64;

  visit_quantized(ctx, out_type, "y_zero_point", [&]<class Q>() {
    Q* out = y.data<Q>();
    int64_t m = plan.m, n = plan.n;
    for (size_t mat = 0; mat < plan.a_mat.size(); ++mat)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          size_t o = static_cast<size_t>((static_cast<int64_t>(mat) * m + i) * n + j);
          double sa = as[static_cast<size_t>(as_off[static_cast<size_t>(plan.a_mat[mat] * m + i)])];
          double sb = bs[static_cast<size_t>(bs_off[static_cast<size_t>(plan.b_mat[mat] * n + j)])];
          double sy = ys[static_cast<size_t>(ys_off[o])];
          double mult = wide ? sa * sb / sy
                             : round_to(st, round_to(st, static_cast<float>(sa) * static_cast<float>(sb)) /
                                                static_cast<float>(sy));
          double v = static_cast<double>(c[o]) * mult;
          if (yzp) v += static_cast<double>(yzs[static_cast<size_t>(yz_off[o])]);
          out[o] = saturate<Q>(round_half_even(v));
        }
  });
  ctx.set_output(0, std::move(y));
}

// ---------------------------------------------------------------------------------------------------------
// Integer convolution (ConvInteger, QLinearConv) with Conv's attributes.

struct ConvAttrs {
  std::vector<int64_t> kernel, strides, dilations, pads;  // pads: begins then ends
  std::string auto_pad;
  int64_t group = 1;
};

// Reads and checks Conv's attributes for `spatial` spatial dims; w_kernel is W's spatial dims (-1 unknown).
ConvAttrs read_conv_attrs(const NodeView& ctx, size_t spatial, const std::vector<int64_t>& w_kernel) {
  ConvAttrs a;
  a.kernel = ctx.attr_ints("kernel_shape", w_kernel);
  if (a.kernel.size() != spatial)
    ctx.fail("kernel_shape has ", a.kernel.size(), " values but the input has ", spatial, " spatial dims");
  for (size_t i = 0; i < spatial; ++i) {
    if (w_kernel[i] >= 0 && a.kernel[i] != w_kernel[i])
      ctx.fail("kernel_shape ", ir::to_string(a.kernel), " does not match the weights' spatial dims ",
               ir::to_string(w_kernel));
  }
  a.strides = ctx.attr_ints("strides", std::vector<int64_t>(spatial, 1));
  a.dilations = ctx.attr_ints("dilations", std::vector<int64_t>(spatial, 1));
  a.pads = ctx.attr_ints("pads", std::vector<int64_t>(2 * spatial, 0));
  a.auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  a.group = ctx.attr_int("group", 1);
  if (a.strides.size() != spatial) ctx.fail("strides must have ", spatial, " values, got ", a.strides.size());
  if (a.dilations.size() != spatial) ctx.fail("dilations must have ", spatial, " values, got ", a.dilations.size());
  if (a.pads.size() != 2 * spatial) ctx.fail("pads must have ", 2 * spatial, " values, got ", a.pads.size());
  for (int64_t s : a.strides)
    if (s <= 0) ctx.fail("strides must be positive, got ", ir::to_string(a.strides));
  for (int64_t d : a.dilations)
    if (d <= 0) ctx.fail("dilations must be positive, got ", ir::to_string(a.dilations));
  for (int64_t p : a.pads)
    if (p < 0) ctx.fail("pads must not be negative, got ", ir::to_string(a.pads));
  if (a.group <= 0) ctx.fail("group must be positive, got ", a.group);
  if (a.auto_pad != "NOTSET" && a.auto_pad != "SAME_UPPER" && a.auto_pad != "SAME_LOWER" && a.auto_pad != "VALID")
    ctx.fail("unknown auto_pad \"", a.auto_pad, "\"");
  return a;
}

// Output size of spatial dim i for an input size `in` (-1 when unknown); sets the begin pad when known.
int64_t conv_out_dim(const NodeView& ctx, const ConvAttrs& a, size_t i, int64_t in, int64_t* pad_begin) {
  if (in < 0) return -1;
  int64_t k = a.kernel[i];
  if (k <= 0) ctx.fail("kernel dims must be positive, got ", ir::to_string(a.kernel));
  // 128-bit so that absurd attribute values fail cleanly instead of overflowing.
  using Wide = __int128;
  Wide s = a.strides[i], dk = Wide(k - 1) * a.dilations[i] + 1;
  constexpr Wide kMax = std::numeric_limits<int64_t>::max();
  if (a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER") {
    Wide out = (in + s - 1) / s;
    Wide total = std::max<Wide>(0, (out - 1) * s + dk - in);
    if (total > kMax) ctx.fail("kernel, strides and dilations of spatial dim ", i, " are too large");
    *pad_begin = static_cast<int64_t>(a.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2);
    return static_cast<int64_t>(out);
  }
  int64_t pb = 0, pe = 0;
  if (a.auto_pad == "NOTSET") {
    pb = a.pads[i];
    pe = a.pads[i + a.kernel.size()];
  }
  *pad_begin = pb;
  Wide eff = Wide(in) + pb + pe;
  if (eff < dk)
    ctx.fail("spatial dim ", i, " of size ", in, " (padded by ", pb, " and ", pe,
             ") is smaller than the dilated kernel (", static_cast<double>(dk), ")");
  Wide out = (eff - dk) / s + 1;
  if (out > kMax) ctx.fail("pads of spatial dim ", i, " are too large");
  return static_cast<int64_t>(out);
}

struct ConvGeometry {
  int64_t batch = 0, channels = 0, out_channels = 0, group = 1;
  std::vector<int64_t> in_spatial, kernel, strides, dilations, pad_begin, out_spatial;
  std::vector<int64_t> out_shape;
};

ConvGeometry plan_conv(const NodeView& ctx, const std::vector<int64_t>& x, const std::vector<int64_t>& w) {
  if (x.size() < 3) ctx.fail("x must have rank >= 3 (N x C x spatial...), got ", ir::to_string(x));
  if (w.size() != x.size()) ctx.fail("w ", ir::to_string(w), " must have the rank of x ", ir::to_string(x));
  size_t sp = x.size() - 2;
  ConvAttrs a = read_conv_attrs(ctx, sp, std::vector<int64_t>(w.begin() + 2, w.end()));
  ConvGeometry g;
  g.batch = x[0];
  g.channels = x[1];
  g.out_channels = w[0];
  g.group = a.group;
  if (g.channels != w[1] * a.group)
    ctx.fail("x has ", g.channels, " channels but w ", ir::to_string(w), " with group ", a.group, " expects ",
             w[1] * a.group);
  if (g.out_channels % a.group != 0)
    ctx.fail("w has ", g.out_channels, " output channels, not divisible by group ", a.group);
  g.in_spatial.assign(x.begin() + 2, x.end());
  g.kernel = a.kernel;
  g.strides = a.strides;
  g.dilations = a.dilations;
  g.pad_begin.resize(sp);
  g.out_shape = {g.batch, g.out_channels};
  for (size_t i = 0; i < sp; ++i) {
    g.out_spatial.push_back(conv_out_dim(ctx, a, i, g.in_spatial[i], &g.pad_begin[i]));
    g.out_shape.push_back(g.out_spatial.back());
  }
  return g;
}

std::optional<ir::Shape> infer_conv_shape(const NodeView& ctx, const ir::Type& x, const ir::Type& w) {
  if (!x.shape) return std::nullopt;
  size_t rank = x.shape->rank();
  if (rank < 3) ctx.fail("x must have rank >= 3 (N x C x spatial...), got ", ir::to_string(*x.shape));
  if (w.shape && w.shape->rank() != rank)
    ctx.fail("w ", ir::to_string(*w.shape), " must have the rank of x ", ir::to_string(*x.shape));
  std::vector<int64_t> w_kernel(rank - 2, -1);
  if (w.shape)
    for (size_t i = 2; i < rank; ++i) w_kernel[i - 2] = w.shape->dims[i].value;
  if (!ctx.has_attr("kernel_shape")) {
    for (int64_t k : w_kernel)
      if (k < 0) return ir::Shape(std::vector<ir::Dim>(rank));  // the kernel size is not known yet
  }
  ConvAttrs a = read_conv_attrs(ctx, rank - 2, w_kernel);
  if (w.shape && x.shape->dims[1].is_static() && w.shape->dims[1].is_static() &&
      x.shape->dims[1].value != w.shape->dims[1].value * a.group)
    ctx.fail("x has ", x.shape->dims[1].value, " channels but w ", ir::to_string(*w.shape), " with group ", a.group,
             " expects ", w.shape->dims[1].value * a.group);
  ir::Shape out;
  out.dims.push_back(x.shape->dims[0]);
  out.dims.push_back(w.shape ? w.shape->dims[0] : ir::Dim());
  for (size_t i = 0; i < rank - 2; ++i) {
    int64_t pb = 0;
    int64_t d = conv_out_dim(ctx, a, i, x.shape->dims[i + 2].value, &pb);
    out.dims.push_back(d >= 0 ? ir::Dim(d) : ir::Dim());
  }
  return out;
}

// Convolution of zero-point-corrected int32 operands (x: N x C x in..., w: M x C/group x k...), exact in int64.
std::vector<int64_t> conv_int(const ConvGeometry& g, const std::vector<int32_t>& x, const std::vector<int32_t>& w) {
  size_t sp = g.in_spatial.size();
  int64_t in_size = product(g.in_spatial), out_size = product(g.out_spatial), k_size = product(g.kernel);
  int64_t cg = g.channels / g.group, mg = g.out_channels / g.group;
  std::vector<int64_t> in_strides = ir::strides_of(g.in_spatial);
  // Each kernel position's index per spatial dim.
  std::vector<int64_t> k_idx(static_cast<size_t>(k_size) * sp);
  {
    std::vector<int64_t> idx(sp, 0);
    for (int64_t kk = 0; kk < k_size; ++kk) {
      for (size_t d = 0; d < sp; ++d) k_idx[static_cast<size_t>(kk) * sp + d] = idx[d];
      for (size_t d = sp; d-- > 0;) {
        if (++idx[d] < g.kernel[d]) break;
        idx[d] = 0;
      }
    }
  }
  std::vector<int64_t> out(static_cast<size_t>(g.batch * g.out_channels * out_size), 0);
  std::vector<int64_t> in_off(static_cast<size_t>(k_size));  // -1: the kernel tap falls in the padding
  std::vector<int64_t> o_idx(sp, 0);
  for (int64_t op = 0; op < out_size; ++op) {
    for (int64_t kk = 0; kk < k_size; ++kk) {
      int64_t off = 0;
      for (size_t d = 0; d < sp && off >= 0; ++d) {
        int64_t pos =
            o_idx[d] * g.strides[d] - g.pad_begin[d] + k_idx[static_cast<size_t>(kk) * sp + d] * g.dilations[d];
        off = pos < 0 || pos >= g.in_spatial[d] ? -1 : off + pos * in_strides[d];
      }
      in_off[static_cast<size_t>(kk)] = off;
    }
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t m = 0; m < g.out_channels; ++m) {
        int64_t grp = m / mg;
        int64_t acc = 0;
        for (int64_t c = 0; c < cg; ++c) {
          const int32_t* xc = x.data() + (n * g.channels + grp * cg + c) * in_size;
          const int32_t* wc = w.data() + (m * cg + c) * k_size;
          for (int64_t kk = 0; kk < k_size; ++kk) {
            int64_t off = in_off[static_cast<size_t>(kk)];
            if (off >= 0) acc += static_cast<int64_t>(xc[off]) * wc[kk];
          }
        }
        out[static_cast<size_t>((n * g.out_channels + m) * out_size + op)] = acc;
      }
    for (size_t d = sp; d-- > 0;) {
      if (++o_idx[d] < g.out_spatial[d]) break;
      o_idx[d] = 0;
    }
  }
  return out;
}

// x minus a per-tensor zero point.
std::vector<int32_t> centered_input(const NodeView& ctx, const Tensor& x, const Tensor* zp, const char* zp_name) {
  int64_t z = 0;
  if (zp) {
    if (zp->numel() != 1) ctx.fail(zp_name, " must be a scalar, got shape ", ir::to_string(zp->shape()));
    z = zp->as_int64(0);
  }
  std::vector<int64_t> xs = x.to_int64_vector();
  std::vector<int32_t> out(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) out[i] = static_cast<int32_t>(xs[i] - z);
  return out;
}

// Index of the per-output-channel value (scale or zero point) for channel m: a scalar or M values.
int64_t per_channel(const NodeView& ctx, const Tensor& p, const char* what, int64_t channels) {
  if (p.numel() == 1) return 0;
  if (p.rank() != 1 || p.dim(0) != channels)
    ctx.fail(what, " must be a scalar or have one value per output channel (", channels, "), got shape ",
             ir::to_string(p.shape()));
  return 1;
}

// w minus a per-tensor or per-output-channel zero point.
std::vector<int32_t> centered_weights(const NodeView& ctx, const Tensor& w, const Tensor* zp, const char* zp_name) {
  std::vector<int64_t> ws = w.to_int64_vector();
  std::vector<int32_t> out(ws.size());
  std::vector<int64_t> zps{0};
  int64_t step = 0;
  if (zp) {
    step = per_channel(ctx, *zp, zp_name, w.dim(0));
    zps = zp->to_int64_vector();
  }
  int64_t per_m = w.dim(0) == 0 ? 0 : static_cast<int64_t>(ws.size()) / w.dim(0);
  for (size_t i = 0; i < ws.size(); ++i)
    out[i] = static_cast<int32_t>(ws[i] - zps[static_cast<size_t>(step * (static_cast<int64_t>(i) / per_m))]);
  return out;
}

void infer_conv_integer(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  const ir::Type& w = ctx.input_type(1);
  check_8bit(ctx, x.dtype, "x");
  check_8bit(ctx, w.dtype, "w");
  ctx.set_output(0, DType::kInt32, infer_conv_shape(ctx, x, w));
}

void conv_integer(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Tensor* xzp = optional_input(ctx, 2);
  const Tensor* wzp = optional_input(ctx, 3);
  check_8bit(ctx, x.dtype(), "x");
  check_8bit(ctx, w.dtype(), "w");
  if (xzp) check_same_type(ctx, xzp->dtype(), x.dtype(), "x_zero_point", "x");
  if (wzp) check_same_type(ctx, wzp->dtype(), w.dtype(), "w_zero_point", "w");
  ConvGeometry g = plan_conv(ctx, x.shape(), w.shape());
  Tensor y = ctx.make_tensor(DType::kInt32, g.out_shape);
  std::vector<int64_t> acc =
      conv_int(g, centered_input(ctx, x, xzp, "x_zero_point"), centered_weights(ctx, w, wzp, "w_zero_point"));
  int32_t* out = y.data<int32_t>();
  for (size_t i = 0; i < acc.size(); ++i) out[i] = static_cast<int32_t>(acc[i]);
  ctx.set_output(0, std::move(y));
}

void infer_qlinear_conv(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  const ir::Type& w = ctx.input_type(3);
  check_8bit(ctx, x.dtype, "x");
  check_8bit(ctx, w.dtype, "w");
  DType zp = ctx.has_input(7) ? ctx.input_type(7).dtype : DType::kUndefined;
  ctx.set_output(0, qlinear_output_type(ctx, zp, x.dtype), infer_conv_shape(ctx, x, w));
}

void qlinear_conv(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& x_scale = ctx.input(1);
  const Tensor* xzp = optional_input(ctx, 2);
  const Tensor& w = ctx.input(3);
  const Tensor& w_scale = ctx.input(4);
  const Tensor* wzp = optional_input(ctx, 5);
  const Tensor& y_scale = ctx.input(6);
  const Tensor* yzp = optional_input(ctx, 7);
  const Tensor* bias = optional_input(ctx, 8);
  check_8bit(ctx, x.dtype(), "x");
  check_8bit(ctx, w.dtype(), "w");
  if (xzp) check_same_type(ctx, xzp->dtype(), x.dtype(), "x_zero_point", "x");
  if (wzp) check_same_type(ctx, wzp->dtype(), w.dtype(), "w_zero_point", "w");
  for (const Tensor* s : {&x_scale, &w_scale, &y_scale})
    if (!ir::is_float(s->dtype())) ctx.fail("scales must be float tensors, got ", ir::dtype_name(s->dtype()));
  if (x_scale.numel() != 1) ctx.fail("x_scale must be a scalar, got shape ", ir::to_string(x_scale.shape()));
  if (y_scale.numel() != 1) ctx.fail("y_scale must be a scalar, got shape ", ir::to_string(y_scale.shape()));
  DType out_type = qlinear_output_type(ctx, yzp ? yzp->dtype() : DType::kUndefined, x.dtype());
  int64_t yz = 0;
  if (yzp) {
    if (yzp->numel() != 1) ctx.fail("y_zero_point must be a scalar, got shape ", ir::to_string(yzp->shape()));
    yz = yzp->as_int64(0);
  }

  ConvGeometry g = plan_conv(ctx, x.shape(), w.shape());
  Tensor y = ctx.make_tensor(out_type, g.out_shape);  // first: it enforces the memory budget
  int64_t ws_step = per_channel(ctx, w_scale, "w_scale", g.out_channels);
  std::vector<int64_t> bs;
  if (bias) {
    if (bias->dtype() != DType::kInt32) ctx.fail("B must be int32, got ", ir::dtype_name(bias->dtype()));
    if (bias->rank() != 1 || bias->dim(0) != g.out_channels)
      ctx.fail("B must have one value per output channel (", g.out_channels, "), got shape ",
               ir::to_string(bias->shape()));
    bs = bias->to_int64_vector();
  }
  std::vector<int64_t> acc =
      conv_int(g, centered_input(ctx, x, xzp, "x_zero_point"), centered_weights(ctx, w, wzp, "w_zero_point"));
  std::vector<double> ws = values_as_double(w_scale);
  double xs = x_scale.as_double(0), ys = y_scale.as_double(0);
  DType st =
      x_scale.dtype() == w_scale.dtype() && w_scale.dtype() == y_scale.dtype() ? x_scale.dtype() : DType::kFloat32;
  std::vector<double> mult(static_cast<size_t>(g.out_channels));
  for (int64_t m = 0; m < g.out_channels; ++m) {
    double wsm = ws[static_cast<size_t>(ws_step * m)];
    mult[static_cast<size_t>(m)] =
        st == DType::kFloat64
            ? xs * wsm / ys
            : round_to(st, round_to(st, static_cast<float>(xs) * static_cast<float>(wsm)) / static_cast<float>(ys));
  }
  int64_t out_size = product(g.out_spatial);
  visit_quantized(ctx, out_type, "y_zero_point", [&]<class Q>() {
    Q* out = y.data<Q>();
    for (size_t i = 0; i < acc.size(); ++i) {
      int64_t m = (static_cast<int64_t>(i) / out_size) % g.out_channels;
      int64_t a = acc[i] + (bias ? bs[static_cast<size_t>(m)] : 0);
      double v = static_cast<double>(static_cast<int32_t>(a)) * mult[static_cast<size_t>(m)] + static_cast<double>(yz);
      out[i] = saturate<Q>(round_half_even(v));
    }
  });
  ctx.set_output(0, std::move(y));
}

}  // namespace

void register_quantization_ops(OpRegistry& r) {
  r.add(OpDef{"", "QuantizeLinear", 10, kMaxOnnxOpset, infer_quantize_linear, quantize_linear});
  r.add(OpDef{"", "DequantizeLinear", 10, kMaxOnnxOpset, infer_dequantize_linear, dequantize_linear});
  r.add(OpDef{"", "DynamicQuantizeLinear", 11, kMaxOnnxOpset, infer_dynamic_quantize_linear, dynamic_quantize_linear});
  r.add(OpDef{"", "MatMulInteger", 10, kMaxOnnxOpset, infer_matmul_integer, matmul_integer});
  r.add(OpDef{"", "QLinearMatMul", 10, kMaxOnnxOpset, infer_qlinear_matmul, qlinear_matmul});
  r.add(OpDef{"com.microsoft", "DynamicQuantizeMatMul", 1, std::numeric_limits<int64_t>::max(),
              infer_dynamic_quantize_matmul, dynamic_quantize_matmul});
  r.add(OpDef{"com.microsoft", "MatMulIntegerToFloat", 1, std::numeric_limits<int64_t>::max(),
              infer_matmul_integer_to_float, matmul_integer_to_float});
  r.add(OpDef{"", "ConvInteger", 10, kMaxOnnxOpset, infer_conv_integer, conv_integer});
  r.add(OpDef{"", "QLinearConv", 10, kMaxOnnxOpset, infer_qlinear_conv, qlinear_conv});
}

}  // namespace kiln::ops

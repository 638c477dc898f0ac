// Single float32 elementwise ops that take one tensor (and constants): Relu, Sigmoid, Tanh, Exp, Log, Sqrt,
// Erf, Neg, Abs, Reciprocal, Floor, Ceil, Round, Softplus, HardSigmoid, HardSwish, LeakyRelu, Elu, Clip and
// Pow by a one-element exponent, each as one elementwise step (kernels/reference/elementwise_step.h, the
// steps ai.kiln.ElementwiseChain strings together) run by vector_kernels' unary_f32: vectorized per ISA,
// split across threads on large tensors. And Cast between float32, float16, int64, int32 and bool, per
// element as the reference converts (kernels/reference/elementwise_util.h's convert_number), threaded.
//
// What each op computes is the step's definition; vector_kernels.h says where the SIMD builds are exact
// and where they are within a few ulp. Clip's bounds (inputs from opset 11) and Pow's exponent are read per
// call: a bound or exponent of another type or size, or a double exponent no float holds, leaves the call
// to the reference kernel.
#include "kernels/cpu/fast_kernel_table.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/vector_kernels.h"
#include "kernels/reference/elementwise_util.h"
#include "ops/node_view.h"

namespace kiln::kernels::cpu {

namespace {

using ops::chain::Step;
using ops::chain::StepKind;

// Where a step's params come from besides its attributes.
enum class UnaryParamSource {
  kAttributes,  // read once, when the kernel is made
  kClipInputs,  // Clip from opset 11: min and max, optional one-element inputs 1 and 2
  kExponent,    // Pow: the one-element input 1
};

// Clip's bound from input i (absent: no bound, `unbounded`); false when it is not one float32.
bool read_clip_bound(const ops::KernelContext& ctx, size_t i, float unbounded, float& bound) {
  bound = unbounded;
  if (!ctx.has_input(i)) return true;
  if (!is_f32(ctx, i) || ctx.input(i).numel() != 1) return false;
  bound = ctx.input(i).data<float>()[0];
  return true;
}

// Pow's exponent as a float, when input 1 holds one number of a type the kernel reads and a float holds
// it exactly (the step computes in double from the float); its rank must not widen the output.
bool read_pow_exponent(const ops::KernelContext& ctx, float& exponent) {
  if (!ctx.has_input(1)) return false;
  const ir::Tensor& e = ctx.input(1);
  if (e.numel() != 1 || e.shape().size() > ctx.input(0).shape().size()) return false;
  double v = 0;
  switch (e.dtype()) {
    case ir::DType::kFloat32:
      exponent = e.data<float>()[0];
      return true;
    case ir::DType::kFloat64:
      v = e.data<double>()[0];
      break;
    case ir::DType::kInt32:
      v = e.data<int32_t>()[0];
      break;
    case ir::DType::kInt64:
      v = static_cast<double>(e.data<int64_t>()[0]);
      break;
    default:
      return false;
  }
  exponent = static_cast<float>(v);
  return static_cast<double>(exponent) == v || std::isnan(v);
}

// y = step(x), x's shape, float32.
class UnaryElementwiseKernel : public FastKernel {
 public:
  UnaryElementwiseKernel(Step step, UnaryParamSource source) : step_(step), source_(source) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!is_f32(ctx, 0)) return false;
    Step s = step_;
    if (source_ == UnaryParamSource::kClipInputs &&
        (!read_clip_bound(ctx, 1, -std::numeric_limits<float>::infinity(), s.p0) ||
         !read_clip_bound(ctx, 2, std::numeric_limits<float>::infinity(), s.p1)))
      return false;
    if (source_ == UnaryParamSource::kExponent && !read_pow_exponent(ctx, s.p0)) return false;
    const ir::Tensor& x = ctx.input(0);
    ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, x.shape());
    unary_f32(s, x.data<float>(), y.data<float>(), x.numel());
    ctx.set_output(0, std::move(y));
    return true;
  }

  // Each element is read before the same element is written.
  std::vector<size_t> in_place_inputs() const override { return {0}; }

 private:
  Step step_;
  UnaryParamSource source_;
};

std::unique_ptr<FastKernel> make_unary_step(StepKind kind, float p0 = 0, float p1 = 0,
                                            UnaryParamSource source = UnaryParamSource::kAttributes) {
  Step s;
  s.kind = kind;
  s.p0 = p0;
  s.p1 = p1;
  return std::make_unique<UnaryElementwiseKernel>(s, source);
}

template <StepKind kKind>
std::unique_ptr<FastKernel> make_plain_step(const ir::Node&, const ir::Graph&, int64_t) {
  return make_unary_step(kKind);
}

// The ops with float attributes; a malformed attribute is left to the reference kernel to report.
std::unique_ptr<FastKernel> make_leaky_relu(const ir::Node& n, const ir::Graph&, int64_t opset) {
  try {
    return make_unary_step(StepKind::kLeakyRelu, ops::NodeView(n, opset).attr_float("alpha", 0.01f));
  } catch (const Error&) {
    return nullptr;
  }
}

std::unique_ptr<FastKernel> make_elu(const ir::Node& n, const ir::Graph&, int64_t opset) {
  try {
    return make_unary_step(StepKind::kElu, ops::NodeView(n, opset).attr_float("alpha", 1.0f));
  } catch (const Error&) {
    return nullptr;
  }
}

std::unique_ptr<FastKernel> make_hard_sigmoid(const ir::Node& n, const ir::Graph&, int64_t opset) {
  try {
    const ops::NodeView v(n, opset);
    return make_unary_step(StepKind::kHardSigmoid, v.attr_float("alpha", 0.2f), v.attr_float("beta", 0.5f));
  } catch (const Error&) {
    return nullptr;
  }
}

// Clip: bounds as attributes before opset 11 (an absent one bounds nothing), as inputs from 11.
std::unique_ptr<FastKernel> make_clip(const ir::Node& n, const ir::Graph&, int64_t opset) {
  if (opset >= 11) return make_unary_step(StepKind::kClip, 0, 0, UnaryParamSource::kClipInputs);
  try {
    const ops::NodeView v(n, opset);
    const float inf = std::numeric_limits<float>::infinity();
    return make_unary_step(StepKind::kClip, v.has_attr("min") ? v.attr_float("min") : -inf,
                           v.has_attr("max") ? v.attr_float("max") : inf);
  } catch (const Error&) {
    return nullptr;
  }
}

std::unique_ptr<FastKernel> make_pow(const ir::Node& n, const ir::Graph&, int64_t) {
  if (n.inputs.size() != 2) return nullptr;
  return make_unary_step(StepKind::kPow, 0, 0, UnaryParamSource::kExponent);
}

// ---- Cast ---------------------------------------------------------------------------------------------

// f.template operator()<T>() for the C++ type of t among Cast's simple types; false for any other type.
template <class F>
bool visit_simple_cast_type(ir::DType t, F&& f) {
  switch (t) {
    case ir::DType::kFloat32:
      f.template operator()<float>();
      return true;
    case ir::DType::kFloat16:
      f.template operator()<Float16>();
      return true;
    case ir::DType::kInt64:
      f.template operator()<int64_t>();
      return true;
    case ir::DType::kInt32:
      f.template operator()<int32_t>();
      return true;
    case ir::DType::kBool:
      f.template operator()<bool>();
      return true;
    default:
      return false;
  }
}

constexpr int64_t kCastParallelElements = 1 << 16;

class SimpleCastKernel : public FastKernel {
 public:
  explicit SimpleCastKernel(ir::DType to) : to_(to) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0)) return false;
    const ir::Tensor& x = ctx.input(0);
    ir::Tensor y;
    const int64_t n = x.numel();
    const bool covered = visit_simple_cast_type(x.dtype(), [&]<class From>() {
      visit_simple_cast_type(to_, [&]<class To>() {
        y = ctx.make_tensor(to_, x.shape());
        const From* in = x.data<From>();
        To* out = y.data<To>();
        parallel_for_ranges(worth_threads(n, kCastParallelElements), n, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) out[i] = ops::elementwise::convert_number<To, From>(in[i]);
        });
      });
    });
    if (!covered) return false;
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  ir::DType to_;
};

// Cast from opset 6 (`to` an element type code); a target outside the simple types has no fast kernel.
std::unique_ptr<FastKernel> make_simple_cast(const ir::Node& n, const ir::Graph&, int64_t opset) {
  const ir::Attribute* to = n.find_attribute("to");
  if (!to || to->kind != ir::Attribute::Kind::kInt || !ir::dtype_is_valid(static_cast<int32_t>(to->i))) return nullptr;
  const auto t = static_cast<ir::DType>(to->i);
  if (!visit_simple_cast_type(t, []<class>() {})) return nullptr;
  return std::make_unique<SimpleCastKernel>(t);
}

}  // namespace

std::span<const FastKernelEntry> unary_elementwise_kernel_entries() {
  constexpr uint64_t kF32 = dtype_set({ir::DType::kFloat32});
  static const FastKernelEntry kEntries[] = {
      {"", "Relu", 1, kLatestOpset, kF32, make_plain_step<StepKind::kRelu>},
      {"", "Sigmoid", 1, kLatestOpset, kF32, make_plain_step<StepKind::kSigmoid>},
      {"", "Tanh", 1, kLatestOpset, kF32, make_plain_step<StepKind::kTanh>},
      {"", "Exp", 1, kLatestOpset, kF32, make_plain_step<StepKind::kExp>},
      {"", "Log", 1, kLatestOpset, kF32, make_plain_step<StepKind::kLog>},
      {"", "Sqrt", 1, kLatestOpset, kF32, make_plain_step<StepKind::kSqrt>},
      {"", "Erf", 9, kLatestOpset, kF32, make_plain_step<StepKind::kErf>},
      {"", "Neg", 1, kLatestOpset, kF32, make_plain_step<StepKind::kNeg>},
      {"", "Abs", 1, kLatestOpset, kF32, make_plain_step<StepKind::kAbs>},
      {"", "Reciprocal", 1, kLatestOpset, kF32, make_plain_step<StepKind::kReciprocal>},
      {"", "Floor", 1, kLatestOpset, kF32, make_plain_step<StepKind::kFloor>},
      {"", "Ceil", 1, kLatestOpset, kF32, make_plain_step<StepKind::kCeil>},
      {"", "Round", 11, kLatestOpset, kF32, make_plain_step<StepKind::kRound>},
      {"", "Softplus", 1, kLatestOpset, kF32, make_plain_step<StepKind::kSoftplus>},
      {"", "HardSwish", 14, kLatestOpset, kF32, make_plain_step<StepKind::kHardSwish>},
      {"", "HardSigmoid", 1, kLatestOpset, kF32, make_hard_sigmoid},
      {"", "LeakyRelu", 1, kLatestOpset, kF32, make_leaky_relu},
      {"", "Elu", 1, kLatestOpset, kF32, make_elu},
      {"", "Clip", 1, kLatestOpset, kF32, make_clip},
      {"", "Pow", 7, kLatestOpset, kF32, make_pow},
      {"", "Cast", 6, kLatestOpset,
       dtype_set({ir::DType::kFloat32, ir::DType::kFloat16, ir::DType::kInt64, ir::DType::kInt32, ir::DType::kBool}),
       make_simple_cast},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

// Canonicalization: one spelling for computations exporters write in several, so that the passes after
// it (common-subexpression elimination, the fusions) match one form whatever the exporter wrote:
//
//   Div(x, c)             -> Mul(x, 1/c)    c a float constant; every 1/c finite and nonzero
//   Sub(x, c)             -> Add(x, -c)     c a float constant
//   Sub(0, x)             -> Neg(x)         the zeros do not broadcast x to a larger shape
//   Add(c, x)             -> Add(x, c)      the constant second; also Mul, And, Or, Xor, Equal and
//                                           BitwiseAnd/Or/Xor (broadcasting is symmetric for them)
//   Cast(Cast(x, T1), T2) -> Cast(x, T2)    T1 holds every value of x's type exactly
//
// "Constant" is an initializer that is not also a graph input (a caller may override those) or a
// Constant node's output. A rewritten node keeps its name and its output's name, so readers and graph
// outputs are untouched; a constant or first Cast no longer read is left to dead-code elimination. A Cast
// to string is never shortened: numbers are formatted by their own type (float16 0.1 is "0.1", the same
// value as float32 "0.099975586").
//
// This pass runs at level basic, whose rewrites never change a result, so the two forms that are not
// always bit-identical wait for level extended (where fused ops round differently anyway): x / c and
// x * (1/c) are the same number only when 1/c is exact (c a power of two, like the attention scale 8),
// and 0 - x is +0 where -x is -0 (unless the zero is -0). Integer Div truncates and is left alone.
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "passes/graph_index.h"
#include "passes/passes.h"
#include "passes/pattern_util.h"
#include "analysis/shape_inference.h"

namespace kiln::passes {

namespace {

constexpr const char* kDivKind = "Div by constant -> Mul";
constexpr const char* kSubKind = "Sub by constant -> Add";
constexpr const char* kNegKind = "0 - x -> Neg";
constexpr const char* kSwapKind = "constant operand second";
constexpr const char* kCastKind = "Cast chain";

// Calls f.template operator()<T>() with the C++ type of a float element type (callers check is_float).
template <class F>
void visit_float(ir::DType t, F&& f) {
  switch (t) {
    case ir::DType::kFloat32:
      return f.template operator()<float>();
    case ir::DType::kFloat64:
      return f.template operator()<double>();
    case ir::DType::kFloat16:
      return f.template operator()<Float16>();
    case ir::DType::kBFloat16:
      return f.template operator()<BFloat16>();
    default:
      return;
  }
}

bool is_power_of_two(double v) {
  int e = 0;
  return std::fabs(std::frexp(v, &e)) == 0.5;
}

// 1/c element by element in c's (float) type; nullopt when some 1/c is not finite and nonzero. `exact`
// tells whether every 1/c is exact, so that x * (1/c) rounds to the same number as x / c.
std::optional<ir::Tensor> reciprocal(const ir::Tensor& c, bool& exact) {
  ir::Tensor r(c.dtype(), c.shape());
  bool ok = true;
  exact = true;
  visit_float(c.dtype(), [&]<class T>() {
    for (int64_t i = 0; i < c.numel() && ok; ++i) {
      const double v = static_cast<double>(c.data<T>()[i]);
      T out;
      if constexpr (std::is_floating_point_v<T>)
        out = T(1) / c.data<T>()[i];  // correctly rounded
      else
        out = T(static_cast<float>(1.0 / v));
      const double back = static_cast<double>(out);
      ok = std::isfinite(v) && v != 0 && std::isfinite(back) && back != 0;
      // Two powers of two multiply exactly, so the product tells whether `out` is 1/v itself.
      exact = exact && is_power_of_two(v) && is_power_of_two(back) && v * back == 1.0;
      r.data<T>()[i] = out;
    }
  });
  if (!ok) return std::nullopt;
  return r;
}

ir::Tensor negated(const ir::Tensor& c) {
  ir::Tensor r(c.dtype(), c.shape());
  visit_float(c.dtype(), [&]<class T>() {
    for (int64_t i = 0; i < c.numel(); ++i) {
      if constexpr (std::is_same_v<T, double>)
        r.data<T>()[i] = -c.data<T>()[i];
      else  // every float16 and bfloat16 value is a float: negating through float is exact
        r.data<T>()[i] = T(-static_cast<float>(c.data<T>()[i]));
    }
  });
  return r;
}

// Bits of magnitude an integer type holds (its values are all within +-2^bits), or -1.
int magnitude_bits(ir::DType t) {
  switch (t) {
    case ir::DType::kBool:
      return 1;
    case ir::DType::kInt8:
      return 7;
    case ir::DType::kUInt8:
      return 8;
    case ir::DType::kInt16:
      return 15;
    case ir::DType::kUInt16:
      return 16;
    case ir::DType::kInt32:
      return 31;
    case ir::DType::kUInt32:
      return 32;
    case ir::DType::kInt64:
      return 63;
    case ir::DType::kUInt64:
      return 64;
    default:
      return -1;
  }
}

// Significand bits of a float type (integers up to 2^bits are exact in it), or -1.
int significand_bits(ir::DType t) {
  switch (t) {
    case ir::DType::kBFloat16:
      return 8;
    case ir::DType::kFloat16:
      return 11;
    case ir::DType::kFloat32:
      return 24;
    case ir::DType::kFloat64:
      return 53;
    default:
      return -1;
  }
}

// Whether `to` represents every value of `from` exactly, so that a Cast from `from` to `to` and on to any
// third type converts the same numbers as a direct Cast (kiln's conversions depend only on the value).
bool lossless(ir::DType from, ir::DType to) {
  if (from == to) return true;
  const bool to_number = to == ir::DType::kBool || ir::is_integer(to) || ir::is_float(to);
  if (from == ir::DType::kBool) return to_number;
  if (ir::is_integer(from)) {
    if (ir::is_float(to)) return magnitude_bits(from) <= significand_bits(to);
    if (!ir::is_integer(to)) return false;
    // A signed type never fits an unsigned one; an unsigned one fits a signed one with a bit to spare.
    if (ir::is_signed(from) && !ir::is_signed(to)) return false;
    return magnitude_bits(to) >= magnitude_bits(from);
  }
  // float16 and bfloat16 each have values the other lacks (precision, range); both fit float32.
  if (from == ir::DType::kFloat16 || from == ir::DType::kBFloat16)
    return to == ir::DType::kFloat32 || to == ir::DType::kFloat64;
  return from == ir::DType::kFloat32 && to == ir::DType::kFloat64;
}

// Cast's target type when it is a type code (a name before opset 6 is left alone), else kUndefined.
ir::DType cast_target(const ir::Node& n) {
  const ir::Attribute* to = n.find_attribute("to");
  if (!to || to->kind != ir::Attribute::Kind::kInt || !ir::dtype_is_valid(static_cast<int32_t>(to->i)))
    return ir::DType::kUndefined;
  return static_cast<ir::DType>(to->i);
}

// Whether zeros of `zeros` shape, subtracted from x, leave x's shape as it is (so that Neg(x) has it).
bool broadcasts_into(const std::vector<int64_t>& zeros, const ir::Type* x) {
  if (!x || !x->is_tensor() || !x->shape || zeros.size() > x->shape->rank()) return false;
  for (size_t i = 0; i < zeros.size(); ++i) {
    const int64_t z = zeros[zeros.size() - 1 - i];
    const ir::Dim& d = x->shape->dims[x->shape->rank() - 1 - i];
    if (z != 1 && !(d.is_static() && d.value == z)) return false;
  }
  return true;
}

bool commutative(const ir::Node& n) {
  static const char* const kOps[] = {"Add",   "Mul",        "And",       "Or",        "Xor",
                                     "Equal", "BitwiseAnd", "BitwiseOr", "BitwiseXor"};
  for (const char* op : kOps)
    if (n.op_type == op) return true;
  return false;
}

bool all_zero(const ir::Tensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (t.as_double(i) != 0) return false;
  return true;
}

class Canonicalizer {
 public:
  Canonicalizer(ir::Graph& g, PassContext& ctx)
      : g_(g),
        ctx_(ctx),
        index_(g),
        types_(analysis::infer_types(ctx.model(), g, {}, ctx.options().limits)),
        exact_only_(static_cast<int>(ctx.options().level) < static_cast<int>(Level::kExtended)) {}

  bool run() {
    bool changed = false;
    // Rewrites change op types and inputs in place, never value names or the node order, so the index's
    // producers and constants stay right for the whole walk.
    for (ir::Node& n : g_.nodes) {
      if (!ir::is_default_domain(n.domain) || n.outputs.size() != 1) continue;
      if (n.op_type == "Cast" && n.inputs.size() == 1) {
        changed |= shorten_cast_chain(n);
        continue;
      }
      // Before opset 7 binary ops broadcast one way only, by attribute: such nodes are left alone.
      if (n.inputs.size() != 2 || !n.attributes.empty() || n.inputs[0].empty() || n.inputs[1].empty()) continue;
      if (n.op_type == "Div")
        changed |= divide(n);
      else if (n.op_type == "Sub")
        changed |= subtract(n);
      else if (commutative(n))
        changed |= swap_constant(n);
    }
    return changed;
  }

 private:
  const ir::Type* type_of(const std::string& v) const {
    auto it = types_.types.find(v);
    return it == types_.types.end() ? nullptr : &it->second;
  }

  // The default value of an initializer that is also a graph input (not a constant: a caller may feed
  // another), or nullptr.
  const ir::Tensor* overridable(const std::string& v) const {
    return index_.is_graph_input(v) ? g_.find_initializer(v) : nullptr;
  }

  void reject_overridable(const ir::Node& n, const char* kind, const std::string& v) {
    ctx_.rejected(kind, n, "\"" + v + "\" is an initializer that is also a graph input: a caller may override it");
  }

  // A new initializer holding `value`, made once per (constant, what) for the whole pass.
  std::string new_constant(const std::string& of, const char* what, ir::Tensor value) {
    auto [it, inserted] = made_.try_emplace(of + "|" + what);
    if (inserted) {
      it->second = ctx_.fresh_name(of + "_" + what);
      g_.add_initializer(it->second, std::move(value));
    }
    return it->second;
  }

  bool divide(ir::Node& n) {
    const std::string& divisor = n.inputs[1];
    std::optional<ir::Tensor> c = index_.constant(divisor);
    if (!c) {
      if (const ir::Tensor* d = overridable(divisor); d && ir::is_float(d->dtype()))
        reject_overridable(n, kDivKind, divisor);
      return false;
    }
    if (!ir::is_float(c->dtype())) return false;
    bool exact = false;
    std::optional<ir::Tensor> r = reciprocal(*c, exact);
    if (!r) {
      ctx_.rejected(
          kDivKind, n,
          "the divisor \"" + divisor + "\" has an element without a finite, nonzero reciprocal (0, inf, NaN)");
      return false;
    }
    if (!exact && exact_only_) {
      ctx_.rejected(kDivKind, n,
                    "1/c is not exact for the divisor \"" + divisor +
                        "\" (not a power of two), so x * (1/c) may round differently from x / c: rewritten only at "
                        "level extended and above");
      return false;
    }
    n.op_type = "Mul";
    n.inputs[1] = new_constant(divisor, "reciprocal", std::move(*r));
    ctx_.changed(kDivKind);
    return true;
  }

  bool subtract(ir::Node& n) {
    const std::string &a = n.inputs[0], &b = n.inputs[1];
    if (std::optional<ir::Tensor> c = index_.constant(b); c && ir::is_float(c->dtype())) {
      n.op_type = "Add";
      n.inputs[1] = new_constant(b, "negated", negated(*c));
      ctx_.changed(kSubKind);
      return true;
    }
    if (const ir::Tensor* c = overridable(b); c && ir::is_float(c->dtype())) reject_overridable(n, kSubKind, b);

    std::optional<ir::Tensor> z = index_.constant(a);
    // Neg takes floats and signed integers; 0 - x on unsigned integers wraps and has no Neg.
    auto negatable = [](ir::DType t) { return ir::is_float(t) || (ir::is_integer(t) && ir::is_signed(t)); };
    if (!z) {
      if (const ir::Tensor* c = overridable(a); c && negatable(c->dtype()) && all_zero(*c))
        reject_overridable(n, kNegKind, a);
      return false;
    }
    if (!negatable(z->dtype()) || !all_zero(*z)) return false;
    if (!broadcasts_into(z->shape(), type_of(b))) {
      ctx_.rejected(kNegKind, n,
                    "the zeros " + ir::to_string(z->shape()) + " may broadcast \"" + b +
                        "\" to a larger shape (or its shape is unknown)");
      return false;
    }
    // Integers wrap the same either way; for floats only -0 - x is -x at x = +0 too.
    bool minus_zero = true;
    for (int64_t i = 0; i < z->numel(); ++i) minus_zero = minus_zero && std::signbit(z->as_double(i));
    if (ir::is_float(z->dtype()) && !minus_zero && exact_only_) {
      ctx_.rejected(kNegKind, n, "0 - x is +0 where Neg(x) is -0 (x = +0): rewritten only at level extended and above");
      return false;
    }
    n.op_type = "Neg";
    n.inputs = {std::string(b)};
    ctx_.changed(kNegKind);
    return true;
  }

  bool swap_constant(ir::Node& n) {
    if (!index_.constant(n.inputs[0]) || index_.constant(n.inputs[1])) return false;
    std::swap(n.inputs[0], n.inputs[1]);
    ctx_.changed(kSwapKind);
    return true;
  }

  bool shorten_cast_chain(ir::Node& n) {
    const ir::Node* first = index_.producer_node(n.inputs[0]);
    if (!is_op(first, "Cast") || first->inputs.size() != 1 || first->inputs[0].empty()) return false;
    const ir::DType mid = cast_target(*first), to = cast_target(n);
    const ir::Type* x = type_of(first->inputs[0]);
    if (mid == ir::DType::kUndefined || to == ir::DType::kUndefined || !x || !x->is_tensor() ||
        x->dtype == ir::DType::kUndefined || x->dtype == ir::DType::kString)
      return false;
    if (to == ir::DType::kString) {
      ctx_.rejected(kCastKind, n, "a Cast to string formats numbers by their type: the chain stays");
      return false;
    }
    if (!lossless(x->dtype, mid)) {
      ctx_.rejected(kCastKind, n,
                    "the first Cast, " + std::string(ir::dtype_name(x->dtype)) + " to " +
                        std::string(ir::dtype_name(mid)) + ", is not lossless: the chain stays");
      return false;
    }
    // The first Cast stays for its other readers, if any; dead-code elimination drops it otherwise.
    n.inputs[0] = first->inputs[0];
    ctx_.changed(kCastKind);
    return true;
  }

  ir::Graph& g_;
  PassContext& ctx_;
  const GraphIndex index_;
  const analysis::InferredTypes types_;
  const bool exact_only_;
  std::map<std::string, std::string> made_;  // "<constant>|<what>" -> the initializer made from it
};

}  // namespace

bool canonicalize(ir::Graph& g, PassContext& ctx) { return Canonicalizer(g, ctx).run(); }

}  // namespace kiln::passes

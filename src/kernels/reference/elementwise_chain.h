// ai.kiln.ElementwiseChain (version 1): a chain of float32 elementwise ops applied to X in one pass over
// memory, which the optimizer writes (passes/elementwise_chain_fusion.cc) for runs such as
// Add(bias) -> Mul(gamma) -> Add(residual) or Pow(2) -> Add(eps) -> Sqrt, instead of one pass per op.
//
//   inputs:  X (float32), then operands O1..Ok (float32, each broadcasting to X's shape: the chain's
//            value keeps X's shape throughout)
//   output:  Y, of X's shape
//   ops:      one name per step, applied in order to the running value v (v = X at the start):
//               Add, Sub, Mul, Div        v = v op O        (binary: operand names the input)
//               SubFrom, DivInto          v = O - v, O / v
//               Relu, Sigmoid, Tanh, Sqrt, Exp, Erf, Neg, Abs, Reciprocal
//               Pow                       v = v ^ param0
//               Clip                      min(max(v, param0), param1)
//               LeakyRelu                 v >= 0 ? v : param0 * v
//               HardSigmoid               max(0, min(1, param0 * v + param1))
//   operands: per step, the input index of its operand (1..k) for a binary step, 0 for the others
//   params:   two floats per step (0 where unused)
//
// Each step computes in float32 as kiln's reference kernel of the op it replaces does (Pow in double,
// rounded once), so the chain gives exactly what the unfused ops gave. The reference kernel and the fast kernel (kernels/cpu/elementwise_chain_kernel.cc)
// share the steps' definitions below.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ops/node_view.h"

namespace kiln::ops::chain {

inline constexpr const char* kChainDomain = "ai.kiln";
inline constexpr const char* kChainOp = "ElementwiseChain";

enum class StepKind {
  kAdd,
  kSub,
  kSubFrom,
  kMul,
  kDiv,
  kDivInto,
  kRelu,
  kSigmoid,
  kTanh,
  kSqrt,
  kExp,
  kErf,
  kNeg,
  kAbs,
  kReciprocal,
  kPow,
  kClip,
  kLeakyRelu,
  kHardSigmoid,
};

struct Step {
  StepKind kind = StepKind::kAdd;
  int operand = 0;  // input index of a binary step's operand
  float p0 = 0, p1 = 0;
};

inline bool is_binary(StepKind k) { return k <= StepKind::kDivInto; }

// The step named `name` ("Add", "SubFrom", "Sigmoid", ...), or nothing.
std::optional<StepKind> step_kind(const std::string& name);
const char* step_name(StepKind k);

// The node's steps from its ops/operands/params attributes; fails naming the node when they are
// inconsistent (lengths, an unknown op, an operand index out of range).
std::vector<Step> read_steps(const NodeView& node);

// v op b, for a binary step, in float32 (each result correctly rounded).
inline float apply_binary(StepKind k, float v, float b) {
  switch (k) {
    case StepKind::kAdd:
      return v + b;
    case StepKind::kSub:
      return v - b;
    case StepKind::kSubFrom:
      return b - v;
    case StepKind::kMul:
      return v * b;
    case StepKind::kDiv:
      return v / b;
    default:  // kDivInto
      return b / v;
  }
}

// A unary step on v, exactly as the reference op computes a float32 element (in float32; Pow in double).
inline float apply_unary(const Step& s, float v) {
  switch (s.kind) {
    case StepKind::kRelu:
      return v < 0.0f ? 0.0f : v;  // NaN stays NaN
    case StepKind::kSigmoid: {
      if (v >= 0.0f) return 1.0f / (1.0f + std::exp(-v));  // two forms: exp never overflows
      const float e = std::exp(v);
      return e / (1.0f + e);
    }
    case StepKind::kTanh:
      return std::tanh(v);
    case StepKind::kSqrt:
      return std::sqrt(v);
    case StepKind::kExp:
      return std::exp(v);
    case StepKind::kErf:
      return std::erf(v);
    case StepKind::kNeg:
      return -v;
    case StepKind::kAbs:
      return std::fabs(v);
    case StepKind::kReciprocal:
      return 1.0f / v;
    case StepKind::kPow:
      return static_cast<float>(std::pow(static_cast<double>(v), static_cast<double>(s.p0)));
    case StepKind::kClip: {  // min first, then max; NaN passes through
      float c = v;
      if (c < s.p0) c = s.p0;
      if (c > s.p1) c = s.p1;
      return c;
    }
    case StepKind::kLeakyRelu:
      return v < 0.0f ? s.p0 * v : v;
    case StepKind::kHardSigmoid: {
      float y = s.p0 * v + s.p1;
      if (y < 0.0f) y = 0.0f;
      if (y > 1.0f) y = 1.0f;
      return y;
    }
    default:
      return v;
  }
}

}  // namespace kiln::ops::chain

// One float32 elementwise step, as ai.kiln.ElementwiseChain (elementwise_chain.h) strings them together
// and as the single-op fast kernels (kernels/cpu/unary_elementwise_kernel.cc) run them one at a time:
// what each step computes per element, exactly as kiln's reference kernel of the op it stands for
// computes a float32 element (in float32 with the C library's functions; Pow in double, rounded once).
// The vectorized steps (kernels/cpu/vector_kernels_simd.h) are tested against these.
#pragma once

#include <cmath>

namespace kiln::ops::chain {

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
  kLog,
  kFloor,
  kCeil,
  kRound,
  kSoftplus,
  kHardSwish,
  kElu,
};

struct Step {
  StepKind kind = StepKind::kAdd;
  int operand = 0;  // input index of a binary step's operand
  float p0 = 0, p1 = 0;
};

inline bool is_binary(StepKind k) { return k <= StepKind::kDivInto; }

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
    case StepKind::kLog:
      return std::log(v);
    case StepKind::kFloor:
      return std::floor(v);
    case StepKind::kCeil:
      return std::ceil(v);
    case StepKind::kRound:  // halves to even, as the default rounding mode does
      return std::nearbyint(v);
    case StepKind::kSoftplus:  // log(1 + e^v) without overflow for large v
      return v > 0.0f ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
    case StepKind::kHardSwish: {
      float y = v / 6.0f + 0.5f;
      if (y < 0.0f) y = 0.0f;
      if (y > 1.0f) y = 1.0f;
      return v * y;
    }
    case StepKind::kElu:
      return v < 0.0f ? s.p0 * std::expm1(v) : v;
    default:
      return v;
  }
}

}  // namespace kiln::ops::chain

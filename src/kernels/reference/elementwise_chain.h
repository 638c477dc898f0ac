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
//               Log, Floor, Ceil, Round, Softplus, HardSwish
//               Elu                       v < 0 ? param0 * (e^v - 1) : v
//   operands: per step, the input index of its operand (1..k) for a binary step, 0 for the others
//   params:   two floats per step (0 where unused)
//
// Each step computes in float32 as kiln's reference kernel of the op it replaces does (Pow in double,
// rounded once), so the chain gives exactly what the unfused ops gave. The steps' definitions
// (kernels/reference/elementwise_step.h) are shared by the reference kernel, the fast kernel
// (kernels/cpu/elementwise_chain_kernel.cc) and the single-op kernels of kernels/cpu/unary_elementwise_kernel.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/reference/elementwise_step.h"
#include "ops/node_view.h"

namespace kiln::ops::chain {

inline constexpr const char* kChainDomain = "ai.kiln";
inline constexpr const char* kChainOp = "ElementwiseChain";

// The step named `name` ("Add", "SubFrom", "Sigmoid", ...), or nothing.
std::optional<StepKind> step_kind(const std::string& name);
const char* step_name(StepKind k);

// The node's steps from its ops/operands/params attributes; fails naming the node when they are
// inconsistent (lengths, an unknown op, an operand index out of range).
std::vector<Step> read_steps(const NodeView& node);

}  // namespace kiln::ops::chain

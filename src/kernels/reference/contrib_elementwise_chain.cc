// ai.kiln.ElementwiseChain's reading of its steps and its reference kernel: element by element, each
// operand read through broadcast strides (kernels/reference/elementwise_chain.h says what the op is).
#include <array>
#include <string>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/contrib_common.h"
#include "kernels/reference/elementwise_chain.h"

namespace kiln::ops {
namespace chain {

namespace {
struct NamedStep {
  const char* name;
  StepKind kind;
};
constexpr std::array<NamedStep, 26> kStepNames = {{
    {"Add", StepKind::kAdd},         {"Sub", StepKind::kSub},
    {"SubFrom", StepKind::kSubFrom}, {"Mul", StepKind::kMul},
    {"Div", StepKind::kDiv},         {"DivInto", StepKind::kDivInto},
    {"Relu", StepKind::kRelu},       {"Sigmoid", StepKind::kSigmoid},
    {"Tanh", StepKind::kTanh},       {"Sqrt", StepKind::kSqrt},
    {"Exp", StepKind::kExp},         {"Erf", StepKind::kErf},
    {"Neg", StepKind::kNeg},         {"Abs", StepKind::kAbs},
    {"Reciprocal", StepKind::kReciprocal}, {"Pow", StepKind::kPow},
    {"Clip", StepKind::kClip},       {"LeakyRelu", StepKind::kLeakyRelu},
    {"HardSigmoid", StepKind::kHardSigmoid}, {"Log", StepKind::kLog},
    {"Floor", StepKind::kFloor},     {"Ceil", StepKind::kCeil},
    {"Round", StepKind::kRound},     {"Softplus", StepKind::kSoftplus},
    {"HardSwish", StepKind::kHardSwish}, {"Elu", StepKind::kElu},
}};
}  // namespace

std::optional<StepKind> step_kind(const std::string& name) {
  for (const NamedStep& s : kStepNames)
    if (name == s.name) return s.kind;
  return std::nullopt;
}

const char* step_name(StepKind k) {
  for (const NamedStep& s : kStepNames)
    if (s.kind == k) return s.name;
  return "?";
}

std::vector<Step> read_steps(const NodeView& node) {
  const std::vector<std::string> ops = node.attr_strings("ops");
  const std::vector<int64_t> operands = node.attr_ints("operands");
  const std::vector<float> params = node.attr_floats("params");
  if (ops.empty()) node.fail("attribute \"ops\" must name at least one step");
  if (operands.size() != ops.size())
    node.fail("attribute \"operands\" must have one value per step (", ops.size(), "), got ", operands.size());
  if (params.size() != 2 * ops.size())
    node.fail("attribute \"params\" must have two values per step (", 2 * ops.size(), "), got ", params.size());
  const auto inputs = static_cast<int64_t>(node.node().inputs.size());
  std::vector<Step> steps;
  for (size_t i = 0; i < ops.size(); ++i) {
    const std::optional<StepKind> kind = step_kind(ops[i]);
    if (!kind) node.fail("step ", i, ": unknown op \"", ops[i], "\"");
    Step s;
    s.kind = *kind;
    s.p0 = params[2 * i];
    s.p1 = params[2 * i + 1];
    if (is_binary(s.kind)) {
      if (operands[i] < 1 || operands[i] >= inputs)
        node.fail("step ", i, " (", ops[i], "): operand ", operands[i], " is not an input (1..", inputs - 1, ")");
      s.operand = static_cast<int>(operands[i]);
    } else if (operands[i] != 0) {
      node.fail("step ", i, " (", ops[i], ") takes no operand, got ", operands[i]);
    }
    steps.push_back(s);
  }
  return steps;
}

}  // namespace chain

namespace contrib {
namespace {

void infer_elementwise_chain(InferenceContext& ctx) {
  chain::read_steps(ctx);
  for (size_t i = 0; i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i)) require_float32_input(ctx, i, i == 0 ? "input X" : "an operand");
  infer_same_as_input(ctx);
}

void elementwise_chain_kernel(KernelContext& ctx) {
  const std::vector<chain::Step> steps = chain::read_steps(ctx);
  const ir::Tensor& x = ctx.input(0);
  require_float32(ctx, x.dtype(), "input X");
  const ir::Dims& shape = x.shape();
  const size_t rank = shape.size();
  // Per operand, its element stride along each of X's dims (0 where it broadcasts).
  std::vector<std::vector<int64_t>> strides(ctx.num_inputs());
  for (size_t i = 1; i < ctx.num_inputs(); ++i) {
    const ir::Tensor& o = ctx.input(i);
    require_float32(ctx, o.dtype(), "an operand");
    if (o.rank() > rank)
      ctx.fail("operand ", i, " of shape ", ir::to_string(o.shape()), " does not broadcast to X's shape ",
               ir::to_string(shape));
    strides[i].assign(rank, 0);
    int64_t step = 1;
    for (size_t k = 0; k < o.rank(); ++k) {
      const size_t from_end = o.rank() - 1 - k;
      const int64_t d = o.dim(from_end);
      const size_t xk = rank - 1 - k;
      if (d != 1 && d != shape[xk])
        ctx.fail("operand ", i, " of shape ", ir::to_string(o.shape()), " does not broadcast to X's shape ",
                 ir::to_string(shape));
      strides[i][xk] = d == 1 ? 0 : step;
      step *= d;
    }
  }
  ir::Tensor y = ctx.make_tensor(ir::DType::kFloat32, shape);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  std::vector<int64_t> index(rank, 0);
  for (int64_t e = 0; e < x.numel(); ++e) {
    float v = xp[e];
    for (const chain::Step& s : steps) {
      if (chain::is_binary(s.kind)) {
        int64_t off = 0;
        for (size_t k = 0; k < rank; ++k) off += index[k] * strides[static_cast<size_t>(s.operand)][k];
        v = chain::apply_binary(s.kind, v, ctx.input(static_cast<size_t>(s.operand)).data<float>()[off]);
      } else {
        v = chain::apply_unary(s, v);
      }
    }
    yp[e] = v;
    for (size_t k = rank; k-- > 0;) {  // the next element's index
      if (++index[k] < shape[k]) break;
      index[k] = 0;
    }
  }
  ctx.set_output(0, std::move(y));
}

}  // namespace

void register_elementwise_chain_ops(OpRegistry& r) {
  // Version 1 of ai.kiln, valid in later versions like the com.microsoft ops.
  r.add(OpDef{chain::kChainDomain, chain::kChainOp, 1, kMsMaxOpset, infer_elementwise_chain, elementwise_chain_kernel});
}

}  // namespace contrib
}  // namespace kiln::ops

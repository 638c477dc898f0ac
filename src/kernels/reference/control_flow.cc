// If, Loop and Scan: run their body subgraphs through the executor (KernelContext::run_subgraph).
#include "kernels/reference/common.h"
#include "kernels/reference/slicing.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

bool scalar_true(const KernelContext& ctx, const ir::Tensor& t, const char* what) {
  if (t.numel() != 1) ctx.fail(what, " must have exactly one element, got shape ", ir::to_string(t.shape()));
  return t.as_double(0) != 0;
}

// --- If ---------------------------------------------------------------------------------------------

void if_kernel(KernelContext& ctx) {
  bool cond = scalar_true(ctx, ctx.input(0), "the condition");
  const ir::Graph* branch = ctx.attr_graph(cond ? "then_branch" : "else_branch");
  if (!branch) ctx.fail("missing attribute \"", cond ? "then_branch" : "else_branch", "\"");
  std::vector<ir::Datum> outs = ctx.run_subgraph(*branch, {});
  if (outs.size() != ctx.num_outputs())
    ctx.fail("branch produced ", outs.size(), " outputs, the node has ", ctx.num_outputs());
  for (size_t i = 0; i < outs.size(); ++i) ctx.set_output_datum(i, std::move(outs[i]));
}

void if_infer(InferenceContext& ctx) {
  const ir::Graph* then_g = ctx.attr_graph("then_branch");
  const ir::Graph* else_g = ctx.attr_graph("else_branch");
  if (!then_g || !else_g) ctx.fail("If needs then_branch and else_branch");
  if (then_g->outputs.size() != else_g->outputs.size())
    ctx.fail("then_branch has ", then_g->outputs.size(), " outputs, else_branch has ", else_g->outputs.size());
  for (size_t i = 0; i < ctx.num_outputs() && i < then_g->outputs.size(); ++i) {
    ir::Type t = then_g->outputs[i].type;
    const ir::Type& e = else_g->outputs[i].type;
    if (t.is_tensor() && e.is_tensor() && !(t.shape && e.shape && *t.shape == *e.shape)) t.shape.reset();
    ctx.set_output_type(i, t);
  }
}

// --- Loop -------------------------------------------------------------------------------------------

void loop_kernel(KernelContext& ctx) {
  const ir::Graph* body = ctx.attr_graph("body");
  if (!body) ctx.fail("missing attribute \"body\"");
  const size_t n_carried = ctx.num_inputs() >= 2 ? ctx.num_inputs() - 2 : 0;
  if (body->inputs.size() != n_carried + 2)
    ctx.fail("body takes ", body->inputs.size(), " inputs, expected ", n_carried + 2);
  if (body->outputs.size() < n_carried + 1)
    ctx.fail("body has ", body->outputs.size(), " outputs, expected at least ", n_carried + 1);
  const size_t n_scan = body->outputs.size() - 1 - n_carried;

  int64_t max_trips = std::numeric_limits<int64_t>::max();
  if (ctx.has_input(0)) {
    const ir::Tensor& m = ctx.input(0);
    if (m.numel() != 1) ctx.fail("M must be a scalar");
    max_trips = m.as_int64(0);
  }
  bool cond = true;
  if (ctx.num_inputs() > 1 && ctx.has_input(1)) cond = scalar_true(ctx, ctx.input(1), "cond");

  std::vector<ir::Datum> carried;
  for (size_t i = 0; i < n_carried; ++i) carried.push_back(ctx.input_datum(i + 2));
  std::vector<std::vector<ir::Tensor>> scans(n_scan);

  constexpr int64_t kMaxUnboundedTrips = int64_t{1} << 31;
  for (int64_t iter = 0; iter < max_trips && cond; ++iter) {
    if (iter >= kMaxUnboundedTrips) ctx.fail("loop did not terminate after ", kMaxUnboundedTrips, " iterations");
    std::vector<ir::Datum> in;
    in.emplace_back(ir::Tensor::scalar<int64_t>(iter));
    in.emplace_back(ir::Tensor::scalar<bool>(cond));
    for (auto& c : carried) in.push_back(c);
    std::vector<ir::Datum> out = ctx.run_subgraph(*body, std::move(in));
    if (!out[0].is_tensor()) ctx.fail("body's condition output is not a tensor");
    cond = scalar_true(ctx, out[0].tensor, "the body's condition output");
    for (size_t i = 0; i < n_carried; ++i) carried[i] = std::move(out[1 + i]);
    for (size_t k = 0; k < n_scan; ++k) {
      const ir::Datum& s = out[1 + n_carried + k];
      if (!s.is_tensor()) ctx.fail("scan output ", k, " of the body is not a tensor");
      if (!scans[k].empty() && scans[k][0].shape() != s.tensor.shape())
        ctx.fail("scan output ", k, " changes shape between iterations: ", ir::to_string(scans[k][0].shape()), " then ",
                 ir::to_string(s.tensor.shape()));
      scans[k].push_back(s.tensor);
    }
  }
  for (size_t i = 0; i < n_carried; ++i) ctx.set_output_datum(i, std::move(carried[i]));
  for (size_t k = 0; k < n_scan; ++k) {
    if (scans[k].empty()) {
      const ir::Type& t = body->outputs[1 + n_carried + k].type;
      std::vector<int64_t> shape{0};
      if (t.shape)
        for (const auto& d : t.shape->dims) shape.push_back(d.is_static() ? d.value : 0);
      ir::DType dt = t.dtype == ir::DType::kUndefined ? ir::DType::kFloat32 : t.dtype;
      ctx.set_output(n_carried + k, ctx.make_tensor(dt, shape));
    } else {
      ctx.set_output(n_carried + k, stack_tensors(scans[k], 0));
    }
  }
}

void loop_infer(InferenceContext& ctx) {
  const ir::Graph* body = ctx.attr_graph("body");
  if (!body) ctx.fail("missing attribute \"body\"");
  const size_t n_carried = ctx.num_inputs() >= 2 ? ctx.num_inputs() - 2 : 0;
  for (size_t i = 0; i < n_carried && i < ctx.num_outputs(); ++i) {
    ir::Type t = ctx.has_input(i + 2) ? ctx.input_type(i + 2) : ir::Type();
    if (t.is_tensor()) t.shape.reset();  // carried values may change shape between iterations
    ctx.set_output_type(i, t);
  }
  for (size_t k = n_carried; k < ctx.num_outputs() && 1 + k < body->outputs.size(); ++k) {
    const ir::Type& t = body->outputs[1 + k].type;
    if (t.is_tensor() && t.dtype != ir::DType::kUndefined) ctx.set_output(k, t.dtype, std::nullopt);
  }
}

// --- Scan -------------------------------------------------------------------------------------------

// One scan over tensors whose scan axes are given; shared by opset 8 (per batch entry) and opset 9+.
void scan_once(KernelContext& ctx, const ir::Graph& body, std::vector<ir::Datum> state,
               const std::vector<ir::Tensor>& scan_inputs, const std::vector<int64_t>& in_axes,
               const std::vector<int64_t>& in_dirs, std::vector<ir::Datum>& final_state,
               std::vector<std::vector<ir::Tensor>>& scan_out_slices) {
  const size_t n_state = state.size();
  int64_t steps = -1;
  for (size_t j = 0; j < scan_inputs.size(); ++j) {
    int64_t len = scan_inputs[j].dim(static_cast<size_t>(in_axes[j]));
    if (steps >= 0 && len != steps) ctx.fail("scan inputs have different lengths: ", steps, " and ", len);
    steps = len;
  }
  if (steps < 0) steps = 0;
  const size_t n_scan_out = body.outputs.size() - n_state;
  scan_out_slices.assign(n_scan_out, {});
  for (int64_t t = 0; t < steps; ++t) {
    std::vector<ir::Datum> in = state;
    for (size_t j = 0; j < scan_inputs.size(); ++j) {
      int64_t idx = in_dirs[j] ? steps - 1 - t : t;
      in.emplace_back(take_slice(scan_inputs[j], in_axes[j], idx));
    }
    std::vector<ir::Datum> out = ctx.run_subgraph(body, std::move(in));
    for (size_t i = 0; i < n_state; ++i) state[i] = std::move(out[i]);
    for (size_t k = 0; k < n_scan_out; ++k) {
      if (!out[n_state + k].is_tensor()) ctx.fail("scan output ", k, " is not a tensor");
      scan_out_slices[k].push_back(out[n_state + k].tensor);
    }
  }
  final_state = std::move(state);
}

ir::Tensor assemble_scan_output(KernelContext& ctx, std::vector<ir::Tensor> slices, int64_t axis, bool reverse,
                                const ir::Type& declared) {
  if (slices.empty()) {
    std::vector<int64_t> shape;
    if (declared.shape)
      for (const auto& d : declared.shape->dims) shape.push_back(d.is_static() ? d.value : 0);
    shape.insert(shape.begin() + std::min<int64_t>(axis, static_cast<int64_t>(shape.size())), 0);
    return ctx.make_tensor(declared.dtype == ir::DType::kUndefined ? ir::DType::kFloat32 : declared.dtype, shape);
  }
  if (reverse) std::reverse(slices.begin(), slices.end());
  int64_t rank = static_cast<int64_t>(slices[0].rank()) + 1;
  return stack_tensors(slices, normalize_axis(ctx, axis, rank));
}

void scan_kernel(KernelContext& ctx) {
  const ir::Graph* body = ctx.attr_graph("body");
  if (!body) ctx.fail("missing attribute \"body\"");
  const int64_t n_scan_in = ctx.attr_int("num_scan_inputs");
  const bool v8 = ctx.opset() < 9;
  const size_t first = v8 ? 1 : 0;  // opset 8 starts with sequence_lens
  if (n_scan_in < 0 || static_cast<size_t>(n_scan_in) + first > ctx.num_inputs())
    ctx.fail("num_scan_inputs = ", n_scan_in, " but the node has ", ctx.num_inputs(), " inputs");
  const size_t n_state = ctx.num_inputs() - first - static_cast<size_t>(n_scan_in);
  if (body->outputs.size() < n_state) ctx.fail("body has fewer outputs than state variables");
  const size_t n_scan_out = body->outputs.size() - n_state;

  std::vector<int64_t> in_dirs = ctx.attr_ints(v8 ? "directions" : "scan_input_directions");
  in_dirs.resize(static_cast<size_t>(n_scan_in), 0);
  std::vector<int64_t> out_dirs = ctx.attr_ints("scan_output_directions");
  out_dirs.resize(n_scan_out, 0);
  std::vector<int64_t> in_axes = ctx.attr_ints("scan_input_axes");
  in_axes.resize(static_cast<size_t>(n_scan_in), 0);
  std::vector<int64_t> out_axes = ctx.attr_ints("scan_output_axes");
  out_axes.resize(n_scan_out, 0);

  if (!v8) {
    std::vector<ir::Datum> state;
    for (size_t i = 0; i < n_state; ++i) state.push_back(ctx.input_datum(i));
    std::vector<ir::Tensor> scan_inputs;
    for (int64_t j = 0; j < n_scan_in; ++j) {
      const ir::Tensor& t = ctx.input(n_state + static_cast<size_t>(j));
      in_axes[static_cast<size_t>(j)] =
          normalize_axis(ctx, in_axes[static_cast<size_t>(j)], static_cast<int64_t>(t.rank()));
      scan_inputs.push_back(t);
    }
    std::vector<ir::Datum> final_state;
    std::vector<std::vector<ir::Tensor>> slices;
    scan_once(ctx, *body, std::move(state), scan_inputs, in_axes, in_dirs, final_state, slices);
    for (size_t i = 0; i < n_state; ++i) ctx.set_output_datum(i, std::move(final_state[i]));
    for (size_t k = 0; k < n_scan_out; ++k)
      ctx.set_output(n_state + k, assemble_scan_output(ctx, std::move(slices[k]), out_axes[k], out_dirs[k] != 0,
                                                       body->outputs[n_state + k].type));
    return;
  }

  // Opset 8: axis 0 is a batch; every state and scan tensor has it. Scan axis is 1 in the inputs.
  if (ctx.has_input(0)) {
    const ir::Tensor& lens = ctx.input(0);
    const ir::Tensor& x0 = ctx.input(1 + n_state);
    for (int64_t b = 0; b < lens.numel(); ++b)
      if (lens.as_int64(b) != x0.dim(1)) ctx.fail("sequence_lens shorter than the scan length are not supported");
  }
  int64_t batch = n_scan_in > 0 ? ctx.input(first + n_state).dim(0) : ctx.input(first).dim(0);
  std::vector<std::vector<ir::Tensor>> state_out(n_state), scan_out(n_scan_out);
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<ir::Datum> state;
    for (size_t i = 0; i < n_state; ++i) state.emplace_back(take_slice(ctx.input(first + i), 0, b));
    std::vector<ir::Tensor> scan_inputs;
    for (int64_t j = 0; j < n_scan_in; ++j)
      scan_inputs.push_back(take_slice(ctx.input(first + n_state + static_cast<size_t>(j)), 0, b));
    std::vector<int64_t> axes(static_cast<size_t>(n_scan_in), 0);
    std::vector<ir::Datum> final_state;
    std::vector<std::vector<ir::Tensor>> slices;
    scan_once(ctx, *body, std::move(state), scan_inputs, axes, in_dirs, final_state, slices);
    for (size_t i = 0; i < n_state; ++i) state_out[i].push_back(final_state[i].tensor);
    for (size_t k = 0; k < n_scan_out; ++k)
      scan_out[k].push_back(assemble_scan_output(ctx, std::move(slices[k]), 0, false, body->outputs[n_state + k].type));
  }
  for (size_t i = 0; i < n_state; ++i) ctx.set_output(i, stack_tensors(state_out[i], 0));
  for (size_t k = 0; k < n_scan_out; ++k) ctx.set_output(n_state + k, stack_tensors(scan_out[k], 0));
}

void scan_infer(InferenceContext& ctx) {
  const ir::Graph* body = ctx.attr_graph("body");
  if (!body) ctx.fail("missing attribute \"body\"");
  for (size_t k = 0; k < ctx.num_outputs() && k < body->outputs.size(); ++k) {
    const ir::Type& t = body->outputs[k].type;
    if (t.is_tensor() && t.dtype != ir::DType::kUndefined) ctx.set_output(k, t.dtype, std::nullopt);
  }
}

}  // namespace

void register_control_flow_ops(OpRegistry& r) {
  r.add({"", "If", 1, kMaxOnnxOpset, if_infer, if_kernel});
  r.add({"", "Loop", 1, kMaxOnnxOpset, loop_infer, loop_kernel});
  r.add({"", "Scan", 8, kMaxOnnxOpset, scan_infer, scan_kernel});
}

}  // namespace kiln::ops

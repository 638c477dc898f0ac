// Sequence and optional ops: values that are lists of tensors, or maybe-absent values.
#include "kernels/reference/common.h"
#include "kernels/reference/slicing.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

const ir::Datum& sequence_input(const KernelContext& ctx, size_t i) {
  const ir::Datum& d = ctx.input_datum(i);
  if (!d.is_sequence()) ctx.fail("input ", i, " must be a sequence");
  return d;
}

// Position inputs may be negative (from the end); `allow_end` admits position == length (insert).
size_t sequence_position(const KernelContext& ctx, size_t input, size_t length, bool allow_end) {
  const ir::Tensor& p = ctx.input(input);
  if (p.numel() != 1) ctx.fail("position must be a scalar");
  int64_t pos = p.as_int64(0);
  int64_t n = static_cast<int64_t>(length);
  if (pos < 0) pos += n;
  if (pos < 0 || pos > n || (pos == n && !allow_end))
    ctx.fail("position ", p.as_int64(0), " is out of range for a sequence of length ", length);
  return static_cast<size_t>(pos);
}

ir::DType sequence_elem_dtype(const InferenceContext& ctx, size_t i) {
  const ir::Type& t = ctx.input_type(i);
  if (t.kind == ir::Type::Kind::kSequence && t.elem) return t.elem->dtype;
  return ir::DType::kUndefined;
}

void set_sequence_type(InferenceContext& ctx, ir::DType dt) {
  ctx.set_output_type(0, ir::Type::sequence(ir::Type::tensor(dt)));
}

void sequence_empty(KernelContext& ctx) {
  auto dt = static_cast<ir::DType>(ctx.attr_int("dtype", static_cast<int64_t>(ir::DType::kFloat32)));
  ctx.set_output_datum(0, ir::Datum::of_sequence({}, dt));
}

void sequence_construct(KernelContext& ctx) {
  std::vector<ir::Tensor> items;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    items.push_back(ctx.input(i));
    if (items.back().dtype() != items[0].dtype()) ctx.fail("all inputs must have the same element type");
  }
  ir::DType dt = items.empty() ? ir::DType::kFloat32 : items[0].dtype();
  ctx.set_output_datum(0, ir::Datum::of_sequence(std::move(items), dt));
}

void sequence_insert(KernelContext& ctx) {
  const ir::Datum& s = sequence_input(ctx, 0);
  const ir::Tensor& t = ctx.input(1);
  if (!s.sequence.empty() && s.sequence_dtype != t.dtype())
    ctx.fail("cannot insert a ", t.dtype(), " tensor into a sequence of ", s.sequence_dtype);
  std::vector<ir::Tensor> items = s.sequence;
  size_t pos = ctx.has_input(2) ? sequence_position(ctx, 2, items.size(), true) : items.size();
  items.insert(items.begin() + static_cast<std::ptrdiff_t>(pos), t);
  ctx.set_output_datum(0, ir::Datum::of_sequence(std::move(items), t.dtype()));
}

void sequence_at(KernelContext& ctx) {
  const ir::Datum& s = sequence_input(ctx, 0);
  ctx.set_output(0, s.sequence[sequence_position(ctx, 1, s.sequence.size(), false)]);
}

void sequence_erase(KernelContext& ctx) {
  const ir::Datum& s = sequence_input(ctx, 0);
  std::vector<ir::Tensor> items = s.sequence;
  if (items.empty()) ctx.fail("cannot erase from an empty sequence");
  size_t pos = ctx.has_input(1) ? sequence_position(ctx, 1, items.size(), false) : items.size() - 1;
  items.erase(items.begin() + static_cast<std::ptrdiff_t>(pos));
  ctx.set_output_datum(0, ir::Datum::of_sequence(std::move(items), s.sequence_dtype));
}

void sequence_length(KernelContext& ctx) {
  ctx.set_output(0, ir::Tensor::scalar<int64_t>(static_cast<int64_t>(sequence_input(ctx, 0).sequence.size())));
}

void split_to_sequence(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  int64_t rank = static_cast<int64_t>(x.rank());
  int64_t axis = normalize_axis(ctx, ctx.attr_int("axis", 0), rank);
  int64_t len = x.dim(static_cast<size_t>(axis));
  std::vector<int64_t> sizes;
  bool keep = true;
  if (ctx.has_input(1)) {
    const ir::Tensor& split = ctx.input(1);
    if (split.rank() == 0) {
      int64_t chunk = split.as_int64(0);
      if (chunk <= 0) ctx.fail("split must be positive, got ", chunk);
      for (int64_t done = 0; done < len; done += chunk) sizes.push_back(std::min(chunk, len - done));
    } else {
      sizes = split.to_int64_vector();
      int64_t total = 0;
      for (int64_t s : sizes) {
        if (s < 0) ctx.fail("split sizes must be non-negative");
        total += s;
      }
      if (total != len) ctx.fail("split sizes add up to ", total, ", but the axis has length ", len);
    }
  } else {
    sizes.assign(static_cast<size_t>(len), 1);
    keep = ctx.attr_int("keepdims", 1) != 0;
  }
  std::vector<ir::Tensor> items;
  int64_t start = 0;
  for (int64_t s : sizes) {
    std::vector<int64_t> shape = x.shape();
    shape[static_cast<size_t>(axis)] = s;
    ir::Tensor part = ctx.make_tensor(x.dtype(), shape);
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= x.dim(static_cast<size_t>(i));
    for (int64_t i = axis + 1; i < rank; ++i) inner *= x.dim(static_cast<size_t>(i));
    for (int64_t o = 0; o < outer; ++o) copy_elements(x, (o * len + start) * inner, part, o * s * inner, s * inner);
    if (!keep) {
      shape.erase(shape.begin() + axis);
      part = part.reshaped(shape);
    }
    items.push_back(std::move(part));
    start += s;
  }
  ctx.set_output_datum(0, ir::Datum::of_sequence(std::move(items), x.dtype()));
}

void concat_from_sequence(KernelContext& ctx) {
  const ir::Datum& s = sequence_input(ctx, 0);
  if (s.sequence.empty()) ctx.fail("cannot concatenate an empty sequence");
  bool new_axis = ctx.attr_int("new_axis", 0) != 0;
  int64_t rank = static_cast<int64_t>(s.sequence[0].rank()) + (new_axis ? 1 : 0);
  int64_t axis = normalize_axis(ctx, ctx.attr_int("axis"), rank);
  ctx.set_output(0, new_axis ? stack_tensors(s.sequence, axis) : concat_tensors(s.sequence, axis));
}

void sequence_map(KernelContext& ctx) {
  const ir::Graph* body = ctx.attr_graph("body");
  if (!body) ctx.fail("missing attribute \"body\"");
  // Inputs that are sequences are iterated together; tensors are passed to every iteration.
  size_t length = sequence_input(ctx, 0).sequence.size();
  for (size_t i = 1; i < ctx.num_inputs(); ++i)
    if (ctx.input_datum(i).is_sequence() && ctx.input_datum(i).sequence.size() != length)
      ctx.fail("input sequences have different lengths");
  std::vector<std::vector<ir::Tensor>> outs(ctx.num_outputs());
  for (size_t k = 0; k < length; ++k) {
    std::vector<ir::Datum> in;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      const ir::Datum& d = ctx.input_datum(i);
      in.push_back(d.is_sequence() ? ir::Datum(d.sequence[k]) : d);
    }
    std::vector<ir::Datum> out = ctx.run_subgraph(*body, std::move(in));
    for (size_t j = 0; j < outs.size() && j < out.size(); ++j) outs[j].push_back(out[j].tensor);
  }
  for (size_t j = 0; j < outs.size(); ++j) {
    ir::DType dt = j < body->outputs.size() ? body->outputs[j].type.dtype : ir::DType::kUndefined;
    if (!outs[j].empty()) dt = outs[j][0].dtype();
    ctx.set_output_datum(j, ir::Datum::of_sequence(std::move(outs[j]), dt));
  }
}

void optional_kernel(KernelContext& ctx) {
  if (ctx.has_input(0))
    ctx.set_output_datum(0, ctx.input_datum(0));
  else
    ctx.set_output_datum(0, ir::Datum());
}

void optional_has_element(KernelContext& ctx) {
  bool has = ctx.has_input(0) && !ctx.input_datum(0).is_none();
  ctx.set_output(0, ir::Tensor::scalar<bool>(has));
}

void optional_get_element(KernelContext& ctx) {
  const ir::Datum& d = ctx.input_datum(0);
  if (d.is_none()) ctx.fail("the optional input is empty");
  ctx.set_output_datum(0, d);
}

}  // namespace

void register_sequence_ops(OpRegistry& r) {
  auto seq_of_input0 = [](InferenceContext& ctx) { set_sequence_type(ctx, sequence_elem_dtype(ctx, 0)); };
  auto seq_of_tensor = [](size_t i) {
    return [i](InferenceContext& ctx) {
      set_sequence_type(ctx, ctx.has_input(i) ? ctx.input_type(i).dtype : ir::DType::kUndefined);
    };
  };
  r.add({"", "SequenceEmpty", 11, kMaxOnnxOpset,
         [](InferenceContext& ctx) {
           set_sequence_type(ctx,
                             static_cast<ir::DType>(ctx.attr_int("dtype", static_cast<int64_t>(ir::DType::kFloat32))));
         },
         sequence_empty});
  r.add({"", "SequenceConstruct", 11, kMaxOnnxOpset, seq_of_tensor(0), sequence_construct});
  r.add({"", "SequenceInsert", 11, kMaxOnnxOpset, seq_of_tensor(1), sequence_insert});
  r.add({"", "SequenceAt", 11, kMaxOnnxOpset,
         [](InferenceContext& ctx) { ctx.set_output(0, sequence_elem_dtype(ctx, 0), std::nullopt); }, sequence_at});
  r.add({"", "SequenceErase", 11, kMaxOnnxOpset, seq_of_input0, sequence_erase});
  r.add({"", "SequenceLength", 11, kMaxOnnxOpset,
         [](InferenceContext& ctx) { ctx.set_output(0, ir::DType::kInt64, ir::Shape()); }, sequence_length});
  r.add({"", "SplitToSequence", 11, kMaxOnnxOpset, seq_of_tensor(0), split_to_sequence});
  r.add({"", "ConcatFromSequence", 11, kMaxOnnxOpset,
         [](InferenceContext& ctx) { ctx.set_output(0, sequence_elem_dtype(ctx, 0), std::nullopt); },
         concat_from_sequence});
  r.add({"", "SequenceMap", 17, kMaxOnnxOpset, nullptr, sequence_map});
  r.add({"", "Optional", 15, kMaxOnnxOpset, nullptr, optional_kernel});
  r.add({"", "OptionalHasElement", 15, kMaxOnnxOpset,
         [](InferenceContext& ctx) { ctx.set_output(0, ir::DType::kBool, ir::Shape()); }, optional_has_element});
  r.add({"", "OptionalGetElement", 15, kMaxOnnxOpset, nullptr, optional_get_element});
}

}  // namespace kiln::ops

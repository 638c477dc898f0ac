// One declaration per operator: name, domain, the opsets it covers, its shape and type inference, and
// its reference kernel. Each op family registers its declarations from its own file
// (kernels/reference/<family>.cc); ops/registry.cc holds the list of families.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ops/node_view.h"

namespace kiln::ops {

// Shape and type inference for one node. Inputs are types (with symbolic dims) and, where the value is
// known before running (an initializer or a folded constant), the value itself.
class InferenceContext : public NodeView {
 public:
  InferenceContext(const ir::Node& node, int64_t opset, std::vector<const ir::Type*> input_types,
                   std::vector<const ir::Tensor*> input_values)
      : NodeView(node, opset),
        input_types_(std::move(input_types)),
        input_values_(std::move(input_values)),
        output_types_(node.outputs.size()) {}

  size_t num_inputs() const { return input_types_.size(); }
  bool has_input(size_t i) const { return i < input_types_.size() && input_types_[i] != nullptr; }
  // Type of input i; fails with a node-naming message when the input is absent.
  const ir::Type& input_type(size_t i) const;
  // Value of input i when known at inference time; nullptr otherwise.
  const ir::Tensor* input_value(size_t i) const { return i < input_values_.size() ? input_values_[i] : nullptr; }

  size_t num_outputs() const { return output_types_.size(); }
  bool has_output(size_t i) const { return i < node().outputs.size() && !node().outputs[i].empty(); }
  void set_output_type(size_t i, ir::Type t) {
    if (i < output_types_.size()) output_types_[i] = std::move(t);
  }
  void set_output(size_t i, ir::DType dtype, std::optional<ir::Shape> shape) {
    set_output_type(i, ir::Type::tensor(dtype, std::move(shape)));
  }
  const std::vector<ir::Type>& output_types() const { return output_types_; }

  // Inferred value of output i, for shape arithmetic (Shape, Gather on shapes, Concat ...): optional.
  void set_output_value(size_t i, ir::Tensor t) {
    if (output_values_.size() < output_types_.size()) output_values_.resize(output_types_.size());
    output_values_[i] = std::move(t);
  }
  const std::vector<ir::Tensor>& output_values() const { return output_values_; }

 private:
  std::vector<const ir::Type*> input_types_;
  std::vector<const ir::Tensor*> input_values_;
  std::vector<ir::Type> output_types_;
  std::vector<ir::Tensor> output_values_;
};

// Limits a kernel must respect; exceeding one is a kiln::Error, never an out-of-memory kill.
struct Limits {
  int64_t max_tensor_bytes = int64_t{8} << 30;  // largest single tensor a kernel may create
};

// Where KernelContext::make_tensor takes memory from when the executor has a memory plan for the run
// (runtime/memory_plan.h): the arena. Without one, tensors come from the heap.
class TensorAllocator {
 public:
  virtual ~TensorAllocator() = default;
  // A tensor of this dtype and shape (bytes = its size, already checked against the limits), its memory
  // zero-filled when `zero_fill`.
  virtual ir::Tensor allocate(ir::DType dtype, ir::Dims shape, size_t bytes, bool zero_fill) = 0;
};

// Execution of one node by a kernel.
class KernelContext : public NodeView {
 public:
  // Runs a subgraph (If/Loop/Scan bodies) with these inputs; outer-scope values stay visible.
  using SubgraphRunner = std::function<std::vector<ir::Datum>(const ir::Graph&, std::vector<ir::Datum>)>;

  // Owns its input list and output slots (constant folding, tests).
  KernelContext(const ir::Node& node, int64_t opset, std::vector<const ir::Datum*> inputs, const Limits& limits,
                SubgraphRunner run_subgraph)
      : NodeView(node, opset),
        owned_inputs_(std::move(inputs)),
        owned_outputs_(node.outputs.size()),
        owned_output_set_(node.outputs.size(), 0),
        inputs_(owned_inputs_),
        outputs_(owned_outputs_),
        output_set_(owned_output_set_),
        limits_(limits),
        run_subgraph_(std::move(run_subgraph)) {}
  // Reads its inputs from and writes its outputs into the caller's storage (the executor reuses it
  // from node to node, so that running a node allocates nothing): `outputs` and `output_set` hold
  // node.outputs.size() entries, empty and 0 on entry.
  KernelContext(const ir::Node& node, int64_t opset, std::span<const ir::Datum* const> inputs,
                std::span<ir::Datum> outputs, std::span<uint8_t> output_set, const Limits& limits,
                const SubgraphRunner* run_subgraph)
      : NodeView(node, opset),
        inputs_(inputs),
        outputs_(outputs),
        output_set_(output_set),
        limits_(limits),
        borrowed_run_subgraph_(run_subgraph) {}
  KernelContext(const KernelContext&) = delete;
  KernelContext& operator=(const KernelContext&) = delete;

  size_t num_inputs() const { return inputs_.size(); }
  // True when input i is given (present and not an omitted optional input).
  bool has_input(size_t i) const { return i < inputs_.size() && inputs_[i] != nullptr; }
  // Tensor input i; fails naming the node when absent or not a tensor.
  const ir::Tensor& input(size_t i) const;
  const ir::Datum& input_datum(size_t i) const;

  size_t num_outputs() const { return outputs_.size(); }
  // True when the graph uses output i (some kernels skip work for unused optional outputs).
  bool has_output(size_t i) const { return i < node().outputs.size() && !node().outputs[i].empty(); }
  void set_output(size_t i, ir::Tensor t) { set_output_datum(i, ir::Datum(std::move(t))); }
  void set_output_datum(size_t i, ir::Datum d) {
    if (i >= outputs_.size()) return;
    outputs_[i] = std::move(d);
    output_set_[i] = true;
  }
  std::span<ir::Datum> outputs() { return outputs_; }
  // False for an output the kernel never set: a kernel bug when the graph uses it (an empty optional
  // is set explicitly, as a Datum of kind kNone).
  bool output_was_set(size_t i) const { return i < output_set_.size() && output_set_[i]; }

  // Allocates an output (or scratch) tensor, enforcing the memory budget with a message naming the node.
  // Its elements are zero unless the executor said the kernel writes every one (set_zero_fill(false)).
  ir::Tensor make_tensor(ir::DType dtype, ir::Dims shape) const;
  void set_allocator(TensorAllocator* allocator) { allocator_ = allocator; }
  // Fast kernels write every element of what they allocate, so the executor turns zero-filling off for
  // them (it costs a pass over memory per tensor).
  void set_zero_fill(bool zero_fill) { zero_fill_ = zero_fill; }

  std::vector<ir::Datum> run_subgraph(const ir::Graph& g, std::vector<ir::Datum> inputs) const;
  const Limits& limits() const { return limits_; }

 private:
  std::vector<const ir::Datum*> owned_inputs_;
  std::vector<ir::Datum> owned_outputs_;
  std::vector<uint8_t> owned_output_set_;
  std::span<const ir::Datum* const> inputs_;
  std::span<ir::Datum> outputs_;
  std::span<uint8_t> output_set_;
  const Limits& limits_;
  SubgraphRunner run_subgraph_;
  const SubgraphRunner* borrowed_run_subgraph_ = nullptr;
  TensorAllocator* allocator_ = nullptr;
  bool zero_fill_ = true;
};

using InferFn = std::function<void(InferenceContext&)>;
using KernelFn = std::function<void(KernelContext&)>;

struct OpDef {
  std::string domain;  // "" for ai.onnx
  std::string name;
  int64_t min_opset = 1;
  int64_t max_opset = std::numeric_limits<int64_t>::max();
  InferFn infer;    // may be empty: outputs then have unknown types until run
  KernelFn kernel;  // the reference kernel
};

}  // namespace kiln::ops

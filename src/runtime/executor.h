// Runs a graph node by node, in topological order, with the reference kernels or, where one covers the
// node and the call, a fast kernel prepared here once (kernels/cpu/fast_kernels.h). Values are released
// after their last use. Subgraphs (If/Loop/Scan bodies) run through the same executor and see the
// values of their enclosing graphs.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"
#include "kernels/cpu/fast_kernels.h"
#include "ops/op_def.h"

namespace kiln::runtime {

// Values visible to a running graph; lookups fall through to enclosing graphs.
struct Scope {
  const Scope* parent = nullptr;
  std::unordered_map<std::string, ir::Datum> values;
  const ir::Datum* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent) {
      auto it = s->values.find(name);
      if (it != s->values.end()) return &it->second;
    }
    return nullptr;
  }
};

class Executor {
 public:
  // Called after each node with its outputs (for checking inferred types, tracing, ...).
  using NodeObserver = std::function<void(const ir::Node&, const std::vector<ir::Datum>&)>;

  // Resolves every node of the model (and of its subgraphs) to its op declaration once, and with
  // `fast_kernels` prepares the fast kernels (packing weights).
  Executor(const ir::Model& model, ops::Limits limits, bool fast_kernels = false);
  ~Executor();

  // Runs g with `bindings` for its inputs (the caller binds graph inputs; initializers are bound here)
  // and returns g's outputs in order.
  std::vector<ir::Datum> run(const ir::Graph& g, std::unordered_map<std::string, ir::Datum> bindings,
                             const Scope* outer) const;

  void set_observer(NodeObserver observer) { observer_ = std::move(observer); }
  // Nodes of the main graph with a fast kernel prepared (for reports and tests).
  size_t fast_kernel_count() const;
  int64_t opset_of(const ir::Node& n) const { return model_.opset(n.domain); }

 private:
  struct PreparedGraph {
    std::vector<const ops::OpDef*> defs;                          // per node
    std::vector<std::unique_ptr<kernels::cpu::FastKernel>> fast;  // per node; null: reference only
    std::unordered_map<std::string, size_t> last_use;             // value -> index of the last node reading it
  };
  void prepare(const ir::Graph& g);

  const ir::Model& model_;
  ops::Limits limits_;
  bool fast_kernels_;
  std::unordered_map<const ir::Graph*, PreparedGraph> prepared_;
  NodeObserver observer_;
};

}  // namespace kiln::runtime

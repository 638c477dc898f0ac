// Helpers shared by the com.microsoft contrib op tests (contrib_ops_test.cc, contrib_ort_interop_test.cc):
// a small builder for one-graph models fed with concrete tensors, random inputs, and comparison.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "runtime/session.h"

namespace kiln::testing::contrib {

using Kind = ir::Attribute::Kind;

inline ir::Attribute attr_int(const std::string& name, int64_t v) {
  ir::Attribute a;
  a.name = name;
  a.kind = Kind::kInt;
  a.i = v;
  return a;
}

inline ir::Attribute attr_float(const std::string& name, float v) {
  ir::Attribute a;
  a.name = name;
  a.kind = Kind::kFloat;
  a.f = v;
  return a;
}

inline ir::Attribute attr_string(const std::string& name, const std::string& v) {
  ir::Attribute a;
  a.name = name;
  a.kind = Kind::kString;
  a.s = v;
  return a;
}

inline ir::Attribute attr_ints(const std::string& name, std::vector<int64_t> v) {
  ir::Attribute a;
  a.name = name;
  a.kind = Kind::kInts;
  a.ints = std::move(v);
  return a;
}

inline ir::Attribute attr_floats(const std::string& name, std::vector<float> v) {
  ir::Attribute a;
  a.name = name;
  a.kind = Kind::kFloats;
  a.floats = std::move(v);
  return a;
}

inline ir::Attribute attr_strings(const std::string& name, std::vector<std::string> v) {
  ir::Attribute a;
  a.name = name;
  a.kind = Kind::kStrings;
  a.strings = std::move(v);
  return a;
}

// Deterministic random tensors.
class Random {
 public:
  explicit Random(uint32_t seed) : gen_(seed) {}
  ir::Tensor floats(std::vector<int64_t> shape, float lo = -1.0f, float hi = 1.0f) {
    ir::Tensor t(ir::DType::kFloat32, std::move(shape));
    std::uniform_real_distribution<float> d(lo, hi);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(gen_);
    return t;
  }
  // Integers in [lo, hi].
  ir::Tensor ints(std::vector<int64_t> shape, int32_t lo, int32_t hi) {
    ir::Tensor t(ir::DType::kInt32, std::move(shape));
    std::uniform_int_distribution<int32_t> d(lo, hi);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = d(gen_);
    return t;
  }

 private:
  std::mt19937 gen_;
};

// A tensor of `dtype` whose bytes are a seeded pattern (float32: random values), so that a misplaced
// element shows.
inline ir::Tensor pattern_tensor(ir::DType dtype, const std::vector<int64_t>& shape, uint32_t seed) {
  if (dtype == ir::DType::kFloat32) return Random(seed).floats(shape);
  ir::Tensor t(dtype, shape);
  std::mt19937 gen(seed);
  auto* bytes = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<uint8_t>(gen());
  if (dtype == ir::DType::kBool)
    for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] &= 1;
  return t;
}

inline ir::Tensor scalar(float v) { return ir::Tensor::from_vector<float>({v}, {}); }
inline ir::Tensor int64s(const std::vector<int64_t>& v) {
  return ir::Tensor::from_vector<int64_t>(v, {static_cast<int64_t>(v.size())});
}
inline ir::Tensor int32s(const std::vector<int32_t>& v, std::vector<int64_t> shape) {
  return ir::Tensor::from_vector<int32_t>(v, std::move(shape));
}

// A model of one graph, built node by node. Inputs are graph inputs fed with the given tensors;
// constants are initializers. Imports ai.onnx at `opset` and com.microsoft at 1.
class TestGraph {
 public:
  explicit TestGraph(int64_t opset = 17) {
    model_.opset_imports[""] = opset;
    model_.opset_imports["com.microsoft"] = 1;
  }

  void import_opset(const std::string& domain, int64_t version) { model_.opset_imports[domain] = version; }

  std::string input(const std::string& name, const ir::Tensor& value) {
    model_.graph.inputs.push_back({name, ir::Type::tensor(value.dtype(), ir::Shape::of(value.shape())), ""});
    feeds_[name] = value;
    return name;
  }
  std::string constant(const std::string& name, const ir::Tensor& value) {
    model_.graph.add_initializer(name, value);
    return name;
  }
  // Adds a node named after its op and position; "" in inputs / outputs marks an omitted optional one.
  void node(const std::string& op, std::vector<std::string> inputs, std::vector<std::string> outputs,
            std::vector<ir::Attribute> attrs = {}, const std::string& domain = "") {
    ir::Node n;
    n.name = op + "_" + std::to_string(model_.graph.nodes.size());
    n.op_type = op;
    n.domain = domain;
    n.inputs = std::move(inputs);
    n.outputs = std::move(outputs);
    n.attributes = std::move(attrs);
    model_.graph.nodes.push_back(std::move(n));
  }
  void contrib(const std::string& op, std::vector<std::string> inputs, std::vector<std::string> outputs,
               std::vector<ir::Attribute> attrs = {}) {
    node(op, std::move(inputs), std::move(outputs), std::move(attrs), "com.microsoft");
  }
  void output(const std::string& name) { model_.graph.outputs.push_back({name, ir::Type(), ""}); }

  const ir::Model& model() const { return model_; }
  const std::unordered_map<std::string, ir::Datum>& feeds() const { return feeds_; }
  const ir::Tensor& feed(const std::string& name) const { return feeds_.at(name).tensor; }

  // Runs in kiln's reference session as written (no graph passes: a reference graph must not be fused
  // into the op it checks), checking every output against the types inference gave.
  std::vector<ir::Tensor> run() const {
    runtime::SessionOptions options;
    options.verify_inference = true;
    options.optimization = passes::Level::kNone;
    options.fast_kernels = false;  // the reference kernels alone: fast kernels are checked against them
    runtime::Session session(model_, options);
    std::vector<ir::Tensor> outs;
    for (auto& d : session.run(feeds_)) outs.push_back(d.tensor);
    return outs;
  }

 private:
  ir::Model model_;
  std::unordered_map<std::string, ir::Datum> feeds_;
};

// The kiln::Error message of running `g`, or "" when it runs.
inline std::string error_of(const TestGraph& g) {
  try {
    g.run();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Largest |a - b| over two tensors of the same dtype and shape (float32 or int32); infinity when the shapes
// differ, and a NaN on one side only counts as infinity.
inline double max_abs_diff(const ir::Tensor& a, const ir::Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return INFINITY;
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double x = a.as_double(i), y = b.as_double(i);
    if (std::isnan(x) || std::isnan(y)) {
      if (std::isnan(x) != std::isnan(y)) return INFINITY;
      continue;
    }
    m = std::max(m, std::fabs(x - y));
  }
  return m;
}

}  // namespace kiln::testing::contrib

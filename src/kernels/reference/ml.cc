// ai.onnx.ml, the classic-ML domain (scikit-learn converters write it), as far as kiln covers it:
//
//   Binarizer (1)              y = x > threshold ? 1 : 0, in x's type
//   ArrayFeatureExtractor (1)  data[..., indices] along the last axis; a 1-D data gives [1, n] (as ONNX
//                              Runtime and ONNX's reference do)
//   LabelEncoder (2, 4)        a lookup of each element in keys -> values (floats, int64s, strings, or from
//                              opset 4 tensors), the default for an absent key
//   TreeEnsemble (5)           a forest of binary trees over the features of each row of X [N, F]; each
//                              tree's leaf adds (sum, average) or folds (min, max) its weight into its
//                              target; post_transform NONE only
//
// The other ml ops (TreeEnsembleRegressor/Classifier, SVM*, Linear*, Scaler ...) are not declared; a
// model using them is refused as unsupported.
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/nn_common.h"
#include "ops/registry.h"

namespace kiln::ops::ml {

namespace {

constexpr const char* kMlDomain = "ai.onnx.ml";
constexpr int64_t kMaxMlOpset = 5;

// ---- Binarizer -----------------------------------------------------------------------------------------

void binarizer_infer(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  nn::require_dtype(ctx, x.dtype, nn::kFloatAndIntTypes, "input X");
  ctx.set_output_type(0, x);
}

void binarizer_kernel(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  nn::require_dtype(ctx, x.dtype(), nn::kFloatAndIntTypes, "input X");
  const double threshold = ctx.attr_float("threshold", 0.0f);
  std::vector<double> v = nn::to_doubles(x);
  for (double& e : v) e = e > threshold ? 1.0 : 0.0;
  ir::Tensor y = ctx.make_tensor(x.dtype(), x.shape());
  nn::store_doubles(y, v.data());
  ctx.set_output(0, std::move(y));
}

// ---- ArrayFeatureExtractor -----------------------------------------------------------------------------

std::optional<ir::Shape> feature_shape(const ir::Shape& data, std::optional<int64_t> count) {
  ir::Shape s;
  if (data.rank() <= 1)
    s.dims.push_back(ir::Dim(1));
  else
    s.dims.assign(data.dims.begin(), data.dims.end() - 1);
  s.dims.push_back(count ? ir::Dim(*count) : ir::Dim());
  return s;
}

void feature_extractor_infer(InferenceContext& ctx) {
  const ir::Type& data = ctx.input_type(0);
  const ir::Type& indices = ctx.input_type(1);
  if (indices.dtype != ir::DType::kUndefined && indices.dtype != ir::DType::kInt64)
    ctx.fail("indices must be int64, got ", indices.dtype);
  std::optional<int64_t> count;
  if (indices.shape && indices.shape->is_static()) {
    count = 1;
    for (int64_t d : indices.shape->values()) *count *= d;
  }
  ctx.set_output(0, data.dtype, data.shape ? feature_shape(*data.shape, count) : std::nullopt);
}

void feature_extractor_kernel(KernelContext& ctx) {
  const ir::Tensor& data = ctx.input(0);
  const ir::Tensor& indices = ctx.input(1);
  if (indices.dtype() != ir::DType::kInt64) ctx.fail("indices must be int64, got ", indices.dtype());
  if (data.rank() == 0) ctx.fail("X must have rank >= 1");
  const int64_t last = data.shape().back(), rows = data.numel() / std::max<int64_t>(last, 1);
  const int64_t count = indices.numel();
  const int64_t* idx = indices.data<int64_t>();
  for (int64_t i = 0; i < count; ++i)
    if (idx[i] < 0 || idx[i] >= last) ctx.fail("index ", idx[i], " is outside X's last dim of ", last);
  ir::Dims shape = data.rank() == 1 ? ir::Dims{1} : ir::Dims(data.shape().begin(), data.shape().end() - 1);
  shape.push_back(count);
  ir::Tensor y = ctx.make_tensor(data.dtype(), shape);
  if (data.dtype() == ir::DType::kString) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < count; ++i)
        y.data<std::string>()[r * count + i] = data.data<std::string>()[r * last + idx[i]];
  } else {
    const size_t size = ir::dtype_size(data.dtype());
    const auto* src = static_cast<const uint8_t*>(data.raw());
    auto* dst = static_cast<uint8_t*>(y.raw());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < count; ++i)
        std::memcpy(dst + static_cast<size_t>(r * count + i) * size,
                    src + static_cast<size_t>(r * last + idx[i]) * size, size);
  }
  ctx.set_output(0, std::move(y));
}

// ---- LabelEncoder --------------------------------------------------------------------------------------

// A key or value: an integer (of any integer type), a floating-point number (of any float type; NaN
// matches NaN) or a string.
using Label = std::variant<int64_t, double, std::string>;

struct LabelList {
  ir::DType dtype = ir::DType::kUndefined;
  std::vector<Label> items;
};

Label label_at(const NodeView& node, const ir::Tensor& t, int64_t i) {
  if (t.dtype() == ir::DType::kString) return t.data<std::string>()[i];
  if (ir::is_integer(t.dtype())) return t.as_int64(i);
  if (ir::is_float(t.dtype())) return t.as_double(i);
  node.fail("labels of type ", t.dtype(), " are not supported");
}

// keys_* or values_* (`which` is "keys" or "values"): exactly one of the int64s, floats, strings or tensor
// attributes.
LabelList read_labels(const NodeView& node, const std::string& which) {
  LabelList l;
  int found = 0;
  if (const ir::Attribute* a = node.node().find_attribute(which + "_int64s")) {
    l.dtype = ir::DType::kInt64;
    for (int64_t v : a->ints) l.items.emplace_back(v);
    ++found;
  }
  if (const ir::Attribute* a = node.node().find_attribute(which + "_floats")) {
    l.dtype = ir::DType::kFloat32;
    for (float v : a->floats) l.items.emplace_back(static_cast<double>(v));
    ++found;
  }
  if (const ir::Attribute* a = node.node().find_attribute(which + "_strings")) {
    l.dtype = ir::DType::kString;
    for (const auto& v : a->strings) l.items.emplace_back(v);
    ++found;
  }
  if (const ir::Tensor* t = node.attr_tensor(which + "_tensor")) {
    l.dtype = t->dtype();
    for (int64_t i = 0; i < t->numel(); ++i) l.items.push_back(label_at(node, *t, i));
    ++found;
  }
  if (found != 1) node.fail("exactly one ", which, "_* attribute must be given, got ", found);
  return l;
}

Label default_label(const NodeView& node, ir::DType dtype) {
  if (const ir::Tensor* t = node.attr_tensor("default_tensor")) {
    if (t->dtype() != dtype || t->numel() != 1)
      node.fail("default_tensor must be one ", dtype, " value, got ", t->dtype(), ir::to_string(t->shape()));
    return label_at(node, *t, 0);
  }
  if (dtype == ir::DType::kString) return node.attr_string("default_string", "_Unused");
  if (dtype == ir::DType::kInt64) return node.attr_int("default_int64", -1);
  if (dtype == ir::DType::kFloat32) return static_cast<double>(node.attr_float("default_float", -0.0f));
  node.fail("values of type ", dtype, " need a default_tensor");
}

void label_encoder_infer(InferenceContext& ctx) {
  LabelList keys = read_labels(ctx, "keys");
  LabelList values = read_labels(ctx, "values");
  const ir::Type& x = ctx.input_type(0);
  if (x.dtype != ir::DType::kUndefined && x.dtype != keys.dtype)
    ctx.fail("input is ", x.dtype, ", the keys are ", keys.dtype);
  ctx.set_output(0, values.dtype, x.shape);
}

void label_encoder_kernel(KernelContext& ctx) {
  const LabelList keys = read_labels(ctx, "keys");
  const LabelList values = read_labels(ctx, "values");
  if (keys.items.size() != values.items.size())
    ctx.fail(keys.items.size(), " keys but ", values.items.size(), " values");
  const ir::Tensor& x = ctx.input(0);
  if (x.dtype() != keys.dtype) ctx.fail("input is ", x.dtype(), ", the keys are ", keys.dtype);
  // NaN keys match NaN inputs, as in ONNX Runtime; std::map orders NaN poorly, so it is kept apart.
  auto is_nan = [](const Label& l) {
    const double* d = std::get_if<double>(&l);
    return d && std::isnan(*d);
  };
  std::map<Label, size_t> index;
  std::optional<size_t> nan_index;
  for (size_t i = 0; i < keys.items.size(); ++i) {
    if (is_nan(keys.items[i]))
      nan_index = nan_index.value_or(i);
    else
      index.emplace(keys.items[i], i);
  }
  const Label fallback = default_label(ctx, values.dtype);
  ir::Tensor y = ctx.make_tensor(values.dtype, x.shape());
  std::vector<double> numbers(values.dtype == ir::DType::kString ? 0 : static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const Label key = label_at(ctx, x, i);
    const Label* v = &fallback;
    if (is_nan(key)) {
      if (nan_index) v = &values.items[*nan_index];
    } else if (auto it = index.find(key); it != index.end()) {
      v = &values.items[it->second];
    }
    if (values.dtype == ir::DType::kString)
      y.data<std::string>()[i] = std::get<std::string>(*v);
    else if (values.dtype == ir::DType::kInt64)
      y.data<int64_t>()[i] = std::get<int64_t>(*v);  // exact beyond 2^53
    else
      numbers[static_cast<size_t>(i)] =
          std::holds_alternative<int64_t>(*v) ? static_cast<double>(std::get<int64_t>(*v)) : std::get<double>(*v);
  }
  if (values.dtype != ir::DType::kString && values.dtype != ir::DType::kInt64 && !numbers.empty())
    nn::store_doubles(y, numbers.data());
  ctx.set_output(0, std::move(y));
}

// ---- TreeEnsemble --------------------------------------------------------------------------------------

enum class TreeMode : uint8_t { kLeq = 0, kLt = 1, kGte = 2, kGt = 3, kEq = 4, kNeq = 5, kMember = 6 };

struct Forest {
  std::vector<double> splits;
  std::vector<int64_t> features, true_ids, false_ids, true_leafs, false_leafs, missing_true;
  std::vector<uint8_t> modes;
  std::vector<std::vector<double>> members;  // per node, for kMember
  std::vector<int64_t> leaf_targets, roots;
  std::vector<double> leaf_weights;
  int64_t n_targets = 0;
  int64_t aggregate = 1;  // 0 average, 1 sum, 2 min, 3 max
};

std::vector<double> tensor_doubles(const NodeView& node, const char* name, bool required) {
  const ir::Tensor* t = node.attr_tensor(name);
  if (!t) {
    if (required) node.fail("attribute \"", name, "\" is required");
    return {};
  }
  return nn::to_doubles(*t);
}

Forest read_forest(const NodeView& node) {
  Forest f;
  f.splits = tensor_doubles(node, "nodes_splits", true);
  f.features = node.attr_ints("nodes_featureids");
  f.true_ids = node.attr_ints("nodes_truenodeids");
  f.false_ids = node.attr_ints("nodes_falsenodeids");
  f.true_leafs = node.attr_ints("nodes_trueleafs");
  f.false_leafs = node.attr_ints("nodes_falseleafs");
  f.missing_true = node.attr_ints("nodes_missing_value_tracks_true");
  for (double m : tensor_doubles(node, "nodes_modes", true)) f.modes.push_back(static_cast<uint8_t>(m));
  f.leaf_targets = node.attr_ints("leaf_targetids");
  f.leaf_weights = tensor_doubles(node, "leaf_weights", true);
  f.roots = node.attr_ints("tree_roots");
  f.n_targets = node.attr_int("n_targets");
  f.aggregate = node.attr_int("aggregate_function", 1);
  const size_t n = f.splits.size();
  if (f.features.size() != n || f.true_ids.size() != n || f.false_ids.size() != n || f.true_leafs.size() != n ||
      f.false_leafs.size() != n || f.modes.size() != n || (!f.missing_true.empty() && f.missing_true.size() != n))
    node.fail("the nodes_* attributes must all have ", n, " values");
  if (f.leaf_targets.size() != f.leaf_weights.size())
    node.fail("leaf_targetids has ", f.leaf_targets.size(), " values, leaf_weights ", f.leaf_weights.size());
  if (f.n_targets <= 0) node.fail("n_targets must be positive, got ", f.n_targets);
  if (f.aggregate < 0 || f.aggregate > 3) node.fail("aggregate_function must be 0 to 3, got ", f.aggregate);
  if (int64_t post = node.attr_int("post_transform", 0); post != 0)
    node.fail("post_transform ", post, " is not supported (only 0, NONE)");
  for (uint8_t m : f.modes)
    if (m > 6) node.fail("nodes_modes value ", int(m), " is not a mode (0 to 6)");
  for (int64_t t : f.leaf_targets)
    if (t < 0 || t >= f.n_targets) node.fail("leaf target ", t, " is outside n_targets ", f.n_targets);
  // Set members: for each membership node in node order, its values up to the next NaN.
  f.members.resize(n);
  std::vector<double> values = tensor_doubles(node, "membership_values", false);
  size_t next = 0;
  for (size_t i = 0; i < n; ++i) {
    if (f.modes[i] != static_cast<uint8_t>(TreeMode::kMember)) continue;
    if (next >= values.size()) node.fail("membership_values has too few sets for the membership nodes");
    for (; next < values.size() && !std::isnan(values[next]); ++next) f.members[i].push_back(values[next]);
    ++next;  // the NaN
  }
  auto check_index = [&](int64_t i, size_t size, const char* what) {
    if (i < 0 || static_cast<size_t>(i) >= size) node.fail(what, " index ", i, " is outside its ", size, " entries");
  };
  for (size_t i = 0; i < n; ++i) {
    check_index(f.true_ids[i], f.true_leafs[i] ? f.leaf_weights.size() : n, "node");
    check_index(f.false_ids[i], f.false_leafs[i] ? f.leaf_weights.size() : n, "node");
    check_index(f.features[i], std::numeric_limits<size_t>::max(), "feature");
  }
  for (int64_t r : f.roots) {
    check_index(r, n, "tree root");
    // A root whose both branches are the same leaf is a tree that is a single leaf: ONNX's reference reads
    // the leaf arrays at the root's own index, which must then be a leaf too.
    const auto ri = static_cast<size_t>(r);
    if (f.true_leafs[ri] && f.false_leafs[ri] && f.true_ids[ri] == f.false_ids[ri])
      check_index(r, f.leaf_weights.size(), "single-leaf tree root (as a leaf)");
  }
  return f;
}

bool goes_true(const Forest& f, size_t node, double x) {
  if (std::isnan(x) && !f.missing_true.empty() && f.missing_true[node]) return true;
  const double s = f.splits[node];
  switch (static_cast<TreeMode>(f.modes[node])) {
    case TreeMode::kLeq:
      return x <= s;
    case TreeMode::kLt:
      return x < s;
    case TreeMode::kGte:
      return x >= s;
    case TreeMode::kGt:
      return x > s;
    case TreeMode::kEq:
      return x == s;
    case TreeMode::kNeq:
      return x != s;
    case TreeMode::kMember:
      for (double m : f.members[node])
        if (m == x) return true;
      return false;
  }
  return false;
}

void tree_ensemble_infer(InferenceContext& ctx) {
  const ir::Type& x = ctx.input_type(0);
  nn::require_dtype(ctx, x.dtype, nn::kFloatTypes, "input X");
  std::optional<ir::Shape> shape;
  if (x.shape && x.shape->rank() == 2) shape = ir::Shape{{x.shape->dims[0], ir::Dim(ctx.attr_int("n_targets"))}};
  ctx.set_output(0, x.dtype, shape);
}

void tree_ensemble_kernel(KernelContext& ctx) {
  const ir::Tensor& x_t = ctx.input(0);
  nn::require_dtype(ctx, x_t.dtype(), nn::kFloatTypes, "input X");
  if (x_t.rank() != 2) ctx.fail("X must be 2-D [N, features], got ", ir::to_string(x_t.shape()));
  const Forest f = read_forest(ctx);
  const int64_t rows = x_t.dim(0), cols = x_t.dim(1);
  for (int64_t feature : f.features)
    if (feature >= cols) ctx.fail("feature id ", feature, " is outside X's ", cols, " features");
  const std::vector<double> x = nn::to_doubles(x_t);
  // min and max start from the largest finite value of X's type, as ONNX's reference does.
  const double largest = x_t.dtype() == ir::DType::kFloat64   ? std::numeric_limits<double>::max()
                         : x_t.dtype() == ir::DType::kFloat16 ? 65504.0
                                                              : static_cast<double>(std::numeric_limits<float>::max());
  const double start = f.aggregate == 2 ? largest : f.aggregate == 3 ? -largest : 0.0;
  std::vector<double> y(static_cast<size_t>(rows * f.n_targets), start);
  const size_t n = f.splits.size();
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = &x[static_cast<size_t>(r * cols)];
    double* out = &y[static_cast<size_t>(r * f.n_targets)];
    for (int64_t root : f.roots) {
      size_t leaf = 0;
      const auto ri = static_cast<size_t>(root);
      if (f.true_leafs[ri] && f.false_leafs[ri] && f.true_ids[ri] == f.false_ids[ri]) {
        leaf = ri;  // a tree that is a single leaf
      } else {
        size_t node = ri;
        for (size_t steps = 0;; ++steps) {
          if (steps > n) ctx.fail("tree from root ", root, " has a cycle");
          bool t = goes_true(f, node, row[f.features[node]]);
          auto next = static_cast<size_t>(t ? f.true_ids[node] : f.false_ids[node]);
          if (t ? f.true_leafs[node] : f.false_leafs[node]) {
            leaf = next;
            break;
          }
          node = next;
        }
      }
      double& o = out[f.leaf_targets[leaf]];
      const double w = f.leaf_weights[leaf];
      if (f.aggregate == 0)
        o += w / static_cast<double>(f.roots.size());
      else if (f.aggregate == 1)
        o += w;
      else if (f.aggregate == 2)
        o = std::min(o, w);
      else
        o = std::max(o, w);
    }
  }
  ir::Tensor y_t = ctx.make_tensor(x_t.dtype(), {rows, f.n_targets});
  nn::store_doubles(y_t, y.data());
  ctx.set_output(0, std::move(y_t));
}

}  // namespace

void register_ops(OpRegistry& r) {
  r.add(OpDef{kMlDomain, "Binarizer", 1, kMaxMlOpset, binarizer_infer, binarizer_kernel});
  r.add(OpDef{kMlDomain, "ArrayFeatureExtractor", 1, kMaxMlOpset, feature_extractor_infer, feature_extractor_kernel});
  // Opset 2 added keys/values of floats; opset 4 tensors and default_tensor: one kernel reads them all.
  r.add(OpDef{kMlDomain, "LabelEncoder", 2, kMaxMlOpset, label_encoder_infer, label_encoder_kernel});
  r.add(OpDef{kMlDomain, "TreeEnsemble", 5, kMaxMlOpset, tree_ensemble_infer, tree_ensemble_kernel});
}

}  // namespace kiln::ops::ml

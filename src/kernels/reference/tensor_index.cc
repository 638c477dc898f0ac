// Ops that pick, place or order elements by index or value: Gather, GatherElements, GatherND, Scatter,
// ScatterElements, ScatterND, NonZero, Compress, OneHot, TopK, Unique, CumSum, CumProd.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "kernels/reference/tensor_util.h"

namespace kiln::ops::tensor_detail {

namespace {

using ir::Dim;
using ir::DType;
using ir::Shape;
using ir::Tensor;

template <class T>
inline constexpr bool is_complex_v = std::is_same_v<T, std::complex<float>> || std::is_same_v<T, std::complex<double>>;
template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;

// Maps index v into [0, dim), allowing negative indices from the end; fails naming the op otherwise.
int64_t checked_index(const NodeView& node, int64_t v, int64_t dim, const char* what) {
  if (v < -dim || v >= dim) node.fail(what, " ", v, " is out of range for a dimension of size ", dim);
  return v < 0 ? v + dim : v;
}

// A fresh copy within the memory budget: scatter ops write into a copy of data.
Tensor copy_of(const KernelContext& ctx, const Tensor& t) {
  Tensor out = ctx.make_tensor(t.dtype(), t.shape());
  visit_storage(t.dtype(), [&]<class S>() { std::copy(storage<S>(t), storage<S>(t) + t.numel(), storage<S>(out)); });
  return out;
}

std::vector<int64_t> index_values(const NodeView& node, const Tensor& t) { return int_values(node, t, "indices"); }

// ---- Gather ----

void gather_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  if (data.rank() == 0) ctx.fail("data must have rank 1 or more");
  auto axis = static_cast<size_t>(normalize_axis(ctx, ctx.attr_int("axis", 0), static_cast<int64_t>(data.rank())));
  // Indices are read where they are (int32 or int64, as the graph gives them), not copied: a Gather runs
  // on every call of a BERT, and a steady-state run allocates nothing.
  const int64_t n = ind.numel();
  std::vector<int64_t> converted;  // other integer types only (index_values refuses non-integers)
  if (ind.dtype() != ir::DType::kInt32 && ind.dtype() != ir::DType::kInt64) converted = index_values(ctx, ind);
  auto index_at = [&](int64_t i) -> int64_t {
    if (ind.dtype() == ir::DType::kInt64) return ind.data<int64_t>()[i];
    if (ind.dtype() == ir::DType::kInt32) return ind.data<int32_t>()[i];
    return converted[static_cast<size_t>(i)];
  };
  int64_t dim = data.dim(axis);
  for (int64_t i = 0; i < n; ++i) checked_index(ctx, index_at(i), dim, "index");
  ir::Dims out_shape(data.shape().begin(), data.shape().begin() + static_cast<std::ptrdiff_t>(axis));
  out_shape.insert(out_shape.end(), ind.shape().begin(), ind.shape().end());
  out_shape.insert(out_shape.end(), data.shape().begin() + static_cast<std::ptrdiff_t>(axis) + 1, data.shape().end());
  Tensor out = ctx.make_tensor(data.dtype(), out_shape);
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= data.dim(d);
  for (size_t d = axis + 1; d < data.rank(); ++d) inner *= data.dim(d);
  visit_storage(data.dtype(), [&]<class S>() {
    const S* in = storage<S>(data);
    S* o = storage<S>(out);
    for (int64_t r = 0; r < outer; ++r)
      for (int64_t i = 0; i < n; ++i) {
        const int64_t at = index_at(i);
        const S* from = in + (r * dim + (at < 0 ? at + dim : at)) * inner;
        std::copy(from, from + inner, o + (r * n + i) * inner);
      }
  });
  ctx.set_output(0, out);
}

void gather_infer(InferenceContext& ctx) {
  const ir::Type& data = ctx.input_type(0);
  const ir::Type& ind = ctx.input_type(1);
  check_index_dtype(ctx, ind.dtype, "indices");
  if (!data.shape || !ind.shape) {
    ctx.set_output(0, data.dtype, std::nullopt);
    return;
  }
  if (data.shape->rank() == 0) ctx.fail("data must have rank 1 or more");
  auto axis =
      static_cast<size_t>(normalize_axis(ctx, ctx.attr_int("axis", 0), static_cast<int64_t>(data.shape->rank())));
  const auto& d = data.shape->dims;
  Shape out;
  out.dims.insert(out.dims.end(), d.begin(), d.begin() + static_cast<std::ptrdiff_t>(axis));
  out.dims.insert(out.dims.end(), ind.shape->dims.begin(), ind.shape->dims.end());
  out.dims.insert(out.dims.end(), d.begin() + static_cast<std::ptrdiff_t>(axis) + 1, d.end());
  ctx.set_output(0, data.dtype, out);
}

// ---- GatherElements / Scatter / ScatterElements ----

// Checks that indices (and updates) fit data for the element-wise gather/scatter family and returns
// the normalized axis.
size_t elements_axis(const NodeView& node, const Tensor& data, const Tensor& ind) {
  if (data.rank() == 0) node.fail("data must have rank 1 or more");
  if (ind.rank() != data.rank())
    node.fail("indices rank ", ind.rank(), " differs from data rank ", data.rank(), " (shapes ",
              ir::to_string(ind.shape()), " and ", ir::to_string(data.shape()), ")");
  auto axis = static_cast<size_t>(normalize_axis(node, node.attr_int("axis", 0), static_cast<int64_t>(data.rank())));
  for (size_t d = 0; d < data.rank(); ++d)
    if (d != axis && ind.dim(d) > data.dim(d))
      node.fail("indices shape ", ir::to_string(ind.shape()), " exceeds data shape ", ir::to_string(data.shape()),
                " at axis ", d);
  return axis;
}

// For each element of indices (row-major), the offset into data it addresses.
std::vector<int64_t> elements_offsets(const NodeView& node, const Tensor& data, const Tensor& ind, size_t axis) {
  std::vector<int64_t> idx = index_values(node, ind);
  std::vector<int64_t> data_strides = ir::strides_of(data.shape());
  size_t rank = ind.rank();
  std::vector<int64_t> pos(rank, 0);
  for (size_t k = 0; k < idx.size(); ++k) {
    int64_t off = 0;
    for (size_t d = 0; d < rank; ++d)
      off += (d == axis ? checked_index(node, idx[k], data.dim(axis), "index") : pos[d]) * data_strides[d];
    idx[k] = off;
    for (size_t d = rank; d-- > 0;) {
      if (++pos[d] < ind.dim(d)) break;
      pos[d] = 0;
    }
  }
  return idx;
}

void gather_elements_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  size_t axis = elements_axis(ctx, data, ind);
  Tensor out = ctx.make_tensor(data.dtype(), ind.shape());
  gather_by_offsets(data, out, elements_offsets(ctx, data, ind, axis));
  ctx.set_output(0, out);
}

void gather_elements_infer(InferenceContext& ctx) {
  const ir::Type& data = ctx.input_type(0);
  const ir::Type& ind = ctx.input_type(1);
  check_index_dtype(ctx, ind.dtype, "indices");
  if (data.shape && ind.shape && data.shape->rank() != ind.shape->rank())
    ctx.fail("indices rank ", ind.shape->rank(), " differs from data rank ", data.shape->rank());
  ctx.set_output(0, data.dtype,
                 ind.shape    ? ind.shape
                 : data.shape ? std::optional<Shape>(Shape(std::vector<Dim>(data.shape->rank())))
                              : std::nullopt);
}

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Reduction scatter_reduction(const NodeView& node) {
  if (node.opset() < 16) return Reduction::kNone;
  std::string r = node.attr_string("reduction", "none");
  if (r == "none") return Reduction::kNone;
  if (r == "add") return Reduction::kAdd;
  if (r == "mul") return Reduction::kMul;
  if (r == "max" && node.opset() >= 18) return Reduction::kMax;
  if (r == "min" && node.opset() >= 18) return Reduction::kMin;
  node.fail("unsupported reduction \"", r, "\"");
}

// out[offsets[k]] = reduce(out[offsets[k]], updates[k * block + j]) for j < block, in order.
void scatter_into(const NodeView& node, Tensor& out, const Tensor& updates, const std::vector<int64_t>& offsets,
                  int64_t block, Reduction red) {
  if (updates.dtype() != out.dtype())
    node.fail("updates type ", ir::dtype_name(updates.dtype()), " differs from data type ",
              ir::dtype_name(out.dtype()));
  ir::visit_dtype(out.dtype(), [&]<class T>() {
    T* o = out.data<T>();
    const T* u = updates.data<T>();
    for (size_t k = 0; k < offsets.size(); ++k) {
      T* dst = o + offsets[k];
      const T* src = u + static_cast<int64_t>(k) * block;
      if (red == Reduction::kNone) {
        std::copy(src, src + block, dst);
        continue;
      }
      if constexpr (std::is_same_v<T, std::string>) {
        node.fail("reduction is not supported for string tensors");
      } else {
        for (int64_t j = 0; j < block; ++j) {
          T& a = dst[j];
          const T& b = src[j];
          switch (red) {
            case Reduction::kAdd:
              a = static_cast<T>(a + b);
              break;
            case Reduction::kMul:
              a = static_cast<T>(a * b);
              break;
            case Reduction::kMax:
            case Reduction::kMin:
              if constexpr (is_complex_v<T>) {
                node.fail("max and min reductions are not supported for complex tensors");
              } else if constexpr (is_half_v<T>) {
                float x = a, y = b;
                a = static_cast<T>(red == Reduction::kMax ? std::max(x, y) : std::min(x, y));
              } else {
                a = red == Reduction::kMax ? std::max(a, b) : std::min(a, b);
              }
              break;
            case Reduction::kNone:
              break;
          }
        }
      }
    }
  });
}

void scatter_elements_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  const Tensor& updates = ctx.input(2);
  if (updates.shape() != ind.shape())
    ctx.fail("updates shape ", ir::to_string(updates.shape()), " differs from indices shape ",
             ir::to_string(ind.shape()));
  size_t axis = elements_axis(ctx, data, ind);
  Reduction red = scatter_reduction(ctx);
  std::vector<int64_t> offsets = elements_offsets(ctx, data, ind, axis);
  Tensor out = copy_of(ctx, data);
  scatter_into(ctx, out, updates, offsets, 1, red);
  ctx.set_output(0, out);
}

void scatter_infer(InferenceContext& ctx) {
  check_index_dtype(ctx, ctx.input_type(1).dtype, "indices");
  scatter_reduction(ctx);
  const ir::Type& data = ctx.input_type(0);
  ctx.set_output(0, data.dtype, data.shape);
}

// ---- GatherND / ScatterND ----

struct NdLayout {
  int64_t batch = 1;       // product of the batch dims
  int64_t tuples = 0;      // index tuples per batch
  int64_t depth = 0;       // length of each index tuple
  int64_t slice = 1;       // elements addressed by one tuple
  int64_t data_batch = 1;  // data elements per batch
};

NdLayout nd_layout(const NodeView& node, const std::vector<int64_t>& data, const std::vector<int64_t>& ind, int64_t b) {
  if (data.empty() || ind.empty()) node.fail("data and indices must have rank 1 or more");
  if (b < 0 || b >= static_cast<int64_t>(std::min(data.size(), ind.size())))
    node.fail("batch_dims ", b, " must be less than the ranks of data and indices");
  NdLayout l;
  l.depth = ind.back();
  if (l.depth < 1 || b + l.depth > static_cast<int64_t>(data.size()))
    node.fail("index tuples of length ", l.depth, " do not fit data of rank ", data.size(), " with batch_dims ", b);
  for (size_t d = 0; d < static_cast<size_t>(b); ++d) {
    if (data[d] != ind[d])
      node.fail("batch dimension ", d, " differs: data ", ir::to_string(data), ", indices ", ir::to_string(ind));
    l.batch *= data[d];
  }
  l.tuples = 1;
  for (size_t d = static_cast<size_t>(b); d + 1 < ind.size(); ++d) l.tuples *= ind[d];
  for (size_t d = static_cast<size_t>(b + l.depth); d < data.size(); ++d) l.slice *= data[d];
  for (size_t d = static_cast<size_t>(b); d < data.size(); ++d) l.data_batch *= data[d];
  return l;
}

// Offset into data (in elements) of each index tuple, batch-major.
std::vector<int64_t> nd_offsets(const NodeView& node, const Tensor& data, const Tensor& ind, int64_t b,
                                const NdLayout& l) {
  std::vector<int64_t> idx = index_values(node, ind);
  std::vector<int64_t> offsets(static_cast<size_t>(l.batch * l.tuples));
  std::vector<int64_t> strides = ir::strides_of(data.shape());
  for (int64_t t = 0; t < l.batch * l.tuples; ++t) {
    int64_t off = (t / std::max<int64_t>(l.tuples, 1)) * l.data_batch;
    for (int64_t j = 0; j < l.depth; ++j) {
      auto d = static_cast<size_t>(b + j);
      off += checked_index(node, idx[static_cast<size_t>(t * l.depth + j)], data.dim(d), "index") * strides[d];
    }
    offsets[static_cast<size_t>(t)] = off;
  }
  return offsets;
}

int64_t gathernd_batch_dims(const NodeView& node) { return node.opset() >= 12 ? node.attr_int("batch_dims", 0) : 0; }

void gathernd_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  int64_t b = gathernd_batch_dims(ctx);
  NdLayout l = nd_layout(ctx, data.shape(), ind.shape(), b);
  std::vector<int64_t> out_shape(ind.shape().begin(), ind.shape().end() - 1);
  out_shape.insert(out_shape.end(), data.shape().begin() + b + l.depth, data.shape().end());
  Tensor out = ctx.make_tensor(data.dtype(), out_shape);
  std::vector<int64_t> offsets = nd_offsets(ctx, data, ind, b, l);
  visit_storage(data.dtype(), [&]<class S>() {
    const S* in = storage<S>(data);
    S* o = storage<S>(out);
    for (size_t t = 0; t < offsets.size(); ++t)
      std::copy(in + offsets[t], in + offsets[t] + l.slice, o + static_cast<int64_t>(t) * l.slice);
  });
  ctx.set_output(0, out);
}

void gathernd_infer(InferenceContext& ctx) {
  const ir::Type& data = ctx.input_type(0);
  const ir::Type& ind = ctx.input_type(1);
  check_index_dtype(ctx, ind.dtype, "indices");
  int64_t b = gathernd_batch_dims(ctx);
  if (!data.shape || !ind.shape || ind.shape->rank() == 0 || !ind.shape->dims.back().is_static()) {
    ctx.set_output(0, data.dtype, std::nullopt);
    return;
  }
  int64_t depth = ind.shape->dims.back().value;
  auto r = static_cast<int64_t>(data.shape->rank());
  if (b < 0 || b >= std::min<int64_t>(r, static_cast<int64_t>(ind.shape->rank())) || depth < 1 || b + depth > r)
    ctx.fail("index tuples of length ", depth, " do not fit data of rank ", r, " with batch_dims ", b);
  Shape out;
  out.dims.assign(ind.shape->dims.begin(), ind.shape->dims.end() - 1);
  out.dims.insert(out.dims.end(), data.shape->dims.begin() + b + depth, data.shape->dims.end());
  ctx.set_output(0, data.dtype, out);
}

void scatternd_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  const Tensor& updates = ctx.input(2);
  NdLayout l = nd_layout(ctx, data.shape(), ind.shape(), 0);
  std::vector<int64_t> expect(ind.shape().begin(), ind.shape().end() - 1);
  expect.insert(expect.end(), data.shape().begin() + l.depth, data.shape().end());
  if (updates.shape() != expect)
    ctx.fail("updates shape ", ir::to_string(updates.shape()), " must be ", ir::to_string(expect));
  std::vector<int64_t> offsets = nd_offsets(ctx, data, ind, 0, l);
  Tensor out = copy_of(ctx, data);
  scatter_into(ctx, out, updates, offsets, l.slice, scatter_reduction(ctx));
  ctx.set_output(0, out);
}

// ---- NonZero ----

void nonzero_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> hits;
  ir::visit_dtype(x.dtype(), [&]<class T>() {
    if constexpr (std::is_same_v<T, std::string>) {
      ctx.fail("string tensors are not supported");
    } else {
      const T* in = x.data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        bool nz;
        if constexpr (is_half_v<T>)
          nz = static_cast<float>(in[i]) != 0.0f;
        else
          nz = in[i] != T{};
        if (nz) hits.push_back(i);
      }
    }
  });
  // A scalar counts as one-dimensional, as numpy does.
  std::vector<int64_t> shape = x.rank() == 0 ? std::vector<int64_t>{1} : x.shape().vec();
  auto nnz = static_cast<int64_t>(hits.size());
  Tensor out = ctx.make_tensor(DType::kInt64, {static_cast<int64_t>(shape.size()), nnz});
  int64_t* o = out.data<int64_t>();
  for (int64_t k = 0; k < nnz; ++k) {
    int64_t r = hits[static_cast<size_t>(k)];
    for (size_t d = shape.size(); d-- > 0;) {
      o[static_cast<int64_t>(d) * nnz + k] = r % shape[d];
      r /= shape[d];
    }
  }
  ctx.set_output(0, out);
}

void nonzero_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  Dim rank = in.shape ? Dim(std::max<int64_t>(1, static_cast<int64_t>(in.shape->rank()))) : Dim();
  ctx.set_output(0, DType::kInt64, Shape({rank, Dim()}));
}

// ---- Compress ----

void compress_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& cond = ctx.input(1);
  if (cond.rank() != 1) ctx.fail("condition must be 1-D, got shape ", ir::to_string(cond.shape()));
  std::optional<size_t> axis;
  if (ctx.has_attr("axis"))
    axis = static_cast<size_t>(normalize_axis(ctx, ctx.attr_int("axis"), static_cast<int64_t>(x.rank())));
  int64_t dim = axis ? x.dim(*axis) : x.numel();
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < cond.numel(); ++i) {
    if (cond.as_double(i) == 0) continue;
    if (i >= dim) ctx.fail("condition selects index ", i, " beyond the length ", dim);
    keep.push_back(i);
  }
  auto n = static_cast<int64_t>(keep.size());
  std::vector<int64_t> out_shape = {n};
  int64_t outer = 1, inner = 1;
  if (axis) {
    out_shape = x.shape();
    out_shape[*axis] = n;
    for (size_t d = 0; d < *axis; ++d) outer *= x.dim(d);
    for (size_t d = *axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  }
  Tensor out = ctx.make_tensor(x.dtype(), out_shape);
  visit_storage(x.dtype(), [&]<class S>() {
    const S* in = storage<S>(x);
    S* o = storage<S>(out);
    for (int64_t r = 0; r < outer; ++r)
      for (int64_t k = 0; k < n; ++k) {
        const S* from = in + (r * dim + keep[static_cast<size_t>(k)]) * inner;
        std::copy(from, from + inner, o + (r * n + k) * inner);
      }
  });
  ctx.set_output(0, out);
}

void compress_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (!ctx.has_attr("axis")) {
    ctx.set_output(0, in.dtype, Shape({Dim()}));
    return;
  }
  if (!in.shape) {
    ctx.set_output(0, in.dtype, std::nullopt);
    return;
  }
  Shape out = *in.shape;
  out.dims[static_cast<size_t>(normalize_axis(ctx, ctx.attr_int("axis"), static_cast<int64_t>(out.rank())))] = Dim();
  ctx.set_output(0, in.dtype, out);
}

// ---- OneHot ----

int64_t onehot_depth(const NodeView& node, const Tensor& t) {
  if (t.numel() != 1) node.fail("depth must hold one value, got shape ", ir::to_string(t.shape()));
  double d = t.as_double(0);
  if (!(d >= 1)) node.fail("depth ", d, " must be positive");
  if (d > 9.2e18) node.fail("depth ", d, " is too large");
  return static_cast<int64_t>(d);
}

void onehot_kernel(KernelContext& ctx) {
  const Tensor& ind = ctx.input(0);
  int64_t depth = onehot_depth(ctx, ctx.input(1));
  const Tensor& values = ctx.input(2);
  if (values.numel() != 2) ctx.fail("values must hold [off, on], got shape ", ir::to_string(values.shape()));
  auto rank = static_cast<int64_t>(ind.rank());
  int64_t axis = ctx.attr_int("axis", -1);
  if (axis < -rank - 1 || axis > rank) ctx.fail("axis ", axis, " is out of range for output rank ", rank + 1);
  if (axis < 0) axis += rank + 1;
  std::vector<int64_t> out_shape = ind.shape();
  out_shape.insert(out_shape.begin() + axis, depth);
  Tensor out = ctx.make_tensor(values.dtype(), out_shape);
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(axis); d < ind.rank(); ++d) inner *= ind.dim(d);
  std::vector<double> idx(static_cast<size_t>(ind.numel()));
  if (ind.dtype() == DType::kString) ctx.fail("indices must be numeric");
  for (int64_t i = 0; i < ind.numel(); ++i) idx[static_cast<size_t>(i)] = ind.as_double(i);
  visit_storage(values.dtype(), [&]<class S>() {
    const S off = storage<S>(values)[0], on = storage<S>(values)[1];
    S* o = storage<S>(out);
    std::fill(o, o + out.numel(), off);
    for (int64_t i = 0; i < ind.numel(); ++i) {
      double v = std::trunc(idx[static_cast<size_t>(i)]);
      if (v < 0) v += static_cast<double>(depth);
      if (!(v >= 0 && v < static_cast<double>(depth))) continue;  // out of range: the row stays off
      int64_t outer_i = i / inner, inner_i = i % inner;
      o[(outer_i * depth + static_cast<int64_t>(v)) * inner + inner_i] = on;
    }
  });
  ctx.set_output(0, out);
}

void onehot_infer(InferenceContext& ctx) {
  const ir::Type& ind = ctx.input_type(0);
  DType dtype = ctx.input_type(2).dtype;
  if (!ind.shape) {
    ctx.set_output(0, dtype, std::nullopt);
    return;
  }
  auto rank = static_cast<int64_t>(ind.shape->rank());
  int64_t axis = ctx.attr_int("axis", -1);
  if (axis < -rank - 1 || axis > rank) ctx.fail("axis ", axis, " is out of range for output rank ", rank + 1);
  if (axis < 0) axis += rank + 1;
  Dim depth;
  if (const Tensor* d = ctx.input_value(1)) depth = Dim(onehot_depth(ctx, *d));
  Shape out = *ind.shape;
  out.dims.insert(out.dims.begin() + axis, depth);
  ctx.set_output(0, dtype, out);
}

// ---- TopK ----

// Strict "a comes before b" for largest (or smallest) first; NaN counts as the largest value, and ties
// keep the lower index first.
template <class T>
bool topk_before(T a, T b, bool largest) {
  if constexpr (std::is_floating_point_v<T>) {
    bool an = std::isnan(a), bn = std::isnan(b);
    if (an || bn) return largest ? (an && !bn) : (!an && bn);
  }
  return largest ? a > b : a < b;
}

int64_t topk_k(const KernelContext& ctx) {
  if (ctx.opset() < 10) return ctx.attr_int("k");
  return int_scalar(ctx, ctx.input(1), "K");
}

void topk_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() == 0) ctx.fail("input must have rank 1 or more");
  auto axis = static_cast<size_t>(normalize_axis(ctx, ctx.attr_int("axis", -1), static_cast<int64_t>(x.rank())));
  int64_t k = topk_k(ctx);
  int64_t dim = x.dim(axis);
  if (k < 0 || k > dim)
    ctx.fail("K ", k, " is outside [0, ", dim, "] (axis ", axis, " of shape ", ir::to_string(x.shape()), ")");
  bool largest = ctx.opset() < 11 || ctx.attr_int("largest", 1) != 0;
  std::vector<int64_t> out_shape = x.shape();
  out_shape[axis] = k;
  Tensor values = ctx.make_tensor(x.dtype(), out_shape);
  Tensor indices = ctx.make_tensor(DType::kInt64, out_shape);
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= x.dim(d);
  for (size_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  ir::visit_numeric_dtype(x.dtype(), [&]<class T>() {
    using K = std::conditional_t<is_half_v<T>, float, T>;
    const T* in = x.data<T>();
    T* vo = values.data<T>();
    int64_t* io = indices.data<int64_t>();
    std::vector<int64_t> order(static_cast<size_t>(dim));
    std::vector<K> keys(static_cast<size_t>(dim));
    for (int64_t r = 0; r < outer; ++r)
      for (int64_t c = 0; c < inner; ++c) {
        for (int64_t i = 0; i < dim; ++i) keys[static_cast<size_t>(i)] = static_cast<K>(in[(r * dim + i) * inner + c]);
        std::iota(order.begin(), order.end(), int64_t{0});
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
          K ka = keys[static_cast<size_t>(a)], kb = keys[static_cast<size_t>(b)];
          if (topk_before(ka, kb, largest)) return true;
          if (topk_before(kb, ka, largest)) return false;
          return a < b;
        });
        for (int64_t j = 0; j < k; ++j) {
          int64_t src = order[static_cast<size_t>(j)];
          vo[(r * k + j) * inner + c] = in[(r * dim + src) * inner + c];
          io[(r * k + j) * inner + c] = src;
        }
      }
  });
  ctx.set_output(0, values);
  if (ctx.has_output(1)) ctx.set_output(1, indices);
}

void topk_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (!in.shape) {
    ctx.set_output(0, in.dtype, std::nullopt);
    ctx.set_output(1, DType::kInt64, std::nullopt);
    return;
  }
  if (in.shape->rank() == 0) ctx.fail("input must have rank 1 or more");
  auto axis =
      static_cast<size_t>(normalize_axis(ctx, ctx.attr_int("axis", -1), static_cast<int64_t>(in.shape->rank())));
  Shape out = *in.shape;
  std::optional<int64_t> k;
  if (ctx.opset() < 10) {
    k = ctx.attr_int("k");
  } else if (const Tensor* v = ctx.input_value(1)) {
    if (v->numel() != 1) ctx.fail("K must hold one value, got shape ", ir::to_string(v->shape()));
    check_index_dtype(ctx, v->dtype(), "K");
    k = v->as_int64(0);
  }
  if (k && out.dims[axis].is_static() && (*k < 0 || *k > out.dims[axis].value))
    ctx.fail("K ", *k, " is outside [0, ", out.dims[axis].value, "]");
  out.dims[axis] = k ? Dim(*k) : Dim();
  ctx.set_output(0, in.dtype, out);
  ctx.set_output(1, DType::kInt64, out);
}

// ---- Unique ----

// Three-way comparison of two elements, ascending; slices are compared element by element with it.
template <class T>
int compare_values(const T& a, const T& b) {
  if constexpr (is_complex_v<T>) {
    if (a.real() != b.real()) return a.real() < b.real() ? -1 : 1;
    if (a.imag() != b.imag()) return a.imag() < b.imag() ? -1 : 1;
    return 0;
  } else if constexpr (is_half_v<T>) {
    return compare_values<float>(a, b);
  } else if constexpr (std::is_floating_point_v<T>) {
    // NaN sorts last and equals NaN, as numpy's unique does, keeping the order strict and weak.
    bool an = std::isnan(a), bn = std::isnan(b);
    if (an || bn) return an == bn ? 0 : (an ? 1 : -1);
    return a < b ? -1 : (b < a ? 1 : 0);
  } else {
    return a < b ? -1 : (b < a ? 1 : 0);
  }
}

void unique_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  bool sorted = ctx.attr_int("sorted", 1) != 0;
  std::optional<size_t> axis;
  if (ctx.has_attr("axis")) {
    if (x.rank() == 0) ctx.fail("axis is given but the input is a scalar");
    axis = static_cast<size_t>(normalize_axis(ctx, ctx.attr_int("axis"), static_cast<int64_t>(x.rank())));
  }
  int64_t outer = 1, n = x.numel(), inner = 1;
  if (axis) {
    n = x.dim(*axis);
    for (size_t d = 0; d < *axis; ++d) outer *= x.dim(d);
    for (size_t d = *axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  }
  std::vector<int64_t> first;  // per unique slice: the index of its first occurrence
  std::vector<int64_t> inverse(static_cast<size_t>(n));
  std::vector<int64_t> counts;
  ir::visit_dtype(x.dtype(), [&]<class T>() {
    const T* in = x.data<T>();
    auto cmp = [&](int64_t a, int64_t b) {
      for (int64_t r = 0; r < outer; ++r)
        for (int64_t c = 0; c < inner; ++c) {
          int v = compare_values(in[(r * n + a) * inner + c], in[(r * n + b) * inner + c]);
          if (v != 0) return v;
        }
      return 0;
    };
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cmp(a, b) < 0; });
    // Groups of equal slices in sorted order; each group's first member is its first occurrence.
    std::vector<int64_t> group_of(static_cast<size_t>(n));
    for (size_t i = 0; i < order.size(); ++i) {
      if (i == 0 || cmp(order[i - 1], order[i]) != 0) {
        first.push_back(order[i]);
        counts.push_back(0);
      }
      group_of[static_cast<size_t>(order[i])] = static_cast<int64_t>(first.size()) - 1;
      ++counts.back();
    }
    std::vector<int64_t> rank_of(first.size());
    if (!sorted) {
      std::vector<int64_t> by_first(first.size());
      std::iota(by_first.begin(), by_first.end(), int64_t{0});
      std::sort(by_first.begin(), by_first.end(),
                [&](int64_t a, int64_t b) { return first[static_cast<size_t>(a)] < first[static_cast<size_t>(b)]; });
      std::vector<int64_t> f2(first.size()), c2(first.size());
      for (size_t j = 0; j < by_first.size(); ++j) {
        rank_of[static_cast<size_t>(by_first[j])] = static_cast<int64_t>(j);
        f2[j] = first[static_cast<size_t>(by_first[j])];
        c2[j] = counts[static_cast<size_t>(by_first[j])];
      }
      first = f2;
      counts = c2;
    } else {
      std::iota(rank_of.begin(), rank_of.end(), int64_t{0});
    }
    for (int64_t i = 0; i < n; ++i)
      inverse[static_cast<size_t>(i)] = rank_of[static_cast<size_t>(group_of[static_cast<size_t>(i)])];
  });
  auto u = static_cast<int64_t>(first.size());
  std::vector<int64_t> y_shape = {u};
  if (axis) {
    y_shape = x.shape();
    y_shape[*axis] = u;
  }
  Tensor y = ctx.make_tensor(x.dtype(), y_shape);
  visit_storage(x.dtype(), [&]<class S>() {
    const S* in = storage<S>(x);
    S* o = storage<S>(y);
    for (int64_t r = 0; r < outer; ++r)
      for (int64_t j = 0; j < u; ++j) {
        const S* from = in + (r * n + first[static_cast<size_t>(j)]) * inner;
        std::copy(from, from + inner, o + (r * u + j) * inner);
      }
  });
  ctx.set_output(0, y);
  if (ctx.has_output(1)) ctx.set_output(1, Tensor::from_vector(first, {u}));
  if (ctx.has_output(2)) ctx.set_output(2, Tensor::from_vector(inverse, {n}));
  if (ctx.has_output(3)) ctx.set_output(3, Tensor::from_vector(counts, {u}));
}

void unique_infer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  Dim n;
  if (ctx.has_attr("axis")) {
    if (in.shape) {
      auto axis =
          static_cast<size_t>(normalize_axis(ctx, ctx.attr_int("axis"), static_cast<int64_t>(in.shape->rank())));
      Shape y = *in.shape;
      y.dims[axis] = Dim();
      n = in.shape->dims[axis];
      ctx.set_output(0, in.dtype, y);
    } else {
      ctx.set_output(0, in.dtype, std::nullopt);
    }
  } else {
    ctx.set_output(0, in.dtype, Shape({Dim()}));
    if (in.shape) n = dim_product(in.shape->dims);
  }
  ctx.set_output(1, DType::kInt64, Shape({Dim()}));
  ctx.set_output(2, DType::kInt64, Shape({n}));
  ctx.set_output(3, DType::kInt64, Shape({Dim()}));
}

// ---- CumSum, CumProd (opset 26) ----

template <bool kProduct>
void cumulative_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() == 0) ctx.fail("input must have rank 1 or more");
  auto axis =
      static_cast<size_t>(normalize_axis(ctx, int_scalar(ctx, ctx.input(1), "axis"), static_cast<int64_t>(x.rank())));
  bool exclusive = ctx.attr_int("exclusive", 0) != 0, reverse = ctx.attr_int("reverse", 0) != 0;
  int64_t outer = 1, dim = x.dim(axis), inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= x.dim(d);
  for (size_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  Tensor out = ctx.make_tensor(x.dtype(), x.shape());
  ir::visit_numeric_dtype(x.dtype(), [&]<class T>() {
    if constexpr (std::is_same_v<T, bool>) {
      ctx.fail("bool tensors are not supported");
    } else {
      const T* in = x.data<T>();
      T* o = out.data<T>();
      for (int64_t r = 0; r < outer; ++r)
        for (int64_t c = 0; c < inner; ++c) {
          T acc = static_cast<T>(kProduct ? 1 : 0);
          auto step = [&](T v) { return kProduct ? static_cast<T>(acc * v) : static_cast<T>(acc + v); };
          for (int64_t s = 0; s < dim; ++s) {
            int64_t i = reverse ? dim - 1 - s : s;
            int64_t off = (r * dim + i) * inner + c;
            if (exclusive) {
              o[off] = acc;
              acc = step(in[off]);
            } else {
              acc = step(in[off]);
              o[off] = acc;
            }
          }
        }
    }
  });
  ctx.set_output(0, out);
}

void cumsum_infer(InferenceContext& ctx) {
  check_index_dtype(ctx, ctx.input_type(1).dtype, "axis");
  const ir::Type& in = ctx.input_type(0);
  ctx.set_output(0, in.dtype, in.shape);
}

// ---- TensorScatter (opset 24) ----
// A KV-cache update: update's rows along `axis` are written into a copy of past_cache from
// write_indices[batch] on (wrapping around the cache in mode "circular").

void tensor_scatter_infer(InferenceContext& ctx) {
  const ir::Type& past = ctx.input_type(0);
  ctx.set_output(0, past.dtype, past.shape);
}

void tensor_scatter_kernel(KernelContext& ctx) {
  const Tensor& past = ctx.input(0);
  const Tensor& update = ctx.input(1);
  std::string mode = ctx.attr_string("mode", "linear");
  if (mode != "linear" && mode != "circular") ctx.fail("mode must be \"linear\" or \"circular\", got \"", mode, "\"");
  if (past.rank() < 2) ctx.fail("past_cache must have rank >= 2, got ", ir::to_string(past.shape()));
  if (update.dtype() != past.dtype()) ctx.fail("update is ", update.dtype(), ", past_cache ", past.dtype());
  if (past.dtype() == DType::kString) ctx.fail("string tensors are not supported");
  auto axis = static_cast<size_t>(normalize_axis(ctx, ctx.attr_int("axis", -2), static_cast<int64_t>(past.rank())));
  if (axis == 0) ctx.fail("axis must not be the batch axis 0");
  bool ok = update.rank() == past.rank();
  for (size_t i = 0; ok && i < past.rank(); ++i)
    ok = i == axis ? update.dim(i) <= past.dim(i) : update.dim(i) == past.dim(i);
  if (!ok) ctx.fail("update ", ir::to_string(update.shape()), " does not fit past_cache ", ir::to_string(past.shape()));
  const int64_t batch = past.dim(0), max_len = past.dim(axis), len = update.dim(axis);
  std::vector<int64_t> write(static_cast<size_t>(batch), 0);
  if (ctx.has_input(2)) {
    const Tensor& w = ctx.input(2);
    if (w.numel() != batch) ctx.fail("write_indices must have ", batch, " values, got ", ir::to_string(w.shape()));
    for (int64_t b = 0; b < batch; ++b) write[static_cast<size_t>(b)] = w.as_int64(b);
  }
  int64_t outer = 1, inner = 1;  // dims between batch and axis; dims after axis
  for (size_t d = 1; d < axis; ++d) outer *= past.dim(d);
  for (size_t d = axis + 1; d < past.rank(); ++d) inner *= past.dim(d);
  Tensor out = past.clone();
  const size_t bytes = ir::dtype_size(past.dtype()) * static_cast<size_t>(inner);
  auto* dst = static_cast<uint8_t*>(out.raw());
  const auto* src = static_cast<const uint8_t*>(update.raw());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t s = 0; s < len; ++s) {
        int64_t pos = write[static_cast<size_t>(b)] + s;
        if (mode == "circular") pos = ((pos % max_len) + max_len) % max_len;
        if (pos < 0 || pos >= max_len)
          ctx.fail("write index ", pos, " of batch ", b, " is outside the cache's ", max_len, " rows");
        std::memcpy(dst + static_cast<size_t>((b * outer + o) * max_len + pos) * bytes,
                    src + static_cast<size_t>((b * outer + o) * len + s) * bytes, bytes);
      }
  ctx.set_output(0, std::move(out));
}

}  // namespace

void register_index_ops(OpRegistry& r) {
  r.add(OpDef{"", "Gather", 1, kMaxOnnxOpset, gather_infer, gather_kernel});
  r.add(OpDef{"", "GatherElements", 11, kMaxOnnxOpset, gather_elements_infer, gather_elements_kernel});
  r.add(OpDef{"", "GatherND", 11, kMaxOnnxOpset, gathernd_infer, gathernd_kernel});
  r.add(OpDef{"", "Scatter", 9, kMaxOnnxOpset, scatter_infer, scatter_elements_kernel});
  r.add(OpDef{"", "ScatterElements", 11, kMaxOnnxOpset, scatter_infer, scatter_elements_kernel});
  r.add(OpDef{"", "ScatterND", 11, kMaxOnnxOpset, scatter_infer, scatternd_kernel});
  r.add(OpDef{"", "NonZero", 9, kMaxOnnxOpset, nonzero_infer, nonzero_kernel});
  r.add(OpDef{"", "Compress", 9, kMaxOnnxOpset, compress_infer, compress_kernel});
  r.add(OpDef{"", "OneHot", 9, kMaxOnnxOpset, onehot_infer, onehot_kernel});
  r.add(OpDef{"", "TopK", 1, kMaxOnnxOpset, topk_infer, topk_kernel});
  r.add(OpDef{"", "Unique", 11, kMaxOnnxOpset, unique_infer, unique_kernel});
  r.add(OpDef{"", "CumSum", 11, kMaxOnnxOpset, cumsum_infer, cumulative_kernel<false>});
  r.add(OpDef{"", "TensorScatter", 24, kMaxOnnxOpset, tensor_scatter_infer, tensor_scatter_kernel});
  r.add(OpDef{"", "CumProd", 26, kMaxOnnxOpset, cumsum_infer, cumulative_kernel<true>});
}

}  // namespace kiln::ops::tensor_detail

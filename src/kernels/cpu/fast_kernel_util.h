// Small checks shared by the fast kernels (kernels/cpu/fast_kernels.h) when they decide, at preparation
// and per call, whether they cover a node.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "ops/op_def.h"

namespace kiln::kernels::cpu {

// The address ranges [p, p + p_count) and [q, q + q_count) overlap; std::less gives a total order over
// unrelated pointers. For the kernels that refuse an output overlapping an input.
inline bool ranges_overlap(const float* p, size_t p_count, const float* q, size_t q_count) {
  std::less<const float*> before;
  return before(p, q + q_count) && before(q, p + p_count);
}

// Input i of n when it is a float32 initializer of g (a weight the kernel may pack), else nullptr.
inline const ir::Tensor* float_constant(const ir::Graph& g, const ir::Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i].empty()) return nullptr;
  const ir::Tensor* t = g.find_initializer(n.inputs[i]);
  return t && t->dtype() == ir::DType::kFloat32 ? t : nullptr;
}

// Input i is present and float32.
inline bool is_f32(const ops::KernelContext& ctx, size_t i) {
  return ctx.has_input(i) && ctx.input(i).dtype() == ir::DType::kFloat32;
}

// body(i) for every i in [0, n), split across the OpenMP team when `parallel` (statically, or one i at a
// time to whichever thread is free), else on the calling thread. Not `omp parallel for if (...)`: with a
// false condition libgomp still opens a region of one thread, and makes and frees a team for it on every
// call (a heap allocation per call).
template <class Body>
void parallel_for_static(bool parallel, int64_t n, const Body& body) {
  if (!parallel) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) body(i);
}

template <class Body>
void parallel_for_dynamic(bool parallel, int64_t n, const Body& body) {
  if (!parallel) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) body(i);
}

// Whether a call doing `work` (bytes moved, taps summed: the caller's unit) is worth splitting across the
// OpenMP team: at least `min_work` of it, more than one thread, and not already inside a parallel region.
// `work` is tested first, so small calls never ask OpenMP anything.
inline bool worth_threads(int64_t work, int64_t min_work) {
  return work >= min_work && omp_get_max_threads() > 1 && !omp_in_parallel();
}

// body(begin, end) over [0, n) cut into one contiguous range per thread of the OpenMP team when
// `parallel` (a thread whose range is empty is not called), else body(0, n) on the calling thread. For
// loops whose items cost alike and whose body is cheaper per item when it walks a range (an odometer
// advanced item by item rather than recomputed from each index).
template <class Body>
void parallel_for_ranges(bool parallel, int64_t n, const Body& body) {
  if (n <= 0) return;
  if (!parallel || n == 1) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
    const int64_t begin = n / threads * t + std::min<int64_t>(t, n % threads);
    const int64_t end = begin + n / threads + (t < n % threads ? 1 : 0);
    if (begin < end) body(begin, end);
  }
}

// Kernel taps j in [0, k) whose position start + j * d lies in [0, size), as a half-open range (the
// reference kernels' tap_range), for the windowed kernels (pooling, depthwise convolution).
inline std::pair<int64_t, int64_t> taps_inside(int64_t start, int64_t d, int64_t k, int64_t size) {
  int64_t first = start >= 0 ? 0 : (-start + d - 1) / d;
  int64_t last = start >= size ? 0 : (size - 1 - start) / d + 1;
  first = std::min(first, k);
  last = std::clamp(last, first, k);
  return {first, last};
}

// The rows of a row-major tensor viewed as [rows, shape.back()].
inline int64_t rows_of(const ir::Dims& shape) {
  int64_t r = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
  return r;
}

}  // namespace kiln::kernels::cpu

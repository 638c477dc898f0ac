// numpy broadcasting of two operands as a few merged dims, for the elementwise fast kernels
// (binary_elementwise_kernel.cc, comparison_kernel.cc): the output's dims are merged where both operands
// step through them alike, which leaves a few outer dims walked by index and one inner run in which each
// operand either advances (stride 1) or stays on one value (stride 0, broadcast).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "ir/dims.h"

namespace kiln::kernels::cpu {

constexpr size_t kMaxBroadcastDims = 8;

// The broadcast of a and b as merged dims: sizes, and each operand's element stride per dim (0 where it
// broadcasts); the last dim is the inner run.
struct BroadcastPlan {
  size_t rank = 0;
  std::array<int64_t, kMaxBroadcastDims> size{}, sa{}, sb{};
};

inline bool plan_broadcast(const ir::Dims& as, const ir::Dims& bs, ir::Dims& out, BroadcastPlan& p) {
  const size_t rank = std::max(as.size(), bs.size());
  if (rank > kMaxBroadcastDims) return false;
  out = ir::Dims(rank, 0);
  std::array<int64_t, kMaxBroadcastDims> size{}, sa{}, sb{};
  int64_t step_a = 1, step_b = 1;
  for (size_t i = rank; i-- > 0;) {
    const size_t from_end = rank - 1 - i;
    const int64_t ad = from_end < as.size() ? as[as.size() - 1 - from_end] : 1;
    const int64_t bd = from_end < bs.size() ? bs[bs.size() - 1 - from_end] : 1;
    if (ad != bd && ad != 1 && bd != 1) return false;  // the reference says why
    size[i] = ad == 1 ? bd : ad;
    sa[i] = ad == 1 ? 0 : step_a;
    sb[i] = bd == 1 ? 0 : step_b;
    step_a *= ad;
    step_b *= bd;
    out[i] = size[i];
  }
  // Size-1 dims dropped.
  p = BroadcastPlan{};
  for (size_t i = 0; i < rank; ++i) {
    if (size[i] == 1) continue;
    p.size[p.rank] = size[i];
    p.sa[p.rank] = sa[i];
    p.sb[p.rank] = sb[i];
    ++p.rank;
  }
  // Neighbours merged, outermost first: a dim joins the one before it when, for each operand, both strides are 0, or the
  // outer stride is the inner stride times the inner size.
  BroadcastPlan merged;
  for (size_t i = 0; i < p.rank; ++i) {
    if (merged.rank > 0) {
      const size_t k = merged.rank - 1;
      auto joins = [&](int64_t outer_stride, int64_t inner_stride) {
        return (outer_stride == 0 && inner_stride == 0) ||
               (outer_stride != 0 && inner_stride != 0 && outer_stride == inner_stride * p.size[i]);
      };
      if (joins(merged.sa[k], p.sa[i]) && joins(merged.sb[k], p.sb[i])) {
        merged.size[k] *= p.size[i];
        merged.sa[k] = p.sa[i];
        merged.sb[k] = p.sb[i];
        continue;
      }
    }
    merged.size[merged.rank] = p.size[i];
    merged.sa[merged.rank] = p.sa[i];
    merged.sb[merged.rank] = p.sb[i];
    ++merged.rank;
  }
  if (merged.rank == 0) {  // every dim 1: one element
    merged.rank = 1;
    merged.size[0] = 1;
    merged.sa[0] = merged.sb[0] = 1;
  }
  p = merged;
  return true;
}

// Offsets in a and b of the inner run `row` (its index over the outer dims, row-major).
inline void broadcast_row_offsets(const BroadcastPlan& p, int64_t row, int64_t& oa, int64_t& ob) {
  int64_t rest = row;
  oa = ob = 0;
  for (size_t i = p.rank - 1; i-- > 0;) {
    const int64_t d = rest % p.size[i];
    rest /= p.size[i];
    oa += d * p.sa[i];
    ob += d * p.sb[i];
  }
}

// y[j] = op(a[j * sa], b[j * sb]) for j < n, sa and sb each 0 or 1: an inner run of the plan, as four
// loops the compiler vectorizes.
template <class T, class Y, class Op>
inline void broadcast_inner_run(const T* a, int64_t sa, const T* b, int64_t sb, Y* y, int64_t n, Op op) {
  if (sa && sb) {
    for (int64_t j = 0; j < n; ++j) y[j] = op(a[j], b[j]);
  } else if (sa) {
    const T bv = b[0];
    for (int64_t j = 0; j < n; ++j) y[j] = op(a[j], bv);
  } else if (sb) {
    const T av = a[0];
    for (int64_t j = 0; j < n; ++j) y[j] = op(av, b[j]);
  } else {
    std::fill_n(y, n, op(a[0], b[0]));
  }
}

}  // namespace kiln::kernels::cpu

// Transpose, Slice, Concat and Split: the copies between a model's compute ops (NCHW <-> NHWC around
// ConvNeXt's layer norms, attention's head splits, Swin's window partitions, channel concats and splits),
// for every element type of 1, 2, 4 or 8 bytes; strings go to the reference.
//
// Each op becomes one of three copies, on element offsets computed once per call (no per-element index
// arithmetic, no index maps, nothing allocated):
//  - a strided copy: a dense output whose every axis steps through the input by a fixed (possibly
//    negative) stride. Slice, and a Transpose that keeps the innermost axis innermost. Axes that step
//    alike are merged first, so the innermost axis is usually a contiguous run, copied with memcpy;
//  - tiles: a Transpose that moves the innermost axis is a batch of 2-D transposes, done in 64 x 64 blocks
//    (both sides stay in L1) of 16 x 16 (AVX-512) or 8 x 8 (AVX2) register tiles for 4-byte elements;
//  - segments: Concat and Split, whose rows are runs of each part side by side.
// Large calls (over kMoveParallelBytes) are split across the OpenMP team. What they do not cover (invalid
// attributes or inputs, ranks above kMoveMaxDims once size-1 axes are dropped, empty outputs) goes to the
// reference kernel, which also says what is wrong.
#include "kernels/cpu/fast_kernel_table.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/element_copy.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "ops/node_view.h"

#define KILN_MOVE_TARGET_AVX2 __attribute__((target("avx2")))
#define KILN_MOVE_TARGET_AVX512 __attribute__((target("avx512f")))

namespace kiln::kernels::cpu {

namespace {

// Copies of at least this many bytes are split across threads.
constexpr int64_t kMoveParallelBytes = 256 * 1024;
// Ranks above this (once size-1 axes are dropped and neighbours merged) go to the reference.
constexpr size_t kMoveMaxDims = 8;
// Transpose blocks: 64 x 64 elements, 16 KiB of 4-byte ones per side.
constexpr int64_t kMoveBlock = 64;

using MoveArray = std::array<int64_t, kMoveMaxDims>;

// ---- Strided copy ---------------------------------------------------------------------------------

// A dense output of `rank` axes, whose element (i_0, ..., i_{rank-1}) is the input's element at offset
// sum of i_k * stride[k] (in elements, possibly negative) from the start.
struct StridedView {
  size_t rank = 0;
  MoveArray size{}, stride{};
};

// The same view with size-1 axes dropped and neighbours merged where the outer steps by the inner's
// whole extent; at least one axis.
StridedView merge_view(const StridedView& v) {
  StridedView m;
  for (size_t k = 0; k < v.rank; ++k) {
    if (v.size[k] == 1) continue;
    if (m.rank > 0 && m.stride[m.rank - 1] == v.stride[k] * v.size[k]) {
      m.size[m.rank - 1] *= v.size[k];
      m.stride[m.rank - 1] = v.stride[k];
      continue;
    }
    m.size[m.rank] = v.size[k];
    m.stride[m.rank] = v.stride[k];
    ++m.rank;
  }
  if (m.rank == 0) {
    m.rank = 1;
    m.size[0] = 1;
    m.stride[0] = 1;
  }
  return m;
}

// y (dense, v's shape) = the view v of x. Rows along the innermost axis, each a memcpy when it is
// contiguous; split into pieces of rows across threads when `parallel` (a long row is cut into pieces too).
template <class W>
void copy_strided(const W* x, W* y, const StridedView& view, bool parallel) {
  const StridedView v = merge_view(view);
  const size_t last = v.rank - 1;
  const int64_t inner = v.size[last], step = v.stride[last];
  int64_t rows = 1;
  for (size_t k = 0; k < last; ++k) rows *= v.size[k];
  // Pieces per row: enough for the team when there are few rows, none shorter than 4096 elements.
  int64_t pieces = 1;
  if (parallel) {
    const int64_t want = 4 * omp_get_max_threads();
    if (rows < want) pieces = std::clamp<int64_t>(want / rows, 1, std::max<int64_t>(1, inner / 4096));
  }
  const int64_t piece = (inner + pieces - 1) / pieces;
  parallel_for_ranges(parallel, rows * pieces, [&](int64_t begin, int64_t end) {
    // The odometer of row begin / pieces, and the input offset of that row.
    MoveArray idx{};
    int64_t row = begin / pieces, off = 0;
    for (size_t k = last; k-- > 0;) {
      idx[k] = row % v.size[k];
      row /= v.size[k];
      off += idx[k] * v.stride[k];
    }
    row = begin / pieces;
    for (int64_t t = begin; t < end;) {
      const int64_t p = t - row * pieces;
      const int64_t j0 = std::min(inner, p * piece), n = std::min(inner, j0 + piece) - j0;
      W* out = y + row * inner + j0;
      const W* in = x + off + j0 * step;
      if (step == 1) {
        copy_run(out, in, n);
      } else {
        for (int64_t j = 0; j < n; ++j) out[j] = in[j * step];
      }
      ++t;
      if (t - row * pieces == pieces && t < end) {  // next row: advance the odometer
        ++row;
        for (size_t k = last; k-- > 0;) {
          off += v.stride[k];
          if (++idx[k] < v.size[k]) break;
          off -= idx[k] * v.stride[k];
          idx[k] = 0;
        }
      }
    }
  });
}

// ---- Transpose tiles ------------------------------------------------------------------------------

// dst[j * ds + i] = src[i * ss + j] for i < rows, j < cols: the plain loop, rows read in order.
template <class W>
void transpose_block_scalar(const W* src, int64_t ss, W* dst, int64_t ds, int64_t rows, int64_t cols) {
  for (int64_t i0 = 0; i0 < rows; i0 += 8) {
    const int64_t i1 = std::min(rows, i0 + 8);
    for (int64_t j0 = 0; j0 < cols; j0 += 8) {
      const int64_t j1 = std::min(cols, j0 + 8);
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) dst[j * ds + i] = src[i * ss + j];
    }
  }
}

// One 8 x 8 tile of 4-byte elements through eight AVX2 registers (unpack pairs, shuffle quads, swap
// 128-bit halves). The elements are moved as bits, so this serves every 4-byte type.
KILN_MOVE_TARGET_AVX2 void transpose_tile8_avx2(const uint32_t* src, int64_t ss, uint32_t* dst, int64_t ds) {
  const float* s = reinterpret_cast<const float*>(src);
  float* d = reinterpret_cast<float*>(dst);
  const __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ss), r2 = _mm256_loadu_ps(s + 2 * ss);
  const __m256 r3 = _mm256_loadu_ps(s + 3 * ss), r4 = _mm256_loadu_ps(s + 4 * ss), r5 = _mm256_loadu_ps(s + 5 * ss);
  const __m256 r6 = _mm256_loadu_ps(s + 6 * ss), r7 = _mm256_loadu_ps(s + 7 * ss);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(d + ds, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(d + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(d + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(d + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(d + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(d + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(d + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
}

// One 16 x 16 tile of 4-byte elements through sixteen AVX-512 registers: unpack pairs, shuffle quads,
// then two rounds of 128-bit lane shuffles. The unpacks and lane shuffles are the zero-masking forms
// under a full mask (the same instructions): GCC 12's unmasked ones start from _mm512_undefined_ps,
// which -Wuninitialized reports wherever they are inlined.
KILN_MOVE_TARGET_AVX512 void transpose_tile16_avx512(const uint32_t* src, int64_t ss, uint32_t* dst, int64_t ds) {
  const __mmask16 all = 0xFFFF;
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(reinterpret_cast<const float*>(src + i * ss));
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_maskz_unpacklo_ps(all, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_ps(all, r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  // r[4g + k] holds, in each 128-bit lane l, column k of rows 4g..4g+3 for columns 4l..4l+3.
  for (int i = 0; i < 16; i += 8) {
    for (int k = 0; k < 4; ++k) {
      t[i + k] = _mm512_maskz_shuffle_f32x4(all, r[i + k], r[i + 4 + k], 0x88);
      t[i + 4 + k] = _mm512_maskz_shuffle_f32x4(all, r[i + k], r[i + 4 + k], 0xDD);
    }
  }
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_maskz_shuffle_f32x4(all, t[k], t[8 + k], 0x88);
    r[8 + k] = _mm512_maskz_shuffle_f32x4(all, t[k], t[8 + k], 0xDD);
  }
  for (int j = 0; j < 16; ++j) _mm512_storeu_ps(reinterpret_cast<float*>(dst + j * ds), r[j]);
}

// Three rows interleaved: dst[3 j + i] = src[i * ss + j] for i < 3 and the columns j of whole vectors,
// whose count it returns. An image's NCHW -> NHWC Transpose with 3 channels (every CNN's input) is this,
// and its rows are too few for the tiles below. Output lane l of vector v holds element o = 16 v + l: row
// o % 3 at column o / 3. Two two-source permutes per vector: rows 0 and 1 first, then row 2 over that.
// [1,3,320,320]: 231 -> 78 us, 2 threads (AMD EPYC Zen 4, avx512). AVX2 has no two-source permute: see
// interleave3_avx2.
KILN_MOVE_TARGET_AVX512 int64_t interleave3_avx512(const uint32_t* src, int64_t ss, uint32_t* dst, int64_t cols) {
  alignas(64) static constexpr auto kIndex = [] {
    std::array<std::array<int32_t, 16>, 6> t{};
    for (int v = 0; v < 3; ++v)
      for (int l = 0; l < 16; ++l) {
        const int o = 16 * v + l, row = o % 3, col = o / 3;
        t[2 * v][l] = row == 1 ? 16 + col : col;    // from rows 0 (0..15) and 1 (16..31); row 2's lanes unused
        t[2 * v + 1][l] = row == 2 ? 16 + col : l;  // keeps the first step's lane, or takes row 2's column
      }
    return t;
  }();
  const float* s = reinterpret_cast<const float*>(src);
  float* d = reinterpret_cast<float*>(dst);
  int64_t j = 0;
  for (; j + 16 <= cols; j += 16) {
    const __m512 r0 = _mm512_loadu_ps(s + j), r1 = _mm512_loadu_ps(s + ss + j), r2 = _mm512_loadu_ps(s + 2 * ss + j);
    for (int v = 0; v < 3; ++v) {
      const __m512i first = _mm512_load_si512(kIndex[2 * v].data()),
                    second = _mm512_load_si512(kIndex[2 * v + 1].data());
      const __m512 t = _mm512_permutex2var_ps(r0, first, r1);
      _mm512_storeu_ps(d + 3 * j + 16 * v, _mm512_permutex2var_ps(t, second, r2));
    }
  }
  return j;
}

// The same with eight lanes: each row's columns moved to their lanes, then the three blended.
KILN_MOVE_TARGET_AVX2 int64_t interleave3_avx2(const uint32_t* src, int64_t ss, uint32_t* dst, int64_t cols) {
  alignas(32) static constexpr auto kIndex = [] {
    std::array<std::array<int32_t, 8>, 9> t{};  // per vector v: the column of each lane, row 1's lanes, row 2's
    for (int v = 0; v < 3; ++v)
      for (int l = 0; l < 8; ++l) {
        const int o = 8 * v + l, row = o % 3;
        t[3 * v][l] = o / 3;
        t[3 * v + 1][l] = row == 1 ? -1 : 0;  // blendv takes the lanes whose sign bit is set
        t[3 * v + 2][l] = row == 2 ? -1 : 0;
      }
    return t;
  }();
  const float* s = reinterpret_cast<const float*>(src);
  float* d = reinterpret_cast<float*>(dst);
  int64_t j = 0;
  for (; j + 8 <= cols; j += 8) {
    const __m256 r0 = _mm256_loadu_ps(s + j), r1 = _mm256_loadu_ps(s + ss + j), r2 = _mm256_loadu_ps(s + 2 * ss + j);
    for (int v = 0; v < 3; ++v) {
      const __m256i col = _mm256_load_si256(reinterpret_cast<const __m256i*>(kIndex[3 * v].data()));
      const __m256 from1 =
          _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(kIndex[3 * v + 1].data())));
      const __m256 from2 =
          _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(kIndex[3 * v + 2].data())));
      __m256 out = _mm256_permutevar8x32_ps(r0, col);
      out = _mm256_blendv_ps(out, _mm256_permutevar8x32_ps(r1, col), from1);
      out = _mm256_blendv_ps(out, _mm256_permutevar8x32_ps(r2, col), from2);
      _mm256_storeu_ps(d + 3 * j + 8 * v, out);
    }
  }
  return j;
}

// The 4-byte block: whole tiles of the widest kind `isa` allows, the edges at the next level down.
void transpose_block_u32(Isa isa, const uint32_t* src, int64_t ss, uint32_t* dst, int64_t ds, int64_t rows,
                         int64_t cols) {
  if (rows == 3 && ds == 3 && isa != Isa::kScalar) {
    const int64_t done =
        isa == Isa::kAvx512 ? interleave3_avx512(src, ss, dst, cols) : interleave3_avx2(src, ss, dst, cols);
    return transpose_block_scalar(src + done, ss, dst + 3 * done, ds, rows, cols - done);
  }
  const int64_t tile = isa == Isa::kAvx512 ? 16 : isa == Isa::kAvx2 ? 8 : 0;
  if (tile == 0) return transpose_block_scalar(src, ss, dst, ds, rows, cols);
  const Isa lower = isa == Isa::kAvx512 ? Isa::kAvx2 : Isa::kScalar;
  if (rows < tile || cols < tile) return transpose_block_u32(lower, src, ss, dst, ds, rows, cols);
  const int64_t rows_full = rows / tile * tile, cols_full = cols / tile * tile;
  for (int64_t i = 0; i < rows_full; i += tile)
    for (int64_t j = 0; j < cols_full; j += tile) {
      if (tile == 16)
        transpose_tile16_avx512(src + i * ss + j, ss, dst + j * ds + i, ds);
      else
        transpose_tile8_avx2(src + i * ss + j, ss, dst + j * ds + i, ds);
    }
  if (cols_full < cols)
    transpose_block_u32(lower, src + cols_full, ss, dst + cols_full * ds, ds, rows_full, cols - cols_full);
  if (rows_full < rows)
    transpose_block_u32(lower, src + rows_full * ss, ss, dst + rows_full, ds, rows - rows_full, cols);
}

template <class W>
void transpose_block(Isa isa, const W* src, int64_t ss, W* dst, int64_t ds, int64_t rows, int64_t cols) {
  if constexpr (sizeof(W) == 4)
    transpose_block_u32(isa, src, ss, dst, ds, rows, cols);
  else
    transpose_block_scalar(src, ss, dst, ds, rows, cols);
}

// A transpose with size-1 axes dropped and input axes that stay neighbours in the output merged:
// input axis i has size[i] and (dense) stride in_stride[i]; output position k holds input axis perm[k].
struct TransposePlan {
  size_t rank = 0;
  MoveArray size{}, in_stride{}, perm{}, out_stride_of{};  // out_stride_of[i]: input axis i's output stride
};

// False when the rank is above kMoveMaxDims even after merging.
bool plan_transpose(const ir::Dims& shape, std::span<const int64_t> perm, TransposePlan& p) {
  const size_t rank = shape.size();
  // Output positions' input axes, size-1 axes left out, runs of consecutive input axes as one group.
  struct Group {
    int64_t first_axis, size;
  };
  std::array<Group, kMoveMaxDims> groups{};
  size_t n = 0;
  int64_t prev = -2;
  for (size_t k = 0; k < rank; ++k) {
    const int64_t a = perm[k];
    const int64_t d = shape[static_cast<size_t>(a)];
    if (d == 1) continue;
    // a continues the group when the input axes between the group's last and a are all size 1.
    bool joins = n > 0 && a > prev;
    for (int64_t b = prev + 1; joins && b < a; ++b) joins = shape[static_cast<size_t>(b)] == 1;
    if (joins) {
      groups[n - 1].size *= d;
    } else {
      if (n == kMoveMaxDims) return false;
      groups[n++] = {a, d};
    }
    prev = a;
  }
  p = TransposePlan{};
  if (n == 0) {  // one element
    p.rank = 1;
    p.size[0] = 1;
    p.in_stride[0] = p.out_stride_of[0] = 1;
    return true;
  }
  // Input order of the groups: rank of each group's first axis.
  std::array<int64_t, kMoveMaxDims> input_axis_of{};  // output position -> merged input axis
  for (size_t k = 0; k < n; ++k) {
    int64_t r = 0;
    for (size_t m = 0; m < n; ++m) r += groups[m].first_axis < groups[k].first_axis;
    input_axis_of[k] = r;
    p.size[static_cast<size_t>(r)] = groups[k].size;
  }
  p.rank = n;
  int64_t stride = 1;
  for (size_t i = n; i-- > 0;) {
    p.in_stride[i] = stride;
    stride *= p.size[i];
  }
  stride = 1;
  for (size_t k = n; k-- > 0;) {
    const auto i = static_cast<size_t>(input_axis_of[k]);
    p.perm[k] = input_axis_of[k];
    p.out_stride_of[i] = stride;
    stride *= p.size[i];
  }
  return true;
}

template <class W>
void run_transpose(Isa isa, const W* x, W* y, const TransposePlan& p, bool parallel) {
  const size_t r = p.rank, last = r - 1;
  // The output's innermost axis is the input's: contiguous runs, a strided copy.
  const auto a = static_cast<size_t>(p.perm[last]);  // the input axis innermost in the output
  const int64_t rows = p.size[a], cols = p.size[last];
  if (a == last || rows * cols < 64) {
    StridedView v;
    v.rank = r;
    for (size_t k = 0; k < r; ++k) {
      v.size[k] = p.size[static_cast<size_t>(p.perm[k])];
      v.stride[k] = p.in_stride[static_cast<size_t>(p.perm[k])];
    }
    return copy_strided(x, y, v, parallel);
  }
  // A batch of [rows, cols] -> [cols, rows] transposes: the input's innermost axis (cols) and the
  // output's (rows, input stride in_stride[a]). The other axes, in output order, make the batch.
  const int64_t ss = p.in_stride[a], ds = p.out_stride_of[last];
  MoveArray osize{}, oin{}, oout{};
  size_t m = 0;
  for (size_t k = 0; k < r; ++k) {
    const auto i = static_cast<size_t>(p.perm[k]);
    if (i == a || i == last) continue;
    osize[m] = p.size[i];
    oin[m] = p.in_stride[i];
    oout[m] = p.out_stride_of[i];
    ++m;
  }
  int64_t outer = 1;
  for (size_t k = 0; k < m; ++k) outer *= osize[k];
  const int64_t row_blocks = (rows + kMoveBlock - 1) / kMoveBlock, col_blocks = (cols + kMoveBlock - 1) / kMoveBlock;
  const int64_t blocks = row_blocks * col_blocks;
  parallel_for_static(parallel, outer * blocks, [&](int64_t task) {
    int64_t o = task / blocks, in_off = 0, out_off = 0;
    for (size_t k = m; k-- > 0;) {
      const int64_t i = o % osize[k];
      o /= osize[k];
      in_off += i * oin[k];
      out_off += i * oout[k];
    }
    const int64_t b = task % blocks;
    const int64_t i0 = b / col_blocks * kMoveBlock, j0 = b % col_blocks * kMoveBlock;
    transpose_block(isa, x + in_off + i0 * ss + j0, ss, y + out_off + j0 * ds + i0, ds,
                    std::min(kMoveBlock, rows - i0), std::min(kMoveBlock, cols - j0));
  });
}

class TransposeKernel : public FastKernel {
 public:
  explicit TransposeKernel(std::optional<std::vector<int64_t>> perm) : perm_(std::move(perm)) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0) || !movable(ctx.input(0).dtype())) return false;
    const ir::Tensor& x = ctx.input(0);
    const ir::Dims& s = x.shape();
    const size_t rank = s.size();
    // The perm attribute, or the axes reversed when it is absent.
    std::array<int64_t, 2 * kMoveMaxDims> reversed{};
    std::span<const int64_t> perm;
    if (perm_) {
      if (perm_->size() != rank) return false;  // the reference says why
      perm = *perm_;
    } else {
      if (rank > reversed.size()) return false;
      for (size_t k = 0; k < rank; ++k) reversed[k] = static_cast<int64_t>(rank - 1 - k);
      perm = std::span<const int64_t>(reversed.data(), rank);
    }
    if (x.numel() == 0 || rank == 0) return false;
    TransposePlan plan;
    if (!plan_transpose(s, perm, plan)) return false;
    ir::Dims out_shape(rank, 0);
    for (size_t k = 0; k < rank; ++k) out_shape[k] = s[static_cast<size_t>(perm[k])];
    ir::Tensor y = ctx.make_tensor(x.dtype(), out_shape);
    const bool parallel = worth_threads(static_cast<int64_t>(x.nbytes()), kMoveParallelBytes);
    const Isa isa = selected_isa();
    visit_word(ir::dtype_size(x.dtype()), [&]<class W>() {
      run_transpose(isa, static_cast<const W*>(x.raw()), static_cast<W*>(y.raw()), plan, parallel);
    });
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  std::optional<std::vector<int64_t>> perm_;  // normalized and checked; nullopt: reverse the axes
};

std::unique_ptr<FastKernel> make_transpose(const ir::Node& n, const ir::Graph&, int64_t opset) {
  ops::NodeView v(n, opset);
  if (!v.has_attr("perm")) return std::make_unique<TransposeKernel>(std::nullopt);
  std::vector<int64_t> perm = v.attr_ints("perm");
  const auto rank = static_cast<int64_t>(perm.size());
  std::vector<bool> seen(perm.size(), false);
  for (int64_t& a : perm) {
    if (a < -rank || a >= rank) return nullptr;  // the reference says why
    if (a < 0) a += rank;
    if (seen[static_cast<size_t>(a)]) return nullptr;
    seen[static_cast<size_t>(a)] = true;
  }
  return std::make_unique<TransposeKernel>(std::move(perm));
}

// ---- Slice ----------------------------------------------------------------------------------------

using SliceInts = SmallInts<kMoveMaxDims>;

class SliceKernel : public FastKernel {
 public:
  // Before opset 10 starts, ends and axes are attributes (given here); from 10 on, inputs.
  SliceKernel(bool attrs, std::vector<int64_t> starts, std::vector<int64_t> ends, std::optional<std::vector<int64_t>> axes)
      : attrs_(attrs), starts_(std::move(starts)), ends_(std::move(ends)), axes_(std::move(axes)) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0) || !movable(ctx.input(0).dtype())) return false;
    const ir::Tensor& x = ctx.input(0);
    const ir::Dims& s = x.shape();
    const auto rank = static_cast<int64_t>(s.size());
    if (rank == 0 || s.size() > kMoveMaxDims) return false;
    SliceInts starts, ends, axes, steps;
    bool has_axes;
    if (attrs_) {
      if (!small_ints_of(starts_, starts) || !small_ints_of(ends_, ends)) return false;
      has_axes = axes_.has_value();
      if (has_axes && !small_ints_of(*axes_, axes)) return false;
    } else {
      if (!ctx.has_input(1) || !ctx.has_input(2)) return false;
      if (!read_small_ints(ctx.input(1), starts) || !read_small_ints(ctx.input(2), ends)) return false;
      has_axes = ctx.has_input(3);
      if (has_axes && !read_small_ints(ctx.input(3), axes)) return false;
      if (ctx.has_input(4) && !read_small_ints(ctx.input(4), steps)) return false;
    }
    // The reference's checks (check_slice_params): any failure is left to it to report.
    const size_t n = starts.count;
    if (ends.count != n) return false;
    if (!has_axes) {
      axes.count = n;
      for (size_t i = 0; i < n; ++i) axes.v[i] = static_cast<int64_t>(i);
    }
    if (axes.count != n) return false;
    if (steps.count == 0) {
      steps.count = n;
      std::fill_n(steps.v.begin(), n, 1);
    }
    if (steps.count != n) return false;
    // Per axis: the first index taken, the step and the count (the whole axis unless sliced).
    MoveArray first{}, step{}, count{};
    std::array<bool, kMoveMaxDims> seen{};
    for (size_t a = 0; a < s.size(); ++a) {
      step[a] = 1;
      count[a] = s[a];
    }
    for (size_t i = 0; i < n; ++i) {
      int64_t a = axes.v[i];
      if (a < -rank || a >= rank) return false;
      if (a < 0) a += rank;
      const auto ax = static_cast<size_t>(a);
      if (seen[ax] || steps.v[i] == 0) return false;
      seen[ax] = true;
      slice_axis(s[ax], starts.v[i], ends.v[i], steps.v[i], first[ax], count[ax]);
      step[ax] = steps.v[i];
    }
    ir::Dims out_shape(s.size(), 0);
    int64_t numel = 1;
    for (size_t a = 0; a < s.size(); ++a) {
      out_shape[a] = count[a];
      numel *= count[a];
    }
    if (numel == 0) return false;
    // The output as a strided view of x, from the first element taken.
    StridedView v;
    v.rank = s.size();
    int64_t stride = 1, offset = 0;
    for (size_t a = s.size(); a-- > 0;) {
      v.size[a] = count[a];
      v.stride[a] = step[a] * stride;
      offset += first[a] * stride;
      stride *= s[a];
    }
    ir::Tensor y = ctx.make_tensor(x.dtype(), out_shape);
    const bool parallel = worth_threads(static_cast<int64_t>(y.nbytes()), kMoveParallelBytes);
    visit_word(ir::dtype_size(x.dtype()), [&]<class W>() {
      copy_strided(static_cast<const W*>(x.raw()) + offset, static_cast<W*>(y.raw()), v, parallel);
    });
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  // The reference's slice_axis: numpy slicing with ONNX's clamping of starts and ends.
  static void slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t& first, int64_t& count) {
    first = 0;
    count = 0;
    if (dim == 0) return;
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      count = end > start ? (end - start - 1) / step + 1 : 0;
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      count = start > end ? (end - start + 1) / step + 1 : 0;
    }
    first = start;
  }

  bool attrs_;
  std::vector<int64_t> starts_, ends_;
  std::optional<std::vector<int64_t>> axes_;
};

std::unique_ptr<FastKernel> make_slice(const ir::Node& n, const ir::Graph&, int64_t opset) {
  ops::NodeView v(n, opset);
  if (opset >= 10) return std::make_unique<SliceKernel>(false, std::vector<int64_t>{}, std::vector<int64_t>{}, std::nullopt);
  if (!v.has_attr("starts") || !v.has_attr("ends")) return nullptr;
  std::optional<std::vector<int64_t>> axes;
  if (v.has_attr("axes")) axes = v.attr_ints("axes");
  return std::make_unique<SliceKernel>(true, v.attr_ints("starts"), v.attr_ints("ends"), std::move(axes));
}

// ---- Concat and Split -----------------------------------------------------------------------------

// Rows of Concat's output (Split's input) up to this many bytes take copy_segments' short-row path, in
// pieces of about kShortRowPieceBytes.
constexpr int64_t kShortRowBytes = 4096;
constexpr int64_t kShortRowPieceBytes = 16384;


// A [outer, row_bytes] block whose every row is the parts' rows side by side: part k gives part_bytes(k)
// bytes of each row, its rows dense at part_data(k) (null: a Split output nobody reads, skipped). Concat
// gathers the parts into the block, Split scatters the block into them. The block's bytes are cut into
// pieces, one range of pieces per thread, so that a concat of two large tensors along axis 0 splits too.
//
// Rows of at most kShortRowBytes (a channels-last Concat of feature maps: a few dozen channels a pixel)
// go whole to the threads and each segment is copied inline (short_copy): a memcpy call per segment cost
// more than its 96 bytes. ddddocr-det's [1,104,104,24] + [1,104,104,24], fastest of 2 runs: 0.21-0.25 ->
// 0.19-0.20 ms (the rest is memory); its 18 Concats 1.4 -> 1.05 ms a run (AMD EPYC Zen 4, 2 threads).
template <bool kGather, class Block, class PartData, class PartBytes>
void copy_segments(Block* block, int64_t outer, int64_t row_bytes, size_t parts, const PartData& part_data,
                   const PartBytes& part_bytes, bool parallel) {
  if (row_bytes <= kShortRowBytes && outer > 1) {
    const int64_t rows_per_piece = std::max<int64_t>(1, kShortRowPieceBytes / std::max<int64_t>(row_bytes, 1));
    const int64_t pieces = (outer + rows_per_piece - 1) / rows_per_piece;
    parallel_for_ranges(parallel, pieces, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin * rows_per_piece; row < std::min(outer, end * rows_per_piece); ++row) {
        char* block_row = const_cast<char*>(reinterpret_cast<const char*>(block)) + row * row_bytes;
        for (size_t k = 0; k < parts; ++k) {
          const int64_t width = part_bytes(k);
          if (const auto* p = part_data(k)) {
            char* part = const_cast<char*>(static_cast<const char*>(p)) + row * width;
            if constexpr (kGather)
              short_copy(block_row, part, width);
            else
              short_copy(part, block_row, width);
          }
          block_row += width;
        }
      }
    });
    return;
  }
  const int64_t total = outer * row_bytes;
  const int64_t pieces = parallel ? std::min<int64_t>(total / 4096 + 1, 4 * omp_get_max_threads()) : 1;
  const int64_t piece = (total + pieces - 1) / pieces;
  parallel_for_ranges(parallel, pieces, [&](int64_t begin, int64_t end) {
    int64_t pos = std::min(total, begin * piece);
    const int64_t stop = std::min(total, end * piece);
    if (pos >= stop) return;
    int64_t row = pos / row_bytes, col = pos % row_bytes;
    // The part holding column col, and where it starts in the row.
    size_t k = 0;
    int64_t part_start = 0;
    while (part_start + part_bytes(k) <= col) part_start += part_bytes(k++);
    while (pos < stop) {
      const int64_t width = part_bytes(k), in_part = col - part_start;
      const int64_t n = std::min(width - in_part, stop - pos);
      if (const auto* p = part_data(k)) {
        char* part = const_cast<char*>(static_cast<const char*>(p)) + row * width + in_part;
        if constexpr (kGather)
          std::memcpy(reinterpret_cast<char*>(block) + pos, part, static_cast<size_t>(n));
        else
          std::memcpy(part, reinterpret_cast<const char*>(block) + pos, static_cast<size_t>(n));
      }
      pos += n;
      col += n;
      if (col - part_start == width) {  // next part, or the next row's first
        part_start += width;
        ++k;
        if (col == row_bytes) {
          ++row;
          col = 0;
          part_start = 0;
          k = 0;
        }
        while (k < parts && pos < stop && part_bytes(k) == 0) ++k;
      }
    }
  });
}

class ConcatKernel : public FastKernel {
 public:
  explicit ConcatKernel(int64_t axis) : axis_(axis) {}

  bool run(ops::KernelContext& ctx) const override {
    const size_t n = ctx.num_inputs();
    if (n == 0) return false;
    for (size_t i = 0; i < n; ++i)
      if (!ctx.has_input(i)) return false;
    const ir::Tensor& first = ctx.input(0);
    if (!movable(first.dtype())) return false;
    const ir::Dims& s = first.shape();
    const auto rank = static_cast<int64_t>(s.size());
    if (rank == 0 || axis_ < -rank || axis_ >= rank) return false;
    const auto axis = static_cast<size_t>(axis_ < 0 ? axis_ + rank : axis_);
    ir::Dims out_shape = s;
    out_shape[axis] = 0;
    for (size_t i = 0; i < n; ++i) {
      const ir::Tensor& t = ctx.input(i);
      if (t.dtype() != first.dtype() || t.rank() != s.size()) return false;
      for (size_t d = 0; d < s.size(); ++d)
        if (d != axis && t.dim(d) != s[d]) return false;
      out_shape[axis] += t.dim(axis);
    }
    int64_t outer = 1, inner = 1;
    for (size_t d = 0; d < axis; ++d) outer *= s[d];
    for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
    const auto es = static_cast<int64_t>(ir::dtype_size(first.dtype()));
    const int64_t row_bytes = out_shape[axis] * inner * es;
    if (outer * row_bytes == 0) return false;
    ir::Tensor y = ctx.make_tensor(first.dtype(), out_shape);
    copy_segments<true>(
        static_cast<char*>(y.raw()), outer, row_bytes, n, [&](size_t k) { return ctx.input(k).raw(); },
        [&](size_t k) { return ctx.input(k).dim(axis) * inner * es; },
        worth_threads(static_cast<int64_t>(y.nbytes()), kMoveParallelBytes));
    ctx.set_output(0, std::move(y));
    return true;
  }

 private:
  int64_t axis_;
};

std::unique_ptr<FastKernel> make_concat(const ir::Node& n, const ir::Graph&, int64_t opset) {
  ops::NodeView v(n, opset);
  if (opset >= 4 && !v.has_attr("axis")) return nullptr;  // required: the reference says so
  return std::make_unique<ConcatKernel>(v.attr_int("axis", 1));
}

class SplitKernel : public FastKernel {
 public:
  // split_input: the sizes come from input 1 when given (opset 13 on, and opset 1); else `split_attr`.
  SplitKernel(int64_t axis, bool split_input, std::optional<std::vector<int64_t>> split_attr,
              std::optional<int64_t> num_outputs, bool uneven_last)
      : axis_(axis),
        split_input_(split_input),
        split_attr_(std::move(split_attr)),
        num_outputs_(num_outputs),
        uneven_last_(uneven_last) {}

  bool run(ops::KernelContext& ctx) const override {
    if (!ctx.has_input(0) || !movable(ctx.input(0).dtype())) return false;
    const ir::Tensor& x = ctx.input(0);
    const ir::Dims& s = x.shape();
    const auto rank = static_cast<int64_t>(s.size());
    if (rank == 0 || axis_ < -rank || axis_ >= rank) return false;
    const auto axis = static_cast<size_t>(axis_ < 0 ? axis_ + rank : axis_);
    const size_t outputs = ctx.num_outputs();
    if (outputs == 0) return false;
    const int64_t dim = s[axis];
    // The sizes along the axis, as the reference's split_sizes gives them: given (and checked), or equal
    // chunks (at opset 18 the last may be smaller).
    const int64_t* given = nullptr;
    const int32_t* given32 = nullptr;
    if (split_input_ && ctx.has_input(1)) {
      const ir::Tensor& t = ctx.input(1);
      if (t.rank() != 1 || t.numel() != static_cast<int64_t>(outputs)) return false;
      if (t.dtype() == ir::DType::kInt64)
        given = t.data<int64_t>();
      else if (t.dtype() == ir::DType::kInt32)
        given32 = t.data<int32_t>();
      else
        return false;
    } else if (!split_input_ && split_attr_) {
      if (split_attr_->size() != outputs) return false;
      given = split_attr_->data();
    }
    const auto n = static_cast<int64_t>(outputs);
    int64_t chunk = 0, last = 0;
    if (given || given32) {
      int64_t sum = 0;
      for (size_t k = 0; k < outputs; ++k) {
        const int64_t v = given ? given[k] : given32[k];
        if (v < 0) return false;
        sum += v;
      }
      if (sum != dim) return false;
    } else {
      if (num_outputs_ && *num_outputs_ != n) return false;
      if (dim % n == 0) {
        chunk = last = dim / n;
      } else {
        if (!uneven_last_) return false;
        chunk = (dim + n - 1) / n;
        last = dim - chunk * (n - 1);
        if (last < 0) return false;
      }
    }
    auto size_of = [&](size_t k) -> int64_t {
      if (given) return given[k];
      if (given32) return given32[k];
      return k + 1 == outputs ? last : chunk;
    };
    int64_t outer = 1, inner = 1;
    for (size_t d = 0; d < axis; ++d) outer *= s[d];
    for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
    const auto es = static_cast<int64_t>(ir::dtype_size(x.dtype()));
    const int64_t row_bytes = dim * inner * es;
    for (size_t k = 0; k < outputs; ++k) {
      ir::Dims shape = s;
      shape[axis] = size_of(k);
      if (ctx.has_output(k)) ctx.set_output(k, ctx.make_tensor(x.dtype(), shape));
    }
    if (outer * row_bytes > 0) {
      std::span<ir::Datum> outs = ctx.outputs();
      copy_segments<false>(
          static_cast<const char*>(x.raw()), outer, row_bytes, outputs,
          [&](size_t k) -> char* { return ctx.has_output(k) ? static_cast<char*>(outs[k].tensor.raw()) : nullptr; },
          [&](size_t k) { return size_of(k) * inner * es; },
          worth_threads(static_cast<int64_t>(x.nbytes()), kMoveParallelBytes));
    }
    return true;
  }

 private:
  int64_t axis_;
  bool split_input_;
  std::optional<std::vector<int64_t>> split_attr_;
  std::optional<int64_t> num_outputs_;
  bool uneven_last_;
};

std::unique_ptr<FastKernel> make_split(const ir::Node& n, const ir::Graph&, int64_t opset) {
  ops::NodeView v(n, opset);
  // Where the sizes come from (the reference's split_given): input 1 from opset 13 on, and at opset 1
  // when that input is given (else the attribute); the attribute between.
  const bool input_given = n.inputs.size() > 1 && !n.inputs[1].empty();
  const bool split_input = opset >= 13 || (opset < 2 && input_given);
  std::optional<std::vector<int64_t>> split_attr;
  if (!split_input && v.has_attr("split")) split_attr = v.attr_ints("split");
  std::optional<int64_t> num_outputs;
  if (opset >= 18 && v.has_attr("num_outputs")) num_outputs = v.attr_int("num_outputs");
  return std::make_unique<SplitKernel>(v.attr_int("axis", 0), split_input, std::move(split_attr), num_outputs,
                                       opset >= 18);
}

}  // namespace

std::span<const FastKernelEntry> data_movement_kernel_entries() {
  static const FastKernelEntry kEntries[] = {
      {"", "Transpose", 1, kLatestOpset, kMovableTypes, make_transpose},
      {"", "Slice", 1, kLatestOpset, kMovableTypes, make_slice},
      {"", "Concat", 1, kLatestOpset, kMovableTypes, make_concat},
      {"", "Split", 1, kLatestOpset, kMovableTypes, make_split},
  };
  return kEntries;
}

}  // namespace kiln::kernels::cpu

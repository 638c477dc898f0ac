#include "kernels/cpu/panel_gemm.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/onednn_matmul.h"
#include "kernels/cpu/thread_buffer.h"
#include "kernels/cpu/vector_kernels.h"

// Every function that uses AVX2 carries the attribute: the file is built for baseline x86-64 and only
// runs these once panel_gemm_supported() said so.
#define KILN_AVX2 __attribute__((target("avx2,fma")))

namespace kiln::kernels::cpu {
namespace {

constexpr int64_t kRows = 6;  // rows of y per micro-kernel
constexpr int64_t kWidth = PanelPackedB::kPanelWidth;
// K per block. A micro-kernel call reads kKBlock x 16 floats of its panel (48 KiB, from L2): fewer passes
// over y than 256 or 384 (where the panel block fits L1), measured 4-8 % faster on BERT's shapes.
constexpr int64_t kKBlock = 768;
// A task's tile of y (see Tiling): its rows of A (kTileRows x kKBlock floats, 144 KiB) and its panels
// (kKBlock x kTilePanels x 16 floats, 192 KiB) stay in L2 while the task runs. kTileRows is a multiple of
// the micro-kernel's rows.
constexpr int64_t kTileRows = 48;
constexpr int64_t kTilePanels = 4;
// Below this many multiply-adds per thread, another thread costs more than it saves.
constexpr int64_t kMinMacsPerThread = 1 << 20;

// acc (R rows x 16) = (first ? bias or 0 : y) + A[R rows, kc] x panel[kc, 16]; stored to y, or, for a
// panel narrower than 16 (cols < 16), through a local tile so that nothing past column N is written.
// `a` is packed: kc groups of R floats, row i of group k being A[i, k]. One cache line of `prefetch` per k
// is fetched into L2 on the way: the next panel, which would otherwise come from memory on its first use
// (a model's weights are far larger than the caches, so every call streams them from DRAM).
template <int R>
KILN_AVX2 void micro_kernel(int64_t kc, const float* a, const float* panel, const float* prefetch, const float* bias,
                            bool first, float* y, int64_t ldy, int64_t cols) {
  __m256 acc0[R], acc1[R];
  float tile[kRows * kWidth];
  float* out = y;
  int64_t ld_out = ldy;
  if (cols < kWidth) {
    out = tile;
    ld_out = kWidth;
    if (!first) {
      for (int i = 0; i < R; ++i)
        std::memcpy(tile + i * kWidth, y + i * ldy, static_cast<size_t>(cols) * sizeof(float));
    }
  }
  if (first) {
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    if (bias != nullptr) {
      b0 = _mm256_loadu_ps(bias);
      b1 = _mm256_loadu_ps(bias + 8);
    }
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      acc0[i] = b0;
      acc1[i] = b1;
    }
  } else {
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      acc0[i] = _mm256_loadu_ps(out + i * ld_out);
      acc1[i] = _mm256_loadu_ps(out + i * ld_out + 8);
    }
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 p0 = _mm256_load_ps(panel + k * kWidth);
    const __m256 p1 = _mm256_load_ps(panel + k * kWidth + 8);
    _mm_prefetch(reinterpret_cast<const char*>(prefetch + k * kWidth), _MM_HINT_T1);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const __m256 x = _mm256_broadcast_ss(a + k * R + i);
      acc0[i] = _mm256_fmadd_ps(x, p0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(x, p1, acc1[i]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    _mm256_storeu_ps(out + i * ld_out, acc0[i]);
    _mm256_storeu_ps(out + i * ld_out + 8, acc1[i]);
  }
  if (cols < kWidth) {
    for (int i = 0; i < R; ++i) std::memcpy(y + i * ldy, tile + i * kWidth, static_cast<size_t>(cols) * sizeof(float));
  }
}

using MicroKernel = void (*)(int64_t, const float*, const float*, const float*, const float*, bool, float*, int64_t,
                             int64_t);
constexpr MicroKernel kMicroKernels[kRows + 1] = {nullptr,         micro_kernel<1>, micro_kernel<2>, micro_kernel<3>,
                                                  micro_kernel<4>, micro_kernel<5>, micro_kernel<6>};

KILN_AVX2 void relu_span(float* y, int64_t count) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, _mm256_max_ps(_mm256_loadu_ps(y + i), zero));
  for (; i < count; ++i) y[i] = y[i] > 0.0f ? y[i] : 0.0f;  // NaN stays NaN, as std::max(0, NaN) would not
}

// The activation, then the residual, over rows [r0, r1) and columns [c0, c1) of a finished tile.
void epilogue(const PanelGemmArgs& args, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const VectorKernelTable& table = vector_kernels();
  const int64_t cols = c1 - c0;
  for (int64_t r = r0; r < r1; ++r) {
    float* y = args.y + r * args.ldy + c0;
    switch (args.post) {
      case PostOp::kNone:
        break;
      case PostOp::kRelu:
        relu_span(y, cols);
        break;
      case PostOp::kGeluErf:
        table.gelu(GeluKind::kErf, y, nullptr, cols, y, 0, cols);
        break;
      case PostOp::kGeluTanh:
        table.gelu(GeluKind::kTanh, y, nullptr, cols, y, 0, cols);
        break;
    }
    if (args.residual != nullptr) {
      table.binary(BinaryOp::kAdd, y, args.residual + r * args.ld_residual + c0, cols, y, 0, cols);
    }
  }
}

// Rows in the micro-kernel call that starts `left` rows before the end: 6, except near the end, where
// 7-9 rows go as two near-halves rather than 6 and a sliver (a 1- or 2-row kernel has too few
// accumulators to hide the FMA latency).
int64_t group_rows(int64_t left) {
  if (left == kRows || left >= 2 * kRows - 2) return kRows;
  return left > kRows ? (left + 1) / 2 : left;
}

// Rows [0, rows) of A into micro-kernel order, all of K: K block k0 starts at k0 * rows; within it, the
// row group starting at r (group_rows) starts at r * kc and holds kc groups of g floats, A[r + i, k0 + k]
// at k * g + i.
void pack_a(const float* a, int64_t lda, int64_t rows, int64_t k, float* out) {
  for (int64_t k0 = 0; k0 < k; k0 += kKBlock) {
    const int64_t kc = std::min(kKBlock, k - k0);
    float* block = out + k0 * rows;
    for (int64_t r = 0, g = 0; r < rows; r += g) {
      g = group_rows(rows - r);
      float* dst = block + r * kc;
      for (int64_t i = 0; i < g; ++i) {
        const float* src = a + (r + i) * lda + k0;
        for (int64_t kk = 0; kk < kc; ++kk) dst[kk * g + i] = src[kk];
      }
    }
  }
}

// The work of one call, cut into tasks: a task is one tile of y, kTileRows rows (whole micro-kernel
// groups) by kTilePanels panels, over all of K. The threads take tasks as they finish their last, so a
// thread slowed by something else on its core holds up no more than one task; consecutive tasks share
// their panels, so both threads read one part of B at a time.
struct Tiling {
  int64_t row_tiles, panel_tiles;
  int64_t tasks() const { return row_tiles * panel_tiles; }
};

Tiling tiling(int64_t m, int64_t panels) {
  return {(m + kTileRows - 1) / kTileRows, (panels + kTilePanels - 1) / kTilePanels};
}

// A packed, one row tile after another (pack_a's layout within each): row tile i starts at i * kTileRows * K.
void pack_row_tile(const PanelPackedB& b, const PanelGemmArgs& args, int64_t i, float* packed_a) {
  const int64_t r0 = i * kTileRows, rows = std::min(kTileRows, args.m - r0);
  pack_a(args.a + r0 * args.lda, args.lda, rows, b.k(), packed_a + r0 * b.k());
}

// One task: K blocks outermost, so that one K block of the tile's panels and rows of A stays in L2 while
// every micro-kernel call that needs it runs; the K blocks after the first add to y.
void run_task(const PanelPackedB& b, const PanelGemmArgs& args, const Tiling& t, int64_t task, const float* packed_a) {
  const int64_t i = task % t.row_tiles, j = task / t.row_tiles;
  const int64_t r0 = i * kTileRows, rows = std::min(kTileRows, args.m - r0);
  const int64_t p0 = j * kTilePanels, p1 = std::min(b.panels(), p0 + kTilePanels);
  const int64_t k = b.k();
  const float* tile_a = packed_a + r0 * k;
  for (int64_t k0 = 0; k0 < k; k0 += kKBlock) {
    const int64_t kc = std::min(kKBlock, k - k0);
    const float* a_block = tile_a + k0 * rows;
    for (int64_t p = p0; p < p1; ++p) {
      const float* panel = b.panel(p) + k0 * kWidth;
      const int64_t c = p * kWidth;
      const int64_t cols = std::min(kWidth, b.n() - c);
      const float* bias = args.bias != nullptr && cols == kWidth ? args.bias + c : nullptr;
      float bias_tile[kWidth] = {};
      if (args.bias != nullptr && cols < kWidth) {
        std::memcpy(bias_tile, args.bias + c, static_cast<size_t>(cols) * sizeof(float));
        bias = bias_tile;
      }
      // The first group of rows fetches the next panel; the others re-read their own, already in cache.
      const float* next = p + 1 < b.panels() ? b.panel(p + 1) + k0 * kWidth : panel;
      for (int64_t r = 0, g = 0; r < rows; r += g) {
        g = group_rows(rows - r);
        kMicroKernels[g](kc, a_block + r * kc, panel, r == 0 ? next : panel, bias, k0 == 0,
                         args.y + (r0 + r) * args.ldy + c, args.ldy, cols);
      }
    }
  }
  if (args.post != PostOp::kNone || args.residual != nullptr) {
    epilogue(args, r0, r0 + rows, p0 * kWidth, std::min(b.n(), p1 * kWidth));
  }
}

}  // namespace

void PanelPackedB::Free::operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }

PanelPackedB::PanelPackedB(int64_t k, int64_t n, const float* b, bool trans_b, float alpha) : k_(k), n_(n) {
  data_.reset(static_cast<float*>(::operator new[](bytes(), std::align_val_t(64))));
  std::memset(data_.get(), 0, bytes());
  for (int64_t p = 0; p < panels(); ++p) {
    float* out = data_.get() + p * k * kPanelWidth;
    const int64_t cols = std::min(kPanelWidth, n - p * kPanelWidth);
    for (int64_t kk = 0; kk < k; ++kk) {
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t col = p * kPanelWidth + j;
        out[kk * kPanelWidth + j] = alpha * (trans_b ? b[col * k + kk] : b[kk * n + col]);
      }
    }
  }
}

bool panel_gemm_supported() { return isa_supported(Isa::kAvx2); }

void panel_gemm(const PanelPackedB& b, const PanelGemmArgs& args) {
  if (args.m == 0) return;
  const Tiling t = tiling(args.m, b.panels());
  // Packed A comes from the calling thread's buffer and is shared by the threads of this call.
  auto* packed_a =
      reinterpret_cast<float*>(thread_buffer<PanelPackedB>(static_cast<size_t>(args.m * b.k()) * sizeof(float)));
  const int64_t macs = args.m * b.n() * b.k();
  int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  threads = std::max<int64_t>(1, std::min({threads, macs / kMinMacsPerThread, t.tasks()}));
  if (threads == 1) {
    for (int64_t i = 0; i < t.row_tiles; ++i) pack_row_tile(b, args, i, packed_a);
    for (int64_t task = 0; task < t.tasks(); ++task) run_task(b, args, t, task, packed_a);
    return;
  }
#pragma omp parallel num_threads(static_cast <int>(threads))
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < t.row_tiles; ++i) pack_row_tile(b, args, i, packed_a);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < t.tasks(); ++task) run_task(b, args, t, task, packed_a);
  }
}

}  // namespace kiln::kernels::cpu

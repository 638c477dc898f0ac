// Scaled dot-product attention for one head and a block of queries, computed tile by tile so that the
// scores are never materialized beyond one tile (kQueryBlock queries x kKeyBlock keys):
//
//     out[i] = sum_j softmax_j(scale * q[i] . k[j] + mask[i][j]) v[j]
//
// Keys are taken kKeyBlock at a time with the online softmax (the flash-attention recurrence): per query
// row a running maximum m and sum l; each key block's probabilities are exp(s - m_new), and what was
// accumulated before is rescaled by exp(m_old - m_new). Sequences up to kKeyBlock keys (BERT's 128-512,
// ViT's 197) take one block, which is the plain two-pass softmax.
//
// The two products (scores = Q K^T and out += P V) run on a 12 x 32 FMA micro-kernel with AVX-512, a 6 x 16
// one with AVX2 (and for 16-column tails), and a portable fallback below AVX2; K's block is first copied transposed so that both read their right operand by rows.
// exp is the vector kernels' (kernels/cpu/vector_kernels.h), chosen by ISA.
//
// With args.bf16 (below), the products run on vdpbf16ps: each instruction sums pairs of bfloat16 products into
// 16 float32 lanes, twice the work of a float32 FMA (Zen 4 runs both 512-bit instructions at the same rate).
// Q and P give pairs along their rows as they are; K and V are rounded and repacked per key block so that
// each 32-bit word holds the pair the other operand's word meets (K^T: two head dims of one key; V: one
// column of two keys).
//
// Semantics follow the reference softmax: a row whose scores are all -inf, or that holds a NaN or +inf,
// comes out NaN. A key block that is entirely -inf for a row contributes nothing to it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/cpu_features.h"

namespace kiln::kernels::cpu {

struct AttentionHeadArgs {
  int64_t queries = 0;  // rows of q and out
  int64_t keys = 0;     // rows of k and v
  int64_t head_size = 0;
  const float* q = nullptr;
  int64_t ldq = 0;  // floats between rows
  const float* k = nullptr;
  int64_t ldk = 0;
  const float* v = nullptr;
  int64_t ldv = 0;
  float scale = 1.0f;
  // Optional additive mask, `keys` floats per query row: row i reads mask + i * mask_stride (0: every
  // query reads the same row).
  const float* mask = nullptr;
  int64_t mask_stride = 0;
  float* out = nullptr;
  int64_t ldo = 0;
  // Both products in bfloat16 (Q, K, V and the probabilities rounded; scores, softmax and sums in float32)
  // where the CPU computes bfloat16 faster (bf16_matmul_is_fast()) and head_size is a multiple of 32;
  // float32 otherwise. Sessions with --precision bf16 ask for it (for Attention and QAttention alike).
  bool bf16 = false;
};

// Queries per tile: 128 rows of scores (128 KiB with a full key block) stay in L2; callers split a
// sequence into equal blocks of at most this many, so that BERT's 128 is one block and K is copied once.
constexpr int64_t kAttentionQueryBlock = 128;
constexpr int64_t kAttentionKeyBlock = 256;

// Runs on the calling thread; its scratch is the calling thread's own (grown once, then reused). `isa`
// picks the micro-kernel and exp (AVX-512, AVX2 + FMA, or portable); tests pass each level.
void attention_head(const AttentionHeadArgs& args, Isa isa = selected_isa());

// Whether args.bf16 makes attention_head compute in bfloat16 for this head size at `isa`.
bool attention_head_runs_bf16(int64_t head_size, Isa isa = selected_isa());

}  // namespace kiln::kernels::cpu

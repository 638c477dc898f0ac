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
// The two products (scores = Q K^T and out += P V) run on a 6 x 16 FMA micro-kernel (AVX2, with a portable
// fallback below AVX2); K's block is first copied transposed so that both read their right operand by rows.
// exp is the vector kernels' (kernels/cpu/vector_kernels.h), chosen by ISA.
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
};

// Queries per tile: 128 rows of scores (128 KiB with a full key block) stay in L2; callers split a
// sequence into equal blocks of at most this many, so that BERT's 128 is one block and K is copied once.
constexpr int64_t kAttentionQueryBlock = 128;
constexpr int64_t kAttentionKeyBlock = 256;

// Runs on the calling thread; its scratch is the calling thread's own (grown once, then reused). `isa`
// picks the micro-kernel and exp (AVX2 and above: AVX2 + FMA; below: portable); tests pass each level.
void attention_head(const AttentionHeadArgs& args, Isa isa = selected_isa());

}  // namespace kiln::kernels::cpu

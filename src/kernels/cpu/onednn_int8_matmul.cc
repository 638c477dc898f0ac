#include "kernels/cpu/onednn_int8_matmul.h"

#include <dnnl_debug.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/onednn_engine.h"
#include "kernels/cpu/packed_weights.h"
#include "kernels/cpu/primitive_lru.h"
#include "kernels/cpu/thread_buffer.h"

namespace kiln::kernels::cpu {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;

constexpr int64_t kLayoutM = 128;  // the M the weights' first layout is chosen for (a BERT sequence)

struct Geometry {
  int64_t m = 0, lda = 0, ldy = 0;
  bool operator==(const Geometry&) const = default;
};

struct BoundArgs {
  memory src, dst, a_scale, corr, scratch;
  OneDnnArgs args;
};

struct Entry {
  Geometry geometry;
  dnnl::matmul primitive;
  memory weights;
  memory::desc src_md, dst_md;
  size_t scratch_bytes = 0;
  std::string implementation;
  mutable IdlePool<BoundArgs> bound;
};

// Owner tags for the per-thread buffers (scratchpad, and the per-call scalar and correction vector).
struct Int8Scratch {};
struct Int8CallData {};

}  // namespace

bool int8_matmul_is_fast() {
  static const bool fast = [] {
    if (selected_isa() != Isa::kAvx512) return false;
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    return isa == dnnl::cpu_isa::avx512_core_vnni || isa == dnnl::cpu_isa::avx512_core_bf16 ||
           isa == dnnl::cpu_isa::avx512_core_amx;
  }();
  return fast;
}

struct PackedInt8MatMul::Impl {
  int64_t k = 0, n = 0;
  bool per_column = false;
  std::vector<float> b_scale, bias;  // b_scale: n values (repeated when per tensor); bias: n or empty
  std::vector<int32_t> column_sums;

  mutable std::mutex mutex;
  mutable std::vector<memory> weights;  // [0]: the layout for kLayoutM
  mutable PrimitiveLru<Entry> cache{kMaxCachedPrimitives};

  dnnl::matmul::primitive_desc primitive_desc(const Geometry& g, const memory::desc& weights_md) const {
    const memory::desc src_md({g.m, k}, memory::data_type::u8, memory::dims{g.lda, 1});
    const memory::desc dst_md({g.m, n}, memory::data_type::f32, memory::dims{g.ldy, 1});
    dnnl::primitive_attr attr;
    if (per_column)
      attr.set_output_scales(2, b_scale);
    else
      attr.set_output_scales(0, {b_scale[0]});
    dnnl::post_ops ops;
    ops.append_binary(dnnl::algorithm::binary_mul, memory::desc({1, 1}, memory::data_type::f32, Tag::ab));
    ops.append_binary(dnnl::algorithm::binary_add, memory::desc({1, n}, memory::data_type::f32, Tag::ab));
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, weights_md, memory::desc(), dst_md), attr,
                                        onednn_engine());
  }

  // With `mutex` held.
  std::shared_ptr<const Entry> make_entry(const Geometry& g) const {
    dnnl::matmul::primitive_desc pd;
    memory chosen;
    try {
      pd = primitive_desc(g, memory::desc({k, n}, memory::data_type::s8, Tag::any));
      chosen = pick_packed_weights(weights, pd, [&](const memory::desc& md) { return primitive_desc(g, md); });
    } catch (const dnnl::error& e) {
      fail("[PackedInt8MatMul] oneDNN has no u8 x s8 matmul for M=", g.m, " K=", k, " N=", n, ": ", e.what());
    }
    auto entry = std::make_shared<Entry>();
    entry->geometry = g;
    entry->primitive = dnnl::matmul(pd);
    entry->weights = chosen;
    entry->src_md = pd.src_desc();
    entry->dst_md = pd.dst_desc();
    entry->scratch_bytes = pd.scratchpad_desc().get_size();
    entry->implementation = pd.impl_info_str();
    return entry;
  }

  std::shared_ptr<const Entry> entry(const Geometry& g) const {
    std::lock_guard<std::mutex> lock(mutex);
    return cache.find_or_make(g, [&] { return make_entry(g); });
  }

  IdlePool<BoundArgs>::Lease bound_args(const Entry& e) const {
    return e.bound.take([&] {
      auto b = std::make_unique<BoundArgs>();
      try {
        b->src = unbound_memory(e.src_md);
        b->dst = unbound_memory(e.dst_md);
        b->a_scale = unbound_memory(memory::desc({1, 1}, memory::data_type::f32, Tag::ab));
        b->corr = unbound_memory(memory::desc({1, n}, memory::data_type::f32, Tag::ab));
        b->args.add(DNNL_ARG_SRC, b->src);
        b->args.add(DNNL_ARG_WEIGHTS, e.weights);
        b->args.add(DNNL_ARG_DST, b->dst);
        b->args.add(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, b->a_scale);
        b->args.add(DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1, b->corr);
        if (e.scratch_bytes > 0) {
          b->scratch = unbound_scratchpad(e.scratch_bytes);
          b->args.add(DNNL_ARG_SCRATCHPAD, b->scratch);
        }
      } catch (const dnnl::error& err) {
        fail("[PackedInt8MatMul] oneDNN cannot make the memory objects for M=", e.geometry.m, " K=", k, " N=", n,
             ": ", err.what());
      }
      return b;
    });
  }
};

PackedInt8MatMul::PackedInt8MatMul(int64_t k, int64_t n, const int8_t* b, const float* b_scale, bool per_column,
                                   const float* bias)
    : impl_(new Impl) {
  KILN_CHECK(k >= 1 && n >= 1, "[PackedInt8MatMul] K and N must be >= 1, got K=", k, " N=", n);
  Impl& im = *impl_;
  im.k = k;
  im.n = n;
  im.per_column = per_column;
  im.b_scale.assign(static_cast<size_t>(n), b_scale[0]);
  if (per_column) im.b_scale.assign(b_scale, b_scale + n);
  if (bias) im.bias.assign(bias, bias + n);
  im.column_sums.assign(static_cast<size_t>(n), 0);
  for (int64_t r = 0; r < k; ++r)
    for (int64_t c = 0; c < n; ++c) im.column_sums[static_cast<size_t>(c)] += b[r * n + c];
  try {
    const memory::desc user_md({k, n}, memory::data_type::s8, Tag::ab);
    memory user(user_md, onednn_engine(), const_cast<int8_t*>(b));
    const Geometry g{kLayoutM, k, n};
    const dnnl::matmul::primitive_desc pd = im.primitive_desc(g, memory::desc({k, n}, memory::data_type::s8, Tag::any));
    memory packed(pd.weights_desc(), onednn_engine());
    dnnl::reorder(user, packed).execute(onednn_stream(), user, packed);
    onednn_stream().wait();
    im.weights.push_back(packed);
  } catch (const dnnl::error& e) {
    fail("[PackedInt8MatMul] oneDNN cannot pack K=", k, " N=", n, " int8 weights: ", e.what());
  }
}

PackedInt8MatMul::~PackedInt8MatMul() = default;

void PackedInt8MatMul::run(int64_t m, const uint8_t* a, int64_t lda, float a_scale, uint8_t a_zero_point, float* y,
                           int64_t ldy) const {
  const Impl& im = *impl_;
  KILN_CHECK(m >= 0 && lda >= im.k && ldy >= im.n, "[PackedInt8MatMul] bad geometry M=", m, " lda=", lda, " ldy=", ldy);
  if (m == 0) return;
  // The call's own data for the post-ops: a_scale, then corr[n] (see the header).
  float* call = reinterpret_cast<float*>(thread_buffer<Int8CallData>(sizeof(float) * static_cast<size_t>(im.n + 16)));
  float* corr = call + 16;  // a_scale alone in the first cache line
  call[0] = a_scale;
  const float z = static_cast<float>(a_zero_point);
  for (int64_t c = 0; c < im.n; ++c) {
    const auto i = static_cast<size_t>(c);
    const float zero_point_term = a_scale * im.b_scale[i] * z * static_cast<float>(im.column_sums[i]);
    corr[c] = (im.bias.empty() ? 0.0f : im.bias[i]) - zero_point_term;
  }
  const std::shared_ptr<const Entry> e = im.entry({m, lda, ldy});
  const auto b = im.bound_args(*e);
  dnnl_status_t status = onednn_rebind(b->src, a);
  if (status == dnnl_success) status = onednn_rebind(b->dst, y);
  if (status == dnnl_success) status = onednn_rebind(b->a_scale, call);
  if (status == dnnl_success) status = onednn_rebind(b->corr, corr);
  if (status == dnnl_success && e->scratch_bytes > 0)
    status = onednn_rebind(b->scratch, thread_buffer<Int8Scratch>(e->scratch_bytes));
  if (status == dnnl_success) status = onednn_execute(e->primitive, b->args);
  if (status != dnnl_success)
    fail("[PackedInt8MatMul] oneDNN matmul M=", m, " K=", im.k, " N=", im.n, " failed: ", dnnl_status2str(status));
}

}  // namespace kiln::kernels::cpu

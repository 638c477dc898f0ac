#include "kernels/cpu/onednn_matmul.h"

#include <dnnl_debug.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/bfloat16_rows.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fast_kernel_util.h"
#include "kernels/cpu/onednn_engine.h"
#include "kernels/cpu/packed_weights.h"
#include "kernels/cpu/panel_gemm.h"
#include "kernels/cpu/primitive_lru.h"
#include "kernels/cpu/thread_buffer.h"

namespace kiln::kernels::cpu {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr memory::data_type kF32 = memory::data_type::f32;
constexpr memory::data_type kBf16 = memory::data_type::bf16;

// Names the per-thread buffer of A rounded to bfloat16 (spec.bf16).
struct Bfloat16Activations {};

// The M the weights' layout is chosen for: a BERT-base sequence, the shape the layout matters most for.
constexpr int64_t kLayoutM = 128;

// When oneDNN wants plain row-major weights (its gemm:jit path, taken on CPUs without AVX-512) and a row is
// a multiple of 4 KiB (N = 1024, 2048, 3072, ...), the rows are stored this many floats apart instead:
// rows 4 KiB apart fall into the same L1 sets while the gemm copies B in column panels, and BERT's
// [768, 3072] weights ran ~1.9x slower (18 vs 35 GFLOP/s, one thread, AVX2) without the padding.
constexpr int64_t kRowPadFloats = 16;

// Everything a primitive is specialized on besides the spec.
struct Geometry {
  int64_t m = 0, lda = 0, ldy = 0;
  int64_t ldr = 0;  // residual's leading dimension; 0 without a residual
  bool operator==(const Geometry&) const = default;
};

// The memory objects of one running call, made once and rebound to each call's pointers, and the
// argument list naming them (with the weights and bias, which never change).
struct BoundArgs {
  memory src, dst, residual, scratch;
  OneDnnArgs args;
};

struct Entry {
  Geometry geometry;
  dnnl::matmul primitive;
  memory weights;  // a handle on one of Impl::weights
  memory::desc src_md, dst_md, residual_md;
  size_t scratch_bytes = 0;
  std::string implementation;
  mutable IdlePool<BoundArgs> bound;  // one per call running at once
};

dnnl::algorithm eltwise_algorithm(PostOp post) {
  switch (post) {
    case PostOp::kRelu:
      return dnnl::algorithm::eltwise_relu;
    case PostOp::kGeluErf:
      return dnnl::algorithm::eltwise_gelu_erf;
    case PostOp::kGeluTanh:
      return dnnl::algorithm::eltwise_gelu_tanh;
    case PostOp::kNone:
      break;
  }
  return dnnl::algorithm::undef;
}

GemmEngine gemm_engine_from_env() {
  const char* value = std::getenv("KILN_GEMM");
  const std::string name = value == nullptr ? "" : value;
  if (name == "onednn") return GemmEngine::kOneDnn;
  if (name == "panel") {
    KILN_CHECK(panel_gemm_supported(), "KILN_GEMM=panel: this CPU has no AVX2, which the panel GEMM needs");
    return GemmEngine::kPanel;
  }
  KILN_CHECK(name.empty(), "KILN_GEMM: unknown GEMM engine '", name, "' (known: onednn, panel)");
  return selected_isa() == Isa::kAvx2 ? GemmEngine::kPanel : GemmEngine::kOneDnn;
}

}  // namespace

bool bf16_matmul_is_fast() {
  static const bool fast = [] {
    if (selected_isa() != Isa::kAvx512) return false;
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
  }();
  return fast;
}

bool bf16_products_run() { return bf16_matmul_is_fast() && auto_gemm_engine() == GemmEngine::kOneDnn; }

GemmEngine auto_gemm_engine() {
  static const GemmEngine engine = gemm_engine_from_env();
  return engine;
}

const char* gemm_engine_name(GemmEngine engine) {
  switch (engine) {
    case GemmEngine::kOneDnn:
      return "onednn";
    case GemmEngine::kPanel:
      return "panel";
    case GemmEngine::kAuto:
      break;
  }
  return "auto";
}

std::string gemm_engine_implementation(GemmEngine engine) {
  if (engine != GemmEngine::kPanel) return gemm_engine_name(engine);
  return std::string("panel ") + isa_name(selected_isa());
}

namespace {

// The engine a spec runs on.
GemmEngine resolve_engine(GemmEngine asked) {
  if (asked == GemmEngine::kAuto) return auto_gemm_engine();
  KILN_CHECK(asked != GemmEngine::kPanel || panel_gemm_supported(),
             "[PackedMatMul] the panel GEMM needs AVX2, which this CPU lacks");
  return asked;
}

}  // namespace

struct PackedMatMul::Impl {
  MatMulSpec spec;
  memory bias;  // empty without a bias

  // The panel GEMM's weights and bias, when spec.engine is kPanel (then nothing below is used).
  std::unique_ptr<PanelPackedB> panel;
  std::vector<float> panel_bias;

  mutable std::mutex mutex;
  // Packed weights, one per layout some primitive wanted; [0] is the layout for kLayoutM. Only grows.
  mutable std::vector<memory> weights;
  mutable PrimitiveLru<Entry> cache{kMaxCachedPrimitives};

  // The element type of A and of the packed weights.
  memory::data_type operand_type() const { return spec.bf16 ? kBf16 : kF32; }

  dnnl::matmul::primitive_desc primitive_desc(const Geometry& g, const memory::desc& weights_md) const {
    const memory::desc src_md({g.m, spec.k}, operand_type(), memory::dims{g.lda, 1});
    const memory::desc dst_md({g.m, spec.n}, kF32, memory::dims{g.ldy, 1});
    const memory::desc bias_md = spec.has_bias ? memory::desc({1, spec.n}, kF32, Tag::ab) : memory::desc();
    dnnl::post_ops ops;
    if (spec.post != PostOp::kNone) ops.append_eltwise(1.0f, eltwise_algorithm(spec.post), 0.0f, 0.0f);
    if (spec.add_residual) {
      ops.append_binary(dnnl::algorithm::binary_add, memory::desc({g.m, spec.n}, kF32, memory::dims{g.ldr, 1}));
    }
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, weights_md, bias_md, dst_md), attr, onednn_engine());
  }

  // Called with `mutex` held. Picks the packed weights for this geometry, packing a new layout if needed.
  std::shared_ptr<const Entry> make_entry(const Geometry& g) const {
    const memory::desc any_md({spec.k, spec.n}, operand_type(), Tag::any);
    dnnl::matmul::primitive_desc pd;
    memory chosen;
    try {
      pd = primitive_desc(g, any_md);
      chosen = pick_packed_weights(weights, pd, [&](const memory::desc& md) { return primitive_desc(g, md); });
    } catch (const dnnl::error& e) {
      fail("[PackedMatMul] oneDNN has no matmul for M=", g.m, " K=", spec.k, " N=", spec.n, " lda=", g.lda,
           " ldy=", g.ldy, ": ", e.what());
    }
    auto entry = std::make_shared<Entry>();
    entry->geometry = g;
    entry->primitive = dnnl::matmul(pd);
    entry->weights = chosen;
    entry->src_md = pd.src_desc();
    entry->dst_md = pd.dst_desc();
    if (spec.add_residual) entry->residual_md = memory::desc({g.m, spec.n}, kF32, memory::dims{g.ldr, 1});
    entry->scratch_bytes = pd.scratchpad_desc().get_size();
    entry->implementation = pd.impl_info_str();
    return entry;
  }

  std::shared_ptr<const Entry> entry(const Geometry& g) const {
    std::lock_guard<std::mutex> lock(mutex);
    // A miss creates the primitive under the lock: once per geometry, at plan time when the caller uses
    // prepare().
    return cache.find_or_make(g, [&] { return make_entry(g); });
  }

  // A BoundArgs for `e`: an idle one, or a new one when every one made is in use.
  IdlePool<BoundArgs>::Lease bound_args(const Entry& e) const {
    return e.bound.take([&] {
      auto b = std::make_unique<BoundArgs>();
      try {
        b->src = unbound_memory(e.src_md);
        b->dst = unbound_memory(e.dst_md);
        b->args.add(DNNL_ARG_SRC, b->src);
        b->args.add(DNNL_ARG_WEIGHTS, e.weights);
        b->args.add(DNNL_ARG_DST, b->dst);
        if (spec.has_bias) b->args.add(DNNL_ARG_BIAS, bias);
        if (spec.add_residual) {
          b->residual = unbound_memory(e.residual_md);
          const int index = spec.post == PostOp::kNone ? 0 : 1;  // the binary post-op's place in the chain
          b->args.add(DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | DNNL_ARG_SRC_1, b->residual);
        }
        if (e.scratch_bytes > 0) {
          b->scratch = unbound_scratchpad(e.scratch_bytes);
          b->args.add(DNNL_ARG_SCRATCHPAD, b->scratch);
        }
      } catch (const dnnl::error& err) {
        fail("[PackedMatMul] oneDNN cannot make the memory objects for M=", e.geometry.m, " K=", spec.k, " N=", spec.n,
             ": ", err.what());
      }
      return b;
    });
  }

  Geometry geometry(int64_t m, int64_t lda, int64_t ldy, int64_t ld_residual) const {
    KILN_CHECK(m >= 0, "[PackedMatMul] M must be >= 0, got ", m);
    KILN_CHECK(lda >= spec.k, "[PackedMatMul] lda ", lda, " is less than K ", spec.k);
    KILN_CHECK(ldy >= spec.n, "[PackedMatMul] ldy ", ldy, " is less than N ", spec.n);
    // bf16 products read A's rounded copy, which is dense.
    Geometry g{m, spec.bf16 ? spec.k : lda, ldy, 0};
    if (spec.add_residual) {
      g.ldr = ld_residual == 0 ? spec.n : ld_residual;
      KILN_CHECK(g.ldr >= spec.n, "[PackedMatMul] residual leading dimension ", g.ldr, " is less than N ", spec.n);
    }
    return g;
  }
};

PackedMatMul::PackedMatMul(const MatMulSpec& spec, const float* b, const float* bias) : impl_(new Impl) {
  KILN_CHECK(spec.k >= 1 && spec.n >= 1, "[PackedMatMul] K and N must be >= 1, got K=", spec.k, " N=", spec.n);
  KILN_CHECK(b != nullptr, "[PackedMatMul] no weights");
  KILN_CHECK(!spec.has_bias || bias != nullptr, "[PackedMatMul] has_bias but no bias");
  impl_->spec = spec;
  impl_->spec.engine = resolve_engine(spec.engine);
  impl_->spec.bf16 = spec.bf16 && impl_->spec.engine == GemmEngine::kOneDnn && bf16_matmul_is_fast();
  if (impl_->spec.engine == GemmEngine::kPanel) {
    impl_->panel = std::make_unique<PanelPackedB>(spec.k, spec.n, b, spec.trans_b, spec.alpha);
    if (spec.has_bias) impl_->panel_bias.assign(bias, bias + spec.n);
    return;
  }
  const dnnl::engine& engine = onednn_engine();
  dnnl::stream& stream = onednn_stream();
  try {
    // B as given: [K,N] row-major is tag ab of dims {K,N}; [N,K] row-major is the same dims, tag ba.
    const memory::desc user_md({spec.k, spec.n}, kF32, spec.trans_b ? Tag::ba : Tag::ab);
    memory user(user_md, engine, const_cast<float*>(b));
    const Geometry g{kLayoutM, spec.k, spec.n, spec.add_residual ? spec.n : 0};
    const dnnl::matmul::primitive_desc pd =
        impl_->primitive_desc(g, memory::desc({spec.k, spec.n}, impl_->operand_type(), Tag::any));
    memory::desc packed_md = pd.weights_desc();
    if (packed_md == memory::desc({spec.k, spec.n}, kF32, Tag::ab) && (spec.n * sizeof(float)) % 4096 == 0) {
      const memory::desc padded({spec.k, spec.n}, kF32, memory::dims{spec.n + kRowPadFloats, 1});
      try {
        if (std::string(impl_->primitive_desc(g, padded).impl_info_str()) == pd.impl_info_str()) packed_md = padded;
      } catch (const dnnl::error&) {
        // keep the unpadded layout
      }
    }
    memory packed(packed_md, engine);
    dnnl::primitive_attr attr;
    if (spec.alpha != 1.0f) attr.set_output_scales(0, {spec.alpha});
    dnnl::reorder::primitive_desc reorder_pd(engine, user_md, engine, packed_md, attr);
    dnnl::reorder(reorder_pd).execute(stream, user, packed);
    if (spec.has_bias) {
      impl_->bias = memory(memory::desc({1, spec.n}, kF32, Tag::ab), engine);
      std::memcpy(impl_->bias.get_data_handle(), bias, static_cast<size_t>(spec.n) * sizeof(float));
    }
    stream.wait();
    impl_->weights.push_back(packed);
  } catch (const dnnl::error& e) {
    fail("[PackedMatMul] oneDNN cannot pack K=", spec.k, " N=", spec.n, " weights: ", e.what());
  }
}

PackedMatMul::~PackedMatMul() = default;

void PackedMatMul::run(int64_t m, const float* a, int64_t lda, float* y, int64_t ldy, const float* residual,
                       int64_t ld_residual) const {
  const MatMulSpec& spec = impl_->spec;
  const Geometry g = impl_->geometry(m, lda, ldy, ld_residual);
  KILN_CHECK(spec.add_residual == (residual != nullptr), "[PackedMatMul] ",
             spec.add_residual ? "needs a residual input" : "was built without a residual add, but got one");
  if (m == 0) return;
  if (spec.add_residual) {
    const auto y_count = static_cast<size_t>((m - 1) * ldy + spec.n);
    const auto r_count = static_cast<size_t>((m - 1) * g.ldr + spec.n);
    KILN_CHECK(!ranges_overlap(y, y_count, residual, r_count), "[PackedMatMul] the residual must not overlap y");
  }
  if (impl_->panel) {
    PanelGemmArgs args;
    args.m = m;
    args.a = a;
    args.lda = lda;
    args.bias = spec.has_bias ? impl_->panel_bias.data() : nullptr;
    args.post = spec.post;
    args.residual = residual;
    args.ld_residual = g.ldr;
    args.y = y;
    args.ldy = ldy;
    panel_gemm(*impl_->panel, args);
    return;
  }
  const std::shared_ptr<const Entry> e = impl_->entry(g);
  const auto b = impl_->bound_args(*e);
  const void* src = a;
  if (spec.bf16) {
    auto* rounded = reinterpret_cast<uint16_t*>(
        thread_buffer<Bfloat16Activations>(sizeof(uint16_t) * static_cast<size_t>(m * spec.k)));
    round_rows_to_bfloat16(m, spec.k, a, lda, rounded);
    src = rounded;
  }
  dnnl_status_t status = onednn_rebind(b->src, src);
  if (status == dnnl_success) status = onednn_rebind(b->dst, y);
  if (status == dnnl_success && spec.add_residual) status = onednn_rebind(b->residual, residual);
  if (status == dnnl_success && e->scratch_bytes > 0)
    status = onednn_rebind(b->scratch, thread_buffer<PackedMatMul>(e->scratch_bytes));
  if (status == dnnl_success) status = onednn_execute(e->primitive, b->args);
  if (status != dnnl_success) {
    fail("[PackedMatMul] oneDNN matmul M=", m, " K=", spec.k, " N=", spec.n, " failed: ", dnnl_status2str(status));
  }
}

std::string PackedMatMul::prepare(int64_t m, int64_t lda, int64_t ldy, int64_t ld_residual) const {
  const Geometry g = impl_->geometry(m, lda, ldy, ld_residual);
  if (m == 0) return "none";
  if (impl_->panel) return "kiln:panel_avx2";
  const std::shared_ptr<const Entry> e = impl_->entry(g);
  impl_->bound_args(*e);  // one set of memory objects now, so that the first run, too, only executes
  return e->implementation;
}

const MatMulSpec& PackedMatMul::spec() const { return impl_->spec; }

GemmEngine PackedMatMul::engine() const { return impl_->spec.engine; }

size_t PackedMatMul::packed_bytes() const {
  if (impl_->panel) return impl_->panel->bytes() + impl_->panel_bias.size() * sizeof(float);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  size_t bytes = impl_->bias ? impl_->bias.get_desc().get_size() : 0;
  for (const memory& w : impl_->weights) bytes += w.get_desc().get_size();
  return bytes;
}

size_t PackedMatMul::cached_primitives() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->cache.size();
}

}  // namespace kiln::kernels::cpu

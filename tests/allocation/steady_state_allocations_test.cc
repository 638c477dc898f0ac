// A steady-state run allocates no memory: after a first run of an input shape (which records the memory
// plan), Session::run(feeds, outputs) with the same outputs vector makes no heap allocation at all, on
// any thread (OpenMP's and oneDNN's included).
//
// Counted by interposing malloc and its relatives for the whole process (operator new and oneDNN come
// here too), which is why this is its own program: it is left out of sanitizer builds, whose runtime owns
// malloc. An unexpected allocation is reported with its call stack.
//
// CMakeLists.txt runs it once as the machine chooses and once per GEMM engine (KILN_GEMM) and kernel
// ISA level (KILN_CPU_ISA); a setting this CPU cannot run is skipped, saying so. One exception is
// counted apart, not hidden: oneDNN 2.6's dnnl_primitive_execute allocates its own argument map (an
// std::unordered_map, one bucket array and a node per argument) and a few small blocks inside its
// kernels on every call, however the caller holds its memory objects (see onednn_matmul.h). Those are
// allowed where the matmuls run on oneDNN, printed, and held to a budget per call; anything else,
// kiln's own included, must be zero.
#include <dlfcn.h>
#include <execinfo.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "../contrib_test_util.h"
#include "../pass_test_util.h"
#include "../test_util.h"
#include "export/cnn_export.h"
#include "export/exporter.h"
#include "export/transformer_config.h"
#include "export/weight_source.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fast_kernel_table.h"
#include "kernels/cpu/onednn_engine.h"
#include "kernels/cpu/onednn_matmul.h"
#include "onnx/model_io.h"
#include "runtime/session.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {

std::atomic<bool> g_counting{false};
std::atomic<uint64_t> g_allocations{0};
// Every counted allocation's call stack is kept (up to kKeptStacks) and sorted by origin afterwards,
// outside malloc: deep enough to reach the caller of the oneDNN function the allocation happened in.
constexpr int kKeptStacks = 4096;
constexpr int kStackDepth = 48;
void* g_stacks[kKeptStacks][kStackDepth];
int g_stack_depths[kKeptStacks];
thread_local bool t_inside = false;  // backtrace() itself may allocate

void note_allocation() {
  if (!g_counting.load(std::memory_order_relaxed) || t_inside) return;
  t_inside = true;
  const uint64_t i = g_allocations.fetch_add(1);
  if (i < kKeptStacks) g_stack_depths[i] = backtrace(g_stacks[i], kStackDepth);
  t_inside = false;
}

}  // namespace

extern "C" {
void* malloc(size_t n) {
  note_allocation();
  return __libc_malloc(n);
}
void* calloc(size_t count, size_t n) {
  note_allocation();
  return __libc_calloc(count, n);
}
void* realloc(void* p, size_t n) {
  note_allocation();
  return __libc_realloc(p, n);
}
void* memalign(size_t alignment, size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(size_t alignment, size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, size_t alignment, size_t n) {
  note_allocation();
  *out = __libc_memalign(alignment, n);
  return *out ? 0 : ENOMEM;
}
}

namespace kiln {
namespace {

using Feeds = std::unordered_map<std::string, ir::Datum>;
using testing::random_feeds;

// Heap allocations made while some code ran: all of them, and those oneDNN's primitive execution
// made itself (see the header comment).
struct Allocations {
  uint64_t total = 0;
  uint64_t onednn_execute = 0;
};

bool in_onednn(const Dl_info& info) { return info.dli_fname && std::strstr(info.dli_fname, "libdnnl") != nullptr; }

// Whether stack i was made inside oneDNN's primitive execution: its outermost oneDNN frame is
// dnnl_primitive_execute (on the thread that called it), or the stack is an OpenMP worker's inside a
// oneDNN parallel loop (oneDNN frames, none of this program's). A memory object kiln creates goes through
// dnnl_memory_create, which is kiln's allocation, not oneDNN's.
bool made_inside_onednn_execute(int i) {
  Dl_info self{};
  dladdr(reinterpret_cast<void*>(&note_allocation), &self);
  bool seen_onednn = false;
  const char* entry = nullptr;  // the oneDNN function this program called
  // Innermost first: this program's malloc, then (for oneDNN's allocations) oneDNN's frames, then the
  // caller's frame in this program, if on the calling thread.
  for (int f = 0; f < g_stack_depths[i]; ++f) {
    Dl_info info{};
    if (!dladdr(g_stacks[i][f], &info)) continue;
    if (in_onednn(info)) {
      seen_onednn = true;
      entry = info.dli_sname;
    } else if (seen_onednn && info.dli_fname && self.dli_fname && std::strcmp(info.dli_fname, self.dli_fname) == 0) {
      return entry != nullptr && std::strcmp(entry, "dnnl_primitive_execute") == 0;
    }
  }
  return seen_onednn && g_stack_depths[i] < kStackDepth;
}

// Prints the call stacks of the first few that are not oneDNN's own, unless `quiet`.
template <class F>
Allocations allocations_during(F&& f, bool quiet = false) {
  g_allocations = 0;
  g_counting = true;
  f();
  g_counting = false;
  Allocations a;
  a.total = g_allocations.load();
  int printed = 0;
  for (uint64_t i = 0; i < a.total && i < kKeptStacks; ++i) {
    if (made_inside_onednn_execute(static_cast<int>(i))) {
      ++a.onednn_execute;
    } else if (!quiet && printed++ < 8) {
      std::fprintf(stderr, "allocation %llu:\n", static_cast<unsigned long long>(i));
      backtrace_symbols_fd(g_stacks[i], g_stack_depths[i], STDERR_FILENO);
    }
  }
  if (a.total > kKeptStacks) a.onednn_execute = 0;  // not all sorted: count every one against the run
  return a;
}

// oneDNN's own allocations are allowed only where kiln runs the matmuls on oneDNN.
bool matmuls_on_onednn() { return kernels::cpu::auto_gemm_engine() == kernels::cpu::GemmEngine::kOneDnn; }

// oneDNN 2.6 makes 7 to 10 allocations per matmul call (5 or 6 arguments, their map's bucket array, and
// a few inside the brgemm kernels; measured on AVX-512 and AMX): this budget per call catches a return of
// per-call memory objects or argument maps, which added ~18 per call before they were made once.
constexpr uint64_t kOneDnnAllocationsPerCall = 12;

// The matmuls one run of the 2-layer BERTs below makes: per layer, Q, K and V in one (the fused attention's),
// the attention output and the 2 feed-forward ones.
constexpr uint64_t kMatMulsPerRun = 8;

// Checks `a` for `runs` runs of a model whose run makes `matmuls` matmul calls and `onednn_others`
// other oneDNN calls (convolutions and the reorders around them), which run on oneDNN whatever the engine.
void expect_steady(const Allocations& a, int runs, uint64_t matmuls, uint64_t onednn_others = 0) {
  EXPECT_EQ(a.total - a.onednn_execute, 0u) << "allocations outside oneDNN's primitive execution";
  if (a.onednn_execute > 0) {
    std::printf("oneDNN's own allocations inside dnnl_primitive_execute: %llu in %d runs (%.1f per run)\n",
                static_cast<unsigned long long>(a.onednn_execute), runs, static_cast<double>(a.onednn_execute) / runs);
  }
  const uint64_t onednn_calls = (matmuls_on_onednn() ? matmuls : 0) + onednn_others;
  if (onednn_calls == 0) {
    EXPECT_EQ(a.onednn_execute, 0u) << "oneDNN allocated, but the matmuls run on "
                                    << kernels::cpu::gemm_engine_name(kernels::cpu::auto_gemm_engine());
  } else {
    EXPECT_LE(a.onednn_execute, kOneDnnAllocationsPerCall * onednn_calls * static_cast<uint64_t>(runs));
  }
}

// Why this process cannot run the setting KILN_GEMM and KILN_CPU_ISA ask for, if it cannot: an ISA level
// above this CPU's (cpu_features.h would quietly run a lower one), or the panel GEMM without AVX2.
std::optional<std::string> unrunnable_setting() {
  using namespace kernels::cpu;
  const char* isa = std::getenv("KILN_CPU_ISA");
  if (isa && *isa) {
    const std::optional<Isa> asked = parse_isa(isa);
    if (asked && !isa_supported(*asked)) {
      return std::string("KILN_CPU_ISA=") + isa + ": this CPU cannot run it (its best level is " +
             isa_name(best_supported_isa()) + ")";
    }
  }
  const char* gemm = std::getenv("KILN_GEMM");
  if (gemm && std::strcmp(gemm, "panel") == 0 && !isa_supported(Isa::kAvx2))
    return std::string("KILN_GEMM=panel: this CPU has no AVX2, which the panel GEMM needs");
  return std::nullopt;
}

// Skips the test when the setting cannot run here; says which setting runs otherwise.
#define SKIP_OR_NAME_SETTING()                                                                                  \
  do {                                                                                                          \
    if (std::optional<std::string> why = unrunnable_setting()) GTEST_SKIP() << *why;                            \
    std::printf("matmuls: %s; kiln kernels: %s; oneDNN ISA: %s\n",                                              \
                kernels::cpu::gemm_engine_name(kernels::cpu::auto_gemm_engine()),                               \
                kernels::cpu::isa_name(kernels::cpu::selected_isa()), kernels::cpu::onednn_isa_name().c_str()); \
  } while (0)

// Runs the model twice on feeds (the first run plans the shape), then counts `runs` more runs into the
// same outputs, which must equal the plain run's.
Allocations steady_state_allocations(const runtime::Session& s, const Feeds& feeds, int runs = 5) {
  std::vector<ir::Datum> expected = s.run(feeds);
  std::vector<ir::Datum> outputs;
  s.run(feeds, outputs);
  Allocations n = allocations_during([&] {
    for (int i = 0; i < runs; ++i) s.run(feeds, outputs);
  });
  EXPECT_EQ(outputs.size(), expected.size());
  for (size_t k = 0; k < outputs.size() && k < expected.size(); ++k)
    EXPECT_TRUE(outputs[k].tensor.bitwise_equal(expected[k].tensor)) << "output " << k;
  return n;
}

TEST(SteadyStateAllocations, TheCounterSeesAnAllocation) {
  static void* volatile kept;
  EXPECT_EQ(allocations_during(
                [] {
                  kept = std::malloc(24);
                  std::free(kept);
                  kept = new std::string(100, 'x');  // operator new comes through malloc: the string and its text
                  delete static_cast<std::string*>(kept);
                },
                /*quiet=*/true)
                .total,
            3u);
}

TEST(SteadyStateAllocations, TorchExportedBertTiny) {
  SKIP_OR_NAME_SETTING();
  ir::Model m = onnx_io::load_model(testing::source_path("tests/data/bert-tiny/model.onnx"));
  runtime::Session s(m);
  expect_steady(steady_state_allocations(s, random_feeds(m, {{"batch", 2}, {"sequence", 9}}, 1)), 5, kMatMulsPerRun);
}

// bf16 products round A into a per-thread buffer, kept from call to call (float32 where bf16 is not faster).
TEST(SteadyStateAllocations, TorchExportedBertTinyInBfloat16) {
  SKIP_OR_NAME_SETTING();
  ir::Model m = onnx_io::load_model(testing::source_path("tests/data/bert-tiny/model.onnx"));
  runtime::SessionOptions options;
  options.precision = runtime::Precision::kBfloat16;
  runtime::Session s(m, options);
  std::printf("bf16 products: %s\n", s.computes_bf16() ? "yes" : "no, float32 on this CPU or setting");
  expect_steady(steady_state_allocations(s, random_feeds(m, {{"batch", 2}, {"sequence", 9}}, 1)), 5, kMatMulsPerRun);
}

TEST(SteadyStateAllocations, EveryShapeSeenBeforeRunsWithoutTheHeap) {
  SKIP_OR_NAME_SETTING();
  ir::Model m = onnx_io::load_model(testing::source_path("tests/data/bert-tiny/model.onnx"));
  runtime::Session s(m);
  const Feeds short_feeds = random_feeds(m, {{"batch", 1}, {"sequence", 9}}, 2);
  const Feeds long_feeds = random_feeds(m, {{"batch", 3}, {"sequence", 40}}, 3);
  // Each shape's first run records its plan, its second makes the plan's arena; from then on, with its own
  // outputs vector, each shape runs without the heap however the calls alternate.
  std::vector<ir::Datum> short_outputs, long_outputs;
  for (int i = 0; i < 2; ++i) {
    s.run(short_feeds, short_outputs);
    s.run(long_feeds, long_outputs);
  }
  expect_steady(allocations_during([&] {
                  for (int i = 0; i < 3; ++i) {
                    s.run(short_feeds, short_outputs);
                    s.run(long_feeds, long_outputs);
                  }
                }),
                6, kMatMulsPerRun);
  EXPECT_EQ(s.plan_stats().plans_made, 2u);
}

TEST(SteadyStateAllocations, KilnExportedBertBaseTwoLayers) {
  SKIP_OR_NAME_SETTING();
  exporter::TransformerConfig c = exporter::preset_config("bert-base");
  c.num_layers = 2;
  ir::Model m = exporter::export_model(c, *exporter::random_weights(3)).model;
  runtime::Session s(m);
  expect_steady(steady_state_allocations(s, random_feeds(m, {{"batch", 2}, {"sequence", 16}}, 4), 3), 3,
                kMatMulsPerRun);
}

ir::Model small_resnet() {
  exporter::CnnOptions o;
  o.image_size = 64;
  o.num_classes = 10;
  o.resnet_blocks = {1, 1, 1, 1};
  return exporter::export_cnn(exporter::CnnFamily::kResNet50, o);
}

// Convolutions run on oneDNN whatever KILN_GEMM says: kiln binds their memory once too, so only oneDNN's
// own allocations remain. (The pools once allocated too: `omp parallel for if (false)` still opens a
// one-thread region, and libgomp makes and frees a team for it on every call; parallel_for_static.)
// Channels-first here (level extended); level all, channels-last, is the next test.
TEST(SteadyStateAllocations, ResNetWithOneBlockPerStage) {
  SKIP_OR_NAME_SETTING();
  ir::Model m = small_resnet();
  runtime::SessionOptions options;
  options.optimization = passes::Level::kExtended;
  runtime::Session s(m, options);
  // 17 convolutions (the stem, 3 per block, a downsample per stage), each with a reorder in and out and,
  // after each block, the residual reordered in; the classifier's Gemm.
  expect_steady(steady_state_allocations(s, random_feeds(m, {{"batch", 1}}, 5), 3), 3, 1, 17 * 3 + 4);
}

// The data-movement and Resize kernels (Transpose, Slice, Concat, Split, Resize nearest and bilinear), on
// tensors large enough for their threaded paths: the bilinear NCHW one caches rows in worker buffers.
TEST(SteadyStateAllocations, DataMovementAndResizeKernels) {
  SKIP_OR_NAME_SETTING();
  using testing::contrib::attr_int;
  using testing::contrib::attr_ints;
  using testing::contrib::attr_string;
  testing::contrib::TestGraph g(13);
  g.input("x", testing::contrib::Random(6).floats({1, 64, 40, 40}));
  auto ints = [](std::vector<int64_t> v) { return testing::contrib::int64s(v); };
  g.node("Transpose", {"x"}, {"nhwc"}, {attr_ints("perm", {0, 2, 3, 1})});
  g.node("Slice", {"nhwc", g.constant("starts", ints({0, 1})), g.constant("ends", ints({40, 40})),
                   g.constant("axes", ints({1, 2})), g.constant("steps", ints({2, 2}))},
         {"half"});
  g.node("Transpose", {"half"}, {"nchw"}, {attr_ints("perm", {0, 3, 1, 2})});
  g.node("Resize", {"nchw", "", "", g.constant("sizes", ints({1, 64, 40, 40}))}, {"up"},
         {attr_string("mode", "linear")});
  g.node("Resize", {"half", "", "", g.constant("sizes2", ints({1, 40, 40, 64}))}, {"up_nhwc"},
         {attr_string("mode", "linear")});
  g.node("Resize", {"nchw", "", g.constant("scales", ir::Tensor::from_vector<float>({1, 1, 2, 2}, {4}))}, {"near"},
         {attr_string("mode", "nearest")});
  g.node("Concat", {"x", "up", "near"}, {"cat"}, {attr_int("axis", 1)});
  g.node("Split", {"cat", g.constant("split", ints({100, 92}))}, {"a", "b"}, {attr_int("axis", 1)});
  for (const char* out : {"a", "b", "up_nhwc"}) g.output(out);
  runtime::Session s(g.model());
  // Every node fast (level all's layout passes may add a node, itself fast).
  EXPECT_GE(s.fast_kernel_count(), 8u);
  expect_steady(steady_state_allocations(s, g.feeds(), 3), 3, 0);
}

// LSTM and GRU (kernels/cpu/recurrent_kernel.cc): one matmul per node (the input projection of every step),
// the steps kiln's own, their scratch from the arena and the calling thread's buffer; a bidirectional
// LSTM (its directions on two threads) with sequence lengths and initial states, and a GRU of 150 units
// whose steps are split between threads.
TEST(SteadyStateAllocations, LstmAndGru) {
  SKIP_OR_NAME_SETTING();
  testing::contrib::Random rng(6);
  testing::contrib::TestGraph g(22);
  auto attr_string = testing::contrib::attr_string;
  g.input("x", rng.floats({7, 3, 10}));
  g.input("lens", testing::contrib::int32s({7, 2, 5}, {3}));
  g.input("h0", rng.floats({2, 3, 20}));
  g.input("c0", rng.floats({2, 3, 20}));
  g.constant("w", rng.floats({2, 80, 10}));
  g.constant("r", rng.floats({2, 80, 20}));
  g.constant("b", rng.floats({2, 160}));
  g.node("LSTM", {"x", "w", "r", "b", "lens", "h0", "c0"}, {"y", "y_h", "y_c"},
         {attr_string("direction", "bidirectional")});
  g.constant("gw", rng.floats({1, 450, 10}));
  g.constant("gr", rng.floats({1, 450, 150}));
  g.node("GRU", {"x", "gw", "gr"}, {"gy", "gy_h"});
  for (const char* out : {"y", "y_h", "y_c", "gy", "gy_h"}) g.output(out);
  runtime::Session s(g.model());
  expect_steady(steady_state_allocations(s, g.feeds(), 3), 3, 2);
}

// Level all: the convolutions channels-last (ai.kiln.FusedConv channels_last = 1, no reorders), with
// Transposes at the region's edges (the image in, the pooled features out) and the global pool as a
// ReduceMean over H and W. The reference Transpose allocates its index vectors per call, so this waits
// for a fast Transpose.
TEST(SteadyStateAllocations, ChannelsLastResNetWithOneBlockPerStage) {
  SKIP_OR_NAME_SETTING();
  if (!kernels::cpu::find_fast_kernel_entry("", "Transpose", 13))
    GTEST_SKIP() << "no fast Transpose: the reference one allocates per call";
  ir::Model m = small_resnet();
  runtime::Session s(m);
  expect_steady(steady_state_allocations(s, random_feeds(m, {{"batch", 1}}, 5), 3), 3, 1, 17 * 3 + 4);
}

}  // namespace
}  // namespace kiln

// ctest runs this program as it is and once per GEMM engine and ISA level (CMakeLists.txt), with
// --env NAME=VALUE arguments: each sets an environment variable before anything reads it (kiln reads
// KILN_GEMM and KILN_CPU_ISA once, on first use).
int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);  // takes out the --gtest_ arguments
  for (int i = 1; i < argc; ++i) {
    const char* setting = std::strcmp(argv[i], "--env") == 0 && i + 1 < argc ? argv[++i] : nullptr;
    const char* equals = setting ? std::strchr(setting, '=') : nullptr;
    if (!equals || equals == setting) {
      std::fprintf(stderr, "kiln_allocation_tests: unknown argument '%s' (expected --env NAME=VALUE)\n", argv[i]);
      return 2;
    }
    setenv(std::string(setting, equals).c_str(), equals + 1, 1);
  }
  return RUN_ALL_TESTS();
}

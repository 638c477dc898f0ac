// A steady-state run allocates no memory: after a first run of an input shape (which records the memory
// plan), Session::run(feeds, outputs) with the same outputs vector makes no heap allocation at all, on
// any thread (OpenMP's and oneDNN's included).
//
// Counted by interposing malloc and its relatives for the whole process (operator new and oneDNN come
// here too), which is why this is its own program: it is left out of sanitizer builds, whose runtime owns
// malloc. An unexpected allocation is reported with its call stack.
#include <execinfo.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "../pass_test_util.h"
#include "../test_util.h"
#include "export/cnn_export.h"
#include "export/exporter.h"
#include "export/transformer_config.h"
#include "export/weight_source.h"
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
constexpr int kKeptStacks = 8;
constexpr int kStackDepth = 16;
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

// Heap allocations made while f runs, with the first few call stacks printed when there are any.
template <class F>
uint64_t allocations_during(F&& f) {
  g_allocations = 0;
  g_counting = true;
  f();
  g_counting = false;
  const uint64_t n = g_allocations.load();
  for (uint64_t i = 0; i < n && i < kKeptStacks; ++i) {
    std::fprintf(stderr, "allocation %llu:\n", static_cast<unsigned long long>(i));
    backtrace_symbols_fd(g_stacks[i], g_stack_depths[i], STDERR_FILENO);
  }
  return n;
}

// Runs the model twice on feeds (the first run plans the shape), then counts `runs` more runs into the
// same outputs, which must equal the plain run's.
uint64_t steady_state_allocations(const runtime::Session& s, const Feeds& feeds, int runs = 5) {
  std::vector<ir::Datum> expected = s.run(feeds);
  std::vector<ir::Datum> outputs;
  s.run(feeds, outputs);
  uint64_t n = allocations_during([&] {
    for (int i = 0; i < runs; ++i) s.run(feeds, outputs);
  });
  EXPECT_EQ(outputs.size(), expected.size());
  for (size_t k = 0; k < outputs.size() && k < expected.size(); ++k)
    EXPECT_TRUE(outputs[k].tensor.bitwise_equal(expected[k].tensor)) << "output " << k;
  return n;
}

TEST(SteadyStateAllocations, TheCounterSeesAnAllocation) {
  static void* volatile kept;
  EXPECT_EQ(allocations_during([] {
              kept = std::malloc(24);
              std::free(kept);
              kept = new std::string(100, 'x');  // operator new comes through malloc: the string and its text
              delete static_cast<std::string*>(kept);
            }),
            3u);
}

TEST(SteadyStateAllocations, TorchExportedBertTiny) {
  ir::Model m = onnx_io::load_model(testing::source_path("tests/data/bert-tiny/model.onnx"));
  runtime::Session s(m);
  EXPECT_EQ(steady_state_allocations(s, random_feeds(m, {{"batch", 2}, {"sequence", 9}}, 1)), 0u);
}

TEST(SteadyStateAllocations, EveryShapeSeenBeforeRunsWithoutTheHeap) {
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
  EXPECT_EQ(allocations_during([&] {
              for (int i = 0; i < 3; ++i) {
                s.run(short_feeds, short_outputs);
                s.run(long_feeds, long_outputs);
              }
            }),
            0u);
  EXPECT_EQ(s.plan_stats().plans_made, 2u);
}

TEST(SteadyStateAllocations, KilnExportedBertBaseTwoLayers) {
  exporter::TransformerConfig c = exporter::preset_config("bert-base");
  c.num_layers = 2;
  ir::Model m = exporter::export_model(c, *exporter::random_weights(3)).model;
  runtime::Session s(m);
  EXPECT_EQ(steady_state_allocations(s, random_feeds(m, {{"batch", 2}, {"sequence", 16}}, 4), 3), 0u);
}

}  // namespace
}  // namespace kiln

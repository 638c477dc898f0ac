// The memory planner (runtime/memory_plan.h) and planned runs (runtime/arena.h, runtime/executor.cc):
// placements never overlap in memory while alive together, planned runs give the same outputs as the
// recorded first run and as the reference kernels, one plan per input-shape signature, and a
// steady-state run allocates no tensor storage besides the outputs it returns.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "contrib_test_util.h"
#include "ir/allocation_count.h"
#include "onnx/model_io.h"
#include "pass_test_util.h"
#include "runtime/memory_plan.h"
#include "runtime/session.h"
#include "test_util.h"

namespace kiln {
namespace {

using runtime::BufferLifetime;
using runtime::MemoryPlan;
using testing::contrib::max_abs_diff;
using testing::contrib::Random;
using testing::contrib::TestGraph;
using testing::random_feeds;
using Feeds = std::unordered_map<std::string, ir::Datum>;

void expect_valid(const std::vector<BufferLifetime>& buffers, const MemoryPlan& plan) {
  ASSERT_EQ(plan.offsets.size(), buffers.size());
  EXPECT_GE(plan.arena_bytes, plan.lower_bound_bytes);
  for (size_t i = 0; i < buffers.size(); ++i) {
    EXPECT_EQ(plan.offsets[i] % MemoryPlan::kAlignment, 0u);
    EXPECT_LE(plan.offsets[i] + buffers[i].bytes, plan.arena_bytes);
    for (size_t j = i + 1; j < buffers.size(); ++j) {
      bool together = buffers[i].first <= buffers[j].last && buffers[j].first <= buffers[i].last;
      bool apart = plan.offsets[i] + buffers[i].bytes <= plan.offsets[j] ||
                   plan.offsets[j] + buffers[j].bytes <= plan.offsets[i];
      if (together) {
        EXPECT_TRUE(apart) << "buffers " << i << " and " << j << " overlap while both alive";
      }
    }
  }
}

TEST(MemoryPlan, BuffersAliveAtDifferentTimesShareMemory) {
  // A chain: each buffer is read only by the next node.
  std::vector<BufferLifetime> chain = {{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}, {1000, 3, 4}};
  MemoryPlan plan = runtime::plan_memory(chain);
  expect_valid(chain, plan);
  EXPECT_EQ(plan.arena_bytes, 2 * 1024u);  // two 64-byte-aligned slots, used alternately
  EXPECT_EQ(plan.lower_bound_bytes, 2 * 1024u);
}

TEST(MemoryPlan, RandomLifetimesNeverOverlapAndStayNearTheLowerBound) {
  std::mt19937 gen(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<BufferLifetime> buffers;
    const size_t nodes = 5 + gen() % 60;
    for (size_t i = 0; i < 3 * nodes; ++i) {
      size_t first = gen() % nodes;
      size_t span = gen() % 4 == 0 ? gen() % nodes : gen() % 3;  // mostly short, some long-lived
      buffers.push_back({1 + gen() % 100000, first, std::min(nodes - 1, first + span)});
    }
    MemoryPlan plan = runtime::plan_memory(buffers);
    expect_valid(buffers, plan);
    EXPECT_LE(plan.arena_bytes, plan.lower_bound_bytes * 2) << "trial " << trial;
  }
  EXPECT_EQ(runtime::plan_memory({}).arena_bytes, 0u);
}

void expect_same(const std::vector<ir::Datum>& a, const std::vector<ir::Datum>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].tensor.shape(), b[i].tensor.shape()) << "output " << i;
    EXPECT_LE(max_abs_diff(a[i].tensor, b[i].tensor), tol) << "output " << i;
  }
}

TEST(PlannedRuns, MatchTheRecordedRunAndTheReferenceOncePlannedPerShape) {
  ir::Model m = onnx_io::load_model(testing::source_path("tests/data/bert-tiny/model.onnx"));
  for (bool fast : {true, false}) {
    SCOPED_TRACE(fast ? "fast kernels" : "reference kernels");
    runtime::SessionOptions o;
    o.fast_kernels = fast;
    runtime::Session s(m, o);
    runtime::SessionOptions ref_options;
    ref_options.fast_kernels = false;
    ref_options.optimization = passes::Level::kNone;
    runtime::Session ref(m, ref_options);

    Feeds a = random_feeds(m, {{"batch", 2}, {"sequence", 9}}, 1);
    Feeds a2 = random_feeds(m, {{"batch", 2}, {"sequence", 9}}, 50);  // same shapes, other values
    Feeds b = random_feeds(m, {{"batch", 1}, {"sequence", 17}}, 100);
    std::vector<ir::Datum> recorded = s.run(a);
    EXPECT_EQ(s.plan_stats().plans_made, 1u);
    EXPECT_GT(s.plan_stats().planned_buffers, 10u);
    EXPECT_GE(s.plan_stats().arena_bytes, s.plan_stats().lower_bound_bytes);
    expect_same(s.run(a), recorded, 0);  // planned: bit-identical to the recorded run
    expect_same(s.run(a2), ref.run(a2), 1e-4);
    std::vector<ir::Datum> b_out = s.run(b);  // a new shape: planned once more
    expect_same(b_out, ref.run(b), 1e-4);
    expect_same(s.run(b), b_out, 0);
    expect_same(s.run(a), recorded, 0);  // back to the first shape: its plan is still cached
    EXPECT_EQ(s.plan_stats().plans_made, 2u);
    EXPECT_EQ(s.plan_stats().plans, 2u);
  }
}

// An empty tensor among a node's allocations (Split's first part here) was not recorded: the planned run
// must not count it either, or Split's 4-float part would take the 8-float part's block, which Neg's
// second output reuses (same size, alive after the 8-float part's last reader) before the Add reads it.
TEST(PlannedRuns, AnEmptyTensorDoesNotShiftItsNodesBlocks) {
  Random rng(9);
  TestGraph g;
  g.input("x", rng.floats({12}));
  g.constant("parts", ir::Tensor::from_vector<int64_t>({0, 4, 8}, {3}));
  g.node("Split", {"x", "parts"}, {"empty", "p", "q"});
  g.node("Neg", {"q"}, {"q1"});
  g.node("Neg", {"q1"}, {"q2"});
  g.node("Add", {"p", "p"}, {"sum"});
  g.output("sum");
  g.output("q2");
  runtime::SessionOptions o;
  o.optimization = passes::Level::kNone;
  runtime::Session s(g.model(), o);
  runtime::SessionOptions ref_options = o;
  ref_options.fast_kernels = false;
  std::vector<ir::Datum> want = runtime::Session(g.model(), ref_options).run(g.feeds());
  s.run(g.feeds());  // recorded
  for (int i = 0; i < 2; ++i) expect_same(s.run(g.feeds()), want, 0);
}

// Several threads calling one session at once, each alternating two shapes and reusing its outputs (the
// executor pools run states and arenas, and plans each shape once): every result equals a lone run's.
TEST(PlannedRuns, ConcurrentCallsOfSeveralShapesMatchLoneRuns) {
  ir::Model m = onnx_io::load_model(testing::source_path("tests/data/bert-tiny/model.onnx"));
  runtime::Session s(m);
  std::vector<Feeds> feeds;
  std::vector<std::vector<ir::Datum>> expected;
  for (int64_t seq : {5, 9, 16, 33}) {
    feeds.push_back(random_feeds(m, {{"batch", 1 + seq % 3}, {"sequence", seq}}, static_cast<uint64_t>(seq)));
    runtime::Session lone(m);
    expected.push_back(lone.run(feeds.back()));
  }
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::vector<ir::Datum> out_a, out_b;
      const size_t a = t, b = (t + 1) % 4;
      for (int i = 0; i < 6; ++i) {
        s.run(feeds[a], out_a);
        s.run(feeds[b], out_b);
        for (size_t k = 0; k < out_a.size(); ++k) mismatches[t] += !out_a[k].tensor.bitwise_equal(expected[a][k].tensor);
        for (size_t k = 0; k < out_b.size(); ++k) mismatches[t] += !out_b[k].tensor.bitwise_equal(expected[b][k].tensor);
      }
    });
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
  EXPECT_EQ(s.plan_stats().plans_made, 4u);
}

TEST(PlannedRuns, OutputsStayValidAfterLaterRuns) {
  // Outputs leave the arena: a later run reusing it must not change what an earlier one returned.
  Random rng(3);
  TestGraph g;
  g.input("x", rng.floats({4, 8}));
  g.constant("w", rng.floats({8, 8}));
  g.node("MatMul", {"x", "w"}, {"h"});
  g.node("Relu", {"h"}, {"r"});
  g.node("MatMul", {"r", "w"}, {"y"});
  g.node("Identity", {"r"}, {"r_out"});
  g.output("y");
  g.output("r_out");
  runtime::Session s(g.model());
  std::vector<ir::Datum> first = s.run(g.feeds());
  std::vector<ir::Datum> second = s.run(g.feeds());
  std::vector<ir::Datum> keep;
  for (const auto& d : second) keep.push_back(ir::Datum(d.tensor.clone()));
  Feeds other = g.feeds();
  other["x"] = ir::Datum(rng.floats({4, 8}));
  s.run(other);
  expect_same(second, keep, 0);
  expect_same(first, keep, 0);
}

// x -> MatMul -> h -> Gelu -> g -> LayerNormalization -> y, with the fast kernels and no fusion: Gelu may
// write over h and the layer norm over g (FastKernel::in_place_inputs), so all three share one buffer;
// with `keep_h`, h is read again at the end and Gelu must leave it alone (the Add then writes over y).
TEST(PlannedRuns, InPlaceOutputsShareTheirInputsBufferOnlyWhenNothingReadsItLater) {
  for (bool keep_h : {false, true}) {
    SCOPED_TRACE(keep_h ? "h read later" : "h read by Gelu only");
    Random rng(5);
    TestGraph g;
    g.input("x", rng.floats({4, 8}));
    g.constant("w", rng.floats({8, 16}));
    g.constant("gamma", rng.floats({16}));
    g.constant("beta", rng.floats({16}));
    g.node("MatMul", {"x", "w"}, {"h"});
    g.contrib("Gelu", {"h"}, {"g"});
    g.node("LayerNormalization", {"g", "gamma", "beta"}, {"y"}, {testing::contrib::attr_float("epsilon", 1e-5f)});
    if (keep_h) {
      g.node("Add", {"h", "y"}, {"sum"});
      g.output("sum");
    } else {
      g.output("y");
    }
    runtime::SessionOptions o;
    o.optimization = passes::Level::kNone;  // keep the three nodes apart
    runtime::Session s(g.model(), o);
    runtime::SessionOptions ref_options = o;
    ref_options.fast_kernels = false;
    runtime::Session ref(g.model(), ref_options);
    std::vector<ir::Datum> recorded = s.run(g.feeds());
    EXPECT_EQ(s.plan_stats().in_place_buffers, 2u);
    // 4 x 16 floats a buffer: one for h, g and y; with keep_h, h and the rest (g, y and the sum, which
    // the Add writes over y).
    EXPECT_EQ(s.plan_stats().arena_bytes, keep_h ? 2 * 256u : 256u);
    expect_same(s.run(g.feeds()), recorded, 0);  // planned, in place: as recorded
    expect_same(s.run(g.feeds()), ref.run(g.feeds()), 1e-5);
  }
}

TEST(PlannedRuns, SteadyStateRunAllocatesOnlyTheOutputsItReturns) {
  ir::Model m = onnx_io::load_model(testing::source_path("tests/data/bert-tiny/model.onnx"));
  runtime::Session s(m);
  Feeds feeds = random_feeds(m, {{"batch", 2}, {"sequence", 9}}, 1);
  uint64_t before = ir::tensor_storage_allocations();
  s.run(feeds);  // records: every tensor from the heap
  uint64_t recorded = ir::tensor_storage_allocations() - before;
  s.run(feeds);
  before = ir::tensor_storage_allocations();
  std::vector<ir::Datum> out = s.run(feeds);
  uint64_t steady = ir::tensor_storage_allocations() - before;
  EXPECT_GT(recorded, 20u);
  EXPECT_EQ(steady, out.size()) << "the recorded run allocated " << recorded;
}

}  // namespace
}  // namespace kiln

// Runs a one-node test graph through its fast kernel and through the reference kernel, and compares: the
// outputs (bit for bit, or within a tolerance), the errors (a call the fast kernel declines must fail with
// the reference's message), and whether the fast kernel answered the call or left it to the reference
// (read from a profiler attached to the fast session). For the per-kernel tests of kernels/cpu/.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "contrib_test_util.h"
#include "runtime/profiler.h"
#include "runtime/session.h"

namespace kiln::testing {

// A session's outputs or error, and how many node calls its fast kernels answered.
struct KernelOutcome {
  std::vector<ir::Datum> outputs;
  std::string error;
  size_t fast_calls = 0;
};

inline KernelOutcome run_kernels(const contrib::TestGraph& g, bool fast) {
  KernelOutcome r;
  runtime::Profiler profiler;
  try {
    runtime::SessionOptions o;
    o.optimization = passes::Level::kNone;
    o.fast_kernels = fast;
    runtime::Session s(g.model(), o);
    s.set_profiler(&profiler);
    r.outputs = s.run(g.feeds());
  } catch (const Error& e) {
    r.error = e.what();
  }
  for (const runtime::Profiler::Call& c : profiler.calls()) r.fast_calls += c.fast;
  return r;
}

// The first output of g from a fast session and from a reference one, and the fast kernel each node of the
// fast session ran (the profiler's names: "FusedConv onednn").
struct FastAndReference {
  ir::Tensor fast, reference;
  std::vector<std::string> kernels;
};

inline FastAndReference run_fast_and_reference(const contrib::TestGraph& g) {
  FastAndReference o;
  runtime::SessionOptions fast, ref;
  fast.optimization = ref.optimization = passes::Level::kNone;
  ref.fast_kernels = false;
  runtime::Profiler profiler;
  runtime::Session fast_session(g.model(), fast), ref_session(g.model(), ref);
  fast_session.set_profiler(&profiler);
  o.fast = fast_session.run(g.feeds())[0].tensor;
  o.reference = ref_session.run(g.feeds())[0].tensor;
  for (const runtime::ProfiledNode& n : profiler.nodes()) o.kernels.push_back(n.fast_kernel);
  return o;
}

// Whether the fast kernel is expected to answer the graph's one node, or to decline it.
enum class Answered { kFast, kReference };

// `tolerance` 0: bitwise equal outputs; else |fast - reference| <= tolerance per element (float outputs).
inline void expect_fast_matches_reference(const contrib::TestGraph& g, Answered answered, const std::string& what,
                                          double tolerance = 0) {
  SCOPED_TRACE(what);
  const KernelOutcome ref = run_kernels(g, false), fast = run_kernels(g, true);
  EXPECT_EQ(fast.error, ref.error);
  EXPECT_EQ(fast.fast_calls, answered == Answered::kFast ? 1u : 0u)
      << (answered == Answered::kFast ? "the fast kernel declined" : "the fast kernel answered");
  ASSERT_EQ(fast.outputs.size(), ref.outputs.size());
  for (size_t i = 0; i < ref.outputs.size(); ++i) {
    const ir::Tensor &a = fast.outputs[i].tensor, &b = ref.outputs[i].tensor;
    ASSERT_EQ(a.dtype(), b.dtype()) << "output " << i;
    ASSERT_EQ(a.shape(), b.shape()) << "output " << i;
    if (tolerance == 0) {
      EXPECT_TRUE(a.bitwise_equal(b)) << "output " << i;
    } else {
      EXPECT_LE(contrib::max_abs_diff(a, b), tolerance) << "output " << i;
    }
  }
}

}  // namespace kiln::testing

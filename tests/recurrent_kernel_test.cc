// The fast LSTM and GRU kernels (kernels/cpu/recurrent_kernel.cc) against the reference ones
// (kernels/reference/recurrent.cc): every direction and layout, sequence_lens with zero and short lengths,
// initial states, peepholes, input_forget, clip, GRU's linear_before_reset both ways, hidden sizes around
// the 16-unit blocks (1, 7, 33, 64) and batches of 1 and 3; hidden units split across threads; only some
// outputs asked for; the reference's messages for invalid inputs once the weights are absorbed; and the
// nodes left to the reference (other activations, computed weights).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "contrib_test_util.h"
#include "runtime/session.h"

namespace kiln {
namespace {

using testing::contrib::attr_float;
using testing::contrib::attr_int;
using testing::contrib::attr_string;
using testing::contrib::max_abs_diff;
using testing::contrib::Random;
using testing::contrib::TestGraph;

ir::Attribute attr_strings(const std::string& name, std::vector<std::string> v) {
  ir::Attribute a;
  a.name = name;
  a.kind = ir::Attribute::Kind::kStrings;
  a.strings = std::move(v);
  return a;
}

struct RecurrentCase {
  bool lstm = true;
  std::string direction = "forward";
  int64_t layout = 0;
  int64_t seq = 5, batch = 1, input = 5, hidden = 7;
  bool bias = true;
  bool initial_state = false;
  std::vector<int32_t> lens;  // sequence_lens, or none
  bool peepholes = false, input_forget = false;
  bool linear_before_reset = false;
  float clip = 0;                                  // 0: none
  std::vector<bool> outputs = {true, true, true};  // Y, Y_h, Y_c (LSTM)
  int64_t opset = 22;

  std::string name() const {
    std::string s = std::string(lstm ? "LSTM" : "GRU") + " " + direction + " layout " + std::to_string(layout) +
                    " seq " + std::to_string(seq) + " batch " + std::to_string(batch) + " hidden " +
                    std::to_string(hidden) + " opset " + std::to_string(opset);
    if (!bias) s += " no bias";
    if (initial_state) s += " initial state";
    if (!lens.empty()) {
      s += " lens";
      for (int32_t l : lens) s += " " + std::to_string(l);
    }
    if (peepholes) s += " peepholes";
    if (input_forget) s += " input_forget";
    if (!lstm) s += " linear_before_reset " + std::to_string(linear_before_reset);
    if (clip > 0) s += " clip " + std::to_string(clip);
    return s;
  }
};

int64_t dirs_of(const RecurrentCase& c) { return c.direction == "bidirectional" ? 2 : 1; }

TestGraph recurrent_graph(const RecurrentCase& c, uint32_t seed, bool constant_weights = true,
                          std::vector<ir::Attribute> extra = {}) {
  Random rng(seed);
  const int64_t dirs = dirs_of(c), gates = c.lstm ? 4 : 3;
  TestGraph g(c.opset);
  const std::vector<int64_t> x_shape =
      c.layout == 0 ? std::vector<int64_t>{c.seq, c.batch, c.input} : std::vector<int64_t>{c.batch, c.seq, c.input};
  g.input("x", rng.floats(x_shape, -2.0f, 2.0f));
  auto weight = [&](const std::string& name, std::vector<int64_t> shape) {
    ir::Tensor t = rng.floats(std::move(shape), -0.7f, 0.7f);
    return constant_weights ? g.constant(name, t) : g.input(name, t);
  };
  std::vector<std::string> ins = {"x", weight("w", {dirs, gates * c.hidden, c.input}),
                                  weight("r", {dirs, gates * c.hidden, c.hidden})};
  ins.push_back(c.bias ? weight("b", {dirs, 2 * gates * c.hidden}) : "");
  ins.push_back(
      c.lens.empty() ? "" : g.input("lens", testing::contrib::int32s(c.lens, {static_cast<int64_t>(c.lens.size())})));
  const std::vector<int64_t> state =
      c.layout == 0 ? std::vector<int64_t>{dirs, c.batch, c.hidden} : std::vector<int64_t>{c.batch, dirs, c.hidden};
  ins.push_back(c.initial_state ? g.input("h0", rng.floats(state)) : "");
  if (c.lstm) {
    ins.push_back(c.initial_state ? g.input("c0", rng.floats(state)) : "");
    ins.push_back(c.peepholes ? weight("p", {dirs, 3 * c.hidden}) : "");
  }
  while (!ins.empty() && ins.back().empty()) ins.pop_back();
  std::vector<ir::Attribute> attrs = {attr_string("direction", c.direction), attr_int("hidden_size", c.hidden)};
  if (c.opset >= 14) attrs.push_back(attr_int("layout", c.layout));
  if (c.clip > 0) attrs.push_back(attr_float("clip", c.clip));
  if (c.lstm && c.input_forget) attrs.push_back(attr_int("input_forget", 1));
  if (!c.lstm) attrs.push_back(attr_int("linear_before_reset", c.linear_before_reset ? 1 : 0));
  for (ir::Attribute& a : extra) attrs.push_back(std::move(a));
  const std::vector<std::string> all = {"y", "y_h", "y_c"};
  std::vector<std::string> outs;
  for (size_t i = 0; i < (c.lstm ? 3u : 2u); ++i) outs.push_back(c.outputs[i] ? all[i] : "");
  while (!outs.empty() && outs.back().empty()) outs.pop_back();
  g.node(c.lstm ? "LSTM" : "GRU", ins, outs, attrs);
  for (const std::string& o : outs)
    if (!o.empty()) g.output(o);
  return g;
}

std::vector<ir::Datum> run_session(const TestGraph& g, bool fast, size_t* fast_count = nullptr) {
  runtime::SessionOptions o;
  o.optimization = passes::Level::kNone;
  o.fast_kernels = fast;
  runtime::Session s(g.model(), o);
  if (fast_count) *fast_count = s.fast_kernel_count();
  return s.run(g.feeds());
}

// Runs c through the fast kernel and the reference; they agree within float32 rounding of the sums and the
// vectorized sigmoid / tanh.
void expect_matches_reference(const RecurrentCase& c, uint32_t seed) {
  SCOPED_TRACE(c.name());
  const TestGraph g = recurrent_graph(c, seed);
  size_t fast_count = 0;
  std::vector<ir::Datum> got = run_session(g, true, &fast_count), want = run_session(g, false);
  EXPECT_EQ(fast_count, 1u);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(got[i].tensor.shape(), want[i].tensor.shape()) << "output " << i;
    EXPECT_LE(max_abs_diff(got[i].tensor, want[i].tensor), 2e-5) << "output " << i;
  }
}

TEST(RecurrentKernel, MatchesTheReferenceOverDirectionsLayoutsSizesAndOptions) {
  uint32_t seed = 0;
  for (bool lstm : {true, false})
    for (const char* direction : {"forward", "reverse", "bidirectional"})
      for (int64_t layout : {0, 1})
        for (int64_t hidden : {1, 7, 33, 64})
          for (int64_t batch : {1, 3}) {
            ++seed;
            RecurrentCase c;
            c.lstm = lstm;
            c.direction = direction;
            c.layout = layout;
            c.hidden = hidden;
            c.batch = batch;
            c.input = hidden == 64 ? 19 : 5;
            // The options, rotated so that each meets every direction, layout and size.
            c.bias = seed % 5 != 0;
            c.initial_state = seed % 2 == 0;
            if (seed % 3 != 0) c.lens = batch == 1 ? std::vector<int32_t>{3} : std::vector<int32_t>{5, 0, 2};
            c.peepholes = lstm && seed % 4 < 2;
            c.input_forget = lstm && seed % 7 == 3;
            c.clip = seed % 4 == 1 ? 0.8f : 0.0f;
            for (bool lbr : {false, true}) {
              if (lstm && lbr) continue;
              c.linear_before_reset = lbr;
              expect_matches_reference(c, seed);
            }
          }
}

TEST(RecurrentKernel, EveryOpsetFromSevenAndOnlySomeOutputs) {
  for (bool lstm : {true, false})
    for (int64_t opset : {7, 13, 14, 21, 22}) {
      RecurrentCase c;
      c.lstm = lstm;
      c.opset = opset;
      c.direction = "bidirectional";
      c.batch = 2;
      c.lens = {4, 1};
      expect_matches_reference(c, static_cast<uint32_t>(opset));
      c.outputs = {false, true, true};  // Y_h (and Y_c) only
      expect_matches_reference(c, static_cast<uint32_t>(opset));
      c.outputs = lstm ? std::vector<bool>{false, false, true} : std::vector<bool>{true, false, false};
      expect_matches_reference(c, static_cast<uint32_t>(opset));
    }
}

TEST(RecurrentKernel, EmptySequenceAndLongerOnes) {
  for (bool lstm : {true, false}) {
    RecurrentCase c;
    c.lstm = lstm;
    c.direction = "bidirectional";
    c.initial_state = true;
    c.seq = 0;
    c.batch = 2;
    expect_matches_reference(c, 1);  // Y empty, Y_h the initial state
    c.seq = 40;
    c.hidden = 16;
    c.lens = {40, 17};
    expect_matches_reference(c, 2);
  }
}

// Steps large enough that a direction's hidden units are split between threads, with a barrier per pass:
// with 4 threads both directions split too.
TEST(RecurrentKernel, HiddenUnitsSplitAcrossThreads) {
  const int saved = omp_get_max_threads();
  for (int threads : {2, 4}) {
    omp_set_num_threads(threads);
    for (bool lstm : {true, false})
      for (const char* direction : {"forward", "bidirectional"})
        for (bool lbr : {false, true}) {
          if (lstm && lbr) continue;
          RecurrentCase c;
          c.lstm = lstm;
          c.direction = direction;
          c.linear_before_reset = lbr;
          c.hidden = 150;
          c.input = 24;
          c.batch = 3;
          c.seq = 6;
          c.lens = {6, 2, 5};
          c.initial_state = true;
          c.peepholes = lstm;
          expect_matches_reference(c, static_cast<uint32_t>(threads));
        }
  }
  omp_set_num_threads(saved);
}

// The message of running m on `feeds` with or without fast kernels, "" when it runs.
std::string error_running(const ir::Model& m, const std::unordered_map<std::string, ir::Datum>& feeds, bool fast) {
  try {
    runtime::SessionOptions o;
    o.optimization = passes::Level::kNone;
    o.fast_kernels = fast;
    runtime::Session(m, o).run(feeds);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Once the kernel holds W, R, B and P, an invalid call is refused with the reference's message.
TEST(RecurrentKernel, InvalidInputsFailWithTheReferenceMessages) {
  for (bool lstm : {true, false}) {
    RecurrentCase c;
    c.lstm = lstm;
    c.direction = "bidirectional";
    c.batch = 2;
    c.initial_state = true;
    c.lens = {3, 2};
    c.peepholes = lstm;
    const TestGraph g = recurrent_graph(c, 5);
    // The inputs declared without a shape, so that the session passes any on to the kernels.
    ir::Model m = g.model();
    for (ir::ValueInfo& in : m.graph.inputs) in.type = ir::Type::tensor(in.type.dtype);
    Random rng(3);
    auto expect_same_error = [&](const std::string& input, const ir::Tensor& value, const char* what) {
      std::unordered_map<std::string, ir::Datum> feeds = g.feeds();
      feeds[input] = ir::Datum(value);
      const std::string want = error_running(m, feeds, false);
      EXPECT_FALSE(want.empty()) << what;
      EXPECT_EQ(error_running(m, feeds, true), want) << what;
    };
    EXPECT_EQ(error_running(m, g.feeds(), true), "");
    expect_same_error("x", rng.floats({5, 2, 4}), "X with another input size");
    expect_same_error("x", rng.floats({5, 2}), "X of rank 2");
    expect_same_error("lens", testing::contrib::int32s({3, 6}, {2}), "a length past the sequence");
    expect_same_error("lens", testing::contrib::int32s({3, 2, 1}, {3}), "sequence_lens of another batch");
    expect_same_error("h0", rng.floats({2, 3, 7}), "initial_h of another batch");
    if (lstm) expect_same_error("c0", rng.floats({1, 2, 7}), "initial_c of one direction");
  }
}

TEST(RecurrentKernel, LeavesOtherActivationsAndComputedWeightsToTheReference) {
  RecurrentCase c;
  size_t fast_count = 1;
  // Non-default activations.
  TestGraph relu = recurrent_graph(c, 1, true, {attr_strings("activations", {"Relu", "Tanh", "Tanh"})});
  run_session(relu, true, &fast_count);
  EXPECT_EQ(fast_count, 0u);
  // The defaults spelled out, in any case, are the kernel's.
  TestGraph spelled = recurrent_graph(c, 1, true, {attr_strings("activations", {"sigmoid", "TANH", "Tanh"})});
  run_session(spelled, true, &fast_count);
  EXPECT_EQ(fast_count, 1u);
  // Weights fed at run time.
  TestGraph fed = recurrent_graph(c, 1, false);
  std::vector<ir::Datum> got = run_session(fed, true, &fast_count), want = run_session(fed, false);
  EXPECT_EQ(fast_count, 0u);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(max_abs_diff(got[i].tensor, want[i].tensor), 0.0);
}

}  // namespace
}  // namespace kiln

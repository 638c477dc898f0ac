// The attention and embedding fusions: each test builds a graph (small by hand, or a whole exported
// BERT/ViT), runs the pass directly, checks the ops changed as claimed and that the outputs did not
// (against the unoptimized graph on random inputs whose attention masks have padding), and includes
// candidates that must not match, with the reason they give. The fused BERT-tiny is also run by ONNX
// Runtime, which must accept what we write and agree with kiln's unfused outputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "export/exporter.h"
#include "export/graph_builder.h"
#include "export/transformer_config.h"
#include "export/weight_source.h"
#include "ort_peer.h"
#include "pass_test_util.h"
#include "passes/optimizer.h"
#include "passes/passes.h"
#include "runtime/random_inputs.h"
#include "runtime/session.h"
#include "test_util.h"

namespace kiln {
namespace {

using exporter::GraphBuilder;
using exporter::int_attr;
using exporter::ints_attr;
using exporter::tensor_value;
using testing::count_ops;
using testing::expect_same_outputs;
using testing::Feeds;
using testing::find_op;
using testing::run_passes;

constexpr double kTol = 1e-4;

// ONNX Runtime (its optimizer off) runs `fused` and agrees with kiln's run of the unfused `model`.
void expect_ort_agrees(const ir::Model& model, const ir::Model& fused, const Feeds& feeds) {
  testing::expect_ort_matches(fused, feeds, testing::run_unoptimized(model, feeds), kTol);
}

// A [batch, seq] 0/1 mask: row 0 all ones, then right padding, left padding, and holes; never a row of
// zeros only.
ir::Tensor padded_mask(int64_t batch, int64_t seq, ir::DType dtype = ir::DType::kInt64) {
  ir::Tensor t(ir::DType::kInt64, {batch, seq});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < seq; ++s) {
      bool on = true;
      if (b % 4 == 1) on = s < seq - 3;           // right padding
      if (b % 4 == 2) on = s >= 2;                // left padding
      if (b % 4 == 3) on = s % 3 != 1 || s == 0;  // holes
      t.data<int64_t>()[b * seq + s] = on ? 1 : 0;
    }
  if (dtype == ir::DType::kInt64) return t;
  ir::Tensor c(dtype, {batch, seq});
  for (int64_t i = 0; i < t.numel(); ++i) c.data<int32_t>()[i] = static_cast<int32_t>(t.data<int64_t>()[i]);
  return c;
}

ir::Tensor random_floats(std::vector<int64_t> shape, uint64_t seed, float scale = 0.5f) {
  ir::Tensor t(ir::DType::kFloat32, std::move(shape));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

ir::Tensor random_ids(std::vector<int64_t> shape, int64_t below, uint64_t seed) {
  ir::Tensor t(ir::DType::kInt64, std::move(shape));
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = static_cast<int64_t>(rng() % below);
  return t;
}

// ---------------------------------------------------------------------------------------------------
// A hand-built attention block, torch style, with knobs to break it.

struct BlockOptions {
  int64_t heads = 2, head = 4;
  bool symbolic = true;       // [batch, sequence, hidden] inputs; else static [static_batch, static_seq, hidden]
  int64_t static_batch = 1, static_seq = 2;
  bool shape_targets = true;  // Reshape targets from Shape/Gather/Concat; else constants [0,0,N,H]
  enum class Mask {
    kAdditive,  // torch: (1 - Cast(Unsqueeze(Unsqueeze(mask)))) * C
    kNone,
    kFloatInput,        // a [B,1,1,S] float input added as it is
    kSdpaWhere,         // transformers' SDPA: inv = 1 - Cast(Expand(...)); Where(Cast(inv, bool), C, inv)
    kSdpaMul,           // the same expanded inv, times C
    kBoolWhere,         // torch SDPA with a bool mask: Where(Expand(...Cast(mask, bool)), 0, C)
    kNotInverted,       // Cast(Unsqueeze(Unsqueeze(mask))) * C: C where the mask is 1
    kInfTimesInverted,  // (1 - mask) * -inf: NaN where the mask is 1
    kCausalConstant,    // a constant upper triangle of -inf (static shapes only)
    kCausalWhere,       // Where(Slice(bool tril buffer), 0, C)
    kScoresWhere,       // GPT-2: Where(Slice(bool tril buffer), scores, C), no Add
    // transformers 5 (static shapes, folded): Where(Expand(And(all-true [1,1,S,1], Reshape(Gather(
    // Flatten(Cast(mask, bool)), b * S + k), [B,1,1,S]))), 0, lowest); reversed: it gathers b * S + S-1-k.
    kGatheredAnd,
    kGatheredReversed,
  } mask = Mask::kAdditive;
  float mask_constant = -10000.0f;
  enum class Scale { kDivSqrt, kMulInvSqrt, kDivOther, kDivInput, kNone } scale = Scale::kDivSqrt;
  // Factors on Q and on K^T before the Q.K^T MatMul, as torch's scaled_dot_product_attention export writes
  // them (0: none); torch_scale: both computed from Shape(Q) as that export does, 1/sqrt(sqrt(H)).
  float q_scale = 0, k_scale = 0;
  bool torch_scale = false;
  bool pre_scale_div = false;          // Div(x, 1/s) rather than Mul(x, s)
  bool pre_scale_const_first = false;  // Mul(s, x) or Div(s, x)
  // K^T as Transpose(0,2,3,1); as Transpose(0,2,1,3) then Transpose(0,1,3,2) (SDPA's key.transpose(-2,
  // -1)), with K's factor after both; or with K's factor between the two.
  enum class KLayout { kOne, kTwo, kFactorBetween } k_layout = KLayout::kOne;
  std::vector<int64_t> k_first_perm = {0, 2, 1, 3};  // the first of two K Transposes
  std::vector<int64_t> q_perm = {0, 2, 1, 3};
  bool v_reads_other_input = false;
  bool weights_are_inputs = false;
  bool softmax_is_output = false;
  int layers = 1;
};

ir::Model attention_block(const BlockOptions& o) {
  ir::Model m = testing::new_ir_model(14);
  GraphBuilder b(m.graph);
  const int64_t hidden = o.heads * o.head;
  std::vector<ir::Dim> dims = o.symbolic ? std::vector<ir::Dim>{ir::Dim::symbolic("batch"), ir::Dim::symbolic("seq")}
                                         : std::vector<ir::Dim>{ir::Dim(o.static_batch), ir::Dim(o.static_seq)};
  auto with = [&](std::vector<ir::Dim> d, std::vector<ir::Dim> more) {
    d.insert(d.end(), more.begin(), more.end());
    return d;
  };
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, with(dims, {ir::Dim(hidden)})));
  if (o.v_reads_other_input)
    m.graph.inputs.push_back(tensor_value("x2", ir::DType::kFloat32, with(dims, {ir::Dim(hidden)})));
  using Mask = BlockOptions::Mask;
  auto cast = [&](const std::string& v, ir::DType to) {
    return b.add("Cast", {v}, {int_attr("to", static_cast<int64_t>(to))});
  };
  auto float1 = [&](float v) { return b.constant(ir::Tensor::from_vector<float>({v}, {1})); };
  // mask[:, None, None, :], then (expand) .expand(B, 1, S, S) as transformers' _expand_mask writes it.
  auto mask_4d = [&](std::string v, bool expand) {
    v = b.add("Unsqueeze", {b.add("Unsqueeze", {v, b.constant_ints({1})}), b.constant_ints({2})});
    if (!expand) return v;
    std::string shape = b.add("Shape", {"attention_mask"});
    auto dim = [&](int64_t i) {
      return b.add("Unsqueeze",
                   {b.add("Gather", {shape, b.constant_int(i)}, {int_attr("axis", 0)}), b.constant_ints({0})});
    };
    return b.add("Expand", {v, b.add("Concat", {dim(0), b.constant_ints({1}), dim(1), dim(1)}, {int_attr("axis", 0)})});
  };
  auto inverted = [&](bool expand) {
    return b.add("Sub", {b.constant_float(1.0f), cast(mask_4d("attention_mask", expand), ir::DType::kFloat32)});
  };
  // A bool [1,1,S,S] lower triangle sliced from a [1,1,16,16] buffer, as GPT-2 keeps its causal mask.
  auto tril = [&]() {
    ir::Tensor t(ir::DType::kBool, {1, 1, 16, 16});
    for (int64_t i = 0; i < 16; ++i)
      for (int64_t j = 0; j < 16; ++j) t.data<bool>()[i * 16 + j] = j <= i;
    std::string s = b.add(
        "Unsqueeze",
        {b.add("Gather", {b.add("Shape", {"x"}), b.constant_int(1)}, {int_attr("axis", 0)}), b.constant_ints({0})});
    return b.add("Slice", {b.constant(t), b.constant_ints({0, 0}), b.add("Concat", {s, s}, {int_attr("axis", 0)}),
                           b.constant_ints({2, 3})});
  };
  const bool mask_input = o.mask == Mask::kAdditive || o.mask == Mask::kSdpaWhere || o.mask == Mask::kSdpaMul ||
                          o.mask == Mask::kBoolWhere || o.mask == Mask::kNotInverted ||
                          o.mask == Mask::kInfTimesInverted || o.mask == Mask::kGatheredAnd ||
                          o.mask == Mask::kGatheredReversed;
  if (mask_input) m.graph.inputs.push_back(tensor_value("attention_mask", ir::DType::kInt64, dims));
  std::string mask;
  switch (o.mask) {
    case Mask::kAdditive:
      mask = b.add("Mul", {inverted(false), b.constant_float(o.mask_constant)});
      break;
    case Mask::kNone:
    case Mask::kScoresWhere:
      break;
    case Mask::kFloatInput:
      m.graph.inputs.push_back(
          tensor_value("float_mask", ir::DType::kFloat32, {dims[0], ir::Dim(1), ir::Dim(1), dims[1]}));
      mask = "float_mask";
      break;
    case Mask::kSdpaWhere: {
      std::string inv = inverted(true);
      mask = b.add("Where", {cast(inv, ir::DType::kBool), b.constant_float(o.mask_constant), inv});
      break;
    }
    case Mask::kSdpaMul:
      mask = b.add("Mul", {inverted(true), b.constant_float(o.mask_constant)});
      break;
    case Mask::kBoolWhere:
      mask = b.add("Where",
                   {mask_4d(cast("attention_mask", ir::DType::kBool), true), float1(0.0f), float1(o.mask_constant)});
      break;
    case Mask::kNotInverted:
      mask = b.add("Mul",
                   {cast(mask_4d("attention_mask", false), ir::DType::kFloat32), b.constant_float(o.mask_constant)});
      break;
    case Mask::kInfTimesInverted:
      mask = b.add("Mul", {inverted(false), b.constant_float(-std::numeric_limits<float>::infinity())});
      break;
    case Mask::kCausalConstant: {
      const int64_t seq = dims[1].value;
      ir::Tensor t(ir::DType::kFloat32, {1, 1, seq, seq});
      for (int64_t i = 0; i < seq; ++i)
        for (int64_t j = 0; j < seq; ++j)
          t.data<float>()[i * seq + j] = j <= i ? 0.0f : -std::numeric_limits<float>::infinity();
      mask = b.constant(t);
      break;
    }
    case Mask::kCausalWhere:
      mask = b.add("Where", {tril(), float1(0.0f), float1(o.mask_constant)});
      break;
    case Mask::kGatheredAnd:
    case Mask::kGatheredReversed: {
      const int64_t batch = dims[0].value, seq = dims[1].value;
      std::string flat = b.add("Flatten", {cast("attention_mask", ir::DType::kBool)}, {int_attr("axis", 2)});
      ir::Tensor index(ir::DType::kInt64, {batch, 1, 1, seq});
      for (int64_t i = 0; i < batch; ++i)
        for (int64_t k = 0; k < seq; ++k)
          index.data<int64_t>()[i * seq + k] = i * seq + (o.mask == Mask::kGatheredAnd ? k : seq - 1 - k);
      std::string gathered = b.add("Gather", {flat, b.constant(index)}, {int_attr("axis", 0)});
      std::string padding = b.add("Reshape", {gathered, b.constant_ints({batch, 1, 1, seq})});
      ir::Tensor all(ir::DType::kBool, {1, 1, seq, 1});
      for (int64_t i = 0; i < seq; ++i) all.data<bool>()[i] = true;
      std::string both = b.add("And", {b.constant(all), padding});
      mask = b.add("Where", {b.add("Expand", {both, b.constant_ints({batch, 1, seq, seq})}), b.constant_float(0.0f),
                             b.constant_float(std::numeric_limits<float>::lowest())});
      break;
    }
  }
  if (o.scale == BlockOptions::Scale::kDivInput) m.graph.inputs.push_back(tensor_value("d", ir::DType::kFloat32, {}));
  uint64_t seed = 10;
  std::string x = "x";
  for (int layer = 0; layer < o.layers; ++layer) {
    exporter::Scope scope(b, "layer." + std::to_string(layer));
    auto linear = [&](const std::string& in, const std::string& name) {
      exporter::Scope s(b, name);
      std::string w = name + std::to_string(layer) + ".weight";
      if (o.weights_are_inputs && name == "query") {
        m.graph.inputs.push_back(tensor_value(w, ir::DType::kFloat32, {ir::Dim(hidden), ir::Dim(hidden)}));
      } else {
        b.initializer(w, random_floats({hidden, hidden}, seed++));
      }
      std::string bias = b.initializer(name + std::to_string(layer) + ".bias", random_floats({hidden}, seed++));
      return b.add("Add", {bias, b.add("MatMul", {in, w})});
    };
    auto split = [&](const std::string& v) {
      std::string target;
      if (o.shape_targets) {
        std::string bd = b.add(
            "Unsqueeze",
            {b.add("Gather", {b.add("Shape", {v}), b.constant_int(0)}, {int_attr("axis", 0)}), b.constant_ints({0})});
        std::string sd = b.add(
            "Unsqueeze",
            {b.add("Gather", {b.add("Shape", {v}), b.constant_int(1)}, {int_attr("axis", 0)}), b.constant_ints({0})});
        target =
            b.add("Concat", {bd, sd, b.constant_ints({o.heads}), b.constant_ints({o.head})}, {int_attr("axis", 0)});
      } else {
        target = b.constant_ints({0, 0, o.heads, o.head});
      }
      return b.add("Reshape", {v, target});
    };
    std::string q = linear(x, "query"), k = linear(x, "key"), v = linear(o.v_reads_other_input ? "x2" : x, "value");
    std::string qt = b.add("Transpose", {split(q)}, {ints_attr("perm", o.q_perm)});
    std::string torch_factor;
    if (o.torch_scale) {  // torch's _attention_scale(query), then sqrt of it for each side
      std::string h = b.add("Slice", {b.add("Shape", {qt}), b.constant_ints({-1}),
                                      b.constant_ints({std::numeric_limits<int64_t>::max()})});
      std::string scale = b.add("Div", {float1(1.0f), b.add("Sqrt", {cast(h, ir::DType::kFloat32)})});
      torch_factor = b.add("Sqrt", {cast(scale, ir::DType::kFloat32)});
    }
    auto scaled = [&](const std::string& v, float f) {
      if (!torch_factor.empty()) return b.add("Mul", {v, torch_factor});
      if (f == 0) return v;
      std::string c = b.constant_float(o.pre_scale_div ? 1.0f / f : f);
      if (o.pre_scale_div) return o.pre_scale_const_first ? b.add("Div", {c, v}) : b.add("Div", {v, c});
      return o.pre_scale_const_first ? b.add("Mul", {c, v}) : b.add("Mul", {v, c});
    };
    qt = scaled(qt, o.q_scale);
    std::string kt;
    switch (o.k_layout) {
      case BlockOptions::KLayout::kOne:
        kt = scaled(b.add("Transpose", {split(k)}, {ints_attr("perm", {0, 2, 3, 1})}), o.k_scale);
        break;
      case BlockOptions::KLayout::kTwo:
        kt = b.add("Transpose", {split(k)}, {ints_attr("perm", o.k_first_perm)});
        kt = scaled(b.add("Transpose", {kt}, {ints_attr("perm", {0, 1, 3, 2})}), o.k_scale);
        break;
      case BlockOptions::KLayout::kFactorBetween:
        kt = scaled(b.add("Transpose", {split(k)}, {ints_attr("perm", {0, 2, 1, 3})}), o.k_scale);
        kt = b.add("Transpose", {kt}, {ints_attr("perm", {0, 1, 3, 2})});
        break;
    }
    std::string vt = b.add("Transpose", {split(v)}, {ints_attr("perm", {0, 2, 1, 3})});
    std::string s = b.add("MatMul", {qt, kt});
    const float root = std::sqrt(static_cast<float>(o.head));
    switch (o.scale) {
      case BlockOptions::Scale::kDivSqrt:
        s = b.add("Div", {s, b.constant_float(root)});
        break;
      case BlockOptions::Scale::kMulInvSqrt:
        s = b.add("Mul", {s, b.constant_float(1.0f / root)});
        break;
      case BlockOptions::Scale::kDivOther:
        s = b.add("Div", {s, b.constant_float(3.0f)});
        break;
      case BlockOptions::Scale::kDivInput:
        s = b.add("Div", {s, "d"});
        break;
      case BlockOptions::Scale::kNone:
        break;
    }
    if (o.mask == Mask::kScoresWhere) s = b.add("Where", {tril(), s, float1(o.mask_constant)});
    if (!mask.empty()) s = b.add("Add", {s, mask});
    std::string p = b.add("Softmax", {s}, {int_attr("axis", -1)});
    if (o.softmax_is_output) {
      b.add_named("Identity", {p}, "probs");
      m.graph.outputs.push_back(tensor_value("probs", ir::DType::kFloat32, {}));
    }
    std::string c = b.add("Transpose", {b.add("MatMul", {p, vt})}, {ints_attr("perm", {0, 2, 1, 3})});
    std::string target;
    if (o.shape_targets) {
      std::string bd = b.add(
          "Unsqueeze",
          {b.add("Gather", {b.add("Shape", {c}), b.constant_int(0)}, {int_attr("axis", 0)}), b.constant_ints({0})});
      std::string sd = b.add(
          "Unsqueeze",
          {b.add("Gather", {b.add("Shape", {c}), b.constant_int(1)}, {int_attr("axis", 0)}), b.constant_ints({0})});
      target = b.add("Concat", {bd, sd, b.constant_ints({hidden})}, {int_attr("axis", 0)});
    } else {
      target = b.constant_ints({0, 0, hidden});
    }
    std::string ctx = b.add("Reshape", {c, target});
    std::string wo = b.initializer("out" + std::to_string(layer) + ".weight", random_floats({hidden, hidden}, seed++));
    x = b.add("MatMul", {ctx, wo});
  }
  b.add_named("Identity", {x}, "y");
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, with(dims, {ir::Dim(hidden)})));
  return m;
}

Feeds block_feeds(const ir::Model& m, int64_t batch, int64_t seq) {
  Feeds f;
  for (const auto& in : m.graph.inputs) {
    if (in.name == "attention_mask")
      f[in.name] = padded_mask(batch, seq);
    else if (in.name == "float_mask")
      f[in.name] = random_floats({batch, 1, 1, seq}, 7);
    else if (in.name == "d")
      f[in.name] = ir::Tensor::scalar<float>(2.5f);
    else
      f[in.name] = runtime::random_input(in, {{"batch", batch}, {"seq", seq}}, 3);
  }
  return f;
}

const passes::Rejection* find_rejection(const passes::PassReport& r, const std::string& text) {
  for (const auto& x : r.rejections)
    if (x.reason.find(text) != std::string::npos) return &x;
  return nullptr;
}

float attr_float(const ir::Node& n, const std::string& name, float dflt) {
  const ir::Attribute* a = n.find_attribute(name);
  return a ? a->f : dflt;
}

TEST(AttentionFusion, FusesTorchStyleBlockWithPaddingMask) {
  BlockOptions o;
  ir::Model m = attention_block(o);
  auto [opt, report] = run_passes(m, {passes::fuse_attention});
  EXPECT_EQ(report.changes["Attention"], 1);
  EXPECT_TRUE(report.rejections.empty()) << report.rejections[0].reason;
  EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), 1);
  EXPECT_EQ(count_ops(opt, "Softmax"), 0);
  EXPECT_EQ(count_ops(opt, "Transpose"), 0);
  EXPECT_EQ(count_ops(opt, "Reshape"), 0);
  EXPECT_EQ(count_ops(opt, "Shape"), 0);   // the Reshape targets' shape arithmetic went with the block
  EXPECT_EQ(count_ops(opt, "MatMul"), 1);  // the output projection stays
  const ir::Node* att = find_op(opt, "Attention");
  ASSERT_NE(att, nullptr);
  EXPECT_EQ(att->domain, "com.microsoft");
  ASSERT_EQ(att->inputs.size(), 4u);
  EXPECT_EQ(att->find_attribute("num_heads")->i, 2);
  EXPECT_EQ(att->find_attribute("scale"), nullptr);  // Div by sqrt(4): the default
  EXPECT_EQ(attr_float(*att, "mask_filter_value", 0), -10000.0f);
  EXPECT_EQ(opt.opset("com.microsoft"), 1);
  ASSERT_TRUE(opt.graph.initializers.count(att->inputs[1]));
  EXPECT_EQ(opt.graph.initializers.at(att->inputs[1]).shape(), (std::vector<int64_t>{8, 24}));
  EXPECT_EQ(opt.graph.initializers.at(att->inputs[2]).shape(), (std::vector<int64_t>{24}));
  expect_same_outputs(m, opt, block_feeds(m, 4, 7), kTol);
  expect_same_outputs(m, opt, block_feeds(m, 1, 1), kTol);
}

TEST(AttentionFusion, FoldedTargetsMulScaleAndOneMaskCastForAllLayers) {
  BlockOptions o;
  o.shape_targets = false;  // Reshape to constants [0,0,N,H], as after ORT-style folding
  o.scale = BlockOptions::Scale::kMulInvSqrt;
  o.mask_constant = std::numeric_limits<float>::lowest();
  o.layers = 3;
  ir::Model m = attention_block(o);
  auto [opt, report] = run_passes(m, {passes::fuse_attention});
  EXPECT_EQ(report.changes["Attention"], 3);
  EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), 3);
  EXPECT_EQ(count_ops(opt, "Softmax"), 0);
  // One Cast(mask, int32) for the whole model, read by every layer (the float Cast of the additive mask
  // is dead now, left to dead-code elimination).
  int int32_casts = 0;
  std::string mask_value;
  for (const auto& n : opt.graph.nodes)
    if (n.op_type == "Cast" && n.find_attribute("to")->i == static_cast<int64_t>(ir::DType::kInt32)) {
      ++int32_casts;
      mask_value = n.outputs[0];
    }
  EXPECT_EQ(int32_casts, 1);
  for (const auto& n : opt.graph.nodes)
    if (n.op_type == "Attention") {
      EXPECT_EQ(n.inputs[3], mask_value);
      EXPECT_EQ(attr_float(n, "mask_filter_value", 0), std::numeric_limits<float>::lowest());
      EXPECT_EQ(n.find_attribute("scale"), nullptr);
    }
  expect_same_outputs(m, opt, block_feeds(m, 4, 6), kTol);
  // A second run finds nothing left to fuse and adds no second Cast.
  auto [again, report2] = run_passes(opt, {passes::fuse_attention});
  EXPECT_EQ(report2.changes.count("Attention"), 0u);
}

TEST(AttentionFusion, NonDefaultScaleIsWrittenAndNoMaskMeansNoMaskInput) {
  BlockOptions o;
  o.scale = BlockOptions::Scale::kDivOther;
  o.mask = BlockOptions::Mask::kNone;
  ir::Model m = attention_block(o);
  auto [opt, report] = run_passes(m, {passes::fuse_attention});
  EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), 1);
  const ir::Node* att = find_op(opt, "Attention");
  ASSERT_NE(att, nullptr);
  EXPECT_EQ(att->inputs.size(), 3u);
  EXPECT_EQ(att->find_attribute("mask_filter_value"), nullptr);
  ASSERT_NE(att->find_attribute("scale"), nullptr);
  EXPECT_FLOAT_EQ(att->find_attribute("scale")->f, 1.0f / 3.0f);
  expect_same_outputs(m, opt, block_feeds(m, 3, 5), kTol);
}

// Fuses `m` (then removes what died), checks there is one Attention and no rejection, and that the
// outputs equal the unfused graph's, in kiln and in ONNX Runtime; returns the fused model.
ir::Model fuse_one_and_compare(const ir::Model& m) {
  auto [opt, report] = run_passes(m, {passes::fuse_attention, passes::eliminate_dead_code});
  EXPECT_EQ(report.changes["Attention"], 1);
  for (const auto& r : report.rejections) ADD_FAILURE() << r.pattern << " at " << r.node << ": " << r.reason;
  EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), 1);
  EXPECT_EQ(count_ops(opt, "Softmax"), 0);
  EXPECT_EQ(count_ops(opt, "Transpose"), 0);
  expect_same_outputs(m, opt, block_feeds(m, 4, 7), kTol);
  expect_same_outputs(m, opt, block_feeds(m, 1, 1), kTol);
  expect_ort_agrees(m, opt, block_feeds(m, 4, 7));
  return opt;
}

// transformers 5 builds the padding mask by indexing the flattened mask (a vmap traced into Gather), on
// static shapes: followed element by element, it is the [B,1,1,S] padding mask, and fuses; gathered in
// another order it is not, and says so.
TEST(AttentionFusion, Transformers5GatheredPaddingMask) {
  BlockOptions o;
  o.symbolic = false;
  o.static_batch = 4;
  o.static_seq = 7;
  o.shape_targets = false;
  o.mask = BlockOptions::Mask::kGatheredAnd;
  ir::Model m = attention_block(o);
  auto [opt, report] = run_passes(m, {passes::fuse_attention, passes::eliminate_dead_code});
  EXPECT_EQ(report.changes["Attention"], 1);
  for (const auto& r : report.rejections) ADD_FAILURE() << r.pattern << " at " << r.node << ": " << r.reason;
  const ir::Node* att = find_op(opt, "Attention");
  ASSERT_NE(att, nullptr);
  EXPECT_EQ(attr_float(*att, "mask_filter_value", 0), std::numeric_limits<float>::lowest());
  EXPECT_EQ(count_ops(opt, "Gather"), 0);  // the mask's arithmetic went with the block
  expect_same_outputs(m, opt, block_feeds(m, 4, 7), kTol);
  expect_ort_agrees(m, opt, block_feeds(m, 4, 7));

  o.mask = BlockOptions::Mask::kGatheredReversed;
  auto [kept, why] = run_passes(attention_block(o), {passes::fuse_attention});
  EXPECT_EQ(count_ops(kept, "com.microsoft.Attention"), 0);
  EXPECT_NE(find_rejection(why, "And node \"/And\" reads the mask in no [batch, ..., sequence] layout"), nullptr)
      << (why.rejections.empty() ? "no rejection" : why.rejections[0].reason);
}

// torch's scaled_dot_product_attention export (transformers' BertSdpaSelfAttention): Q and K^T each
// scaled by sqrt(1/sqrt(H)) before the MatMul, K^T as two Transposes, and the mask prepared by
// _prepare_4d_attention_mask_for_sdpa (expanded to [B,1,S,S], then Where or Mul) or as a bool mask.
TEST(AttentionFusion, TorchSdpaExport) {
  struct Case {
    const char* what;
    BlockOptions::KLayout k_layout;
    bool div, const_first;
    BlockOptions::Mask mask;
    float mask_constant;
  };
  const float lowest = std::numeric_limits<float>::lowest(), inf = std::numeric_limits<float>::infinity();
  const Case cases[] = {
      {"Mul after both K Transposes, Where mask", BlockOptions::KLayout::kTwo, false, false,
       BlockOptions::Mask::kSdpaWhere, lowest},
      {"Mul(c, x) between the K Transposes, Mul mask", BlockOptions::KLayout::kFactorBetween, false, true,
       BlockOptions::Mask::kSdpaMul, lowest},
      {"Div, one K Transpose, bool mask", BlockOptions::KLayout::kOne, true, false, BlockOptions::Mask::kBoolWhere,
       -inf},
      {"Mul(c, x), one K Transpose, -10000 through Where", BlockOptions::KLayout::kOne, false, true,
       BlockOptions::Mask::kSdpaWhere, -10000.0f},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    BlockOptions o;
    o.scale = BlockOptions::Scale::kNone;
    o.q_scale = o.k_scale = static_cast<float>(std::pow(o.head, -0.25));
    o.k_layout = c.k_layout;
    o.pre_scale_div = c.div;
    o.pre_scale_const_first = c.const_first;
    o.mask = c.mask;
    o.mask_constant = c.mask_constant;
    ir::Model m = attention_block(o);
    ir::Model opt = fuse_one_and_compare(m);
    const ir::Node* att = find_op(opt, "Attention");
    ASSERT_NE(att, nullptr);
    ASSERT_EQ(att->inputs.size(), 4u);
    EXPECT_EQ(att->find_attribute("scale"), nullptr);  // the two factors make 1/sqrt(H)
    EXPECT_EQ(attr_float(*att, "mask_filter_value", 0), c.mask_constant);
    // The whole mask preparation died: Attention reads the raw mask.
    for (const char* op : {"Expand", "Where", "Sub", "Mul", "Div", "Unsqueeze"}) EXPECT_EQ(count_ops(opt, op), 0) << op;
  }
}

// Every factor on Q, on K^T and on the scores ends up in the one scale.
TEST(AttentionFusion, PreMatMulFactorsMultiplyIntoTheScale) {
  struct Case {
    const char* what;
    float q_scale, k_scale;
    bool div;
    BlockOptions::Scale post;
    float want;  // head size 4: the default is 0.5
  };
  const Case cases[] = {
      {"Q / 2, scores * 1/2", 0.5f, 0, true, BlockOptions::Scale::kMulInvSqrt, 0.25f},
      {"K^T * 3 only", 0, 3.0f, false, BlockOptions::Scale::kNone, 3.0f},
      {"no factor at all", 0, 0, false, BlockOptions::Scale::kNone, 1.0f},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    BlockOptions o;
    o.q_scale = c.q_scale;
    o.k_scale = c.k_scale;
    o.pre_scale_div = c.div;
    o.scale = c.post;
    o.k_layout = BlockOptions::KLayout::kTwo;
    ir::Model m = attention_block(o);
    ir::Model opt = fuse_one_and_compare(m);
    const ir::Node* att = find_op(opt, "Attention");
    ASSERT_NE(att, nullptr);
    ASSERT_NE(att->find_attribute("scale"), nullptr);
    EXPECT_FLOAT_EQ(att->find_attribute("scale")->f, c.want);
  }
}

// As torch writes SDPA, the factor is computed from Shape(Q); the basic passes fold it to a constant.
// K's two Transposes are merged by simplify_transpose_reshape_chains when the factor follows both, not
// when it sits between them; the fusion matches either way.
TEST(AttentionFusion, TorchSdpaExportAfterTheBasicPasses) {
  for (BlockOptions::KLayout k_layout : {BlockOptions::KLayout::kTwo, BlockOptions::KLayout::kFactorBetween}) {
    const bool between = k_layout == BlockOptions::KLayout::kFactorBetween;
    SCOPED_TRACE(between ? "factor between the K Transposes" : "factor after them");
    BlockOptions o;
    o.scale = BlockOptions::Scale::kNone;
    o.torch_scale = true;
    o.k_layout = k_layout;
    o.mask = BlockOptions::Mask::kSdpaWhere;
    o.mask_constant = std::numeric_limits<float>::lowest();
    ir::Model m = attention_block(o);
    ir::Model basic = m;
    passes::OptimizeOptions options;
    options.level = passes::Level::kBasic;
    passes::optimize(basic, options);
    std::vector<std::vector<int64_t>> perms;
    for (const auto& n : basic.graph.nodes)
      if (n.op_type == "Transpose") perms.push_back(n.find_attribute("perm")->ints);
    const std::vector<int64_t> merged = {0, 2, 3, 1}, last_two = {0, 1, 3, 2};
    EXPECT_EQ(std::count(perms.begin(), perms.end(), merged), between ? 0 : 1);
    EXPECT_EQ(std::count(perms.begin(), perms.end(), last_two), between ? 1 : 0);
    EXPECT_EQ(count_ops(basic, "Sqrt"), 0);  // the factor is a constant now
    ir::Model opt = fuse_one_and_compare(basic);
    expect_same_outputs(m, opt, block_feeds(m, 3, 6), kTol);
    const ir::Node* att = find_op(opt, "Attention");
    ASSERT_NE(att, nullptr);
    EXPECT_EQ(att->find_attribute("scale"), nullptr);
  }
}

// No mask: the scaled scores go straight into Softmax, after Mul by 0.125 (head size 64) or, as SDPA
// writes it, right after the Q.K^T MatMul.
TEST(AttentionFusion, NoMaskSoftmaxRightAfterTheScaling) {
  for (bool sdpa : {false, true}) {
    SCOPED_TRACE(sdpa ? "SDPA" : "Mul by 0.125");
    BlockOptions o;
    o.heads = 2;
    o.head = 64;
    o.mask = BlockOptions::Mask::kNone;
    if (sdpa) {
      o.scale = BlockOptions::Scale::kNone;
      o.q_scale = o.k_scale = static_cast<float>(std::pow(o.head, -0.25));
      o.k_layout = BlockOptions::KLayout::kTwo;
    } else {
      o.scale = BlockOptions::Scale::kMulInvSqrt;
    }
    ir::Model m = attention_block(o);
    ir::Model opt = fuse_one_and_compare(m);
    const ir::Node* att = find_op(opt, "Attention");
    ASSERT_NE(att, nullptr);
    EXPECT_EQ(att->inputs.size(), 3u);
    EXPECT_EQ(att->find_attribute("scale"), nullptr);
    EXPECT_EQ(att->find_attribute("mask_filter_value"), nullptr);
  }
}

// Candidates that must be left alone, each with its reason, named at the Q.K^T MatMul.
TEST(AttentionFusion, RejectsWhatItCannotFuseAndSaysWhy) {
  struct Case {
    const char* what;
    BlockOptions options;
    std::string reason;
  };
  const std::string not_from_mask =
      "mask is not built from a 2-D attention mask input (causal or custom masks are not fused): ";
  std::vector<Case> cases;
  {
    BlockOptions o;
    o.mask = BlockOptions::Mask::kFloatInput;
    cases.push_back({"float mask input", o,
                     not_from_mask + "\"float_mask\" is float32[batch,1,1,seq], not a 2-D integer or bool mask"});
  }
  {
    BlockOptions o;
    o.symbolic = false;
    o.mask = BlockOptions::Mask::kCausalConstant;
    cases.push_back({"causal constant", o, not_from_mask + "\"/Constant_output_0\" is a constant [1,1,2,2] tensor"});
  }
  {
    BlockOptions o;
    o.mask = BlockOptions::Mask::kCausalWhere;
    cases.push_back({"Where over a tril buffer", o,
                     not_from_mask + "\"/Slice_output_0\" (Slice node \"/Slice\") is bool[1,1,?,?], not a 2-D "
                                     "integer or bool mask"});
  }
  {
    BlockOptions o;
    o.mask = BlockOptions::Mask::kScoresWhere;
    cases.push_back({"scores masked by Where", o, not_from_mask + "the scores pass through Where \"/layer.0/Where\""});
  }
  {
    BlockOptions o;
    o.mask = BlockOptions::Mask::kNotInverted;
    cases.push_back({"C where the mask is 1", o,
                     "the additive mask is not (1 - mask) * C: it is -10000 where the mask \"attention_mask\" is 1 "
                     "and 0 where it is 0"});
  }
  {
    BlockOptions o;
    o.mask = BlockOptions::Mask::kInfTimesInverted;
    cases.push_back({"0 * -inf", o, "the additive mask is not (1 - mask) * C: it is NaN where"});
  }
  {
    BlockOptions o;
    o.scale = BlockOptions::Scale::kNone;
    o.torch_scale = true;  // before constant folding the factor is computed
    cases.push_back({"computed pre-MatMul scale", o, "of Q is not by a scalar constant"});
  }
  {
    BlockOptions o;
    o.symbolic = false;  // [1, 2, 8] with 2 heads: K^T is [1,2,4,2] either way
    o.k_layout = BlockOptions::KLayout::kTwo;
    o.k_first_perm = {0, 1, 2, 3};
    cases.push_back({"wrong perms for K", o,
                     "K Transposes \"/layer.0/Transpose_1\", \"/layer.0/Transpose_2\" have perm [0,1,3,2], not "
                     "[0,2,3,1]"});
  }
  {
    BlockOptions o;
    o.q_scale = 0.5f;
    o.pre_scale_div = true;
    o.pre_scale_const_first = true;  // Div(c, Q)
    cases.push_back({"Q divides", o, "Q is the divisor of \"/layer.0/Div\""});
  }
  {
    BlockOptions o;
    o.v_reads_other_input = true;
    cases.push_back({"V from another input", o, "Q, K and V do not read the same input"});
  }
  {
    BlockOptions o;
    o.scale = BlockOptions::Scale::kDivInput;
    cases.push_back({"scale from an input", o, "is not by a scalar constant"});
  }
  {
    BlockOptions o;
    o.symbolic = false;  // [1, 2, 8] with 2 heads: perm [0,1,2,3] gives the same shapes as [0,2,1,3]
    o.q_perm = {0, 1, 2, 3};
    cases.push_back({"wrong perm", o, "has perm [0,1,2,3], not [0,2,1,3]"});
  }
  {
    BlockOptions o;
    o.weights_are_inputs = true;
    cases.push_back({"weights not constant", o, "are not a constant"});
  }
  {
    BlockOptions o;
    o.softmax_is_output = true;
    cases.push_back({"probabilities read elsewhere", o, "has other readers"});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ir::Model m = attention_block(c.options);
    auto [opt, report] = run_passes(m, {passes::fuse_attention});
    EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), 0);
    EXPECT_EQ(opt.graph.nodes.size(), m.graph.nodes.size());
    const passes::Rejection* r = find_rejection(report, c.reason);
    ASSERT_NE(r, nullptr) << (report.rejections.empty() ? "no rejection" : report.rejections[0].reason);
    EXPECT_EQ(r->pattern, "attention");
    EXPECT_NE(r->node.find("/layer.0/MatMul"), std::string::npos) << r->node;
  }
}

// ---------------------------------------------------------------------------------------------------
// Whole models.

ir::Model load_fixture() {
  runtime::SessionOptions o;
  o.optimization = passes::Level::kNone;
  o.fast_kernels = false;
  return runtime::Session::load(KILN_SOURCE_DIR "/tests/data/bert-tiny/model.onnx", o).model();
}

ir::Model export_preset(const std::string& name, int64_t opset = 14) {
  exporter::ExportOptions options;
  options.opset = opset;
  return exporter::export_model(exporter::preset_config(name), *exporter::random_weights(1), options).model;
}

Feeds bert_feeds(const ir::Model& m, int64_t batch, int64_t seq) {
  Feeds f;
  for (const auto& in : m.graph.inputs) {
    if (in.name == "attention_mask")
      f[in.name] = padded_mask(batch, seq);
    else if (in.name == "input_ids")
      f[in.name] = random_ids({batch, seq}, 1000, 5);
    else if (in.name == "token_type_ids")
      f[in.name] = random_ids({batch, seq}, 2, 6);
    else
      f[in.name] = runtime::random_input(in, {{"batch", batch}, {"sequence", seq}}, 7);
  }
  return f;
}

std::vector<passes::PassFn> bert_passes() {
  return {passes::fuse_attention, passes::fuse_layer_norm, passes::fuse_embed_layer_norm, passes::eliminate_dead_code};
}

TEST(AttentionFusion, TorchExportedBertTiny) {
  ir::Model m = load_fixture();
  auto [opt, report] = run_passes(m, bert_passes());
  EXPECT_EQ(report.changes["Attention"], 2);
  EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), 2);
  EXPECT_EQ(count_ops(opt, "com.microsoft.EmbedLayerNormalization"), 1);
  EXPECT_EQ(count_ops(opt, "Softmax"), 0);
  EXPECT_EQ(count_ops(opt, "Transpose"), 0);
  EXPECT_EQ(count_ops(opt, "Shape"), 0);  // the Reshape targets and the position Slice's length: all dead
  for (const auto& n : opt.graph.nodes)
    if (n.op_type == "Attention") {
      EXPECT_EQ(attr_float(n, "mask_filter_value", 0), -10000.0f);
    }
  for (const auto& r : report.rejections)
    if (r.pattern == "attention" || r.pattern == "EmbedLayerNorm") {
      ADD_FAILURE() << r.pattern << " at " << r.node << ": " << r.reason;
    }
  expect_same_outputs(m, opt, bert_feeds(m, 4, 9), kTol);
}

TEST(AttentionFusion, KilnExportedBertTinyAndVitTiny) {
  for (int64_t opset : {14, 17}) {
    SCOPED_TRACE(opset);
    ir::Model m = export_preset("bert-tiny", opset);
    auto [opt, report] = run_passes(m, bert_passes());
    EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), 2);
    EXPECT_EQ(count_ops(opt, "com.microsoft.EmbedLayerNormalization"), 1);
    EXPECT_EQ(count_ops(opt, "Softmax"), 0);
    for (const auto& n : opt.graph.nodes)
      if (n.op_type == "Attention") {
        EXPECT_EQ(attr_float(n, "mask_filter_value", 0), std::numeric_limits<float>::lowest());
      }
    expect_same_outputs(m, opt, bert_feeds(m, 4, 8), kTol);
  }
  if (testing::kSanitizeBuild) return;
  ir::Model vit = export_preset("vit-tiny");
  auto [opt, report] = run_passes(vit, {passes::fuse_attention, passes::eliminate_dead_code});
  EXPECT_EQ(report.changes["Attention"], 12);
  EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), 12);
  EXPECT_EQ(count_ops(opt, "Softmax"), 0);
  for (const auto& n : opt.graph.nodes)
    if (n.op_type == "Attention") {
      EXPECT_EQ(n.inputs.size(), 3u);
    }
  expect_same_outputs(vit, opt, bert_feeds(vit, 1, 1), kTol);
}

TEST(AttentionFusion, KilnExportedBertBase) {
  if (testing::kSanitizeBuild) GTEST_SKIP() << "12 layers: runs in the release build";
  ir::Model m = export_preset("bert-base");
  auto [opt, report] = run_passes(m, bert_passes());
  EXPECT_EQ(report.changes["Attention"], 12);
  EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), 12);
  EXPECT_EQ(count_ops(opt, "com.microsoft.EmbedLayerNormalization"), 1);
  expect_same_outputs(m, opt, bert_feeds(m, 2, 8), kTol);
}

// After the basic passes (constant folding, common subexpressions, transpose/reshape simplification) the
// blocks still match: the fusion reads what the Reshapes do, not how their targets were computed.
TEST(AttentionFusion, MatchesAfterTheBasicPasses) {
  struct Case {
    const char* name;
    ir::Model model;
    int64_t attention, embed;
  };
  std::vector<Case> cases;
  cases.push_back({"torch bert-tiny", load_fixture(), 2, 1});
  cases.push_back({"kiln bert-tiny", export_preset("bert-tiny"), 2, 1});
  if (!testing::kSanitizeBuild) cases.push_back({"kiln vit-tiny", export_preset("vit-tiny"), 12, 0});
  for (Case& c : cases) {
    SCOPED_TRACE(c.name);
    ir::Model basic = c.model;
    passes::OptimizeOptions options;
    options.level = passes::Level::kBasic;
    passes::optimize(basic, options);
    auto [opt, report] = run_passes(basic, bert_passes());
    EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), c.attention);
    EXPECT_EQ(count_ops(opt, "com.microsoft.EmbedLayerNormalization"), c.embed);
    EXPECT_EQ(count_ops(opt, "Softmax"), 0);
    for (const auto& r : report.rejections) {
      if (r.pattern == "attention" || r.pattern == "EmbedLayerNorm")
        ADD_FAILURE() << r.pattern << " at " << r.node << ": " << r.reason;
    }
    expect_same_outputs(c.model, opt, bert_feeds(c.model, 2, 5), kTol);
  }
}

// ONNX Runtime runs the fused BERT-tiny (optimizer disabled) and agrees with kiln's unfused run: the torch
// export (mask constant -10000) and kiln's export (mask constant the lowest float).
TEST(AttentionFusion, OrtRunsFusedBertTinyAndAgrees) {
  std::string why;
  ASSERT_TRUE(testing::ort_available(&why)) << why;
  for (bool torch : {true, false}) {
    SCOPED_TRACE(torch ? "torch export" : "kiln export");
    ir::Model m = torch ? load_fixture() : export_preset("bert-tiny");
    auto [opt, report] = run_passes(m, bert_passes());
    ASSERT_EQ(count_ops(opt, "com.microsoft.Attention"), 2);
    ASSERT_EQ(count_ops(opt, "com.microsoft.EmbedLayerNormalization"), 1);
    expect_ort_agrees(m, opt, bert_feeds(m, 4, 9));
  }
}

// ---------------------------------------------------------------------------------------------------
// EmbedLayerNormalization

struct EmbedOptions {
  bool token_types = true;
  bool arange = true;       // the position buffer holds 0, 1, 2, ...
  int64_t slice_start = 0;  // where the Slice of the buffer starts
  bool position_input = false;
};

ir::Model embed_block(const EmbedOptions& o) {
  const int64_t vocab = 50, types = 2, positions = 16, hidden = 8;
  ir::Model m = testing::new_ir_model(17);
  GraphBuilder b(m.graph);
  std::vector<ir::Dim> dims = {ir::Dim::symbolic("batch"), ir::Dim::symbolic("sequence")};
  m.graph.inputs.push_back(tensor_value("input_ids", ir::DType::kInt64, dims));
  if (o.token_types) m.graph.inputs.push_back(tensor_value("token_type_ids", ir::DType::kInt64, dims));
  if (o.position_input) m.graph.inputs.push_back(tensor_value("position_ids", ir::DType::kInt64, dims));
  exporter::Scope scope(b, "embeddings");
  std::string position_ids = "position_ids";
  if (!o.position_input) {
    std::vector<int64_t> buffer(positions);
    for (int64_t i = 0; i < positions; ++i) buffer[i] = o.arange ? i : (i * 7) % positions;
    std::string seq = b.add("Gather", {b.add("Shape", {"input_ids"}), b.constant_int(1)}, {int_attr("axis", 0)});
    std::string end = b.add("Unsqueeze", {seq, b.constant_ints({0})});
    if (o.slice_start != 0) end = b.add("Add", {end, b.constant_ints({o.slice_start})});
    position_ids = b.add("Slice", {b.constant(ir::Tensor::from_vector(buffer, {1, positions})),
                                   b.constant_ints({o.slice_start}), end, b.constant_ints({1}), b.constant_ints({1})});
  }
  std::string word = b.add("Gather", {b.initializer("word", random_floats({vocab, hidden}, 1)), "input_ids"});
  std::string x = word;
  if (o.token_types)
    x = b.add("Add",
              {x, b.add("Gather", {b.initializer("type", random_floats({types, hidden}, 2)), "token_type_ids"})});
  x = b.add("Add", {x, b.add("Gather", {b.initializer("pos", random_floats({positions, hidden}, 3)), position_ids})});
  std::string gamma = b.initializer("gamma", random_floats({hidden}, 4, 2.0f));
  std::string beta = b.initializer("beta", random_floats({hidden}, 5));
  b.add_named("LayerNormalization", {x, gamma, beta}, "y",
              {int_attr("axis", -1), exporter::float_attr("epsilon", 1e-6f)});
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {dims[0], dims[1], ir::Dim(hidden)}));
  return m;
}

Feeds embed_feeds(const ir::Model& m, int64_t batch, int64_t seq) {
  Feeds f;
  f["input_ids"] = random_ids({batch, seq}, 50, 11);
  if (m.graph.find_input("token_type_ids")) f["token_type_ids"] = random_ids({batch, seq}, 2, 12);
  if (m.graph.find_input("position_ids")) f["position_ids"] = random_ids({batch, seq}, 16, 13);
  return f;
}

// ---------------------------------------------------------------------------------------------------
// nn.MultiheadAttention as torchvision's ViT exports it: sequence-first, one packed in_proj, static shapes.

struct PackedOptions {
  int64_t batch = 2, seq = 5, heads = 2, head = 4;
  bool in_bias = true;
  bool out_gemm = true;                       // Gemm(transB = 1); else MatMul + Add
  std::vector<int64_t> picks = {0, 1, 2};  // the Gather indices of Q, K, V
};

ir::Model packed_attention_block(const PackedOptions& o) {
  ir::Model m = testing::new_ir_model(17);
  GraphBuilder b(m.graph);
  const int64_t d = o.heads * o.head, bn = o.batch * o.heads;
  m.graph.inputs.push_back(tensor_value("x", ir::DType::kFloat32, {ir::Dim(o.batch), ir::Dim(o.seq), ir::Dim(d)}));
  std::string xt = b.add("Transpose", {"x"}, {ints_attr("perm", {1, 0, 2})});
  std::string proj = b.add("MatMul", {xt, b.initializer("in_proj_weight", random_floats({d, 3 * d}, 21))});
  if (o.in_bias) proj = b.add("Add", {proj, b.initializer("in_proj_bias", random_floats({3 * d}, 22))});
  std::string packed = b.add("Reshape", {proj, b.constant_ints({o.seq, o.batch, 3, d})});
  packed = b.add("Unsqueeze", {packed, b.constant_ints({0})});
  packed = b.add("Transpose", {packed}, {ints_attr("perm", {3, 1, 2, 0, 4})});
  packed = b.add("Squeeze", {packed, b.constant_ints({3})});
  const float factor = std::sqrt(1.0f / std::sqrt(static_cast<float>(o.head)));
  auto head = [&](int64_t pick) {
    std::string v = b.add("Gather", {packed, b.constant_int(pick)}, {int_attr("axis", 0)});
    v = b.add("Reshape", {v, b.constant_ints({o.seq, bn, o.head})});
    v = b.add("Transpose", {v}, {ints_attr("perm", {1, 0, 2})});
    return b.add("Reshape", {v, b.constant_ints({o.batch, o.heads, o.seq, o.head})});
  };
  std::string qh = b.add("Mul", {head(o.picks[0]), b.constant(ir::Tensor::from_vector<float>({factor}, {1}))});
  std::string kh = b.add("Transpose", {head(o.picks[1])}, {ints_attr("perm", {0, 1, 3, 2})});
  kh = b.add("Mul", {kh, b.constant(ir::Tensor::from_vector<float>({factor}, {1}))});
  std::string p = b.add("Softmax", {b.add("MatMul", {qh, kh})}, {int_attr("axis", -1)});
  std::string c = b.add("Transpose", {b.add("MatMul", {p, head(o.picks[2])})}, {ints_attr("perm", {2, 0, 1, 3})});
  c = b.add("Reshape", {c, b.constant_ints({o.seq * o.batch, d})});
  if (o.out_gemm) {
    c = b.add("Gemm", {c, b.initializer("out_proj_weight", random_floats({d, d}, 23)),
                       b.initializer("out_proj_bias", random_floats({d}, 24))},
              {int_attr("transB", 1)});
  } else {
    c = b.add("Add", {b.add("MatMul", {c, b.initializer("out_proj_weight", random_floats({d, d}, 23))}),
                      b.initializer("out_proj_bias", random_floats({d}, 24))});
  }
  c = b.add("Reshape", {c, b.constant_ints({o.seq, o.batch, d})});
  b.add_named("Transpose", {c}, "y", {ints_attr("perm", {1, 0, 2})});
  m.graph.outputs.push_back(tensor_value("y", ir::DType::kFloat32, {ir::Dim(o.batch), ir::Dim(o.seq), ir::Dim(d)}));
  return m;
}

TEST(PackedAttentionFusion, TorchvisionMultiheadAttention) {
  for (bool in_bias : {true, false})
    for (bool out_gemm : {true, false}) {
      SCOPED_TRACE(std::string(in_bias ? "in_proj bias" : "no in_proj bias") + (out_gemm ? ", Gemm" : ", MatMul + Add"));
      PackedOptions o;
      o.in_bias = in_bias;
      o.out_gemm = out_gemm;
      ir::Model m = packed_attention_block(o);
      auto [opt, report] = run_passes(m, {passes::fuse_packed_attention, passes::eliminate_dead_code});
      EXPECT_EQ(report.changes["Attention (packed in_proj)"], 1);
      for (const auto& r : report.rejections) ADD_FAILURE() << r.pattern << " at " << r.node << ": " << r.reason;
      EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), 1);
      EXPECT_EQ(count_ops(opt, "Softmax"), 0);
      EXPECT_EQ(count_ops(opt, "Transpose"), 0);
      EXPECT_EQ(count_ops(opt, "Gather"), 0);
      const ir::Node* att = find_op(opt, "Attention");
      ASSERT_NE(att, nullptr);
      EXPECT_EQ(att->find_attribute("num_heads")->i, 2);
      EXPECT_EQ(att->find_attribute("scale"), nullptr);  // sqrt(1/sqrt(H)) twice: the default
      Feeds feeds = testing::random_feeds(m, {}, 5);
      expect_same_outputs(m, opt, feeds, kTol);
      expect_ort_agrees(m, opt, feeds);
    }
}

TEST(PackedAttentionFusion, RejectsQkvPickedInAnotherOrder) {
  PackedOptions o;
  o.picks = {1, 0, 2};
  auto [opt, report] = run_passes(packed_attention_block(o), {passes::fuse_packed_attention});
  EXPECT_EQ(count_ops(opt, "com.microsoft.Attention"), 0);
  EXPECT_NE(find_rejection(report, "Q, K and V are not gathered at 0, 1 and 2 of the packed projection"), nullptr)
      << (report.rejections.empty() ? "no rejection" : report.rejections[0].reason);
}

TEST(EmbedLayerNormFusion, FusesBertAndDistilBertEmbeddings) {
  for (bool token_types : {true, false}) {
    SCOPED_TRACE(token_types ? "BERT" : "DistilBERT");
    EmbedOptions o;
    o.token_types = token_types;
    ir::Model m = embed_block(o);
    auto [opt, report] = run_passes(m, {passes::fuse_embed_layer_norm, passes::eliminate_dead_code});
    EXPECT_EQ(report.changes["EmbedLayerNormalization"], 1);
    for (const auto& r : report.rejections) ADD_FAILURE() << r.node << ": " << r.reason;
    EXPECT_EQ(count_ops(opt, "com.microsoft.EmbedLayerNormalization"), 1);
    EXPECT_EQ(count_ops(opt, "Gather"), 0);
    EXPECT_EQ(count_ops(opt, "Add"), 0);
    EXPECT_EQ(count_ops(opt, "LayerNormalization"), 0);
    EXPECT_EQ(count_ops(opt, "Slice"), 0);
    EXPECT_EQ(count_ops(opt, "Cast"), token_types ? 2 : 1);
    const ir::Node* e = find_op(opt, "EmbedLayerNormalization");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->outputs[0], "y");
    EXPECT_FLOAT_EQ(attr_float(*e, "epsilon", 0), 1e-6f);
    EXPECT_EQ(e->inputs[2], "word");
    EXPECT_EQ(e->inputs[3], "pos");
    EXPECT_EQ(e->inputs[4], token_types ? "type" : "");
    EXPECT_EQ(e->inputs[1].empty(), !token_types);
    expect_same_outputs(m, opt, embed_feeds(m, 3, 5), kTol);
    expect_same_outputs(m, opt, embed_feeds(m, 1, 16), kTol);
  }
}

TEST(EmbedLayerNormFusion, RejectsPositionIdsThatAreNotZeroToS) {
  struct Case {
    const char* what;
    EmbedOptions options;
    const char* reason;
  };
  std::vector<Case> cases;
  {
    EmbedOptions o;
    o.arange = false;
    cases.push_back({"shuffled buffer", o, "is not 0, 1, 2"});
  }
  {
    EmbedOptions o;
    o.slice_start = 2;
    cases.push_back({"offset", o, "starts at 2, not 0"});
  }
  {
    EmbedOptions o;
    o.position_input = true;
    cases.push_back({"position ids input", o, "they are the model input \"position_ids\""});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ir::Model m = embed_block(c.options);
    auto [opt, report] = run_passes(m, {passes::fuse_embed_layer_norm});
    EXPECT_EQ(count_ops(opt, "com.microsoft.EmbedLayerNormalization"), 0);
    EXPECT_EQ(opt.graph.nodes.size(), m.graph.nodes.size());
    const passes::Rejection* r = find_rejection(report, c.reason);
    ASSERT_NE(r, nullptr) << (report.rejections.empty() ? "no rejection" : report.rejections[0].reason);
    EXPECT_NE(r->reason.find("position ids are not 0..S-1"), std::string::npos) << r->reason;
    EXPECT_EQ(r->pattern, "EmbedLayerNorm");
    EXPECT_NE(r->node.find("LayerNormalization"), std::string::npos) << r->node;
  }
}

}  // namespace
}  // namespace kiln

// The exporter: graphs built from checkpoints and presets must compute what Hugging Face's models compute.
// Checked two independent ways: against PyTorch's outputs for the bert-tiny fixture, and against a plain
// loop-based forward pass (below) written from the Hugging Face modelling code, on tiny configs that
// cover each family, activation and opset.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "export/encoder_layers.h"
#include "export/exporter.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "onnx/model_io.h"
#include "runtime/random_inputs.h"
#include "runtime/session.h"
#include "test_util.h"

namespace kiln {
namespace {

using exporter::Family;
using exporter::TransformerConfig;
using testing::source_path;

const std::string kHf = "tests/data/bert-tiny-hf/";

std::unordered_map<std::string, ir::Datum> fixture_inputs() {
  std::unordered_map<std::string, ir::Datum> feeds;
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"})
    feeds[name] = io::read_npy(source_path(kHf + "inputs/" + name + ".npy"));
  return feeds;
}

// Max |a - e| and whether every element is within atol + rtol * |e|.
void expect_close(const ir::Tensor& actual, const ir::Tensor& expected, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  double max_diff = 0;
  int64_t bad = 0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    double a = actual.as_double(i), e = expected.as_double(i), d = std::fabs(a - e);
    max_diff = std::max(max_diff, d);
    if (!(d <= atol + rtol * std::fabs(e))) ++bad;
  }
  EXPECT_EQ(bad, 0) << what << ": max |diff| " << max_diff;
}

std::vector<ir::Datum> run_model(ir::Model model, const std::unordered_map<std::string, ir::Datum>& feeds) {
  runtime::Session session(std::move(model));
  return session.run(feeds);
}

TEST(Export, BertTinyCheckpointReproducesTorchOutputs) {
  TransformerConfig config = exporter::read_config(source_path(kHf + "config.json"), Family::kBert);
  auto weights = exporter::checkpoint_weights(source_path(kHf + "model.safetensors"), config.family);
  exporter::ExportResult r = exporter::export_model(config, *weights);
  EXPECT_TRUE(r.skipped_tensors.empty());
  std::vector<ir::Datum> outs = run_model(std::move(r.model), fixture_inputs());
  ASSERT_EQ(outs.size(), 2u);
  expect_close(outs[0].tensor, io::read_npy(source_path(kHf + "outputs/last_hidden_state.npy")), 1e-4, 1e-5,
               "last_hidden_state");
  expect_close(outs[1].tensor, io::read_npy(source_path(kHf + "outputs/pooler_output.npy")), 1e-4, 1e-5,
               "pooler_output");
}

// The graph has the op-level shape of torch.onnx.export at opset 14: the same op histogram as the bundled
// torch export of the same model.
TEST(Export, BertTinyGraphHasTorchExportOps) {
  TransformerConfig config = exporter::read_config(source_path(kHf + "config.json"), Family::kBert);
  auto weights = exporter::checkpoint_weights(source_path(kHf + "model.safetensors"), config.family);
  ir::Model ours = exporter::export_model(config, *weights).model;
  ir::Model torch = onnx_io::load_model(source_path("tests/data/bert-tiny/model.onnx"));
  auto histogram = [](const ir::Model& m) {
    std::map<std::string, int> h;
    for (const auto& n : m.graph.nodes) ++h[n.op_type];
    return h;
  };
  std::map<std::string, int> theirs = histogram(torch), mine = histogram(ours);
  // torch folds the int64 position_ids buffer differently (Constant vs Cast) and writes one Cast for the mask.
  for (const char* op : {"MatMul", "Add", "Div", "Erf", "Pow", "Sqrt", "ReduceMean", "Softmax", "Transpose", "Reshape",
                         "Gather", "Gemm", "Tanh", "Sub", "Mul", "Slice", "Concat"})
    EXPECT_EQ(mine[op], theirs[op]) << op;
  EXPECT_EQ(ours.graph.nodes.size(), torch.graph.nodes.size());
}

TEST(Export, PrefixedTaskCheckpointSkipsTheHead) {
  testing::TempDir dir;
  io::SafetensorsFile src = io::SafetensorsFile::open(source_path(kHf + "model.safetensors"));
  std::vector<std::pair<std::string, ir::Tensor>> tensors;
  for (const auto& e : src.entries()) tensors.emplace_back("bert." + e.name, src.tensor(e.name));
  tensors.emplace_back("classifier.weight", ir::Tensor(ir::DType::kFloat32, {2, 128}));
  tensors.emplace_back("classifier.bias", ir::Tensor(ir::DType::kFloat32, {2}));
  io::write_safetensors(dir.file("model.safetensors"), tensors);

  TransformerConfig config = exporter::read_config(source_path(kHf + "config.json"), Family::kBert);
  auto weights = exporter::checkpoint_weights(dir.file("model.safetensors"), config.family);
  exporter::ExportResult r = exporter::export_model(config, *weights);
  EXPECT_EQ(r.skipped_tensors, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  std::vector<ir::Datum> outs = run_model(std::move(r.model), fixture_inputs());
  expect_close(outs[0].tensor, io::read_npy(source_path(kHf + "outputs/last_hidden_state.npy")), 1e-4, 1e-5,
               "last_hidden_state");
}

// A checkpoint stored in f16 or bf16 gives exactly the model of its values widened to f32.
TEST(Export, HalfPrecisionCheckpointsAreWidened) {
  testing::TempDir dir;
  io::SafetensorsFile src = io::SafetensorsFile::open(source_path(kHf + "model.safetensors"));
  for (ir::DType narrow : {ir::DType::kFloat16, ir::DType::kBFloat16}) {
    std::vector<std::pair<std::string, ir::Tensor>> narrowed, widened;
    for (const auto& e : src.entries()) {
      ir::Tensor f = src.tensor(e.name);
      ir::Tensor n(narrow, f.shape()), w(ir::DType::kFloat32, f.shape());
      for (int64_t i = 0; i < f.numel(); ++i) {
        float v = f.data<float>()[i];
        if (narrow == ir::DType::kFloat16) {
          n.data<Float16>()[i] = Float16(v);
          w.data<float>()[i] = static_cast<float>(n.data<Float16>()[i]);
        } else {
          n.data<BFloat16>()[i] = BFloat16(v);
          w.data<float>()[i] = static_cast<float>(n.data<BFloat16>()[i]);
        }
      }
      narrowed.emplace_back(e.name, n);
      widened.emplace_back(e.name, w);
    }
    io::write_safetensors(dir.file("narrow.safetensors"), narrowed);
    io::write_safetensors(dir.file("wide.safetensors"), widened);
    TransformerConfig config = exporter::read_config(source_path(kHf + "config.json"), Family::kBert);
    auto a = exporter::checkpoint_weights(dir.file("narrow.safetensors"), config.family);
    auto b = exporter::checkpoint_weights(dir.file("wide.safetensors"), config.family);
    std::vector<ir::Datum> x = run_model(exporter::export_model(config, *a).model, fixture_inputs());
    std::vector<ir::Datum> y = run_model(exporter::export_model(config, *b).model, fixture_inputs());
    EXPECT_TRUE(x[0].tensor.bitwise_equal(y[0].tensor)) << std::string(ir::dtype_name(narrow));
    // And still close to the f32 model: f16 keeps ~3 decimal digits.
    expect_close(x[0].tensor, io::read_npy(source_path(kHf + "outputs/last_hidden_state.npy")), 0.1, 0.1,
                 std::string(ir::dtype_name(narrow)));
  }
}

// ---- an independent forward pass, from the Hugging Face modelling code ----

using Vec = std::vector<float>;

// y[r, o] = sum_i x[r, i] * w[o, i] + b[o], with nn.Linear's [out, in] weight.
Vec linear(const Vec& x, int64_t rows, const ir::Tensor& w, const ir::Tensor* b) {
  const int64_t out = w.dim(0), in = w.dim(1);
  Vec y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = b ? b->data<float>()[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) acc += double(x[r * in + i]) * w.data<float>()[o * in + i];
      y[r * out + o] = static_cast<float>(acc);
    }
  return y;
}

Vec layer_norm(const Vec& x, int64_t rows, const ir::Tensor& g, const ir::Tensor& b, double eps) {
  const int64_t n = g.numel();
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mean += x[r * n + i];
    mean /= n;
    for (int64_t i = 0; i < n; ++i) var += (x[r * n + i] - mean) * (x[r * n + i] - mean);
    var /= n;
    for (int64_t i = 0; i < n; ++i)
      y[r * n + i] =
          static_cast<float>((x[r * n + i] - mean) / std::sqrt(var + eps) * g.data<float>()[i] + b.data<float>()[i]);
  }
  return y;
}

float activate(float v, const std::string& act) {
  if (act == "relu") return std::max(v, 0.0f);
  if (act == "gelu") return static_cast<float>(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
  return static_cast<float>(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
}

class Reference {
 public:
  Reference(const TransformerConfig& c, exporter::WeightSource& w) : c_(c), w_(w) {}

  ir::Tensor weight(const std::string& name, std::vector<int64_t> shape) {
    return w_.get(name, shape, exporter::WeightKind::kMatrix);
  }
  Vec dense(const Vec& x, int64_t rows, const std::string& p, int64_t in, int64_t out, bool bias = true) {
    ir::Tensor w = weight(p + ".weight", {out, in});
    ir::Tensor b = bias ? weight(p + ".bias", {out}) : ir::Tensor();
    return linear(x, rows, w, bias ? &b : nullptr);
  }
  Vec norm(const Vec& x, int64_t rows, const std::string& p) {
    return layer_norm(x, rows, w_.get(p + ".weight", {c_.hidden_size}, exporter::WeightKind::kNormScale),
                      w_.get(p + ".bias", {c_.hidden_size}, exporter::WeightKind::kNormBias), c_.layer_norm_eps);
  }
  // Self-attention over one sequence of `s` tokens; key j is skipped where keep[j] is false.
  Vec attention(const Vec& x, int64_t s, const exporter::LayerParams& p, const std::vector<bool>& keep) {
    const int64_t h = c_.hidden_size, nh = c_.num_heads, d = c_.head_size();
    const bool bias = !c_.is_vision() || c_.qkv_bias;
    Vec q = dense(x, s, p.query, h, h, bias), k = dense(x, s, p.key, h, h, bias), v = dense(x, s, p.value, h, h, bias);
    Vec ctx(s * h, 0.0f);
    for (int64_t head = 0; head < nh; ++head)
      for (int64_t i = 0; i < s; ++i) {
        std::vector<double> score(s, -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < s; ++j) {
          if (!keep[j]) continue;
          double acc = 0;
          for (int64_t e = 0; e < d; ++e) acc += double(q[i * h + head * d + e]) * k[j * h + head * d + e];
          score[j] = acc / std::sqrt(double(d));
          mx = std::max(mx, score[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < s; ++j) sum += keep[j] ? std::exp(score[j] - mx) : 0.0;
        for (int64_t j = 0; j < s; ++j) {
          if (!keep[j]) continue;
          double pj = std::exp(score[j] - mx) / sum;
          for (int64_t e = 0; e < d; ++e) ctx[i * h + head * d + e] += static_cast<float>(pj * v[j * h + head * d + e]);
        }
      }
    return dense(ctx, s, p.attention_output, h, h);
  }
  Vec ffn(const Vec& x, int64_t s, const exporter::LayerParams& p) {
    Vec up = dense(x, s, p.intermediate, c_.hidden_size, c_.intermediate_size);
    for (float& v : up) v = activate(v, c_.hidden_act);
    return dense(up, s, p.output, c_.intermediate_size, c_.hidden_size);
  }
  static Vec add(Vec a, const Vec& b) {
    for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
    return a;
  }
  Vec pooler(const Vec& x) {
    Vec first(x.begin(), x.begin() + c_.hidden_size);
    Vec y = dense(first, 1, "pooler.dense", c_.hidden_size, c_.hidden_size);
    for (float& v : y) v = std::tanh(v);
    return y;
  }

  const TransformerConfig& c_;
  exporter::WeightSource& w_;
};

exporter::LayerParams bert_params(const TransformerConfig& c, int64_t i) {
  std::string l = (c.family == Family::kDistilBert ? "transformer.layer." : "encoder.layer.") + std::to_string(i) + ".";
  if (c.family == Family::kDistilBert)
    return {l + "attention.q_lin", l + "attention.k_lin", l + "attention.v_lin", l + "attention.out_lin",
            l + "ffn.lin1",        l + "ffn.lin2",        l + "sa_layer_norm",   l + "output_layer_norm"};
  if (c.family == Family::kVit)
    return {l + "attention.attention.query", l + "attention.attention.key", l + "attention.attention.value",
            l + "attention.output.dense",    l + "intermediate.dense",      l + "output.dense",
            l + "layernorm_before",          l + "layernorm_after"};
  return {l + "attention.self.query",       l + "attention.self.key", l + "attention.self.value",
          l + "attention.output.dense",     l + "intermediate.dense", l + "output.dense",
          l + "attention.output.LayerNorm", l + "output.LayerNorm"};
}

// Outputs of one batch row: last_hidden_state then pooler_output.
std::pair<Vec, Vec> bert_reference(Reference& ref, const ir::Tensor& ids, const ir::Tensor& mask,
                                   const ir::Tensor* types, int64_t row) {
  const TransformerConfig& c = ref.c_;
  const int64_t s = ids.dim(1), h = c.hidden_size;
  ir::Tensor word = ref.weight("embeddings.word_embeddings.weight", {c.vocab_size, h});
  ir::Tensor pos = ref.weight("embeddings.position_embeddings.weight", {c.max_position_embeddings, h});
  ir::Tensor type =
      types ? ref.weight("embeddings.token_type_embeddings.weight", {c.type_vocab_size, h}) : ir::Tensor();
  Vec x(s * h);
  std::vector<bool> keep(s);
  for (int64_t t = 0; t < s; ++t) {
    int64_t id = ids.data<int64_t>()[row * s + t];
    int64_t tt = types ? types->data<int64_t>()[row * s + t] : 0;
    keep[t] = mask.data<int64_t>()[row * s + t] != 0;
    for (int64_t e = 0; e < h; ++e)
      x[t * h + e] = word.data<float>()[id * h + e] + pos.data<float>()[t * h + e] +
                     (types ? type.data<float>()[tt * h + e] : 0.0f);
  }
  x = ref.norm(x, s, "embeddings.LayerNorm");
  for (int64_t l = 0; l < c.num_layers; ++l) {
    exporter::LayerParams p = bert_params(c, l);
    x = ref.norm(Reference::add(ref.attention(x, s, p, keep), x), s, p.norm_1);
    x = ref.norm(Reference::add(ref.ffn(x, s, p), x), s, p.norm_2);
  }
  return {x, c.pooler ? ref.pooler(x) : Vec()};
}

std::pair<Vec, Vec> vit_reference(Reference& ref, const ir::Tensor& pixels, int64_t row) {
  const TransformerConfig& c = ref.c_;
  const int64_t h = c.hidden_size, ps = c.patch_size, side = c.image_size / ps, s = c.num_patches() + 1;
  const int64_t ch = c.num_channels, img = c.image_size;
  ir::Tensor kernel = ref.weight("embeddings.patch_embeddings.projection.weight", {h, ch, ps, ps});
  ir::Tensor kbias = ref.weight("embeddings.patch_embeddings.projection.bias", {h});
  ir::Tensor cls = ref.weight("embeddings.cls_token", {1, 1, h});
  ir::Tensor pos = ref.weight("embeddings.position_embeddings", {1, s, h});
  Vec x(s * h);
  for (int64_t e = 0; e < h; ++e) x[e] = cls.data<float>()[e];
  for (int64_t py = 0; py < side; ++py)
    for (int64_t px = 0; px < side; ++px)
      for (int64_t o = 0; o < h; ++o) {
        double acc = kbias.data<float>()[o];
        for (int64_t k = 0; k < ch; ++k)
          for (int64_t ky = 0; ky < ps; ++ky)
            for (int64_t kx = 0; kx < ps; ++kx)
              acc += double(kernel.data<float>()[((o * ch + k) * ps + ky) * ps + kx]) *
                     pixels.data<float>()[((row * ch + k) * img + py * ps + ky) * img + px * ps + kx];
        x[(1 + py * side + px) * h + o] = static_cast<float>(acc);
      }
  for (int64_t i = 0; i < s * h; ++i) x[i] += pos.data<float>()[i];
  std::vector<bool> keep(s, true);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    exporter::LayerParams p = bert_params(c, l);
    x = Reference::add(ref.attention(ref.norm(x, s, p.norm_1), s, p, keep), x);
    x = Reference::add(ref.ffn(ref.norm(x, s, p.norm_2), s, p), x);
  }
  x = ref.norm(x, s, "layernorm");
  return {x, c.pooler ? ref.pooler(x) : Vec()};
}

TransformerConfig tiny_text(Family family, const std::string& act) {
  TransformerConfig c;
  c.family = family;
  c.name = "tiny";
  c.hidden_size = 16;
  c.num_layers = 2;
  c.num_heads = 4;
  c.intermediate_size = 24;
  c.hidden_act = act;
  c.layer_norm_eps = 1e-5;
  c.vocab_size = 40;
  c.max_position_embeddings = 12;
  c.type_vocab_size = family == Family::kDistilBert ? 0 : 3;
  c.pooler = family != Family::kDistilBert;
  return c;
}

TransformerConfig tiny_vision(bool qkv_bias) {
  TransformerConfig c;
  c.family = Family::kVit;
  c.name = "tiny-vit";
  c.hidden_size = 12;
  c.num_layers = 2;
  c.num_heads = 3;
  c.intermediate_size = 20;
  c.image_size = 8;
  c.patch_size = 4;
  c.num_channels = 3;
  c.qkv_bias = qkv_bias;
  return c;
}

void expect_matches(const Vec& want, const ir::Tensor& got, int64_t offset, const std::string& what) {
  int64_t bad = 0;
  double max_diff = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    double d = std::fabs(double(got.data<float>()[offset + i]) - want[i]);
    max_diff = std::max(max_diff, d);
    if (!(d <= 1e-5 + 1e-4 * std::fabs(want[i]))) ++bad;
  }
  EXPECT_EQ(bad, 0) << what << ": max |diff| " << max_diff;
}

struct TextCase {
  Family family;
  std::string act;
  int64_t opset;
};

class ExportText : public ::testing::TestWithParam<TextCase> {};

TEST_P(ExportText, MatchesLoopReference) {
  const TextCase& tc = GetParam();
  TransformerConfig c = tiny_text(tc.family, tc.act);
  auto weights = exporter::random_weights(11);
  exporter::ExportOptions options;
  options.opset = tc.opset;
  ir::Model model = exporter::export_model(c, *weights, options).model;
  EXPECT_EQ(model.opset(""), tc.opset);
  const int64_t b = 2, s = 7;
  ir::Tensor ids(ir::DType::kInt64, {b, s}), mask(ir::DType::kInt64, {b, s}), types(ir::DType::kInt64, {b, s});
  for (int64_t i = 0; i < b * s; ++i) {
    ids.data<int64_t>()[i] = (i * 7 + 3) % c.vocab_size;
    mask.data<int64_t>()[i] = (i >= s && i % s >= 4) ? 0 : 1;  // the second row is padded after 4 tokens
    types.data<int64_t>()[i] = (i % s) / 3;
  }
  std::unordered_map<std::string, ir::Datum> feeds = {{"input_ids", ids}, {"attention_mask", mask}};
  if (c.type_vocab_size > 0) feeds["token_type_ids"] = types;
  std::vector<ir::Datum> outs = run_model(std::move(model), feeds);
  ASSERT_EQ(outs.size(), c.pooler ? 2u : 1u);
  EXPECT_EQ(outs[0].tensor.shape(), (std::vector<int64_t>{b, s, c.hidden_size}));
  auto source = exporter::random_weights(11);
  Reference ref(c, *source);
  for (int64_t row = 0; row < b; ++row) {
    auto [hidden, pooled] = bert_reference(ref, ids, mask, c.type_vocab_size > 0 ? &types : nullptr, row);
    expect_matches(hidden, outs[0].tensor, row * s * c.hidden_size, "last_hidden_state row " + std::to_string(row));
    if (c.pooler) expect_matches(pooled, outs[1].tensor, row * c.hidden_size, "pooler_output");
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, ExportText,
                         ::testing::Values(TextCase{Family::kBert, "gelu", 14}, TextCase{Family::kBert, "gelu_new", 14},
                                           TextCase{Family::kBert, "relu", 17}, TextCase{Family::kBert, "gelu", 18},
                                           TextCase{Family::kDistilBert, "gelu", 14},
                                           TextCase{Family::kBert, "gelu_pytorch_tanh", 21}),
                         [](const auto& info) {
                           std::string act = info.param.act;
                           for (char& ch : act)
                             if (ch == '_') ch = 'X';
                           return std::string(exporter::family_name(info.param.family)) + "_" + act + "_opset" +
                                  std::to_string(info.param.opset);
                         });

class ExportVision : public ::testing::TestWithParam<std::pair<bool, int64_t>> {};

TEST_P(ExportVision, MatchesLoopReference) {
  TransformerConfig c = tiny_vision(GetParam().first);
  auto weights = exporter::random_weights(5);
  exporter::ExportOptions options;
  options.opset = GetParam().second;
  ir::Model model = exporter::export_model(c, *weights, options).model;
  const int64_t b = 2, s = c.num_patches() + 1;
  ir::Tensor pixels(ir::DType::kFloat32, {b, c.num_channels, c.image_size, c.image_size});
  for (int64_t i = 0; i < pixels.numel(); ++i) pixels.data<float>()[i] = std::sin(0.37f * i);
  std::vector<ir::Datum> outs = run_model(std::move(model), {{"pixel_values", pixels}});
  ASSERT_EQ(outs.size(), 2u);
  EXPECT_EQ(outs[0].tensor.shape(), (std::vector<int64_t>{b, s, c.hidden_size}));
  EXPECT_EQ(outs[1].tensor.shape(), (std::vector<int64_t>{b, c.hidden_size}));
  auto source = exporter::random_weights(5);
  Reference ref(c, *source);
  for (int64_t row = 0; row < b; ++row) {
    auto [hidden, pooled] = vit_reference(ref, pixels, row);
    expect_matches(hidden, outs[0].tensor, row * s * c.hidden_size, "last_hidden_state");
    expect_matches(pooled, outs[1].tensor, row * c.hidden_size, "pooler_output");
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, ExportVision,
                         ::testing::Values(std::make_pair(true, int64_t{14}), std::make_pair(false, int64_t{17})));

// Remembers every parameter the exporter asked for, so a test can write them out as a checkpoint.
class RecordingWeights : public exporter::WeightSource {
 public:
  explicit RecordingWeights(uint64_t seed) : inner_(exporter::random_weights(seed)) {}
  ir::Tensor get(const std::string& name, const std::vector<int64_t>& shape, exporter::WeightKind kind) override {
    ir::Tensor t = inner_->get(name, shape, kind);
    seen.emplace_back(name, t);
    return t;
  }
  bool has(const std::string& name) const override { return true; }
  std::vector<std::pair<std::string, ir::Tensor>> seen;

 private:
  std::unique_ptr<exporter::WeightSource> inner_;
};

// A checkpoint written with Hugging Face's names (and a task-head prefix) and read back through
// config.json gives the same model as the weights it was written from: every family's parameter
// names and config fields are read as Hugging Face writes them.
TEST(Export, CheckpointNamesAndConfigFieldsOfEveryFamily) {
  struct Case {
    std::string config_json, prefix;
    Family family;
  };
  const std::vector<Case> cases = {
      {R"({"model_type": "vit", "hidden_size": 12, "num_hidden_layers": 2, "num_attention_heads": 3,
           "intermediate_size": 20, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": 8,
           "patch_size": 4, "num_channels": 3, "qkv_bias": false})",
       "vit.", Family::kVit},
      {R"({"model_type": "distilbert", "dim": 16, "n_layers": 2, "n_heads": 4, "hidden_dim": 24,
           "activation": "gelu", "vocab_size": 128, "max_position_embeddings": 12})",
       "distilbert.", Family::kDistilBert},
      {R"({"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
           "intermediate_size": 24, "hidden_act": "gelu_new", "vocab_size": 128, "max_position_embeddings": 12,
           "type_vocab_size": 1, "layer_norm_eps": 1e-7})",
       "", Family::kBert},
  };
  for (const Case& tc : cases) {
    testing::TempDir dir;
    testing::write_file(dir.file("config.json"), tc.config_json);
    TransformerConfig config =
        exporter::read_config(dir.file("config.json"), tc.family == Family::kVit ? Family::kVit : Family::kBert);
    EXPECT_EQ(config.family, tc.family);
    RecordingWeights recorder(9);
    ir::Model direct = exporter::export_model(config, recorder).model;
    std::vector<std::pair<std::string, ir::Tensor>> tensors;
    for (const auto& [name, t] : recorder.seen) tensors.emplace_back(tc.prefix + name, t);
    io::write_safetensors(dir.file("model.safetensors"), tensors);
    auto from_file = exporter::checkpoint_weights(dir.file("model.safetensors"), config.family);
    exporter::ExportResult r = exporter::export_model(config, *from_file);
    EXPECT_TRUE(r.skipped_tensors.empty()) << r.skipped_tensors.size();

    std::unordered_map<std::string, ir::Datum> feeds;
    runtime::Session session(std::move(direct));
    for (size_t i = 0; i < session.inputs().size(); ++i)
      feeds[session.inputs()[i].name] =
          runtime::random_input(session.inputs()[i], {{"batch", 2}, {"sequence", 5}}, 100 + i);
    std::vector<ir::Datum> want = session.run(feeds);
    std::vector<ir::Datum> got = run_model(std::move(r.model), feeds);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(got[i].tensor.bitwise_equal(want[i].tensor)) << exporter::family_name(tc.family) << " output " << i;
  }
}

TEST(Export, RandomWeightsDependOnSeedAndName) {
  auto a = exporter::random_weights(1), b = exporter::random_weights(1), c = exporter::random_weights(2);
  ir::Tensor x = a->get("w", {300, 300}, exporter::WeightKind::kMatrix);
  EXPECT_TRUE(x.bitwise_equal(b->get("w", {300, 300}, exporter::WeightKind::kMatrix)));
  EXPECT_FALSE(x.bitwise_equal(c->get("w", {300, 300}, exporter::WeightKind::kMatrix)));
  EXPECT_FALSE(x.bitwise_equal(a->get("v", {300, 300}, exporter::WeightKind::kMatrix)));
  // std 0.02 around 0; LayerNorm scales around 1 but not 1; biases not 0.
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    sum += x.data<float>()[i];
    sq += double(x.data<float>()[i]) * x.data<float>()[i];
  }
  EXPECT_NEAR(sum / x.numel(), 0.0, 1e-3);
  EXPECT_NEAR(std::sqrt(sq / x.numel()), 0.02, 1e-3);
  ir::Tensor scale = a->get("g", {64}, exporter::WeightKind::kNormScale);
  ir::Tensor bias = a->get("b", {64}, exporter::WeightKind::kBias);
  int64_t unit = 0, zero = 0;
  for (int64_t i = 0; i < 64; ++i) {
    unit += scale.data<float>()[i] == 1.0f;
    zero += bias.data<float>()[i] == 0.0f;
    EXPECT_NEAR(scale.data<float>()[i], 1.0, 0.5);
  }
  EXPECT_EQ(unit, 0);
  EXPECT_EQ(zero, 0);
}

TEST(Export, ConfigErrorsNameTheField) {
  testing::TempDir dir;
  auto expect_error = [&](const std::string& json, const std::string& needle) {
    testing::write_file(dir.file("config.json"), json);
    try {
      exporter::read_config(dir.file("config.json"), Family::kBert);
      ADD_FAILURE() << "no error for " << json;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::string base =
      R"("vocab_size": 10, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8)";
  expect_error("{" + base + "}", "required field \"hidden_size\" is missing");
  expect_error(R"({"hidden_size": "big", )" + base + "}", "field \"hidden_size\" must be an integer");
  expect_error(R"({"hidden_size": 9, )" + base + "}", "hidden_size 9 is not a multiple of num_attention_heads 2");
  expect_error(R"({"hidden_size": 8, "hidden_act": "swish", )" + base + "}", "hidden_act \"swish\" is not supported");
  expect_error(R"({"model_type": "gpt2", "hidden_size": 8, )" + base + "}", "model_type \"gpt2\" is not a BERT model");
  expect_error("[1, 2]", "must be a JSON object");
  expect_error("{not json", "not valid JSON");
  EXPECT_THROW(exporter::preset_config("bert-huge"), Error);
}

TEST(Export, EveryPresetIsKnown) {
  for (const std::string& name : exporter::preset_names()) {
    TransformerConfig c = exporter::preset_config(name);
    EXPECT_NO_THROW(c.validate()) << name;
  }
  EXPECT_EQ(exporter::preset_names().size(), 7u);
}

}  // namespace
}  // namespace kiln

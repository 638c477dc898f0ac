#include "export/cnn_export.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "common/error.h"
#include "export/graph_builder.h"
#include "export/weight_source.h"

namespace kiln::exporter {

namespace {

// Parameters drawn from the exporters' seeded source (weight_source.h), whose normal values have a
// fixed standard deviation of 0.02 and are the same on every platform; rescaled here to each layer's.
class CnnWeights {
 public:
  explicit CnnWeights(uint64_t seed) : source_(random_weights(seed)) {}

  ir::Tensor normal(const std::string& name, const std::vector<int64_t>& shape, float mean, float stddev) {
    ir::Tensor t = source_->get(name, shape, WeightKind::kMatrix);
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = mean + p[i] * (stddev / kSourceStddev);
    return t;
  }

  // exp of a normal: positive, spread around `median` like a trained net's running variances.
  ir::Tensor log_normal(const std::string& name, const std::vector<int64_t>& shape, float median, float spread) {
    ir::Tensor t = normal(name, shape, 0.0f, spread);
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = median * std::exp(p[i]);
    return t;
  }

 private:
  static constexpr float kSourceStddev = 0.02f;
  std::unique_ptr<WeightSource> source_;
};

// Writes torchvision's layers as torch.onnx.export names them: nodes "/features/features.1/block/..."
// from the scopes the caller opens, parameters "<module>.weight" etc.
class CnnWriter {
 public:
  CnnWriter(ir::Graph& graph, uint64_t seed) : b_(graph), weights_(seed) {}

  GraphBuilder& builder() { return b_; }

  // nn.Conv2d with padding (k - 1) / 2, He-normal weights over the fan-in (kaiming_normal_, as for a ReLU);
  // a bias (torch's default uniform init, as a normal of the same variance) where the module has one.
  std::string conv(const std::string& x, const std::string& module, int64_t in, int64_t out, int64_t kernel,
                   int64_t stride, int64_t groups = 1, bool bias = false) {
    const int64_t fan_in = in / groups * kernel * kernel;
    const float he = std::sqrt(2.0f / static_cast<float>(fan_in));
    std::vector<std::string> inputs = {
        x, b_.initializer(module + ".weight",
                          weights_.normal(module + ".weight", {out, in / groups, kernel, kernel}, 0.0f, he))};
    if (bias)
      inputs.push_back(
          b_.initializer(module + ".bias", weights_.normal(module + ".bias", {out}, 0.0f, torch_std(fan_in))));
    const int64_t pad = (kernel - 1) / 2;
    return b_.add(
        "Conv", inputs,
        {ints_attr("dilations", {1, 1}), int_attr("group", groups), ints_attr("kernel_shape", {kernel, kernel}),
         ints_attr("pads", {pad, pad, pad, pad}), ints_attr("strides", {stride, stride})});
  }

  // nn.BatchNorm2d in eval mode with running statistics like a trained net's. `scale` is the typical
  // gamma: 1, or small (0.2) on the last BN of a residual branch, as training leaves them, so that the
  // sum of 16 residual branches stays in range.
  std::string batch_norm(const std::string& x, const std::string& module, int64_t channels, float scale = 1.0f) {
    std::vector<std::string> inputs = {
        x, b_.initializer(module + ".weight", weights_.normal(module + ".weight", {channels}, scale, 0.1f * scale)),
        b_.initializer(module + ".bias", weights_.normal(module + ".bias", {channels}, 0.0f, 0.1f)),
        b_.initializer(module + ".running_mean", weights_.normal(module + ".running_mean", {channels}, 0.0f, 0.1f)),
        b_.initializer(module + ".running_var", weights_.log_normal(module + ".running_var", {channels}, 1.0f, 0.3f))};
    return b_.add("BatchNormalization", inputs, {float_attr("epsilon", 1e-5f), float_attr("momentum", 0.9f)});
  }

  // nn.Linear as Gemm(x, W^T, b), torch's default init (uniform, here a normal of the same variance).
  std::string linear(const std::string& x, const std::string& module, int64_t in, int64_t out) {
    const float s = torch_std(in);
    return b_.add("Gemm",
                  {x, b_.initializer(module + ".weight", weights_.normal(module + ".weight", {out, in}, 0.0f, s)),
                   b_.initializer(module + ".bias", weights_.normal(module + ".bias", {out}, 0.0f, s))},
                  {float_attr("alpha", 1.0f), float_attr("beta", 1.0f), int_attr("transB", 1)});
  }

  // A one-node module (an activation, a pool) in its own scope, as torch names it.
  std::string op(const std::string& scope, const std::string& op_type, std::vector<std::string> inputs,
                 std::vector<ir::Attribute> attributes = {}) {
    Scope s(b_, scope);
    return b_.add(op_type, std::move(inputs), std::move(attributes));
  }

 private:
  // The standard deviation of torch's default uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  static float torch_std(int64_t fan_in) { return 1.0f / std::sqrt(3.0f * static_cast<float>(fan_in)); }

  GraphBuilder b_;
  CnnWeights weights_;
};

// ---- ResNet-50 (torchvision.models.resnet50: Bottleneck blocks, stride on the 3x3 conv) -------------

std::string bottleneck(CnnWriter& w, const std::string& x, const std::string& module, int64_t in, int64_t planes,
                       int64_t stride) {
  GraphBuilder& b = w.builder();
  Scope scope(b, module);
  const int64_t out = planes * 4;
  std::string y;
  {
    Scope s(b, "conv1");
    y = w.conv(x, module + ".conv1", in, planes, 1, 1);
  }
  {
    Scope s(b, "bn1");
    y = w.batch_norm(y, module + ".bn1", planes);
  }
  y = w.op("relu", "Relu", {y});
  {
    Scope s(b, "conv2");
    y = w.conv(y, module + ".conv2", planes, planes, 3, stride);
  }
  {
    Scope s(b, "bn2");
    y = w.batch_norm(y, module + ".bn2", planes);
  }
  y = w.op("relu_1", "Relu", {y});
  {
    Scope s(b, "conv3");
    y = w.conv(y, module + ".conv3", planes, out, 1, 1);
  }
  {
    Scope s(b, "bn3");
    y = w.batch_norm(y, module + ".bn3", out, 0.2f);
  }
  std::string identity = x;
  if (stride != 1 || in != out) {
    Scope s(b, "downsample");
    {
      Scope s0(b, "downsample.0");
      identity = w.conv(x, module + ".downsample.0", in, out, 1, stride);
    }
    Scope s1(b, "downsample.1");
    identity = w.batch_norm(identity, module + ".downsample.1", out);
  }
  y = b.add("Add", {y, identity});
  return w.op("relu_2", "Relu", {y});
}

std::string write_resnet50(CnnWriter& w, const CnnOptions& o) {
  GraphBuilder& b = w.builder();
  std::string x = "input";
  {
    Scope s(b, "conv1");
    x = w.conv(x, "conv1", 3, 64, 7, 2);
  }
  {
    Scope s(b, "bn1");
    x = w.batch_norm(x, "bn1", 64);
  }
  x = w.op("relu", "Relu", {x});
  x = w.op("maxpool", "MaxPool", {x},
           {int_attr("ceil_mode", 0), ints_attr("dilations", {1, 1}), ints_attr("kernel_shape", {3, 3}),
            ints_attr("pads", {1, 1, 1, 1}), ints_attr("strides", {2, 2})});
  int64_t in = 64;
  for (size_t stage = 0; stage < o.resnet_blocks.size(); ++stage) {
    const std::string layer = "layer" + std::to_string(stage + 1);
    Scope s(b, layer);
    const int64_t planes = int64_t{64} << stage;
    for (int64_t block = 0; block < o.resnet_blocks[stage]; ++block) {
      const int64_t stride = stage > 0 && block == 0 ? 2 : 1;
      x = bottleneck(w, x, layer + "." + std::to_string(block), in, planes, stride);
      in = planes * 4;
    }
  }
  x = w.op("avgpool", "GlobalAveragePool", {x});
  x = b.add("Flatten", {x}, {int_attr("axis", 1)});
  {
    Scope s(b, "fc");
    w.linear(x, "fc", in, o.num_classes);
  }
  return "output";
}

// ---- MobileNetV3-Small (torchvision.models.mobilenet_v3_small) -----------------------------------------

// One row of torchvision's inverted residual settings for mobilenet_v3_small.
struct InvertedResidual {
  int64_t in, kernel, expanded, out;
  bool se;
  bool hardswish;  // else ReLU
  int64_t stride;
};

constexpr InvertedResidual kMobileNetV3Small[] = {
    {16, 3, 16, 16, true, false, 2}, {16, 3, 72, 24, false, false, 2}, {24, 3, 88, 24, false, false, 1},
    {24, 5, 96, 40, true, true, 2},  {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
    {40, 5, 120, 48, true, true, 1}, {48, 5, 144, 48, true, true, 1},  {48, 5, 288, 96, true, true, 2},
    {96, 5, 576, 96, true, true, 1}, {96, 5, 576, 96, true, true, 1},
};

// torchvision's _make_divisible(v, 8): the nearest multiple of 8, never below 90 % of v.
int64_t make_divisible(int64_t v) {
  int64_t d = std::max<int64_t>(8, (v + 4) / 8 * 8);
  return d < v * 9 / 10 ? d + 8 : d;
}

// Conv2dNormActivation: Conv (no bias), BatchNorm, then the activation (none for a projection), as the
// modules "<module>.0", ".1", ".2". `scope` is the module's own scope name ("features.0", "block.1"):
// torch names a Sequential's children after the Sequential.
std::string conv_norm_act(CnnWriter& w, const std::string& x, const std::string& module, const std::string& scope,
                          int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups,
                          const char* activation, float bn_scale = 1.0f) {
  GraphBuilder& b = w.builder();
  Scope outer(b, scope);
  std::string y;
  {
    Scope s(b, scope + ".0");
    y = w.conv(x, module + ".0", in, out, kernel, stride, groups);
  }
  {
    Scope s(b, scope + ".1");
    y = w.batch_norm(y, module + ".1", out, bn_scale);
  }
  if (activation) y = w.op(scope + ".2", activation, {y});
  return y;
}

std::string squeeze_excite(CnnWriter& w, const std::string& x, const std::string& module, const std::string& scope,
                           int64_t channels) {
  GraphBuilder& b = w.builder();
  Scope outer(b, scope);
  const int64_t squeezed = make_divisible(channels / 4);
  std::string s = w.op("avgpool", "GlobalAveragePool", {x});
  {
    Scope f(b, "fc1");
    s = w.conv(s, module + ".fc1", channels, squeezed, 1, 1, 1, true);
  }
  s = w.op("activation", "Relu", {s});
  {
    Scope f(b, "fc2");
    s = w.conv(s, module + ".fc2", squeezed, channels, 1, 1, 1, true);
  }
  s = w.op("scale_activation", "HardSigmoid", {s}, {float_attr("alpha", 1.0f / 6.0f), float_attr("beta", 0.5f)});
  return b.add("Mul", {s, x});
}

// InvertedResidual "features.<index>": its layers in the Sequential "block", the residual Add outside it.
std::string inverted_residual(CnnWriter& w, const std::string& x, int index, const InvertedResidual& c) {
  GraphBuilder& b = w.builder();
  const std::string module = "features." + std::to_string(index);
  Scope scope(b, module);
  const char* act = c.hardswish ? "HardSwish" : "Relu";
  const bool residual = c.stride == 1 && c.in == c.out;
  std::string y = x;
  {
    Scope block(b, "block");
    int sub = 0;
    auto next = [&] { return std::to_string(sub++); };
    if (c.expanded != c.in) {
      const std::string i = next();
      y = conv_norm_act(w, y, module + ".block." + i, "block." + i, c.in, c.expanded, 1, 1, 1, act);
    }
    std::string i = next();
    y = conv_norm_act(w, y, module + ".block." + i, "block." + i, c.expanded, c.expanded, c.kernel, c.stride,
                      c.expanded, act);
    if (c.se) {
      i = next();
      y = squeeze_excite(w, y, module + ".block." + i, "block." + i, c.expanded);
    }
    i = next();
    // The last BN of a residual branch has small scales in a trained net (see batch_norm).
    y = conv_norm_act(w, y, module + ".block." + i, "block." + i, c.expanded, c.out, 1, 1, 1, nullptr,
                      residual ? 0.2f : 1.0f);
  }
  if (residual) y = b.add("Add", {y, x});
  return y;
}

std::string write_mobilenet_v3(CnnWriter& w, const CnnOptions& o) {
  GraphBuilder& b = w.builder();
  std::string x = "input";
  {
    Scope f(b, "features");
    x = conv_norm_act(w, x, "features.0", "features.0", 3, 16, 3, 2, 1, "HardSwish");
    int index = 1;
    for (const InvertedResidual& c : kMobileNetV3Small) x = inverted_residual(w, x, index++, c);
    const std::string last = "features." + std::to_string(index);
    x = conv_norm_act(w, x, last, last, 96, 576, 1, 1, 1, "HardSwish");
  }
  x = w.op("avgpool", "GlobalAveragePool", {x});
  x = b.add("Flatten", {x}, {int_attr("axis", 1)});
  Scope classifier(b, "classifier");
  {
    Scope s(b, "classifier.0");
    x = w.linear(x, "classifier.0", 576, 1024);
  }
  x = w.op("classifier.1", "HardSwish", {x});
  // classifier.2 is Dropout, which torch does not export in eval mode.
  Scope s(b, "classifier.3");
  w.linear(x, "classifier.3", 1024, o.num_classes);
  return "output";
}

}  // namespace

std::optional<CnnFamily> cnn_family_of(const std::string& name) {
  if (name == "resnet50") return CnnFamily::kResNet50;
  if (name == "mobilenetv3") return CnnFamily::kMobileNetV3;
  return std::nullopt;
}

const char* cnn_family_name(CnnFamily family) { return family == CnnFamily::kResNet50 ? "resnet50" : "mobilenetv3"; }

ir::Model export_cnn(CnnFamily family, const CnnOptions& o) {
  if (o.opset < 14 || o.opset > 21) fail("--opset ", o.opset, " is not supported for CNNs (14 to 21: HardSwish is 14)");
  if (o.image_size < 32 || o.image_size > 4096) fail("image size ", o.image_size, " is outside 32 to 4096");
  if (o.num_classes < 1) fail("the number of classes must be positive, got ", o.num_classes);
  if (o.resnet_blocks.empty() || o.resnet_blocks.size() > 4)
    fail("a ResNet has 1 to 4 stages, got ", o.resnet_blocks.size());
  for (int64_t n : o.resnet_blocks)
    if (n < 1 || n > 64) fail("a ResNet stage has 1 to 64 blocks, got ", n);
  ir::Model m;
  m.ir_version = ir_version_for(o.opset);
  m.opset_imports[""] = o.opset;
  m.producer_name = "kiln";
  m.producer_version = "0.1.0";
  m.graph.name = std::string(cnn_family_name(family)) + "_graph";
  m.graph.inputs.push_back(
      tensor_value("input", ir::DType::kFloat32,
                   {ir::Dim::symbolic("batch"), ir::Dim(3), ir::Dim(o.image_size), ir::Dim(o.image_size)}));
  CnnWriter w(m.graph, o.seed);
  if (family == CnnFamily::kResNet50)
    write_resnet50(w, o);
  else
    write_mobilenet_v3(w, o);
  m.graph.nodes.back().outputs[0] = "output";
  m.graph.outputs.push_back(
      tensor_value("output", ir::DType::kFloat32, {ir::Dim::symbolic("batch"), ir::Dim(o.num_classes)}));

  auto meta = [&](const std::string& k, const std::string& v) { m.metadata_props.emplace_back(k, v); };
  meta("kiln.export.family", cnn_family_name(family));
  meta("kiln.export.weights", "random, seed " + std::to_string(o.seed));
  meta("kiln.export.image_size", std::to_string(o.image_size));
  if (family == CnnFamily::kResNet50) {
    std::string blocks;
    for (int64_t n : o.resnet_blocks) blocks += (blocks.empty() ? "" : ",") + std::to_string(n);
    meta("kiln.export.resnet_blocks", blocks);
  }
  return m;
}

}  // namespace kiln::exporter

#include "export/encoder_layers.h"

#include <cctype>
#include <cmath>

#include "common/error.h"

namespace kiln::exporter {

namespace {

// A 2-D transposed copy: HF stores nn.Linear weights [out, in]; MatMul wants [in, out].
ir::Tensor transposed(const ir::Tensor& w) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  ir::Tensor t(ir::DType::kFloat32, {cols, rows});
  const float* src = w.data<float>();
  float* dst = t.data<float>();
  constexpr int64_t kBlock = 32;  // cache-blocked: rows of both sides stay in L1
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock)
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock)
      for (int64_t r = r0; r < std::min(rows, r0 + kBlock); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + kBlock); ++c) dst[c * rows + r] = src[r * cols + c];
  return t;
}

}  // namespace

LayerParams layer_params(Family family, int64_t i) {
  const std::string n = std::to_string(i);
  switch (family) {
    case Family::kDistilBert: {
      const std::string l = "transformer.layer." + n + ".";
      return {l + "attention.q_lin", l + "attention.k_lin", l + "attention.v_lin", l + "attention.out_lin",
              l + "ffn.lin1",        l + "ffn.lin2",        l + "sa_layer_norm",   l + "output_layer_norm"};
    }
    case Family::kVit: {
      const std::string l = "encoder.layer." + n + ".";
      return {l + "attention.attention.query", l + "attention.attention.key", l + "attention.attention.value",
              l + "attention.output.dense",    l + "intermediate.dense",      l + "output.dense",
              l + "layernorm_before",          l + "layernorm_after"};
    }
    case Family::kBert:
      break;
  }
  const std::string l = "encoder.layer." + n + ".";
  return {l + "attention.self.query",       l + "attention.self.key", l + "attention.self.value",
          l + "attention.output.dense",     l + "intermediate.dense", l + "output.dense",
          l + "attention.output.LayerNorm", l + "output.LayerNorm"};
}

std::string module_scope(const std::string& param) {
  std::string out;
  size_t start = 0;
  while (start <= param.size()) {
    size_t dot = param.find('.', start);
    std::string part = param.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::isdigit(static_cast<unsigned char>(part[0]));
    out += numeric ? "." + part : (out.empty() ? "" : "/") + part;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return out;
}

std::string EncoderWriter::dim(const std::string& x, int64_t i) {
  std::string shape = b_.add("Shape", {x});
  return b_.add("Gather", {shape, b_.constant_int(i)}, {int_attr("axis", 0)});
}

std::string EncoderWriter::unsqueeze(const std::string& x, std::vector<int64_t> axes) {
  return b_.add("Unsqueeze", {x, b_.constant_ints(axes)});
}

std::string EncoderWriter::reduce_mean_last(const std::string& x) {
  if (opset_ >= 18) return b_.add("ReduceMean", {x, b_.constant_ints({-1})});
  return b_.add("ReduceMean", {x}, {ints_attr("axes", {-1})});
}

std::string EncoderWriter::linear(const std::string& x, const std::string& param, int64_t in, int64_t out, bool bias) {
  Scope scope(b_, module_scope(param));
  ir::Tensor w = w_.get(param + ".weight", {out, in}, WeightKind::kMatrix);
  std::string wt = b_.initializer(param + ".weight.T", transposed(w));
  std::string y = b_.add("MatMul", {x, wt});
  if (!bias) return y;
  std::string bname = b_.initializer(param + ".bias", w_.get(param + ".bias", {out}, WeightKind::kBias));
  return b_.add("Add", {bname, y});  // torch writes the bias first
}

std::string EncoderWriter::layer_norm(const std::string& x, const std::string& param) {
  Scope scope(b_, module_scope(param));
  const int64_t h = c_.hidden_size;
  std::string gamma = b_.initializer(param + ".weight", w_.get(param + ".weight", {h}, WeightKind::kNormScale));
  std::string beta = b_.initializer(param + ".bias", w_.get(param + ".bias", {h}, WeightKind::kNormBias));
  const float eps = static_cast<float>(c_.layer_norm_eps);
  if (opset_ >= 17)
    return b_.add("LayerNormalization", {x, gamma, beta}, {int_attr("axis", -1), float_attr("epsilon", eps)});
  std::string mean = reduce_mean_last(x);
  std::string centered = b_.add("Sub", {x, mean});
  std::string sq = b_.add("Pow", {centered, b_.constant_float(2.0f)});
  std::string var = reduce_mean_last(sq);
  std::string var_eps = b_.add("Add", {var, b_.constant_float(eps)});
  std::string stddev = b_.add("Sqrt", {var_eps});
  std::string normed = b_.add("Div", {centered, stddev});
  std::string scaled = b_.add("Mul", {normed, gamma});
  return b_.add("Add", {scaled, beta});
}

std::string EncoderWriter::activation(const std::string& x) {
  if (c_.hidden_act == "relu") return b_.add("Relu", {x});
  if (c_.hidden_act == "gelu") {
    // 0.5 * x * (1 + erf(x / sqrt(2)))
    std::string d = b_.add("Div", {x, b_.constant_float(1.41421356237f)});
    std::string e = b_.add("Erf", {d});
    std::string one_plus = b_.add("Add", {e, b_.constant_float(1.0f)});
    std::string m = b_.add("Mul", {x, one_plus});
    return b_.add("Mul", {m, b_.constant_float(0.5f)});
  }
  // gelu_new / gelu_pytorch_tanh: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
  std::string half_x = b_.add("Mul", {b_.constant_float(0.5f), x});
  std::string cube = b_.add("Pow", {x, b_.constant_float(3.0f)});
  std::string scaled_cube = b_.add("Mul", {b_.constant_float(0.044715f), cube});
  std::string inner = b_.add("Add", {x, scaled_cube});
  std::string arg = b_.add("Mul", {b_.constant_float(0.7978845608f), inner});
  std::string th = b_.add("Tanh", {arg});
  std::string one_plus = b_.add("Add", {b_.constant_float(1.0f), th});
  return b_.add("Mul", {half_x, one_plus});
}

std::string EncoderWriter::heads(const std::string& x) {
  std::string batch = unsqueeze(dim(x, 0), {0});
  std::string seq = unsqueeze(dim(x, 1), {0});
  std::string shape =
      b_.add("Concat", {batch, seq, b_.constant_ints({c_.num_heads}), b_.constant_ints({c_.head_size()})},
             {int_attr("axis", 0)});
  return b_.add("Reshape", {x, shape}, {int_attr("allowzero", 0)});
}

std::string EncoderWriter::attention(const std::string& x, const LayerParams& p, const std::string& mask) {
  const int64_t h = c_.hidden_size;
  const bool bias = !c_.is_vision() || c_.qkv_bias;
  std::string q = linear(x, p.query, h, h, bias);
  std::string k = linear(x, p.key, h, h, bias);
  std::string v = linear(x, p.value, h, h, bias);
  std::string context;
  {
    // The per-head ops sit in the scope of the module that holds Q, K and V.
    Scope scope(b_, module_scope(p.query.substr(0, p.query.rfind('.'))));
    std::string qh = b_.add("Transpose", {heads(q)}, {ints_attr("perm", {0, 2, 1, 3})});
    std::string kr = heads(k);
    std::string vh = b_.add("Transpose", {heads(v)}, {ints_attr("perm", {0, 2, 1, 3})});
    std::string kt = b_.add("Transpose", {kr}, {ints_attr("perm", {0, 2, 3, 1})});
    std::string scores = b_.add("MatMul", {qh, kt});
    scores = b_.add("Div", {scores, b_.constant_float(std::sqrt(static_cast<float>(c_.head_size())))});
    if (!mask.empty()) scores = b_.add("Add", {scores, mask});
    std::string probs = b_.add("Softmax", {scores}, {int_attr("axis", -1)});
    std::string ctx = b_.add("MatMul", {probs, vh});
    ctx = b_.add("Transpose", {ctx}, {ints_attr("perm", {0, 2, 1, 3})});
    std::string batch = unsqueeze(dim(ctx, 0), {0});
    std::string seq = unsqueeze(dim(ctx, 1), {0});
    std::string shape = b_.add("Concat", {batch, seq, b_.constant_ints({h})}, {int_attr("axis", 0)});
    context = b_.add("Reshape", {ctx, shape}, {int_attr("allowzero", 0)});
  }
  return linear(context, p.attention_output, h, h);
}

std::string EncoderWriter::ffn(const std::string& x, const LayerParams& p) {
  std::string up = linear(x, p.intermediate, c_.hidden_size, c_.intermediate_size);
  std::string act;
  {
    Scope scope(b_, module_scope(p.intermediate.substr(0, p.intermediate.rfind('.'))));
    act = activation(up);
  }
  return linear(act, p.output, c_.intermediate_size, c_.hidden_size);
}

std::string EncoderWriter::post_norm_layer(const std::string& x, const LayerParams& p, const std::string& mask) {
  std::string attn = attention(x, p, mask);
  std::string h;
  {
    Scope scope(b_, module_scope(p.norm_1.substr(0, p.norm_1.rfind('.'))));
    h = b_.add("Add", {attn, x});
  }
  h = layer_norm(h, p.norm_1);
  std::string f = ffn(h, p);
  std::string y;
  {
    Scope scope(b_, module_scope(p.norm_2.substr(0, p.norm_2.rfind('.'))));
    y = b_.add("Add", {f, h});
  }
  return layer_norm(y, p.norm_2);
}

std::string EncoderWriter::pre_norm_layer(const std::string& x, const LayerParams& p) {
  std::string attn = attention(layer_norm(x, p.norm_1), p, "");
  std::string h;
  {
    Scope scope(b_, module_scope(p.attention_output.substr(0, p.attention_output.rfind('.'))));
    h = b_.add("Add", {attn, x});
  }
  std::string f = ffn(layer_norm(h, p.norm_2), p);
  Scope scope(b_, module_scope(p.output.substr(0, p.output.rfind('.'))));
  return b_.add("Add", {f, h});
}

void EncoderWriter::pooler(const std::string& x, const std::string& param, const std::string& output) {
  const int64_t h = c_.hidden_size;
  Scope scope(b_, module_scope(param.substr(0, param.rfind('.'))));
  std::string first = b_.add("Gather", {x, b_.constant_int(0)}, {int_attr("axis", 1)});
  std::string w = b_.initializer(param + ".weight", w_.get(param + ".weight", {h, h}, WeightKind::kMatrix));
  std::string bias = b_.initializer(param + ".bias", w_.get(param + ".bias", {h}, WeightKind::kBias));
  std::string y;
  {
    Scope dense(b_, "dense");
    y = b_.add("Gemm", {first, w, bias}, {float_attr("alpha", 1.0f), float_attr("beta", 1.0f), int_attr("transB", 1)});
  }
  b_.add_named("Tanh", {y}, output);
}

}  // namespace kiln::exporter

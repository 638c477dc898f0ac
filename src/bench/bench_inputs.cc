#include "bench/bench_inputs.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "common/error.h"
#include "io/npy.h"

namespace kiln::bench {

namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool has(const std::string& lowered, const char* part) { return lowered.find(part) != std::string::npos; }

bool named_like_seq(const std::string& key) {
  std::string k = lower(key);
  return has(k, "seq") || has(k, "length") || has(k, "len");
}

bool named_like_image(const std::string& key) {
  std::string k = lower(key);
  return has(k, "height") || has(k, "width") || has(k, "channel");
}

InputKind kind_of(const ir::ValueInfo& v) {
  std::string n = lower(v.name);
  if (has(n, "mask")) return InputKind::kMask;
  if (!ir::is_integer(v.type.dtype)) return InputKind::kOther;
  if (has(n, "token_type") || has(n, "segment")) return InputKind::kTokenType;
  if (has(n, "position")) return InputKind::kPositionIds;
  return InputKind::kTokenIds;
}

uint32_t le32(const unsigned char* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }
uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint64_t le64(const unsigned char* p) { return le32(p) | static_cast<uint64_t>(le32(p + 4)) << 32; }

}  // namespace

std::string dim_key(const ir::Dim& d, size_t axis) { return d.is_symbolic() ? d.symbol : str("?", axis); }

int64_t vocab_size(const ir::Graph& graph, const std::string& input) {
  // Values carrying the ids unchanged (or reshaped) to the embedding lookup.
  static const std::set<std::string> kPassThrough = {"Cast",    "Reshape",  "Unsqueeze", "Squeeze",
                                                     "Flatten", "Identity", "Expand"};
  std::vector<std::string> frontier = {input};
  std::set<std::string> seen = {input};
  while (!frontier.empty()) {
    std::string v = frontier.back();
    frontier.pop_back();
    for (const ir::Node& n : graph.nodes) {
      if (n.inputs.empty()) continue;
      const bool default_domain = ir::is_default_domain(n.domain);
      if (default_domain && n.op_type == "Gather" && n.inputs.size() >= 2 && n.inputs[1] == v) {
        const ir::Tensor* table = graph.find_initializer(n.inputs[0]);
        if (table && table->rank() == 2) return table->dim(0);
      }
      // ONNX Runtime's fused embedding: input_ids, segment_ids, word_embedding, ...
      if (n.op_type == "EmbedLayerNormalization" && n.inputs[0] == v && n.inputs.size() >= 3) {
        const ir::Tensor* table = graph.find_initializer(n.inputs[2]);
        if (table && table->rank() == 2) return table->dim(0);
      }
      if (default_domain && kPassThrough.count(n.op_type) && n.inputs[0] == v)
        for (const auto& o : n.outputs)
          if (!o.empty() && seen.insert(o).second) frontier.push_back(o);
    }
  }
  return 0;
}

InputPlan plan_inputs(const ir::Graph& graph) {
  InputPlan plan;
  std::vector<std::string> keys;  // dynamic dims in order of appearance
  for (const auto& v : graph.inputs) {
    if (graph.initializers.count(v.name)) continue;
    if (!v.type.is_tensor()) fail("input \"", v.name, "\" is not a tensor; kiln bench generates tensor inputs only");
    if (!v.type.shape)
      fail("input \"", v.name, "\" has no declared shape; give the inputs with --inputs FILE.npz or --input-dir DIR");
    BenchInput in;
    in.info = v;
    in.kind = kind_of(v);
    if (in.kind == InputKind::kTokenIds) {
      in.vocab = vocab_size(graph, v.name);
      if (in.vocab <= 0) {
        in.vocab = kFallbackVocabSize;
        in.vocab_guessed = true;
      }
    }
    for (size_t a = 0; a < v.type.shape->dims.size(); ++a) {
      const ir::Dim& d = v.type.shape->dims[a];
      if (d.is_static()) continue;
      std::string k = dim_key(d, a);
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    }
    plan.inputs.push_back(std::move(in));
  }
  for (const auto& k : keys)
    if (named_like_seq(k)) {
      plan.seq_dim = k;
      break;
    }
  for (const auto& k : keys)
    if (k != plan.seq_dim) {
      plan.batch_dim = k;
      break;
    }
  if (plan.seq_dim.empty())
    for (const auto& k : keys)
      if (k != plan.batch_dim && !named_like_image(k)) {
        plan.seq_dim = k;
        break;
      }
  return plan;
}

std::vector<int64_t> bench_shape(const InputPlan& plan, const BenchInput& input, int64_t batch, int64_t seq) {
  std::vector<int64_t> shape;
  const auto& dims = input.info.type.shape->dims;
  for (size_t a = 0; a < dims.size(); ++a) {
    if (dims[a].is_static()) {
      shape.push_back(dims[a].value);
      continue;
    }
    std::string k = dim_key(dims[a], a);
    shape.push_back(k == plan.batch_dim ? batch : k == plan.seq_dim ? seq : 1);
  }
  return shape;
}

std::vector<ir::Tensor> generate_inputs(const InputPlan& plan, int64_t batch, int64_t seq, uint64_t seed) {
  std::vector<ir::Tensor> out;
  for (size_t i = 0; i < plan.inputs.size(); ++i) {
    const BenchInput& in = plan.inputs[i];
    ir::Tensor t(in.info.type.dtype, bench_shape(plan, in, batch, seq));
    const int64_t last = t.rank() ? t.shape().back() : 1;
    std::mt19937_64 rng(seed + i);
    ir::visit_dtype(t.dtype(), [&]<class T>() {
      T* p = t.data<T>();
      for (int64_t k = 0; k < t.numel(); ++k) {
        if constexpr (std::is_same_v<T, std::string>) {
          p[k] = "";
        } else if constexpr (std::is_same_v<T, bool>) {
          p[k] = true;
        } else if constexpr (std::is_same_v<T, std::complex<float>> || std::is_same_v<T, std::complex<double>>) {
          p[k] = T(0, 0);
        } else if constexpr (std::is_integral_v<T>) {
          switch (in.kind) {
            case InputKind::kMask:
              p[k] = T(1);
              break;
            case InputKind::kPositionIds:
              p[k] = static_cast<T>(k % last);
              break;
            case InputKind::kTokenIds:
              p[k] = static_cast<T>(std::uniform_int_distribution<int64_t>(0, in.vocab - 1)(rng));
              break;
            default:
              p[k] = T(0);
          }
        } else {
          p[k] = in.kind == InputKind::kMask ? T(1.0f)
                                             : T(static_cast<float>(std::normal_distribution<double>(0, 1)(rng)));
        }
      }
    });
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<ir::Tensor> read_input_dir(const InputPlan& plan, const std::string& dir) {
  if (!fs::is_directory(dir)) fail("--input-dir ", dir, ": no such folder");
  std::vector<ir::Tensor> out;
  for (const auto& in : plan.inputs) {
    fs::path p = fs::path(dir) / (io::npy_file_stem(in.info.name) + ".npy");
    if (!fs::exists(p)) fail("--input-dir ", dir, ": no ", p.filename().string(), " for input \"", in.info.name, "\"");
    out.push_back(io::read_npy(p.string()));
  }
  return out;
}

// A zip archive as np.savez writes it: members stored (not compressed), possibly with Zip64 sizes.
std::map<std::string, ir::Tensor> read_npz(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read ", path, ": no such file");
  std::ostringstream buf;
  buf << f.rdbuf();
  const std::string bytes = buf.str();
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t size = bytes.size();
  auto bad = [&](const std::string& why) { fail(path, ": not a valid .npz file (", why, ")"); };

  // End of central directory: 22 bytes plus a comment of up to 64 KiB, at the end of the file.
  size_t eocd = std::string::npos;
  if (size >= 22) {
    const size_t lowest = size - 22 > 0xffff ? size - 22 - 0xffff : 0;
    for (size_t i = size - 22 + 1; i-- > lowest;)
      if (le32(b + i) == 0x06054b50) {
        eocd = i;
        break;
      }
  }
  if (eocd == std::string::npos) bad("no zip directory");
  uint64_t entries = le16(b + eocd + 10);
  uint64_t cd_offset = le32(b + eocd + 16);
  if (cd_offset == 0xffffffff || entries == 0xffff) {
    // Zip64 end of central directory, found through its locator just before the classic record.
    if (eocd < 20 || le32(b + eocd - 20) != 0x07064b50) bad("missing Zip64 locator");
    uint64_t z64 = le64(b + eocd - 20 + 8);
    if (z64 + 56 > size || le32(b + z64) != 0x06064b50) bad("bad Zip64 directory");
    entries = le64(b + z64 + 32);
    cd_offset = le64(b + z64 + 48);
  }

  std::map<std::string, ir::Tensor> out;
  size_t p = cd_offset;
  for (uint64_t e = 0; e < entries; ++e) {
    if (p + 46 > size || le32(b + p) != 0x02014b50) bad("bad directory entry");
    const uint16_t method = le16(b + p + 10);
    uint64_t csize = le32(b + p + 20), usize = le32(b + p + 24);
    const size_t nlen = le16(b + p + 28), xlen = le16(b + p + 30), clen = le16(b + p + 32);
    uint64_t local = le32(b + p + 42);
    if (p + 46 + nlen + xlen + clen > size) bad("truncated directory");
    std::string name(bytes.data() + p + 46, nlen);
    // Zip64 extra field: the 8-byte values of whichever 4-byte fields are 0xffffffff, in this order.
    for (size_t x = p + 46 + nlen; x + 4 <= p + 46 + nlen + xlen;) {
      const uint16_t id = le16(b + x), len = le16(b + x + 2);
      if (id == 0x0001) {
        size_t q = x + 4;
        if (usize == 0xffffffff && q + 8 <= x + 4 + len) usize = le64(b + q), q += 8;
        if (csize == 0xffffffff && q + 8 <= x + 4 + len) csize = le64(b + q), q += 8;
        if (local == 0xffffffff && q + 8 <= x + 4 + len) local = le64(b + q);
      }
      x += 4 + len;
    }
    p += 46 + nlen + xlen + clen;
    if (method != 0)
      fail(path, ": member ", name,
           " is compressed (np.savez_compressed); save the inputs with np.savez or give them with --input-dir");
    if (local + 30 > size || le32(b + local) != 0x04034b50) bad("bad member header for " + name);
    const uint64_t data = local + 30 + le16(b + local + 26) + le16(b + local + 28);
    if (data + csize > size || csize != usize) bad("member " + name + " runs past the end");
    std::string key = name.size() > 4 && name.ends_with(".npy") ? name.substr(0, name.size() - 4) : name;
    out[key] = io::parse_npy(bytes.substr(data, csize), path + ":" + name);
  }
  return out;
}

std::vector<ir::Tensor> read_npz_inputs(const InputPlan& plan, const std::string& path) {
  std::map<std::string, ir::Tensor> members = read_npz(path);
  std::vector<ir::Tensor> out;
  for (const auto& in : plan.inputs) {
    auto it = members.find(in.info.name);
    if (it == members.end()) it = members.find(io::npy_file_stem(in.info.name));
    if (it == members.end()) fail(path, ": no member ", in.info.name, ".npy for input \"", in.info.name, "\"");
    out.push_back(it->second);
  }
  return out;
}

std::pair<int64_t, std::optional<int64_t>> bound_sizes(const InputPlan& plan, const std::vector<ir::Tensor>& tensors) {
  std::optional<int64_t> batch, seq;
  for (size_t i = 0; i < plan.inputs.size() && i < tensors.size(); ++i) {
    const auto& dims = plan.inputs[i].info.type.shape->dims;
    const ir::Tensor& t = tensors[i];
    if (t.rank() != dims.size())
      fail("input \"", plan.inputs[i].info.name, "\" must have rank ", dims.size(), ", got shape ",
           ir::to_string(t.shape()));
    for (size_t a = 0; a < dims.size(); ++a) {
      if (dims[a].is_static()) continue;
      std::string k = dim_key(dims[a], a);
      std::optional<int64_t>* slot = k == plan.batch_dim ? &batch : k == plan.seq_dim ? &seq : nullptr;
      if (!slot) continue;
      if (*slot && **slot != t.dim(a)) {
        // Unnamed dims at one axis of two inputs are only guessed to be one size (silero-vad's state and
        // audio differ at axis 1): the first input's is the one reported.
        if (!dims[a].is_symbolic()) continue;
        fail("input \"", plan.inputs[i].info.name, "\" has ", k, " = ", t.dim(a), " (dim ", a,
             "), but an earlier input has ", k, " = ", **slot);
      }
      *slot = t.dim(a);
    }
  }
  return {batch.value_or(1), plan.has_seq() ? seq : std::nullopt};
}

}  // namespace kiln::bench

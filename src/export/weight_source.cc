#include "export/weight_source.h"

#include <cmath>
#include <set>
#include <thread>

#include "common/error.h"
#include "common/half.h"
#include "io/safetensors.h"
#include "ir/shape.h"

namespace kiln::exporter {

namespace {

class CheckpointWeights final : public WeightSource {
 public:
  CheckpointWeights(const std::string& path, Family family) : file_(io::SafetensorsFile::open(path)) {
    const char* prefix = family == Family::kBert ? "bert." : family == Family::kDistilBert ? "distilbert." : "vit.";
    const char* probe = family == Family::kVit ? "embeddings.cls_token" : "embeddings.word_embeddings.weight";
    if (!file_.find(probe) && file_.find(std::string(prefix) + probe)) prefix_ = prefix;
  }

  ir::Tensor get(const std::string& name, const std::vector<int64_t>& shape, WeightKind kind) override {
    const io::SafetensorsEntry* e = lookup(name);
    if (!e)
      fail(file_.path(), ": missing tensor \"", prefix_ + name, "\" (the model needs float", ir::to_string(shape), ")");
    if (e->shape != shape)
      fail(file_.path(), ": tensor \"", e->name, "\" has shape ", ir::to_string(e->shape), " but the config needs ",
           ir::to_string(shape));
    ir::Tensor t = file_.tensor(e->name);
    switch (t.dtype()) {
      case ir::DType::kFloat32:
        return t;
      case ir::DType::kFloat16:
        return widen<Float16>(t);
      case ir::DType::kBFloat16:
        return widen<BFloat16>(t);
      default:
        fail(file_.path(), ": tensor \"", e->name, "\" has dtype ", e->dtype_name,
             "; a weight must be F32, F16 or BF16");
    }
  }

  bool has(const std::string& name) const override { return lookup_const(name) != nullptr; }

  std::vector<std::string> unused() const override {
    std::vector<std::string> out;
    for (const auto& e : file_.entries()) {
      // A buffer, not a parameter: BERT's position_ids are computed in the graph.
      if (e.name == prefix_ + "embeddings.position_ids") continue;
      if (!used_.count(e.name)) out.push_back(e.name);
    }
    return out;
  }

 private:
  template <class H>
  static ir::Tensor widen(const ir::Tensor& t) {
    ir::Tensor out(ir::DType::kFloat32, t.shape());
    const H* src = t.data<H>();
    float* dst = out.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) dst[i] = static_cast<float>(src[i]);
    return out;
  }

  const io::SafetensorsEntry* lookup_const(const std::string& name) const {
    if (const auto* e = file_.find(prefix_ + name)) return e;
    // Checkpoints converted from TensorFlow name LayerNorm parameters gamma and beta.
    auto swap_suffix = [&](const std::string& from, const std::string& to) -> const io::SafetensorsEntry* {
      if (name.size() > from.size() && name.compare(name.size() - from.size(), from.size(), from) == 0)
        return file_.find(prefix_ + name.substr(0, name.size() - from.size()) + to);
      return nullptr;
    };
    if (name.find("LayerNorm") != std::string::npos) {
      if (const auto* e = swap_suffix(".weight", ".gamma")) return e;
      if (const auto* e = swap_suffix(".bias", ".beta")) return e;
    }
    return nullptr;
  }

  const io::SafetensorsEntry* lookup(const std::string& name) {
    const io::SafetensorsEntry* e = lookup_const(name);
    if (e) used_.insert(e->name);
    return e;
  }

  io::SafetensorsFile file_;
  std::string prefix_;
  std::set<std::string> used_;
};

// splitmix64: a small, fast generator whose stream is the same on every platform (std::normal_distribution
// is not), so a seed names the same model everywhere.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1].
  double uniform() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// Marsaglia's polar method: normal values without trigonometry, two per accepted pair.
void fill_normal(float* p, int64_t n, float mean, float stddev, uint64_t seed) {
  SplitMix64 rng(seed);
  for (int64_t i = 0; i < n;) {
    double u = 2.0 * rng.uniform() - 1.0, v = 2.0 * rng.uniform() - 1.0;
    double s = u * u + v * v;
    if (s >= 1.0 || s == 0.0) continue;
    double f = std::sqrt(-2.0 * std::log(s) / s);
    p[i++] = mean + stddev * static_cast<float>(u * f);
    if (i < n) p[i++] = mean + stddev * static_cast<float>(v * f);
  }
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

class RandomWeights final : public WeightSource {
 public:
  explicit RandomWeights(uint64_t seed) : seed_(seed) {}

  ir::Tensor get(const std::string& name, const std::vector<int64_t>& shape, WeightKind kind) override {
    ir::Tensor t(ir::DType::kFloat32, shape);
    const float mean = kind == WeightKind::kNormScale ? 1.0f : 0.0f;
    const float stddev = kind == WeightKind::kNormScale ? 0.1f : 0.02f;
    const uint64_t tensor_seed = seed_ * 0x9e3779b97f4a7c15ULL ^ fnv1a(name);
    // Fixed-size chunks, each with its own stream, so the values do not depend on the number of threads.
    constexpr int64_t kChunk = 1 << 16;
    const int64_t n = t.numel(), chunks = (n + kChunk - 1) / kChunk;
    float* p = t.data<float>();
    auto fill = [&](int64_t first, int64_t step) {
      for (int64_t c = first; c < chunks; c += step)
        fill_normal(p + c * kChunk, std::min(kChunk, n - c * kChunk), mean, stddev, tensor_seed + c);
    };
    const int64_t workers = std::min<int64_t>(chunks, std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::thread> threads;
    for (int64_t w = 1; w < workers; ++w) threads.emplace_back(fill, w, workers);
    fill(0, workers);
    for (auto& th : threads) th.join();
    return t;
  }

  bool has(const std::string&) const override { return true; }

 private:
  uint64_t seed_;
};

}  // namespace

std::unique_ptr<WeightSource> checkpoint_weights(const std::string& safetensors_path, Family family) {
  return std::make_unique<CheckpointWeights>(safetensors_path, family);
}

std::unique_ptr<WeightSource> random_weights(uint64_t seed) { return std::make_unique<RandomWeights>(seed); }

}  // namespace kiln::exporter

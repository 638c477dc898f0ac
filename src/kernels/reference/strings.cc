// String ops: StringNormalizer and TfIdfVectorizer.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/reference/common.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_string_ops(OpRegistry& r);

namespace {

// ---------------------------------------------------------------------------------------------------
// Case mapping of UTF-8 text, one code point at a time (no expansions such as German sharp s to "SS").
// Covers ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic, which is what the en_US locale's simple
// case mapping changes in practice; other code points and malformed bytes pass through unchanged.

uint32_t to_upper_cp(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if (c == 0xB5) return 0x39C;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x131) return 'I';
    if (c == 0x17F) return 'S';
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return (c & 1) ? c - 1 : c;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c : c - 1;
    return c;
  }
  if (c >= 0x3B1 && c <= 0x3C9) return c == 0x3C2 ? 0x3A3 : c - 32;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 37;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 63;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x4FF))
    return (c & 1) ? c - 1 : c;
  return c;
}

uint32_t to_lower_cp(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x130) return 'i';
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return (c & 1) ? c : c + 1;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c + 1 : c;
    return c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x4FF))
    return (c & 1) ? c : c + 1;
  return c;
}

void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

template <class Map>
std::string map_case(const std::string& s, Map map) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto b0 = static_cast<unsigned char>(s[i]);
    size_t len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    uint32_t c = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (size_t k = 1; ok && k < len; ++k) {
      auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) ok = false;
      c = (c << 6) | (b & 0x3F);
    }
    if (!ok) {  // malformed: copy the byte as it is
      out += s[i++];
      continue;
    }
    uint32_t m = map(c);
    if (m == c)
      out.append(s, i, len);
    else
      append_utf8(out, m);
    i += len;
  }
  return out;
}

std::string to_upper(const std::string& s) { return map_case(s, to_upper_cp); }
std::string to_lower(const std::string& s) { return map_case(s, to_lower_cp); }

// ---------------------------------------------------------------------------------------------------
// StringNormalizer: drops the elements of a [C] or [1, C] string tensor that are stop words, then changes
// case. When nothing is left the output is one empty string, of shape [1] or [1, 1].

enum class CaseChange { kNone, kLower, kUpper };

CaseChange case_change(const NodeView& node) {
  std::string a = node.attr_string("case_change_action", "NONE");
  if (a == "NONE") return CaseChange::kNone;
  if (a == "LOWER") return CaseChange::kLower;
  if (a == "UPPER") return CaseChange::kUpper;
  node.fail("case_change_action must be NONE, LOWER or UPPER, got \"", a, "\"");
}

void check_locale(const NodeView& node) {
  std::string loc = node.attr_string("locale", "");
  if (loc.empty() || loc == "en_US" || loc.rfind("en_US.", 0) == 0 || loc == "C" || loc == "C.UTF-8") return;
  node.fail("locale \"", loc, "\" is not supported (only en_US)");
}

void infer_string_normalizer(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  if (in.dtype != ir::DType::kUndefined && in.dtype != ir::DType::kString)
    ctx.fail("input must be a string tensor, got ", ir::dtype_name(in.dtype));
  case_change(ctx);
  check_locale(ctx);
  if (!in.shape) {
    ctx.set_output(0, ir::DType::kString, std::nullopt);
    return;
  }
  const ir::Shape& s = *in.shape;
  if (s.rank() != 1 && s.rank() != 2) ctx.fail("input must have shape [C] or [1, C], got rank ", s.rank());
  if (s.rank() == 2 && s[0].is_static() && s[0].value != 1)
    ctx.fail("input must have shape [C] or [1, C], got ", ir::to_string(s));
  const ir::Dim& c = s.dims.back();
  bool kept = ctx.attr_strings("stopwords").empty() && c.is_static() && c.value > 0;
  ir::Dim out_c = kept ? c : ir::Dim();
  if (s.rank() == 1)
    ctx.set_output(0, ir::DType::kString, ir::Shape(std::vector<ir::Dim>{out_c}));
  else
    ctx.set_output(0, ir::DType::kString, ir::Shape(std::vector<ir::Dim>{ir::Dim(1), out_c}));
}

void run_string_normalizer(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  if (x.dtype() != ir::DType::kString) ctx.fail("input must be a string tensor, got ", ir::dtype_name(x.dtype()));
  if (!(x.rank() == 1 || (x.rank() == 2 && x.dim(0) == 1)))
    ctx.fail("input must have shape [C] or [1, C], got ", ir::to_string(x.shape()));
  CaseChange change = case_change(ctx);
  check_locale(ctx);
  bool case_sensitive = ctx.attr_int("is_case_sensitive", 0) != 0;
  std::set<std::string> stops;
  for (const auto& w : ctx.attr_strings("stopwords")) stops.insert(case_sensitive ? w : to_lower(w));

  std::vector<std::string> kept;
  const std::string* in = x.data<std::string>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const std::string& w = in[i];
    if (!stops.empty() && stops.count(case_sensitive ? w : to_lower(w))) continue;
    kept.push_back(change == CaseChange::kLower ? to_lower(w) : change == CaseChange::kUpper ? to_upper(w) : w);
  }
  if (kept.empty()) kept.emplace_back();
  auto n = static_cast<int64_t>(kept.size());
  ir::Tensor out =
      ctx.make_tensor(ir::DType::kString, x.rank() == 1 ? std::vector<int64_t>{n} : std::vector<int64_t>{1, n});
  std::string* o = out.data<std::string>();
  for (int64_t i = 0; i < n; ++i) o[i] = std::move(kept[static_cast<size_t>(i)]);
  ctx.set_output(0, std::move(out));
}

// ---------------------------------------------------------------------------------------------------
// TfIdfVectorizer: counts the n-grams of `pool` (strings or integers) found in each row of the input,
// skipping up to max_skip_count items between the items of an n-gram, and writes the counts (TF), their
// indicators times weights (IDF) or counts times weights (TFIDF) at the n-grams' ngram_indexes.
//
// The pool is held as a trie over item ids: strings are mapped to ids once, so matching compares ints.

struct TrieNode {
  int64_t ngram = -1;  // index into ngram_indexes of the n-gram ending here, -1 when none
  std::map<int64_t, std::unique_ptr<TrieNode>> next;
};

enum class TfIdfMode { kTf, kIdf, kTfIdf };

struct TfIdfConfig {
  TfIdfMode mode = TfIdfMode::kTf;
  int64_t min_gram = 1, max_gram = 1, max_skip = 0;
  std::vector<int64_t> ngram_indexes;
  std::vector<float> weights;
  int64_t output_size = 0;
  bool string_pool = false;
  std::unordered_map<std::string, int64_t> string_ids;  // pool string -> id
  TrieNode root;
};

TfIdfConfig tfidf_config(const NodeView& node) {
  TfIdfConfig c;
  std::string mode = node.attr_string("mode");
  if (mode == "TF")
    c.mode = TfIdfMode::kTf;
  else if (mode == "IDF")
    c.mode = TfIdfMode::kIdf;
  else if (mode == "TFIDF")
    c.mode = TfIdfMode::kTfIdf;
  else
    node.fail("mode must be TF, IDF or TFIDF, got \"", mode, "\"");
  c.min_gram = node.attr_int("min_gram_length");
  c.max_gram = node.attr_int("max_gram_length");
  c.max_skip = node.attr_int("max_skip_count");
  if (c.min_gram < 1 || c.max_gram < c.min_gram)
    node.fail("gram lengths must satisfy 1 <= min_gram_length <= max_gram_length, got ", c.min_gram, " and ",
              c.max_gram);
  if (c.max_skip < 0) node.fail("max_skip_count must be non-negative, got ", c.max_skip);
  std::vector<int64_t> counts = node.attr_ints("ngram_counts");
  if (!node.has_attr("ngram_counts")) node.fail("missing required attribute \"ngram_counts\"");
  c.ngram_indexes = node.attr_ints("ngram_indexes");
  if (!node.has_attr("ngram_indexes")) node.fail("missing required attribute \"ngram_indexes\"");
  c.weights = node.attr_floats("weights");

  std::vector<int64_t> pool_ints = node.attr_ints("pool_int64s");
  std::vector<std::string> pool_strings = node.attr_strings("pool_strings");
  if (node.has_attr("pool_int64s") == node.has_attr("pool_strings"))
    node.fail("exactly one of pool_int64s and pool_strings must be given");
  c.string_pool = node.has_attr("pool_strings");
  std::vector<int64_t> pool = pool_ints;
  if (c.string_pool) {
    pool.clear();
    for (const auto& s : pool_strings) {
      auto it = c.string_ids.emplace(s, static_cast<int64_t>(c.string_ids.size())).first;
      pool.push_back(it->second);
    }
  }
  auto total = static_cast<int64_t>(pool.size());

  for (int64_t idx : c.ngram_indexes) {
    if (idx < 0) node.fail("ngram_indexes has a negative value ", idx);
    c.output_size = std::max(c.output_size, idx + 1);
  }
  if (c.mode != TfIdfMode::kTf && !c.weights.empty() && static_cast<int64_t>(c.weights.size()) < c.output_size)
    node.fail("weights has ", c.weights.size(), " values, fewer than the output size ", c.output_size);

  // ngram_counts[i] is where the (i+1)-grams start in the pool. Every n-gram gets the next id, also
  // those outside [min_gram_length, max_gram_length], which are not loaded.
  int64_t id = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    auto n = static_cast<int64_t>(i + 1);
    int64_t start = counts[i], end = i + 1 < counts.size() ? counts[i + 1] : total;
    if (start < 0 || end < start || end > total)
      node.fail("ngram_counts ", ir::to_string(counts), " does not split a pool of ", total, " items");
    if ((end - start) % n != 0)
      node.fail("the ", n, "-gram section of the pool has ", end - start, " items, not a multiple of ", n);
    for (int64_t g = start; g < end; g += n, ++id) {
      if (n < c.min_gram || n > c.max_gram) continue;
      if (id >= static_cast<int64_t>(c.ngram_indexes.size()))
        node.fail("ngram_indexes has ", c.ngram_indexes.size(), " values, fewer than the n-grams in the pool");
      TrieNode* t = &c.root;
      for (int64_t k = 0; k < n; ++k) {
        auto& child = t->next[pool[static_cast<size_t>(g + k)]];
        if (!child) child = std::make_unique<TrieNode>();
        t = child.get();
      }
      t->ngram = id;
    }
  }
  return c;
}

void infer_tfidf(InferenceContext& ctx) {
  const ir::Type& in = ctx.input_type(0);
  ir::DType t = in.dtype;
  if (t != ir::DType::kUndefined && t != ir::DType::kString && t != ir::DType::kInt32 && t != ir::DType::kInt64)
    ctx.fail("input must be a string, int32 or int64 tensor, got ", ir::dtype_name(t));
  TfIdfConfig c = tfidf_config(ctx);
  if (t != ir::DType::kUndefined && (t == ir::DType::kString) != c.string_pool)
    ctx.fail(c.string_pool ? "pool_strings needs a string input" : "pool_int64s needs an integer input");
  if (!in.shape) {
    ctx.set_output(0, ir::DType::kFloat32, std::nullopt);
    return;
  }
  const ir::Shape& s = *in.shape;
  if (s.rank() > 2) ctx.fail("input must have shape [C] or [N, C], got rank ", s.rank());
  if (s.rank() == 2)
    ctx.set_output(0, ir::DType::kFloat32, ir::Shape(std::vector<ir::Dim>{s[0], ir::Dim(c.output_size)}));
  else
    ctx.set_output(0, ir::DType::kFloat32, ir::Shape(std::vector<ir::Dim>{ir::Dim(c.output_size)}));
}

void run_tfidf(KernelContext& ctx) {
  const ir::Tensor& x = ctx.input(0);
  ir::DType t = x.dtype();
  if (t != ir::DType::kString && t != ir::DType::kInt32 && t != ir::DType::kInt64)
    ctx.fail("input must be a string, int32 or int64 tensor, got ", ir::dtype_name(t));
  TfIdfConfig c = tfidf_config(ctx);
  if ((t == ir::DType::kString) != c.string_pool)
    ctx.fail(c.string_pool ? "pool_strings needs a string input" : "pool_int64s needs an integer input");
  if (x.rank() > 2) ctx.fail("input must have shape [C] or [N, C], got ", ir::to_string(x.shape()));
  int64_t rows = x.rank() == 2 ? x.dim(0) : 1;
  int64_t cols = x.rank() == 0 ? 1 : x.shape().back();

  // Items as ids; strings absent from the pool get -1, which no trie edge carries.
  std::vector<int64_t> items(static_cast<size_t>(x.numel()));
  if (t == ir::DType::kString) {
    const std::string* in = x.data<std::string>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      auto it = c.string_ids.find(in[i]);
      items[static_cast<size_t>(i)] = it == c.string_ids.end() ? -1 : it->second;
    }
  } else {
    items = x.to_int64_vector();
  }

  std::vector<int64_t> counts(static_cast<size_t>(rows * c.output_size), 0);
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t* r = items.data() + row * cols;
    int64_t start_gram = c.min_gram;
    for (int64_t skip = 1; skip <= c.max_skip + 1; ++skip) {
      for (int64_t start = 0; start < cols; ++start) {
        if (start + skip * (start_gram - 1) >= cols) break;
        const TrieNode* node = &c.root;
        int64_t size = 1;
        for (int64_t item = start; item < cols && size <= c.max_gram && !node->next.empty(); item += skip, ++size) {
          auto it = node->next.find(r[item]);
          if (it == node->next.end()) break;
          node = it->second.get();
          if (size >= start_gram && node->ngram >= 0)
            ++counts[static_cast<size_t>(row * c.output_size + c.ngram_indexes[static_cast<size_t>(node->ngram)])];
        }
      }
      // Unigrams do not depend on the skip distance: count them on the first pass only.
      if (start_gram == 1) {
        start_gram = 2;
        if (start_gram > c.max_gram) break;
      }
    }
  }

  std::vector<int64_t> out_shape =
      x.rank() == 2 ? std::vector<int64_t>{rows, c.output_size} : std::vector<int64_t>{c.output_size};
  ir::Tensor out = ctx.make_tensor(ir::DType::kFloat32, out_shape);
  float* o = out.data<float>();
  for (int64_t i = 0; i < rows * c.output_size; ++i) {
    auto f = static_cast<float>(counts[static_cast<size_t>(i)]);
    float w = c.weights.empty() ? 1.0f : c.weights[static_cast<size_t>(i % c.output_size)];
    switch (c.mode) {
      case TfIdfMode::kTf:
        o[i] = f;
        break;
      case TfIdfMode::kIdf:
        o[i] = f > 0 ? w : 0.0f;
        break;
      case TfIdfMode::kTfIdf:
        o[i] = f * w;
        break;
    }
  }
  ctx.set_output(0, std::move(out));
}

}  // namespace

void register_string_ops(OpRegistry& r) {
  r.add(OpDef{"", "StringNormalizer", 10, kMaxOnnxOpset, infer_string_normalizer, run_string_normalizer});
  r.add(OpDef{"", "TfIdfVectorizer", 9, kMaxOnnxOpset, infer_tfidf, run_tfidf});
}

}  // namespace kiln::ops

#include "text/wordpiece_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"

namespace kiln::text {
namespace {

// Hugging Face's WordPiece defaults; BERT's tokenizer.json files all use them.
constexpr size_t kMaxInputCharsPerWord = 100;
constexpr std::string_view kContinuingPrefix = "##";
constexpr std::string_view kUnk = "[UNK]", kCls = "[CLS]", kSep = "[SEP]", kPad = "[PAD]", kMask = "[MASK]";
constexpr std::string_view kWordStartMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's "▁"

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

std::string describe(const std::string& source) {
  return source.empty() ? std::string("the in-memory vocabulary") : str("vocabulary \"", source, "\"");
}

std::string read_vocab_file(const std::string& path) {
  std::error_code ec;
  KILN_CHECK(!std::filesystem::is_directory(path, ec), "[tokenizer] vocabulary file \"", path, "\" is a directory");
  std::ifstream in(path, std::ios::binary);
  KILN_CHECK(in, "[tokenizer] cannot open vocabulary file \"", path, "\": ", std::strerror(errno));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  KILN_CHECK(!in.bad(), "[tokenizer] cannot read vocabulary file \"", path, "\"");
  return bytes.str();
}

// One token per line. A trailing '\r' is dropped so Windows files work; Hugging Face keeps it (and then
// cannot find "[UNK]\r"). The last line needs no '\n'. A UTF-8 byte order mark is skipped.
std::vector<std::string> parse_text_vocab(std::string_view bytes) {
  if (bytes.starts_with("\xEF\xBB\xBF")) bytes.remove_prefix(3);
  std::vector<std::string> vocab;
  while (!bytes.empty()) {
    size_t end = bytes.find('\n');
    std::string_view line = bytes.substr(0, end);
    if (line.ends_with('\r')) line.remove_suffix(1);
    vocab.emplace_back(line);
    bytes.remove_prefix(end == std::string_view::npos ? bytes.size() : end + 1);
  }
  return vocab;
}

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

// A JSON array of tokens (id = index) or an object {token: id} whose ids are 0..n-1, each once.
std::vector<std::string> parse_json_vocab(const std::string& bytes, const std::string& path) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(bytes);
  } catch (const nlohmann::json::exception& e) {
    fail("[tokenizer] vocabulary file \"", path, "\" is not valid JSON: ", one_line(e.what()));
  }
  std::vector<std::string> vocab;
  if (json.is_array()) {
    vocab.reserve(json.size());
    for (size_t i = 0; i < json.size(); ++i) {
      KILN_CHECK(json[i].is_string(), "[tokenizer] vocabulary file \"", path, "\": entry ", i, " is ",
                 json[i].type_name(), ", not a string");
      vocab.push_back(json[i].get<std::string>());
    }
  } else if (json.is_object()) {
    const size_t n = json.size();
    vocab.resize(n);
    std::vector<bool> seen(n, false);
    for (const auto& [token, id] : json.items()) {
      KILN_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < static_cast<int64_t>(n),
                 "[tokenizer] vocabulary file \"", path, "\": token \"", token, "\" has id ", id.dump(),
                 ", expected an integer in [0, ", n, ")");
      const auto i = id.get<size_t>();
      KILN_CHECK(!seen[i], "[tokenizer] vocabulary file \"", path, "\": id ", i, " is given to both \"", vocab[i],
                 "\" and \"", token, "\"");
      seen[i] = true;
      vocab[i] = token;
    }
  } else {
    fail("[tokenizer] vocabulary file \"", path, "\" holds a JSON ", json.type_name(),
         ", expected an array of tokens or an object {token: id}");
  }
  return vocab;
}

// The "▁word" form marks word-initial pieces instead of continuations: "▁straw", "berries" for
// "straw", "##berries". It is recognized by having no "##" pieces and mostly "▁" pieces; bracketed
// tokens ([CLS], [unused7]) carry no mark in it and are kept as they are. A lone "▁" becomes the empty
// token, which never matches: it keeps its id slot and nothing else.
void convert_marked_vocab(std::vector<std::string>& vocab) {
  size_t marked = 0;
  for (const std::string& token : vocab) {
    if (token.starts_with(kContinuingPrefix)) return;
    if (token.starts_with(kWordStartMarker)) ++marked;
  }
  if (marked * 2 <= vocab.size()) return;
  for (std::string& token : vocab) {
    if (token.starts_with(kWordStartMarker)) {
      token.erase(0, kWordStartMarker.size());
    } else if (!(token.size() >= 2 && token.front() == '[' && token.back() == ']')) {
      token.insert(0, kContinuingPrefix);
    }
  }
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_file(const std::string& path, TokenizerOptions options) {
  std::string bytes = read_vocab_file(path);
  KILN_CHECK(bytes.find_first_not_of(" \t\r\n") != std::string::npos, "[tokenizer] vocabulary file \"", path,
             "\" is empty");
  std::string extension = std::filesystem::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  std::vector<std::string> vocab = extension == ".json" ? parse_json_vocab(bytes, path) : parse_text_vocab(bytes);
  KILN_CHECK(!vocab.empty(), "[tokenizer] vocabulary file \"", path, "\" has no tokens");
  convert_marked_vocab(vocab);
  return WordPieceTokenizer(std::move(vocab), options, path);
}

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, TokenizerOptions options, std::string source)
    : vocab_(std::move(vocab)), options_(options), source_(std::move(source)) {
  KILN_CHECK(!vocab_.empty(), "[tokenizer] ", describe(source_), " is empty");
  KILN_CHECK(options_.max_length >= 2, "[tokenizer] max_length ", options_.max_length,
             " leaves no room for [CLS] and [SEP]");
  ids_.reserve(vocab_.size());
  for (size_t i = 0; i < vocab_.size(); ++i) {
    const std::string& token = vocab_[i];
    if (token.empty()) continue;                            // no text tokenizes to it
    ids_.insert_or_assign(token, static_cast<int64_t>(i));  // a repeated token keeps its last id, as in HF
    max_token_bytes_ = std::max(max_token_bytes_, token.size());
  }
  unk_id_ = required_id(kUnk);
  cls_id_ = required_id(kCls);
  sep_id_ = required_id(kSep);
  pad_id_ = required_id(kPad);

  std::vector<std::string> never_split;
  for (std::string_view special : {kPad, kUnk, kCls, kSep, kMask})
    if (ids_.contains(special)) never_split.emplace_back(special);
  basic_ = BasicTokenizer({.lower_case = options_.lower_case,
                           .strip_accents = options_.strip_accents.value_or(options_.lower_case),
                           .tokenize_chinese_chars = options_.tokenize_chinese_chars},
                          std::move(never_split));
}

int64_t WordPieceTokenizer::required_id(std::string_view token) const {
  auto it = ids_.find(token);
  KILN_CHECK(it != ids_.end(), "[tokenizer] ", describe(source_), " has no ", token, " token");
  return it->second;
}

std::optional<int64_t> WordPieceTokenizer::token_to_id(std::string_view token) const {
  auto it = ids_.find(token);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const std::string& WordPieceTokenizer::id_to_token(int64_t id) const {
  KILN_CHECK(id >= 0 && id < static_cast<int64_t>(vocab_.size()), "[tokenizer] token id ", id,
             " is outside the vocabulary of ", vocab_.size(), " tokens");
  return vocab_[static_cast<size_t>(id)];
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(std::string_view text) const {
  return basic_.tokenize(text);
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> tokens;
  std::vector<int64_t> ids;
  tokenize_with_ids(text, tokens, ids);
  return tokens;
}

void WordPieceTokenizer::tokenize_with_ids(std::string_view text, std::vector<std::string>& tokens,
                                           std::vector<int64_t>& ids) const {
  for (const std::string& word : basic_.tokenize(text)) word_piece(word, tokens, ids);
}

// Greedy longest-match-first. A candidate longer than the longest vocabulary token cannot match, so the
// search starts there instead of at the end of the word.
void WordPieceTokenizer::word_piece(std::string_view word, std::vector<std::string>& tokens,
                                    std::vector<int64_t>& ids) const {
  const size_t chars =
      static_cast<size_t>(std::count_if(word.begin(), word.end(), [](char c) { return !is_utf8_continuation(c); }));
  if (chars > kMaxInputCharsPerWord) {
    tokens.emplace_back(kUnk);
    ids.push_back(unk_id_);
    return;
  }
  const size_t first_piece = tokens.size();
  std::string candidate;
  size_t start = 0;
  while (start < word.size()) {
    size_t end = std::min(word.size(), start + max_token_bytes_);
    while (end > start && end < word.size() && is_utf8_continuation(word[end])) --end;
    bool found = false;
    while (end > start) {
      candidate.assign(start > 0 ? kContinuingPrefix : std::string_view());
      candidate.append(word.substr(start, end - start));
      if (auto it = ids_.find(candidate); it != ids_.end()) {
        tokens.push_back(candidate);
        ids.push_back(it->second);
        found = true;
        break;
      }
      do --end;
      while (end > start && is_utf8_continuation(word[end]));
    }
    if (!found) {  // one unmatched piece makes the whole word unknown
      tokens.resize(first_piece);
      ids.resize(first_piece);
      tokens.emplace_back(kUnk);
      ids.push_back(unk_id_);
      return;
    }
    start = end;
  }
}

Encoding WordPieceTokenizer::encode(std::string_view text, std::optional<std::string_view> pair) const {
  const int64_t specials = pair ? 3 : 2;
  KILN_CHECK(options_.max_length >= specials, "[tokenizer] max_length ", options_.max_length,
             " leaves no room for the 3 special tokens of a text pair");
  std::vector<std::string> tokens_a, tokens_b;
  std::vector<int64_t> ids_a, ids_b;
  tokenize_with_ids(text, tokens_a, ids_a);
  if (pair) tokenize_with_ids(*pair, tokens_b, ids_b);

  // Truncation, as in Hugging Face tokenizers' truncate_encodings (utils/truncation.rs).
  const auto room = static_cast<size_t>(options_.max_length - specials);
  size_t keep_a = tokens_a.size(), keep_b = tokens_b.size();
  if (!pair) {
    keep_a = std::min(keep_a, room);
  } else if (keep_a + keep_b > room) {
    size_t n1 = keep_a, n2 = keep_b;  // n1: the shorter one
    const bool swapped = n1 > n2;
    if (swapped) std::swap(n1, n2);
    n2 = n1 > room ? n1 : std::max(n1, room - n1);
    if (n1 + n2 > room) {
      n1 = room / 2;
      n2 = n1 + room % 2;
    }
    if (swapped) std::swap(n1, n2);
    keep_a = std::min(keep_a, n1);
    keep_b = std::min(keep_b, n2);
  }

  Encoding e;
  const size_t total = keep_a + keep_b + static_cast<size_t>(specials);
  e.tokens.reserve(total);
  e.ids.reserve(total);
  auto append = [&](std::string_view token, int64_t id, int64_t type) {
    e.tokens.emplace_back(token);
    e.ids.push_back(id);
    e.token_type_ids.push_back(type);
    e.attention_mask.push_back(1);
  };
  append(kCls, cls_id_, 0);
  for (size_t i = 0; i < keep_a; ++i) append(tokens_a[i], ids_a[i], 0);
  append(kSep, sep_id_, 0);
  if (pair) {
    for (size_t i = 0; i < keep_b; ++i) append(tokens_b[i], ids_b[i], 1);
    append(kSep, sep_id_, 1);
  }
  return e;
}

void WordPieceTokenizer::pad(Encoding& encoding, size_t length) const {
  while (encoding.ids.size() < length) {
    encoding.tokens.emplace_back(kPad);
    encoding.ids.push_back(pad_id_);
    encoding.token_type_ids.push_back(0);
    encoding.attention_mask.push_back(0);
  }
}

std::vector<Encoding> WordPieceTokenizer::encode_batch(const std::vector<std::string>& texts,
                                                       const std::vector<std::string>& pairs, Padding padding) const {
  KILN_CHECK(pairs.empty() || pairs.size() == texts.size(), "[tokenizer] encode_batch got ", texts.size(),
             " texts but ", pairs.size(), " pairs");
  std::vector<Encoding> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    out.push_back(pairs.empty() ? encode(texts[i]) : encode(texts[i], std::string_view(pairs[i])));
  size_t length = 0;
  if (padding == Padding::kMaxLength) {
    length = static_cast<size_t>(options_.max_length);
  } else if (padding == Padding::kLongest) {
    for (const Encoding& e : out) length = std::max(length, e.ids.size());
  }
  for (Encoding& e : out) pad(e, length);
  return out;
}

}  // namespace kiln::text

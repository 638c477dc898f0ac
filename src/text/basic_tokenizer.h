// BERT's "basic" tokenization: clean the text, space out CJK ideographs, split on whitespace, lower-case
// and strip accents, split off punctuation. It follows Hugging Face tokenizers' BertNormalizer +
// BertPreTokenizer (the Rust implementation behind BertTokenizerFast / BertWordPieceTokenizer), which
// differs from the older Python BertTokenizer in a few corners; see basic_tokenizer.cc.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kiln::text {

struct BasicTokenizerOptions {
  bool lower_case = true;
  bool strip_accents = true;
  bool tokenize_chinese_chars = true;
};

class BasicTokenizer {
 public:
  // `never_split` strings (the special tokens) are cut out of the raw text wherever they occur, even
  // inside a word, and come back whole, as Hugging Face does for special added tokens.
  explicit BasicTokenizer(BasicTokenizerOptions options = {}, std::vector<std::string> never_split = {});

  // UTF-8 in, UTF-8 words out. Invalid UTF-8 never throws: each maximal ill-formed byte sequence is
  // read as U+FFFD, which cleaning then drops like Hugging Face drops a literal U+FFFD.
  std::vector<std::string> tokenize(std::string_view text) const;

  const BasicTokenizerOptions& options() const { return options_; }

 private:
  // Normalizes and splits one stretch of text that holds no never_split string.
  void tokenize_plain(std::string_view text, std::vector<std::string>& out) const;

  BasicTokenizerOptions options_;
  std::vector<std::string> never_split_;  // longest first, so a longer match wins at the same position
};

}  // namespace kiln::text

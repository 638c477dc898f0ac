#include "text/basic_tokenizer.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <climits>

#include "common/error.h"

// Where Hugging Face's two BERT tokenizers disagree, this follows the Rust one (tokenizers'
// BertNormalizer + BertPreTokenizer, used by BertTokenizerFast and by every tokenizer.json), which is
// also the implementation the test expectations come from:
//   - accents are stripped before lower-casing, and lower-casing maps each code point on its own, so a
//     word-final capital sigma becomes σ, not ς (Python's str.lower() gives ς);
//   - no NFC pass before splitting (Python's BasicTokenizer NFC-normalizes first; this only matters
//     when accents are kept, e.g. for cased models fed decomposed text).
// One deliberate exception: the CJK ranges are Python's _is_chinese_char, which has 0x2B820–0x2CEAF
// where Rust has 0x2B920 (a typo there: U+2B820–U+2B91F are CJK Extension E ideographs too).

namespace kiln::text {
namespace {

bool is_chinese_char(UChar32 c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// \t \n \r are category Cc but count as whitespace, so they must be tested before is_control.
bool is_whitespace(UChar32 c) {
  // Z* (Zs, Zl, Zp) is exactly the White_Space property minus the Cc controls, which cleaning drops
  // first. Python's str.split() and Rust's char::is_whitespace both split on Zl/Zp.
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || (U_GET_GC_MASK(c) & U_GC_Z_MASK) != 0;
}

// Cc, Cf, Cs, Co and Cn (unassigned).
bool is_control(UChar32 c) { return (U_GET_GC_MASK(c) & U_GC_C_MASK) != 0; }

// All ASCII symbols count, not only category P: $ + < = > ^ ` | ~ are split off too.
bool is_punctuation(UChar32 c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  return (U_GET_GC_MASK(c) & U_GC_P_MASK) != 0;
}

void append_utf8(std::string& out, UChar32 c) {
  uint8_t buf[U8_MAX_LENGTH];
  int32_t n = 0;
  U8_APPEND_UNSAFE(buf, n, c);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

const icu::Normalizer2& nfd() {
  static const icu::Normalizer2* instance = [] {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* n = icu::Normalizer2::getNFDInstance(status);
    KILN_CHECK(U_SUCCESS(status) && n != nullptr, "[tokenizer] cannot load ICU's NFD data: ", u_errorName(status));
    return n;
  }();
  return *instance;
}

// NFD, then drop nonspacing marks (Mn).
void strip_accents(std::vector<UChar32>& word) {
  bool ascii = std::all_of(word.begin(), word.end(), [](UChar32 c) { return c < 0x80; });
  if (ascii) return;  // ASCII is already NFD and has no marks: skip ICU on the common path
  icu::UnicodeString s = icu::UnicodeString::fromUTF32(word.data(), static_cast<int32_t>(word.size()));
  UErrorCode status = U_ZERO_ERROR;
  icu::UnicodeString decomposed = nfd().normalize(s, status);
  KILN_CHECK(U_SUCCESS(status), "[tokenizer] NFD normalization failed: ", u_errorName(status));
  word.clear();
  for (int32_t i = 0; i < decomposed.length();) {
    UChar32 c = decomposed.char32At(i);
    i += U16_LENGTH(c);
    if ((U_GET_GC_MASK(c) & U_GC_MN_MASK) == 0) word.push_back(c);
  }
}

// Per code point, like Rust's char::to_lowercase: full mappings, but no context (no final sigma).
// U+0130 is the only code point whose unconditional lower-case mapping is more than one code point.
void lower_case(std::vector<UChar32>& word) {
  std::vector<UChar32> out;
  out.reserve(word.size());
  for (UChar32 c : word) {
    if (c == 0x130) {
      out.push_back('i');
      out.push_back(0x307);
    } else {
      out.push_back(u_tolower(c));
    }
  }
  word.swap(out);
}

}  // namespace

BasicTokenizer::BasicTokenizer(BasicTokenizerOptions options, std::vector<std::string> never_split)
    : options_(options) {
  for (auto& s : never_split)
    if (!s.empty()) never_split_.push_back(std::move(s));
  std::stable_sort(never_split_.begin(), never_split_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  if (options_.strip_accents) nfd();  // fail at construction, not at the first accented word
}

std::vector<std::string> BasicTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  size_t plain_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t matched = 0;
    for (const std::string& s : never_split_) {
      if (text[i] == s[0] && text.substr(i, s.size()) == s) {
        matched = s.size();
        tokenize_plain(text.substr(plain_start, i - plain_start), out);
        out.push_back(s);
        break;
      }
    }
    if (matched > 0) {
      i += matched;
      plain_start = i;
    } else {
      ++i;
    }
  }
  tokenize_plain(text.substr(plain_start), out);
  return out;
}

void BasicTokenizer::tokenize_plain(std::string_view text, std::vector<std::string>& out) const {
  if (text.empty()) return;
  KILN_CHECK(text.size() <= static_cast<size_t>(INT32_MAX), "[tokenizer] text of ", text.size(),
             " bytes is too long (at most 2 GiB)");

  // Clean, map whitespace to ' ', and space out CJK ideographs, as one pass over the code points.
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  const auto length = static_cast<int32_t>(text.size());
  std::vector<UChar32> cleaned;
  cleaned.reserve(text.size());
  for (int32_t i = 0; i < length;) {
    UChar32 c;
    U8_NEXT(bytes, i, length, c);
    if (c < 0) c = 0xFFFD;  // ill-formed UTF-8: see the header
    if (is_whitespace(c)) {
      cleaned.push_back(' ');
    } else if (c == 0 || c == 0xFFFD || is_control(c)) {
      continue;
    } else if (options_.tokenize_chinese_chars && is_chinese_char(c)) {
      cleaned.push_back(' ');
      cleaned.push_back(c);
      cleaned.push_back(' ');
    } else {
      cleaned.push_back(c);
    }
  }

  std::vector<UChar32> word;
  std::string piece;
  auto flush_piece = [&] {
    if (!piece.empty()) out.push_back(std::move(piece));
    piece.clear();
  };
  auto emit_word = [&] {
    if (word.empty()) return;
    if (options_.strip_accents) strip_accents(word);
    if (options_.lower_case) lower_case(word);
    for (UChar32 c : word) {
      if (is_punctuation(c)) {
        flush_piece();
        append_utf8(piece, c);
        flush_piece();
      } else {
        append_utf8(piece, c);
      }
    }
    flush_piece();
    word.clear();
  };
  for (UChar32 c : cleaned) {
    if (c == ' ') {
      emit_word();
    } else {
      word.push_back(c);
    }
  }
  emit_word();
}

}  // namespace kiln::text

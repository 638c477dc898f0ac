#include "validate/input_samples.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <set>

#include "common/error.h"
#include "io/npy.h"
#include "text/wordpiece_tokenizer.h"

namespace kiln::validate {

namespace {

namespace fs = std::filesystem;

fs::path input_file(const fs::path& folder, const ir::ValueInfo& input) {
  return folder / (io::npy_file_stem(input.name) + ".npy");
}

std::string type_of(const ir::Tensor& t) {
  return ir::to_string(ir::Type::tensor(t.dtype(), ir::Shape::of(t.shape())));
}

// The inputs a tokenizer's encoding feeds, by the names BERT-style models give them.
const std::set<std::string> kTokenInputs = {"input_ids", kTokenMaskInput, "token_type_ids"};

struct Line {
  int64_t number;  // in the file, from 1
  std::string text;
};

// The non-blank lines of a text file, without their line ends.
std::vector<Line> read_lines(const std::string& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) fail("--text ", file, ": no such file");
  if (fs::is_directory(file, ec)) fail("--text ", file, ": a folder, not a text file of one sample per line");
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("--text ", file, ": cannot open the file");
  std::vector<Line> lines;
  int64_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t\f\v") != std::string::npos) lines.push_back({number, std::move(line)});
  }
  if (in.bad()) fail("--text ", file, ": cannot read the file");
  if (lines.empty()) fail("--text ", file, ": no text (one sample per line; blank lines are skipped)");
  return lines;
}

// A [1, n] tensor of `value` (or of `ids` when given) in the declared integer dtype of `input`.
ir::Tensor token_row(const ir::ValueInfo& input, size_t n, const std::vector<int64_t>* ids, int64_t value) {
  const ir::DType dtype = input.type.dtype == ir::DType::kInt32 ? ir::DType::kInt32 : ir::DType::kInt64;
  ir::Tensor t(dtype, {1, static_cast<int64_t>(n)});
  for (size_t i = 0; i < n; ++i) {
    const int64_t v = ids ? (*ids)[i] : value;
    if (dtype == ir::DType::kInt32)
      t.data<int32_t>()[i] = static_cast<int32_t>(v);
    else
      t.data<int64_t>()[i] = v;
  }
  return t;
}

}  // namespace

void check_input_tensor(const ir::ValueInfo& input, const ir::Tensor& t, const std::string& file) {
  const ir::Type& want = input.type;
  if (!want.is_tensor()) return;  // the session names what it takes
  auto refuse = [&](const std::string& detail) {
    fail(file, ": input \"", input.name, "\" must be ", ir::to_string(want), ", got ", type_of(t), detail);
  };
  if (want.dtype != ir::DType::kUndefined && t.dtype() != want.dtype) refuse("");
  if (!want.shape) return;
  if (want.shape->rank() != t.rank()) refuse("");
  for (size_t i = 0; i < t.rank(); ++i)
    if (want.shape->dims[i].is_static() && want.shape->dims[i].value != t.dim(i)) refuse(str(" (dim ", i, ")"));
}

InputSamples InputSamples::generated(bench::InputPlan plan, int64_t count, uint64_t seed, int64_t batch, int64_t seq) {
  KILN_CHECK(count >= 1, "--samples must be >= 1 (got ", count, ")");
  KILN_CHECK(batch >= 1, "--batch must be >= 1 (got ", batch, ")");
  KILN_CHECK(seq >= 1, "--seq must be >= 1 (got ", seq, ")");
  InputSamples s;
  s.count_ = count;
  s.seed_ = seed;
  s.batch_ = batch;
  s.seq_ = seq;
  s.description_ = str(count, " generated sample", count == 1 ? "" : "s", " (seed", count == 1 ? " " : "s ", seed,
                       count == 1 ? "" : str("..", seed + static_cast<uint64_t>(count) - 1), ")");
  if (!plan.batch_dim.empty()) s.description_ += str(", batch ", batch);
  if (plan.has_seq()) s.description_ += str(", sequence ", seq);
  s.plan_ = std::move(plan);
  return s;
}

InputSamples InputSamples::from_folder(std::vector<ir::ValueInfo> inputs, const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) fail("--inputs ", dir, ": no such folder");
  if (!fs::is_directory(dir, ec)) fail("--inputs ", dir, ": not a folder (give a folder of NAME.npy files)");
  InputSamples s;
  s.source_ = Source::kFolder;
  const bool flat = inputs.empty() || std::any_of(inputs.begin(), inputs.end(), [&](const ir::ValueInfo& in) {
                      return fs::exists(input_file(dir, in), ec);
                    });
  if (flat) {
    s.folders_.push_back(dir);
  } else {
    try {
      for (const auto& entry : fs::directory_iterator(dir))
        if (entry.is_directory()) s.folders_.push_back(entry.path());
    } catch (const fs::filesystem_error& e) {
      fail("--inputs ", dir, ": cannot read the folder (", e.code().message(), ")");
    }
    std::sort(s.folders_.begin(), s.folders_.end());
    if (s.folders_.empty())
      fail("--inputs ", dir, ": no ", input_file(dir, inputs[0]).filename().string(), " for input \"", inputs[0].name,
           "\", and no sample subfolders");
  }
  // Every file now, so that a missing one fails before the models have run on the others.
  for (const fs::path& folder : s.folders_)
    for (const auto& in : inputs)
      if (!fs::exists(input_file(folder, in), ec))
        fail("--inputs ", folder.string(), ": no ", input_file(folder, in).filename().string(), " for input \"",
             in.name, "\"");
  s.count_ = static_cast<int64_t>(s.folders_.size());
  s.description_ = flat ? str("1 sample from ", dir)
                        : str(s.count_, " sample", s.count_ == 1 ? "" : "s", " from the subfolders of ", dir);
  s.inputs_ = std::move(inputs);
  return s;
}

InputSamples InputSamples::from_text(std::vector<ir::ValueInfo> inputs, const TextInputs& text) {
  std::error_code ec;
  if (text.vocab.empty()) fail("--text needs the model's vocabulary: give it with --vocab vocab.txt");
  if (!fs::exists(text.vocab, ec)) fail("--vocab ", text.vocab, ": no such file");
  if (!std::any_of(inputs.begin(), inputs.end(), [](const ir::ValueInfo& in) { return in.name == "input_ids"; })) {
    std::string names;
    for (const auto& in : inputs) names += (names.empty() ? "" : ", ") + in.name;
    fail("--text: the model has no input_ids input to feed tokens to (its inputs: ", names.empty() ? "none" : names,
         "); give its inputs with --inputs DIR");
  }
  for (const auto& in : inputs) {
    const bool integer =
        in.type.is_tensor() && (in.type.dtype == ir::DType::kInt64 || in.type.dtype == ir::DType::kInt32 ||
                                in.type.dtype == ir::DType::kUndefined);
    if (!kTokenInputs.count(in.name) || !integer)
      fail("--text: cannot feed the model's input \"", in.name, "\" (", ir::to_string(in.type),
           "): text gives only int64 or int32 input_ids, attention_mask and token_type_ids; give the inputs with "
           "--inputs DIR");
  }
  const std::vector<Line> lines = read_lines(text.file);

  text::TokenizerOptions options;
  options.lower_case = !text.cased;
  options.max_length = text.max_length;
  const text::WordPieceTokenizer tokenizer = text::WordPieceTokenizer::from_file(text.vocab, options);
  InputSamples s;
  s.source_ = Source::kText;
  size_t shortest = SIZE_MAX, longest = 0, total = 0, truncated = 0;
  for (const Line& line : lines) {
    std::vector<int64_t> ids = tokenizer.encode(line.text).ids;
    // The encoding is cut at max_length; the line's own tokens tell whether anything was cut.
    truncated += tokenizer.tokenize(line.text).size() + 2 > ids.size();
    shortest = std::min(shortest, ids.size());
    longest = std::max(longest, ids.size());
    total += ids.size();
    s.token_ids_.push_back(std::move(ids));
    s.sources_.push_back(str("--text ", text.file, " line ", line.number));
  }
  s.count_ = static_cast<int64_t>(lines.size());
  char mean[32];
  std::snprintf(mean, sizeof mean, "%.1f", static_cast<double>(total) / static_cast<double>(lines.size()));
  s.description_ = str(s.count_, " line", s.count_ == 1 ? "" : "s", " of ", text.file, " (one sample each, batch 1), ",
                       "tokenized with ", text.vocab, ": ", shortest, " to ", longest, " tokens, mean ", mean);
  if (truncated) s.description_ += str(", ", truncated, " cut to --max-length ", text.max_length);
  s.inputs_ = std::move(inputs);
  return s;
}

Feeds InputSamples::sample(int64_t k) const {
  KILN_CHECK(k >= 0 && k < count_, "sample ", k, " of ", count_);
  Feeds feeds;
  if (source_ == Source::kText) {
    const std::vector<int64_t>& ids = token_ids_[static_cast<size_t>(k)];
    for (const auto& in : inputs_) {
      ir::Tensor t = in.name == "input_ids"       ? token_row(in, ids.size(), &ids, 0)
                     : in.name == kTokenMaskInput ? token_row(in, ids.size(), nullptr, 1)
                                                  : token_row(in, ids.size(), nullptr, 0);
      check_input_tensor(in, t, sources_[static_cast<size_t>(k)]);
      feeds[in.name] = std::move(t);
    }
    return feeds;
  }
  if (source_ == Source::kGenerated) {
    std::vector<ir::Tensor> tensors = bench::generate_inputs(plan_, batch_, seq_, seed_ + static_cast<uint64_t>(k));
    for (size_t i = 0; i < plan_.inputs.size(); ++i) feeds[plan_.inputs[i].info.name] = std::move(tensors[i]);
    return feeds;
  }
  for (const auto& in : inputs_) {
    const std::string file = input_file(folders_[static_cast<size_t>(k)], in).string();
    ir::Tensor t = io::read_npy(file);
    check_input_tensor(in, t, "--inputs " + file);
    feeds[in.name] = std::move(t);
  }
  return feeds;
}

}  // namespace kiln::validate

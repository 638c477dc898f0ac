#include "validate/input_samples.h"

#include <algorithm>

#include "common/error.h"
#include "io/npy.h"

namespace kiln::validate {

namespace {

namespace fs = std::filesystem;

fs::path input_file(const fs::path& folder, const ir::ValueInfo& input) {
  return folder / (io::npy_file_stem(input.name) + ".npy");
}

std::string type_of(const ir::Tensor& t) {
  return ir::to_string(ir::Type::tensor(t.dtype(), ir::Shape::of(t.shape())));
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

Feeds InputSamples::sample(int64_t k) const {
  KILN_CHECK(k >= 0 && k < count_, "sample ", k, " of ", count_);
  Feeds feeds;
  if (folders_.empty()) {
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

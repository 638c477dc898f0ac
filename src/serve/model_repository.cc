#include "serve/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"

namespace kiln::serve {

namespace fs = std::filesystem;
using nlohmann::json;

// Named, not anonymous: the sanitizer build compiles kiln_core as a unity build.
namespace model_repository_detail {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot read the file");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A non-negative integer field; `where` names the file and field in errors.
int64_t integer(const json& j, const std::string& where, int64_t min) {
  if (!j.is_number_integer() || j.get<int64_t>() < min)
    fail(where, ": expected an integer >= ", min, ", got ", j.dump());
  return j.get<int64_t>();
}

void refuse_unknown(const json& object, const std::vector<std::string>& known, const std::string& where) {
  for (const auto& [key, value] : object.items())
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail(where, ": unknown field \"", key, "\" (known: ", list, ")");
    }
}

bool is_version(const std::string& name) {
  return !name.empty() && name.size() < 19 && std::all_of(name.begin(), name.end(), ::isdigit) && name != "0" &&
         name[0] != '0';
}

}  // namespace model_repository_detail

using namespace model_repository_detail;

ModelConfig parse_model_config(const std::string& text, const std::string& file) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(file, ": not valid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(file, ": expected a JSON object");
  refuse_unknown(j, {"max_batch_size", "dynamic_batching", "instances", "optimization", "text", "name"}, file);
  ModelConfig c;
  if (j.contains("max_batch_size")) c.max_batch_size = integer(j["max_batch_size"], file + ": max_batch_size", 0);
  if (j.contains("instances")) c.instances = integer(j["instances"], file + ": instances", 1);
  if (j.contains("dynamic_batching")) {
    const json& d = j["dynamic_batching"];
    const std::string where = file + ": dynamic_batching";
    if (!d.is_object()) fail(where, ": expected an object");
    refuse_unknown(
        d, {"preferred_batch_size", "max_queue_delay_microseconds", "max_queue_size", "timeout_ms", "sequence_bucket"},
        where);
    if (d.contains("preferred_batch_size")) {
      if (!d["preferred_batch_size"].is_array()) fail(where, ".preferred_batch_size: expected an array of integers");
      for (const json& b : d["preferred_batch_size"])
        c.batching.preferred_batch_sizes.push_back(integer(b, where + ".preferred_batch_size", 1));
    }
    if (d.contains("max_queue_delay_microseconds"))
      c.batching.max_queue_delay_us =
          integer(d["max_queue_delay_microseconds"], where + ".max_queue_delay_microseconds", 0);
    if (d.contains("max_queue_size"))
      c.batching.max_queue_size = integer(d["max_queue_size"], where + ".max_queue_size", 1);
    if (d.contains("timeout_ms")) c.batching.timeout_ms = integer(d["timeout_ms"], where + ".timeout_ms", 0);
    if (d.contains("sequence_bucket"))
      c.batching.sequence_bucket = integer(d["sequence_bucket"], where + ".sequence_bucket", 0);
  }
  if (j.contains("optimization")) {
    const json& o = j["optimization"];
    const std::string where = file + ": optimization";
    if (!o.is_object()) fail(where, ": expected an object");
    refuse_unknown(o, {"level", "precision"}, where);
    try {
      if (o.contains("level")) c.level = passes::parse_level(o["level"].get<std::string>());
      if (o.contains("precision")) c.precision = runtime::parse_precision(o["precision"].get<std::string>());
    } catch (const json::exception&) {
      fail(where, ": level and precision are strings");
    } catch (const Error& e) {
      fail(where, ": ", e.what());
    }
  }
  if (j.contains("text")) {
    const json& t = j["text"];
    const std::string where = file + ": text";
    if (!t.is_object()) fail(where, ": expected an object");
    refuse_unknown(t, {"vocab", "input", "max_length", "lower_case"}, where);
    TextInputConfig text;
    if (!t.contains("vocab") || !t["vocab"].is_string() || t["vocab"].get<std::string>().empty())
      fail(where, ".vocab: the model's WordPiece vocabulary (a vocab.txt beside config.json) is required");
    text.vocab = t["vocab"].get<std::string>();
    if (t.contains("input")) {
      if (!t["input"].is_string() || t["input"].get<std::string>().empty()) fail(where, ".input: expected a name");
      text.input = t["input"].get<std::string>();
    }
    if (t.contains("max_length")) text.max_length = integer(t["max_length"], where + ".max_length", 3);
    if (t.contains("lower_case")) {
      if (!t["lower_case"].is_boolean()) fail(where, ".lower_case: expected true or false");
      text.lower_case = t["lower_case"].get<bool>();
    }
    c.text = text;
  }
  for (int64_t b : c.batching.preferred_batch_sizes)
    if (c.max_batch_size > 0 && b > c.max_batch_size)
      fail(file, ": preferred_batch_size ", b, " exceeds max_batch_size ", c.max_batch_size);
  return c;
}

namespace model_repository_detail {

// One model folder: its config and versions.
ModelEntry scan_model_folder(const fs::path& model_dir) {
  ModelEntry e;
  e.name = model_dir.filename().string();
  const fs::path config = model_dir / "config.json";
  if (fs::exists(config)) e.config = parse_model_config(read_text(config), config.string());
  if (e.config.text && fs::path(e.config.text->vocab).is_relative())
    e.config.text->vocab = (model_dir / e.config.text->vocab).string();
  for (const auto& version_dir : fs::directory_iterator(model_dir)) {
    if (!version_dir.is_directory()) continue;
    const std::string v = version_dir.path().filename().string();
    if (!is_version(v))
      fail(version_dir.path().string(), ": a model's folders are its versions, named 1, 2, ... (got \"", v, "\")");
    const fs::path model = version_dir.path() / "model.onnx";
    if (!fs::is_regular_file(model)) fail(version_dir.path().string(), ": no model.onnx in this version folder");
    e.versions.push_back({v, model.string()});
  }
  if (e.versions.empty()) fail(model_dir.string(), ": no version folder (NAME/1/model.onnx)");
  std::sort(e.versions.begin(), e.versions.end(), [](const ModelVersion& a, const ModelVersion& b) {
    return std::stoll(a.version) < std::stoll(b.version);
  });
  return e;
}

ModelEntry single_file_model(const std::string& path) {
  ModelEntry e;
  e.name = fs::path(path).stem().string();
  e.versions.push_back({"1", path});
  return e;
}

std::vector<std::string> model_names(const std::string& path) {
  std::vector<std::string> names;
  for (const auto& model_dir : fs::directory_iterator(path))
    if (model_dir.is_directory() && !model_dir.path().filename().string().starts_with("."))
      names.push_back(model_dir.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace model_repository_detail

std::vector<ModelEntry> scan_model_repository(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return {single_file_model(path)};
  if (!fs::is_directory(path, ec)) fail(path, ": no such model file or repository folder");
  std::vector<ModelEntry> models;
  for (const std::string& name : model_names(path)) models.push_back(scan_model_folder(fs::path(path) / name));
  if (models.empty()) fail(path, ": no model in the repository (expected NAME/VERSION/model.onnx)");
  return models;
}

std::vector<std::string> list_repository_models(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return {fs::path(path).stem().string()};
  if (!fs::is_directory(path, ec)) fail(path, ": no such model file or repository folder");
  return model_names(path);
}

ModelEntry scan_repository_model(const std::string& path, const std::string& name) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    if (fs::path(path).stem().string() != name) fail("no model \"", name, "\" in ", path);
    return single_file_model(path);
  }
  if (name.empty() || name.starts_with(".") || name.find('/') != std::string::npos ||
      !fs::is_directory(fs::path(path) / name, ec))
    fail("no model \"", name, "\" in the repository ", path);
  return scan_model_folder(fs::path(path) / name);
}

}  // namespace kiln::serve

#include "export/default_model.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/error.h"
#include "export/exporter.h"
#include "onnx/model_io.h"

namespace kiln::exporter {

namespace fs = std::filesystem;

namespace {

// Bump when the exported graph changes, so that stale cached models are rebuilt rather than reused.
constexpr int kGraphVersion = 1;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

std::string cache_dir() {
  if (std::string d = env("KILN_CACHE_DIR"); !d.empty()) return d;
  if (std::string d = env("XDG_CACHE_HOME"); !d.empty()) return (fs::path(d) / "kiln").string();
  if (std::string d = env("HOME"); !d.empty()) return (fs::path(d) / ".cache" / "kiln").string();
  fail("no cache folder for the built-in model: set KILN_CACHE_DIR (or HOME)");
}

std::string default_model_path(const std::function<void(const std::string&)>& log) {
  fs::path dir = cache_dir();
  fs::path path = dir / (std::string(kDefaultPreset) + "-seed" + std::to_string(kDefaultSeed) + "-v" +
                         std::to_string(kGraphVersion) + ".onnx");
  if (fs::exists(path)) return path.string();

  auto start = std::chrono::steady_clock::now();
  if (log)
    log("building the built-in model (" + std::string(kDefaultPreset) + ", random weights, seed " +
        std::to_string(kDefaultSeed) + ") into " + path.string());
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create the cache folder ", dir.string(), ": ", ec.message());
  TransformerConfig config = preset_config(kDefaultPreset);
  auto weights = random_weights(kDefaultSeed);
  ExportOptions options;
  options.weights_description = "random, seed " + std::to_string(kDefaultSeed);
  ExportResult result = export_model(config, *weights, options);
  onnx_io::save_model(result.model, path.string());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (log) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f s", seconds);
    log("built-in model ready (" + std::string(buf) + ")");
  }
  return path.string();
}

}  // namespace kiln::exporter

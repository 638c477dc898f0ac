// The built-in default model: the bert-base preset with seeded random weights, exported once and kept in
// the user's cache so that `kiln run`, `kiln bench` and `kiln pipeline` work with no model and no download.
#pragma once

#include <functional>
#include <string>

namespace kiln::exporter {

inline constexpr const char* kDefaultPreset = "bert-base";
inline constexpr uint64_t kDefaultSeed = 0;

// $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else $HOME/.cache/kiln.
std::string cache_dir();

// Path of the cached default model, exporting it there first when absent. `log` gets one line per step
// (building, writing) so a caller can show progress; it is not called on a cache hit.
std::string default_model_path(const std::function<void(const std::string&)>& log = {});

}  // namespace kiln::exporter

// What a graph pass is, and what it reports. A pass is a function `bool run(ir::Graph&, PassContext&)`
// in its own file (declared in passes/passes.h) that returns whether it changed the graph, and tells the
// context what it changed (counts by kind) and, for candidates it looked at and left alone, why.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"
#include "ops/op_def.h"

namespace kiln::passes {

enum class Level { kNone = 0, kBasic = 1, kExtended = 2, kAll = 3 };

// "none", "basic", "extended", "all"; throws on anything else.
Level parse_level(const std::string& text);
const char* level_name(Level level);

// Which runtime the optimized model is for. kOnnxRuntime writes only ops ONNX Runtime 1.30 runs (what
// `kiln optimize` writes by default, so that its output stays portable); kKiln also writes kiln's own fused
// ops in domain ai.kiln, which only kiln runs (what a Session uses in memory).
enum class Target { kOnnxRuntime, kKiln };

// "ort", "kiln"; throws on anything else.
Target parse_target(const std::string& text);
const char* target_name(Target target);

struct OptimizeOptions {
  Level level = Level::kAll;
  Target target = Target::kKiln;
  // Constant folding leaves a node alone when its outputs would exceed this many bytes, so that folding
  // never makes a model much larger (an Expand of a scalar to a big tensor stays an Expand).
  int64_t fold_budget_bytes = int64_t{64} << 20;
  ops::Limits limits;
};

// A candidate the pass matched partly and did not rewrite.
struct Rejection {
  std::string pattern;  // "attention", "LayerNorm"
  std::string node;     // the node where the match started, as Node::label() writes it
  std::string reason;   // "mask is not additive"
};

struct PassReport {
  std::string pass;
  std::map<std::string, int64_t> changes;  // what was rewritten, by kind
  std::vector<Rejection> rejections;
};

class PassContext {
 public:
  PassContext(ir::Model& model, const OptimizeOptions& options, PassReport& report)
      : model_(model), options_(options), report_(report) {}

  ir::Model& model() { return model_; }
  const OptimizeOptions& options() const { return options_; }
  int64_t opset() const { return model_.opset(""); }

  void changed(const std::string& kind, int64_t count = 1) { report_.changes[kind] += count; }
  void rejected(const std::string& pattern, const ir::Node& at, std::string reason) {
    report_.rejections.push_back({pattern, at.label(), std::move(reason)});
  }
  // A value or node name not used anywhere in the model yet, based on `base`.
  std::string fresh_name(const std::string& base);
  // Makes sure the model imports com.microsoft (version 1), for a pass that writes a contrib op.
  void import_contrib_domain();
  // The same for ai.kiln, for a pass that writes one of kiln's own fused ops (only with Target::kKiln).
  void import_kiln_domain();

 private:
  ir::Model& model_;
  const OptimizeOptions& options_;
  PassReport& report_;
  std::unordered_set<std::string> names_;
  bool names_ready_ = false;
};

using PassFn = bool (*)(ir::Graph& graph, PassContext& ctx);

struct Pass {
  const char* name;
  Level level;  // the lowest level that runs it
  PassFn run;
};

inline constexpr const char* kContribDomain = "com.microsoft";
inline constexpr const char* kKilnDomain = "ai.kiln";

}  // namespace kiln::passes

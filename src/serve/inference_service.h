// The Open Inference Protocol's REST routes over the models of a repository (serve/model_repository.h),
// each version loaded into a kiln Session, optimized and warmed up (one run on generated inputs) before
// the service is made, so that /v2/health/ready means every model answers at once.
//
//   GET  /v2                                          server metadata
//   GET  /v2/health/live, /v2/health/ready            200 while live / ready
//   GET  /v2/models/{m}[/versions/{v}]                model metadata: inputs and outputs, their datatypes
//                                                     and shapes (-1 for a dynamic dim)
//   GET  /v2/models/{m}[/versions/{v}]/ready          200 when that model is ready
//   POST /v2/models/{m}[/versions/{v}]/infer          inference (serve/oip_tensors.h); no version: the latest
// Errors are {"error": "..."}: 400 for a malformed request or tensor (the message names the input), 404 for
// an unknown route, model or version, 405 for a known route with the wrong method.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/session.h"
#include "serve/http_server.h"
#include "serve/model_repository.h"

namespace kiln::serve {

class InferenceService {
 public:
  using Progress = std::function<void(const std::string& line)>;

  // Loads and warms up every version of every model; fails (kiln::Error) naming the model file that cannot
  // be loaded.
  InferenceService(std::vector<ModelEntry> models, const Progress& progress = {});

  HttpResponse handle(const HttpRequest& request) const;

  // "NAME (versions 1, 2)" per model, for the startup line.
  std::vector<std::string> describe() const;

 private:
  struct Loaded {
    std::string version;
    std::unique_ptr<runtime::Session> session;
  };
  struct Model {
    ModelEntry entry;
    std::vector<Loaded> versions;  // ascending
  };

  HttpResponse model_metadata(const Model& m, const Loaded& v) const;
  HttpResponse infer(const Model& m, const Loaded& v, const HttpRequest& request) const;
  // The model and version a /v2/models/... path names, or the 404 to answer.
  const Model* find_model(const std::string& name) const;

  std::map<std::string, Model> models_;
};

}  // namespace kiln::serve

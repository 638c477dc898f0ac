// The Open Inference Protocol's REST routes over the models of a repository (serve/model_repository.h),
// each version loaded into a kiln Session, optimized and warmed up (one run on generated inputs) before
// it is served, so that /v2/health/ready means every model answers at once.
//
//   GET  /v2                                          server metadata
//   GET  /v2/health/live, /v2/health/ready            200 while live / ready
//   GET  /v2/models/{m}[/versions/{v}]                model metadata: inputs and outputs, their datatypes
//                                                     and shapes (-1 for a dynamic dim)
//   GET  /v2/models/{m}[/versions/{v}]/ready          200 when that model is ready
//   POST /v2/models/{m}[/versions/{v}]/infer          inference (serve/oip_tensors.h); no version: the latest
//   POST /v2/repository/index                         the repository's models, loaded or not
//   POST /v2/repository/models/{m}/load               (re)reads model m from the repository and swaps it in
//   POST /v2/repository/models/{m}/unload             stops serving m
//   GET  /metrics                                     Prometheus text (serve/prometheus.h)
// Errors are {"error": "..."}: 400 for a malformed request or tensor (the message names the input), 404 for
// an unknown route, model or version, 405 for a known route with the wrong method, 503 with Retry-After when
// the model's queue is full, 504 when a request waited in it past its timeout.
//
// Inference requests go through the model version's queue (serve/batch_queue.h) to the workers shared by
// every model (serve/batch_scheduler.h). A load reads the model again and swaps it in only once it is
// loaded and warmed up: a load that fails leaves the old version serving, and the requests already queued
// on a replaced or unloaded version still run on it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/session.h"
#include "serve/access_log.h"
#include "serve/batch_scheduler.h"
#include "serve/http_server.h"
#include "serve/model_repository.h"
#include "serve/prometheus.h"
#include "text/wordpiece_tokenizer.h"

namespace kiln::serve {

struct ServiceOptions {
  std::string repository;  // a folder or one .onnx file (what load requests read again)
  int workers = 0;         // inference workers shared by every model; 0: the most instances of any model
  // A single MODEL.onnx's config (kiln serve's batching flags); a repository's models read config.json.
  std::optional<ModelConfig> file_config;
  int intra_op_threads = 1;
  AccessLog* access_log = nullptr;  // may be null
  std::function<void(const std::string& line)> progress;
};

class InferenceService {
 public:
  // Loads and warms up every model of the repository; fails (kiln::Error) naming the model file that cannot
  // be loaded.
  explicit InferenceService(ServiceOptions options);
  ~InferenceService();
  InferenceService(const InferenceService&) = delete;
  InferenceService& operator=(const InferenceService&) = delete;

  // The HTTP server's handler: answers through `reply`, at once or (inference, loads) later.
  void handle(const HttpRequest& request, const HttpReply& reply);
  // The HTTP server's observer: the access log and the request counters.
  void observe(const HttpExchangeRecord& record);
  // The server is stopping: queued requests run at once instead of waiting for fuller batches.
  void drain() { scheduler_->flush(); }

  // "NAME (versions 1, 2)" per model, for the startup line.
  std::vector<std::string> describe() const;

  struct Version;
  struct Model;

 private:
  std::shared_ptr<const Model> load_model(ModelEntry entry);
  void load_versions(Model& m);
  std::shared_ptr<const Model> find_model(const std::string& name) const;
  void infer(const Model& m, const std::shared_ptr<const Version>& v, const HttpRequest& request,
             const HttpReply& reply);
  void run_batch(std::vector<JobPtr>& batch);
  void expire(const JobPtr& job);
  void repository_request(const std::vector<std::string>& path, const HttpReply& reply);
  HttpResponse repository_index() const;
  HttpResponse metrics_text();
  void retire(const Model& m);

  ServiceOptions options_;
  MetricsRegistry metrics_;
  mutable std::mutex models_mutex_;
  std::map<std::string, std::shared_ptr<const Model>> models_;
  class Loader;  // runs loads and unloads one at a time, off the I/O threads
  std::unique_ptr<Loader> loader_;
  // Last: destroyed first, so that its workers finish the queued requests while the models are still here.
  std::unique_ptr<BatchScheduler> scheduler_;
};

}  // namespace kiln::serve

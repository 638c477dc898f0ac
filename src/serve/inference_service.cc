#include "serve/inference_service.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <cstdio>
#include <sstream>
#include <thread>

#include "bench/bench_inputs.h"
#include "common/error.h"
#include "onnx/model_io.h"
#include "runtime/threads.h"
#include "serve/batch_tensors.h"
#include "serve/oip_tensors.h"

namespace kiln::serve {

using nlohmann::json;

struct InferenceService::Version {
  std::string model, version;
  std::unique_ptr<runtime::Session> session;
  BatchScheduler::QueuePtr queue;
  int64_t max_batch_size = 0;
  std::optional<TextInputConfig> text;
  std::optional<text::WordPieceTokenizer> tokenizer;
  MetricLabels labels;  // model, version
  // Sequence bucketing (model_repository.h, sequence_bucket): the inputs padded along dim 1 and the
  // (output, axis) places cut back; bucket 0 when the model does not qualify or it is off.
  int64_t sequence_bucket = 0;
  std::vector<std::string> sequence_inputs;
  std::vector<std::pair<size_t, size_t>> sequence_outputs;
};

struct InferenceService::Model {
  ModelEntry entry;
  std::vector<std::shared_ptr<const Version>> versions;  // ascending
};

// Named, not anonymous: the sanitizer build compiles kiln_core as a unity build.
namespace inference_service_detail {

constexpr const char* kServerVersion = "0.2.0";

// One inference request on its way through a model version's queue.
struct InferJob : QueuedJob {
  explicit InferJob(HttpReply r) : reply(std::move(r)) {}
  std::shared_ptr<const InferenceService::Version> version;
  InferRequest request;
  HttpReply reply;
  int64_t sequence = -1;  // the request's own sequence length when its inputs were padded
};

std::vector<std::string> split_path(const std::string& target) {
  std::vector<std::string> parts;
  std::stringstream in(target);
  for (std::string part; std::getline(in, part, '/');)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

HttpResponse json_ok(const json& body) {
  HttpResponse r;
  r.body = body.dump();
  return r;
}

json tensor_metadata(const ir::ValueInfo& v) {
  json shape = json::array();
  if (v.type.shape)
    for (const ir::Dim& d : v.type.shape->dims) shape.push_back(d.is_static() ? d.value : -1);
  return {{"name", v.name}, {"datatype", oip_datatype(v.type.dtype).value_or("")}, {"shape", shape}};
}

double seconds_between(ServeClock::time_point a, ServeClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// One run on generated inputs (batch 1, a short sequence), so that the first request pays no first-call cost.
// The plan comes from the model as read: the session's copy no longer holds the packed weights, whose
// embedding table gives the token ids' range.
void warm_up(const runtime::Session& session, const bench::InputPlan& plan) {
  const std::vector<ir::Tensor> inputs = bench::generate_inputs(plan, 1, 16);
  std::unordered_map<std::string, ir::Datum> feeds;
  for (size_t i = 0; i < plan.inputs.size(); ++i) feeds.emplace(plan.inputs[i].info.name, inputs[i]);
  (void)session.run(feeds);
}

// The request's tensors against the model's inputs, so that a client reads what is wrong in the protocol's
// terms (and no server path): an unknown or missing input, a datatype or a rank or a fixed dim that differs.
void check_inputs(const runtime::Session& session, const InferRequest& req) {
  std::string names;
  for (const ir::ValueInfo& in : session.inputs()) names += (names.empty() ? "" : ", ") + in.name;
  for (const auto& [name, t] : req.inputs) {
    const ir::ValueInfo* in = nullptr;
    for (const ir::ValueInfo& i : session.inputs())
      if (i.name == name) in = &i;
    if (in == nullptr) throw RequestError(str("unknown input \"", name, "\" (the model's inputs: ", names, ")"));
    const std::string want = oip_datatype(in->type.dtype).value_or(std::string(ir::dtype_name(in->type.dtype)));
    if (t.dtype() != in->type.dtype)
      throw RequestError(
          str("input \"", name, "\": datatype ", oip_datatype(t.dtype()).value_or("?"), ", the model takes ", want));
    if (!in->type.shape) continue;
    const std::vector<ir::Dim>& dims = in->type.shape->dims;
    bool fits = dims.size() == t.rank();
    for (size_t d = 0; fits && d < dims.size(); ++d) fits = !dims[d].is_static() || dims[d].value == t.dim(d);
    if (!fits)
      throw RequestError(str("input \"", name, "\": shape ", ir::to_string(t.shape()), ", the model takes ",
                             ir::to_string(*in->type.shape)));
  }
  for (const ir::ValueInfo& in : session.inputs()) {
    bool given = false;
    for (const auto& [name, t] : req.inputs) given |= name == in.name;
    if (!given) throw RequestError(str("missing input \"", in.name, "\" (the model's inputs: ", names, ")"));
  }
}

// Raw text in the request (the configured BYTES input) into the model's token inputs, padded to the longest
// text (the batcher's sequence bucket then pads further, so that texts of similar length batch together).
void tokenize_text(const InferenceService::Version& v, InferRequest& req) {
  const TextInputConfig& cfg = *v.text;
  auto it = std::find_if(req.inputs.begin(), req.inputs.end(), [&](const auto& in) { return in.first == cfg.input; });
  if (it == req.inputs.end()) return;
  const ir::Tensor& t = it->second;
  if (t.dtype() != ir::DType::kString)
    throw RequestError(str("input \"", cfg.input, "\": datatype ", oip_datatype(t.dtype()).value_or("?"),
                           ", raw text is BYTES"));
  if (t.rank() != 1 || t.dim(0) < 1)
    throw RequestError(str("input \"", cfg.input, "\": shape ", ir::to_string(t.shape()), ", raw text is [n] (n >= 1)"));
  std::vector<std::string> texts(t.data<std::string>(), t.data<std::string>() + t.numel());
  std::vector<text::Encoding> enc = v.tokenizer->encode_batch(texts, {}, text::Padding::kLongest);
  const int64_t rows = static_cast<int64_t>(enc.size());
  const int64_t cols = static_cast<int64_t>(enc[0].ids.size());  // the longest text's tokens
  std::vector<std::pair<std::string, ir::Tensor>> tokens;
  for (const ir::ValueInfo& in : v.session->inputs()) {
    std::vector<int64_t> text::Encoding::*field = nullptr;
    if (in.name == "input_ids") {
      field = &text::Encoding::ids;
    } else if (in.name == "attention_mask") {
      field = &text::Encoding::attention_mask;
    } else if (in.name == "token_type_ids") {
      field = &text::Encoding::token_type_ids;
    } else {
      continue;
    }
    for (const auto& given : req.inputs)
      if (given.first == in.name)
        throw RequestError(str("give either \"", cfg.input, "\" (raw text) or the token inputs, not both (\"",
                               in.name, "\" was given too)"));
    ir::Tensor out(in.type.dtype, {rows, cols});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t value = (enc[r].*field)[c];
        if (in.type.dtype == ir::DType::kInt32)
          out.data<int32_t>()[r * cols + c] = static_cast<int32_t>(value);
        else
          out.data<int64_t>()[r * cols + c] = value;
      }
    tokens.emplace_back(in.name, std::move(out));
  }
  req.inputs.erase(it);
  for (auto& tok : tokens) req.inputs.push_back(std::move(tok));
}

// Which inputs and outputs carry input_ids' named sequence dim (dim 1), when attention_mask carries it too
// (padding is then masked); none when the model does not qualify.
void plan_sequence_bucket(InferenceService::Version& v, int64_t bucket) {
  if (bucket <= 1) return;
  std::string symbol;
  bool masked = false;
  for (const ir::ValueInfo& in : v.session->inputs())
    if (in.name == "input_ids" && in.type.shape && in.type.shape->dims.size() == 2 &&
        in.type.shape->dims[1].is_symbolic())
      symbol = in.type.shape->dims[1].symbol;
  if (symbol.empty()) return;
  for (const ir::ValueInfo& in : v.session->inputs()) {
    if (!in.type.shape) return;
    const auto& dims = in.type.shape->dims;
    for (size_t d = 0; d < dims.size(); ++d)
      if (dims[d].is_symbolic() && dims[d].symbol == symbol) {
        if (d != 1) return;  // the sequence elsewhere than dim 1: not padded
        v.sequence_inputs.push_back(in.name);
        masked |= in.name == "attention_mask";
      }
  }
  if (!masked) {
    v.sequence_inputs.clear();
    return;
  }
  for (size_t i = 0; i < v.session->outputs().size(); ++i) {
    const auto& shape = v.session->outputs()[i].type.shape;
    if (!shape) continue;
    for (size_t d = 1; d < shape->dims.size(); ++d)
      if (shape->dims[d].is_symbolic() && shape->dims[d].symbol == symbol) v.sequence_outputs.emplace_back(i, d);
  }
  v.sequence_bucket = bucket;
}

// Pads the request's sequence inputs (mask 0, ids 0: [PAD]) to the next multiple of the bucket; returns the
// request's own length, or -1 when nothing was padded.
int64_t pad_sequence(const InferenceService::Version& v, InferRequest& req) {
  int64_t length = -1;
  for (const auto& [name, t] : req.inputs)
    if (name == "input_ids") length = t.dim(1);
  if (length < 0) return -1;
  const int64_t padded = (length + v.sequence_bucket - 1) / v.sequence_bucket * v.sequence_bucket;
  for (auto& [name, t] : req.inputs) {
    if (std::find(v.sequence_inputs.begin(), v.sequence_inputs.end(), name) == v.sequence_inputs.end()) continue;
    if (t.dim(1) != length)
      throw RequestError(str("input \"", name, "\": ", t.dim(1), " tokens, input_ids has ", length));
    if (padded != length) t = pad_axis(t, 1, padded);
  }
  return padded != length ? length : -1;
}

// Requests of one key stack into a batch: each input's name, datatype and dims after the first.
std::string shape_key(const InferRequest& req) {
  std::vector<std::string> parts;
  for (const auto& [name, t] : req.inputs) {
    std::string p = name + ":" + std::to_string(static_cast<int>(t.dtype()));
    for (size_t d = 1; d < t.rank(); ++d) p += "x" + std::to_string(t.dim(d));
    parts.push_back(p);
  }
  std::sort(parts.begin(), parts.end());
  std::string key;
  for (const std::string& p : parts) key += p + ";";
  return key;
}

int64_t batch_items(const InferRequest& req, int64_t max_batch_size) {
  int64_t items = -1;
  for (const auto& [name, t] : req.inputs) {
    if (t.rank() == 0) throw RequestError(str("input \"", name, "\": a scalar has no batch dim"));
    if (items >= 0 && t.dim(0) != items)
      throw RequestError(str("input \"", name, "\": ", t.dim(0), " rows, the other inputs have ", items,
                             " (the first dim is the batch)"));
    items = t.dim(0);
  }
  if (items < 1) throw RequestError("an inference request needs at least one row");
  if (items > max_batch_size)
    throw RequestError(str(items, " rows exceed the model's max_batch_size of ", max_batch_size));
  return items;
}

// The outputs a request asked for (all, by default), rows [begin, begin + rows) of each when batched.
std::vector<std::pair<std::string, ir::Tensor>> request_outputs(const InferenceService::Version& v,
                                                                const InferRequest& req,
                                                                const std::vector<ir::Datum>& results, bool batched,
                                                                int64_t begin, int64_t rows, int64_t sequence) {
  const std::vector<ir::ValueInfo>& outs = v.session->outputs();
  std::vector<size_t> picked;
  if (req.outputs.empty()) {
    for (size_t i = 0; i < outs.size(); ++i)
      if (results[i].is_tensor()) picked.push_back(i);
  } else {
    for (const std::string& name : req.outputs) {
      size_t i = 0;
      while (i < outs.size() && outs[i].name != name) ++i;
      if (i == outs.size()) throw RequestError(str("unknown output \"", name, "\" of model ", v.model));
      if (!results[i].is_tensor()) throw RequestError(str("output \"", name, "\" is not a tensor"));
      picked.push_back(i);
    }
  }
  std::vector<std::pair<std::string, ir::Tensor>> chosen;
  for (size_t i : picked) {
    ir::Tensor t = batched ? slice_rows(results[i].tensor, begin, rows) : results[i].tensor;
    // Padded sequence places cut back to the request's own length.
    for (const auto& [o, axis] : v.sequence_outputs)
      if (o == i && sequence >= 0 && axis < t.rank() && t.dim(axis) > sequence) t = truncate_axis(t, axis, sequence);
    chosen.emplace_back(outs[i].name, std::move(t));
  }
  return chosen;
}

std::string log_fields(const InferJob& job, size_t batch, double queue_s, double compute_s) {
  auto ms = [](double s) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", s * 1000);
    return std::string(text);
  };
  std::string f = "\"model\":" + json(job.version->model).dump() + ",\"version\":" + json(job.version->version).dump();
  if (batch > 0) f += ",\"batch\":" + std::to_string(batch) + ",\"queue_ms\":" + ms(queue_s) + ",\"compute_ms\":" + ms(compute_s);
  return f;
}

}  // namespace inference_service_detail

// A small loop that runs model loads and unloads off the I/O threads, one at a time.
class InferenceService::Loader {
 public:
  Loader() : thread_([this] { loop(); }) {}
  ~Loader() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  void post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_all();
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

using namespace inference_service_detail;

InferenceService::InferenceService(ServiceOptions options) : options_(std::move(options)) {
  const std::vector<double> seconds = exponential_buckets(0.00025, 2, 16);
  metrics_.counter_family("kiln_http_requests_total", "HTTP requests answered, by status code");
  metrics_.counter_family("kiln_inference_requests_total",
                          "Inference requests answered, by model, version and status code");
  metrics_.histogram_family("kiln_inference_request_duration_seconds",
                            "Inference requests from arrival to answer (queue and compute)", seconds);
  metrics_.histogram_family("kiln_inference_queue_duration_seconds",
                            "Time inference requests waited in their model's queue", seconds);
  metrics_.histogram_family("kiln_inference_compute_duration_seconds", "Time each batch took to run", seconds);
  metrics_.histogram_family("kiln_inference_batch_size", "Items (rows) in each batch run",
                            {1, 2, 4, 8, 16, 32, 64, 128, 256});
  metrics_.gauge_family("kiln_inference_requests_in_flight", "Inference requests queued or running");
  metrics_.gauge_family("kiln_inference_queue_depth", "Requests waiting in each model version's queue");
  metrics_.counter_family("kiln_model_loads_total", "Model loads and unloads asked for, by model and result");
  metrics_.set("kiln_inference_requests_in_flight", {}, 0);
  const std::vector<ModelEntry> entries = scan_model_repository(options_.repository);
  int workers = options_.workers;
  if (workers <= 0) {
    workers = 1;
    for (const ModelEntry& e : entries)
      workers = std::max<int>(workers, static_cast<int>(options_.file_config ? options_.file_config->instances
                                                                             : e.config.instances));
  }
  scheduler_ = std::make_unique<BatchScheduler>(workers, options_.intra_op_threads);
  for (const ModelEntry& e : entries) models_.emplace(e.name, load_model(e));
  loader_ = std::make_unique<Loader>();
}

// The scheduler, destroyed next, runs every queued request before its workers end.
InferenceService::~InferenceService() { loader_.reset(); }  // a load in progress finishes first

std::shared_ptr<const InferenceService::Model> InferenceService::load_model(ModelEntry e) {
  std::error_code ec;
  if (options_.file_config && std::filesystem::is_regular_file(options_.repository, ec)) e.config = *options_.file_config;
  auto m = std::make_shared<Model>();
  m->entry = std::move(e);
  try {
    load_versions(*m);
  } catch (...) {
    retire(*m);  // the versions loaded before the one that failed
    throw;
  }
  return m;
}

void InferenceService::load_versions(Model& m) {
  const ModelEntry& e = m.entry;
  const ModelConfig& cfg = e.config;
  for (const ModelVersion& mv : e.versions) {
    if (options_.progress) options_.progress("loading " + e.name + " version " + mv.version + " from " + mv.path);
    auto v = std::make_shared<Version>();
    v->model = e.name;
    v->version = mv.version;
    v->labels = {{"model", e.name}, {"version", mv.version}};
    v->max_batch_size = cfg.max_batch_size;
    runtime::SessionOptions so;
    so.optimization = cfg.level;
    so.precision = cfg.precision;
    ir::Model model = onnx_io::load_model(mv.path);
    const bench::InputPlan plan = bench::plan_inputs(model.graph);
    v->session = std::make_unique<runtime::Session>(std::move(model), so);
    if (cfg.max_batch_size > 0)
      for (const ir::ValueInfo& in : v->session->inputs())
        if (!in.type.shape || in.type.shape->dims.empty() || in.type.shape->dims[0].is_static())
          fail(mv.path, ": max_batch_size ", cfg.max_batch_size, " batches along the first dim, which input \"",
               in.name, "\" does not leave dynamic (",
               in.type.shape ? ir::to_string(*in.type.shape) : std::string("no shape"),
               "); set max_batch_size 0 in config.json");
    if (cfg.text) {
      bool has_ids = false;
      for (const ir::ValueInfo& in : v->session->inputs()) has_ids |= in.name == "input_ids";
      if (!has_ids) fail(mv.path, ": config.json's \"text\" feeds input_ids, which this model has no input named");
      text::TokenizerOptions to;
      to.lower_case = cfg.text->lower_case;
      to.max_length = cfg.text->max_length;
      v->text = cfg.text;
      v->tokenizer = text::WordPieceTokenizer::from_file(cfg.text->vocab, to);
    }
    if (cfg.max_batch_size > 0) plan_sequence_bucket(*v, cfg.batching.sequence_bucket);
    try {
      warm_up(*v->session, plan);
    } catch (const Error& err) {
      fail(mv.path, ": the warm-up run failed: ", err.what());
    }
    BatchPolicy policy;
    policy.max_batch_size = cfg.max_batch_size;
    policy.preferred_batch_sizes = cfg.batching.preferred_batch_sizes;
    policy.max_queue_delay = std::chrono::microseconds(cfg.batching.max_queue_delay_us);
    policy.max_queue_size = static_cast<size_t>(cfg.batching.max_queue_size);
    policy.timeout = std::chrono::milliseconds(cfg.batching.timeout_ms);
    policy.instances = cfg.instances;
    v->queue = scheduler_->add_queue(
        policy, {[this](std::vector<JobPtr>& batch) { run_batch(batch); }, [this](const JobPtr& j) { expire(j); }});
    m.versions.push_back(std::move(v));
  }
}

void InferenceService::retire(const Model& m) {
  for (const auto& v : m.versions) scheduler_->retire(v->queue);
}

std::vector<std::string> InferenceService::describe() const {
  std::lock_guard lock(models_mutex_);
  std::vector<std::string> out;
  for (const auto& [name, m] : models_) {
    std::string versions;
    for (const auto& v : m->versions) versions += (versions.empty() ? "" : ", ") + v->version;
    std::string batching = m->entry.config.max_batch_size > 0
                               ? str(", batches up to ", m->entry.config.max_batch_size, " within ",
                                     m->entry.config.batching.max_queue_delay_us, " us")
                               : ", no batching";
    out.push_back(name + " (version" + (m->versions.size() > 1 ? "s " : " ") + versions + batching + ")");
  }
  return out;
}

std::shared_ptr<const InferenceService::Model> InferenceService::find_model(const std::string& name) const {
  std::lock_guard lock(models_mutex_);
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second;
}

void InferenceService::observe(const HttpExchangeRecord& record) {
  metrics_.inc("kiln_http_requests_total", {{"code", std::to_string(record.status)}});
  if (options_.access_log) options_.access_log->write(record);
}

void InferenceService::infer(const Model& m, const std::shared_ptr<const Version>& v, const HttpRequest& request,
                             const HttpReply& reply) {
  auto job = std::make_shared<InferJob>(reply);
  job->arrived = ServeClock::now();
  job->version = v;
  auto refuse = [&](int status, HttpResponse r) {
    metrics_.inc("kiln_inference_requests_total", {{"code", std::to_string(status)}, {"model", v->model}, {"version", v->version}});
    r.log_fields = log_fields(*job, 0, 0, 0);
    reply.send(std::move(r));
  };
  try {
    job->request = parse_infer_request(request.body, request.header("inference-header-content-length"));
    if (v->text) tokenize_text(*v, job->request);
    check_inputs(*v->session, job->request);
    for (const std::string& name : job->request.outputs) {
      bool known = false;
      for (const ir::ValueInfo& o : v->session->outputs()) known |= o.name == name;
      if (!known) throw RequestError(str("unknown output \"", name, "\" of model ", v->model));
    }
    if (v->max_batch_size > 0) {
      job->items = batch_items(job->request, v->max_batch_size);
      if (v->sequence_bucket > 1) job->sequence = pad_sequence(*v, job->request);
      job->shape_key = shape_key(job->request);
    }
  } catch (const RequestError& e) {
    return refuse(400, json_error(400, e.what()));
  } catch (const Error& e) {
    return refuse(400, json_error(400, e.what()));
  }
  if (scheduler_->submit(v->queue, job) == BatchScheduler::Admit::kFull) {
    HttpResponse r = json_error(503, str("model \"", m.entry.name, "\" has ", m.entry.config.batching.max_queue_size,
                                         " requests queued, its max_queue_size; retry later"));
    r.headers.emplace_back("Retry-After", "1");
    return refuse(503, std::move(r));
  }
  metrics_.add("kiln_inference_requests_in_flight", {}, 1);
  reply.on_client_gone([this, v, weak = std::weak_ptr<InferJob>(job)] {
    auto j = weak.lock();
    if (!j || !scheduler_->cancel(v->queue, j.get())) return;
    metrics_.add("kiln_inference_requests_in_flight", {}, -1);
    metrics_.inc("kiln_inference_requests_total", {{"code", "499"}, {"model", v->model}, {"version", v->version}});
  });
}

void InferenceService::expire(const JobPtr& queued) {
  auto& job = static_cast<InferJob&>(*queued);
  const Version& v = *job.version;
  const double waited = seconds_between(job.arrived, ServeClock::now());
  metrics_.add("kiln_inference_requests_in_flight", {}, -1);
  metrics_.inc("kiln_inference_requests_total", {{"code", "504"}, {"model", v.model}, {"version", v.version}});
  HttpResponse r = json_error(504, str("the request waited ", static_cast<int64_t>(waited * 1000), " ms in model \"",
                                       v.model, "\"'s queue, past its timeout_ms of ",
                                       std::chrono::duration_cast<std::chrono::milliseconds>(
                                           job.deadline - job.arrived)
                                           .count()));
  r.log_fields = log_fields(job, 0, 0, 0);
  job.reply.send(std::move(r));
}

void InferenceService::run_batch(std::vector<JobPtr>& batch) {
  const ServeClock::time_point started = ServeClock::now();
  const Version& v = *static_cast<InferJob&>(*batch.front()).version;
  const bool batched = v.max_batch_size > 0;
  int64_t total = 0;
  for (const JobPtr& j : batch) total += j->items;
  auto answer = [&](InferJob& job, HttpResponse r, double compute_s) {
    metrics_.add("kiln_inference_requests_in_flight", {}, -1);
    metrics_.inc("kiln_inference_requests_total",
                 {{"code", std::to_string(r.status)}, {"model", v.model}, {"version", v.version}});
    const double queue_s = seconds_between(job.arrived, started);
    metrics_.observe("kiln_inference_queue_duration_seconds", v.labels, queue_s);
    metrics_.observe("kiln_inference_request_duration_seconds", v.labels, seconds_between(job.arrived, ServeClock::now()));
    r.log_fields = log_fields(job, static_cast<size_t>(total), queue_s, compute_s);
    job.reply.send(std::move(r));
  };

  std::unordered_map<std::string, ir::Datum> feeds;
  if (batch.size() == 1) {
    for (const auto& [name, t] : static_cast<InferJob&>(*batch.front()).request.inputs) feeds.emplace(name, t);
  } else {
    for (const auto& [name, t] : static_cast<InferJob&>(*batch.front()).request.inputs) {
      std::vector<const ir::Tensor*> parts;
      for (const JobPtr& j : batch)
        for (const auto& [n, tensor] : static_cast<InferJob&>(*j).request.inputs)
          if (n == name) parts.push_back(&tensor);
      feeds.emplace(name, stack_rows(parts));
    }
  }
  std::vector<ir::Datum> results;
  try {
    results = v.session->run(feeds);
  } catch (const std::exception& e) {
    // One bad request (a token id past the vocabulary, say) must not fail the others batched with it.
    if (batch.size() > 1) {
      for (JobPtr& j : batch) {
        std::vector<JobPtr> alone{j};
        run_batch(alone);
      }
      return;
    }
    const bool request_fault = dynamic_cast<const Error*>(&e) != nullptr;
    answer(static_cast<InferJob&>(*batch.front()), json_error(request_fault ? 400 : 500, e.what()), 0);
    return;
  }
  const double compute_s = seconds_between(started, ServeClock::now());
  metrics_.observe("kiln_inference_compute_duration_seconds", v.labels, compute_s);
  metrics_.observe("kiln_inference_batch_size", v.labels, static_cast<double>(total));
  for (size_t i = 0; batched && i < results.size(); ++i)
    if (results[i].is_tensor() && (results[i].tensor.rank() == 0 || results[i].tensor.dim(0) != total)) {
      const std::string message = str("output \"", v.session->outputs()[i].name, "\" has shape ",
                                      ir::to_string(results[i].tensor.shape()), " for a batch of ", total,
                                      " rows: its first dim is not the batch; set max_batch_size 0 for model \"",
                                      v.model, "\"");
      for (JobPtr& j : batch) answer(static_cast<InferJob&>(*j), json_error(500, message), compute_s);
      return;
    }
  int64_t begin = 0;
  for (JobPtr& j : batch) {
    auto& job = static_cast<InferJob&>(*j);
    HttpResponse r;
    try {
      const auto outputs = request_outputs(v, job.request, results, batched, begin, job.items, job.sequence);
      std::vector<std::pair<std::string, const ir::Tensor*>> refs;
      for (const auto& [name, t] : outputs) refs.emplace_back(name, &t);
      const InferResponse encoded = encode_infer_response(v.model, v.version, job.request, refs);
      r.body = encoded.body;
      if (!encoded.header_length.empty()) {
        r.content_type = "application/octet-stream";
        r.headers.emplace_back("Inference-Header-Content-Length", encoded.header_length);
      }
    } catch (const RequestError& e) {
      r = json_error(400, e.what());
    }
    begin += job.items;
    answer(job, std::move(r), compute_s);
  }
}

HttpResponse InferenceService::repository_index() const {
  json index = json::array();
  std::vector<std::string> names;
  try {
    names = list_repository_models(options_.repository);
  } catch (const Error&) {  // the folder went away: the loaded models are still listed
  }
  std::lock_guard lock(models_mutex_);
  for (const auto& [name, m] : models_)
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    auto it = models_.find(name);
    if (it == models_.end()) {
      index.push_back({{"name", name}, {"state", "UNAVAILABLE"}, {"reason", "not loaded"}});
      continue;
    }
    for (const auto& v : it->second->versions)
      index.push_back({{"name", name}, {"version", v->version}, {"state", "READY"}, {"reason", ""}});
  }
  return json_ok(index);
}

void InferenceService::repository_request(const std::vector<std::string>& p, const HttpReply& reply) {
  if (p.size() == 3 && p[2] == "index") return reply.send(repository_index());
  if (p.size() != 5 || p[2] != "models" || (p[4] != "load" && p[4] != "unload"))
    return reply.send(json_error(404, "no route /" + [&] {
      std::string s;
      for (const auto& part : p) s += (s.empty() ? "" : "/") + part;
      return s;
    }()));
  const std::string name = p[3];
  const bool load = p[4] == "load";
  loader_->post([this, name, load, reply] {
    runtime::set_intra_op_threads(options_.intra_op_threads);
    std::shared_ptr<const Model> old;
    if (!load) {
      {
        std::lock_guard lock(models_mutex_);
        auto it = models_.find(name);
        if (it != models_.end()) {
          old = it->second;
          models_.erase(it);
        }
      }
      if (!old) return reply.send(json_error(404, "unknown model \"" + name + "\" (not loaded)"));
      retire(*old);
      metrics_.inc("kiln_model_loads_total", {{"model", name}, {"result", "unloaded"}});
      if (options_.progress) options_.progress("unloaded " + name);
      return reply.send(json_ok(json::object()));
    }
    std::shared_ptr<const Model> fresh;
    try {
      fresh = load_model(scan_repository_model(options_.repository, name));
    } catch (const std::exception& e) {
      metrics_.inc("kiln_model_loads_total", {{"model", name}, {"result", "failed"}});
      if (options_.progress) options_.progress("loading " + name + " failed: " + e.what());
      const bool known = find_model(name) != nullptr;
      return reply.send(json_error(
          400, str("failed to load model \"", name, "\": ", e.what(), known ? " (the loaded version still serves)" : "")));
    }
    {
      std::lock_guard lock(models_mutex_);
      auto& slot = models_[name];
      old = slot;
      slot = fresh;
    }
    if (old) retire(*old);
    metrics_.inc("kiln_model_loads_total", {{"model", name}, {"result", "loaded"}});
    if (options_.progress) options_.progress("loaded " + name);
    reply.send(json_ok(json::object()));
  });
}

HttpResponse InferenceService::metrics_text() {
  {
    std::lock_guard lock(models_mutex_);
    for (const auto& [name, m] : models_)
      for (const auto& v : m->versions)
        metrics_.set("kiln_inference_queue_depth", v->labels, static_cast<double>(scheduler_->depth(v->queue)));
  }
  HttpResponse r;
  r.content_type = kPrometheusContentType;
  r.body = metrics_.render();
  return r;
}

void InferenceService::handle(const HttpRequest& request, const HttpReply& reply) {
  const std::vector<std::string> p = split_path(request.target);
  const bool get = request.method == "GET" || request.method == "HEAD";
  auto wrong_method = [&] { return json_error(405, request.method + " is not allowed on " + request.target); };
  auto send = [&](HttpResponse r) { reply.send(std::move(r)); };
  if (p.size() == 1 && p[0] == "metrics") return send(get ? metrics_text() : wrong_method());
  if (p.empty() || p[0] != "v2") return send(json_error(404, "no route " + request.target + " (the API is under /v2)"));
  if (p.size() == 1) {
    if (!get) return send(wrong_method());
    return send(json_ok({{"name", "kiln"},
                         {"version", kServerVersion},
                         {"extensions", json::array({"binary_tensor_data", "model_repository"})}}));
  }
  if (p[1] == "health" && p.size() == 3 && (p[2] == "live" || p[2] == "ready")) {
    if (!get) return send(wrong_method());
    return send(json_ok(json::object({{p[2], true}})));
  }
  if (p[1] == "repository") {
    if (request.method != "POST") return send(wrong_method());
    return repository_request(p, reply);
  }
  if (p[1] != "models" || p.size() < 3) return send(json_error(404, "no route " + request.target));
  const std::shared_ptr<const Model> m = find_model(p[2]);
  if (m == nullptr) return send(json_error(404, "unknown model \"" + p[2] + "\""));
  size_t at = 3;
  std::shared_ptr<const Version> v = m->versions.back();
  if (p.size() > at && p[at] == "versions") {
    if (p.size() == at + 1) return send(json_error(404, "no route " + request.target));
    v = nullptr;
    for (const auto& l : m->versions)
      if (l->version == p[at + 1]) v = l;
    if (v == nullptr) return send(json_error(404, "model \"" + p[2] + "\" has no version \"" + p[at + 1] + "\""));
    at += 2;
  }
  if (p.size() == at) {
    if (!get) return send(wrong_method());
    json versions = json::array(), inputs = json::array(), outputs = json::array();
    for (const auto& l : m->versions) versions.push_back(l->version);
    for (const ir::ValueInfo& i : v->session->inputs()) inputs.push_back(tensor_metadata(i));
    if (v->text) inputs.push_back({{"name", v->text->input}, {"datatype", "BYTES"}, {"shape", {-1}}});
    for (const ir::ValueInfo& o : v->session->outputs()) outputs.push_back(tensor_metadata(o));
    json meta = {{"name", m->entry.name}, {"versions", versions}, {"platform", "onnx"}, {"inputs", inputs},
                 {"outputs", outputs}};
    if (m->entry.config.max_batch_size > 0) meta["max_batch_size"] = m->entry.config.max_batch_size;
    return send(json_ok(meta));
  }
  if (p.size() == at + 1 && p[at] == "ready")
    return send(get ? json_ok({{"name", m->entry.name}, {"version", v->version}, {"ready", true}}) : wrong_method());
  if (p.size() == at + 1 && p[at] == "infer") {
    if (request.method != "POST") return send(wrong_method());
    return infer(*m, v, request, reply);
  }
  send(json_error(404, "no route " + request.target));
}

}  // namespace kiln::serve

// kiln serve: a model repository (or one model) over the Open Inference Protocol's REST API
// (serve/inference_service.h) on kiln's HTTP layer (serve/http_server.h).
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "runtime/threads.h"
#include "serve/access_log.h"
#include "serve/http_server.h"
#include "serve/inference_service.h"
#include "serve/model_repository.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {

struct ServeArgs {
  std::string repository;
  std::string host = "127.0.0.1";
  int port = 8000;
  int threads = runtime::default_threads();
  int http_threads = 2;
  int workers = 0;
  // Batching of a single MODEL.onnx (a repository's models set it in config.json).
  int64_t max_batch_size = -1, batch_delay_us = -1, max_queue_size = -1, timeout_ms = -1;
  std::string access_log = "-";
  size_t max_body_mb = 64;
  double read_timeout_s = 10;
  bool quiet = false;
};

int run(const ServeArgs& args) {
  if (args.port < 0 || args.port > 65535) fail("--port ", args.port, ": 0 to 65535 (0: any free port)");
  if (args.threads < 1 || args.http_threads < 1 || args.workers < 0)
    fail("--threads and --http-threads must be >= 1, --workers >= 0");
  runtime::set_intra_op_threads(args.threads);
  auto log = [&](const std::string& line) {
    if (!args.quiet) std::fprintf(stderr, "%s\n", line.c_str());
  };
  serve::AccessLog access_log(args.quiet && args.access_log == "-" ? "off" : args.access_log);
  serve::ServiceOptions options;
  options.repository = args.repository;
  options.workers = args.workers;
  const bool batching_flags =
      args.max_batch_size >= 0 || args.batch_delay_us >= 0 || args.max_queue_size >= 0 || args.timeout_ms >= 0;
  if (batching_flags) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(args.repository, ec))
      fail("--max-batch-size, --batch-delay-us, --max-queue-size and --timeout-ms are for one MODEL.onnx; a "
           "repository's models set them in NAME/config.json");
    serve::ModelConfig c;
    if (args.max_batch_size >= 0) c.max_batch_size = args.max_batch_size;
    if (args.batch_delay_us >= 0) c.batching.max_queue_delay_us = args.batch_delay_us;
    if (args.max_queue_size >= 0) {
      if (args.max_queue_size < 1) fail("--max-queue-size must be >= 1");
      c.batching.max_queue_size = args.max_queue_size;
    }
    if (args.timeout_ms >= 0) c.batching.timeout_ms = args.timeout_ms;
    options.file_config = c;
  }
  options.intra_op_threads = args.threads;
  options.access_log = &access_log;
  options.progress = log;
  serve::InferenceService service(options);
  serve::HttpLimits limits;
  limits.body_bytes = args.max_body_mb << 20;
  if (!(args.read_timeout_s > 0)) fail("--read-timeout-s must be > 0");
  limits.read_timeout = std::chrono::milliseconds(static_cast<int64_t>(args.read_timeout_s * 1000));
  serve::HttpServer server(
      args.host, static_cast<uint16_t>(args.port), limits,
      [&service](const serve::HttpRequest& r, const serve::HttpReply& reply) { service.handle(r, reply); },
      [&service](const serve::HttpExchangeRecord& record) { service.observe(record); });
  server.on_stop([&service] { service.drain(); });
  for (const std::string& m : service.describe()) log("serving " + m);
  // The one line a script waits for: the address, with the port chosen when --port 0.
  std::printf("kiln serve: ready on http://%s:%u\n", args.host.c_str(), static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  server.run(args.http_threads, true);
  log("kiln serve: stopped accepting; every request read was answered");
  return 0;
}

}  // namespace

Command serve_command() {
  auto args = std::make_shared<ServeArgs>();
  return {[args](CLI::App& app) {
            auto* c = app.add_subcommand(
                "serve",
                "Serve a model repository (NAME/VERSION/model.onnx with NAME/config.json), or one MODEL.onnx, over "
                "the Open Inference Protocol's REST API (KServe v2): health, model metadata and inference with "
                "JSON or binary tensors. Every model is loaded, optimized and warmed up before it listens");
            c->add_option("repository", args->repository, "A model repository folder, or one .onnx file")->required();
            c->add_option("--host", args->host, "Address to listen on")->capture_default_str();
            c->add_option("--port", args->port, "Port to listen on (0: any free port, printed when ready)")
                ->capture_default_str();
            c->add_option("--threads", args->threads, "Intra-op threads of each inference (default: the cores)")
                ->capture_default_str();
            c->add_option("--http-threads", args->http_threads,
                          "Threads reading requests and writing answers (inference runs on --workers)")
                ->capture_default_str();
            c->add_option("--max-body-mb", args->max_body_mb, "Largest request body; larger ones get 413")
                ->capture_default_str();
            c->add_option("--read-timeout-s", args->read_timeout_s,
                          "A request not received in full within this gets 408 (an idle connection is closed)")
                ->capture_default_str();
            c->add_option("--workers", args->workers,
                          "Inference workers shared by every model: batches that run at once, each with --threads "
                          "(0: the most instances any model's config.json asks for, at least 1)")
                ->capture_default_str();
            c->add_option("--max-batch-size", args->max_batch_size,
                          "For one MODEL.onnx: batch up to N rows of requests of the same shapes (default 0: no "
                          "batching); a repository sets this in NAME/config.json");
            c->add_option("--batch-delay-us", args->batch_delay_us,
                          "For one MODEL.onnx: how long the oldest request may wait for a fuller batch (default 0)");
            c->add_option("--max-queue-size", args->max_queue_size,
                          "For one MODEL.onnx: requests waiting at most; one more gets 503 (default 64)");
            c->add_option("--timeout-ms", args->timeout_ms,
                          "For one MODEL.onnx: a request still queued after this gets 504 (default 0: none)");
            c->add_option("--access-log", args->access_log,
                          "Where the access log goes, one JSON line per request: - (stderr), off, or a file")
                ->capture_default_str();
            c->add_flag("-q,--quiet", args->quiet, "No log on stderr (an --access-log file is still written)");
            c->footer(
                "Routes: GET /v2, /v2/health/live, /v2/health/ready, /v2/models/{m}[/versions/{v}], "
                "/v2/models/{m}[/versions/{v}]/ready; POST /v2/models/{m}[/versions/{v}]/infer; POST /v2/repository/index, "
                "/v2/repository/models/{m}/load|unload; GET /metrics (Prometheus). Each model's config.json sets "
                "its dynamic batching (max_batch_size, dynamic_batching: preferred_batch_size, "
                "max_queue_delay_microseconds, max_queue_size, timeout_ms), instances, optimization and raw-text "
                "input (text: vocab). Errors are {\"error\": \"...\"} with 400 (malformed request or tensor), "
                "404 (unknown model, version or route), 405, 408 (request too slow), 413 (body too large), 431 (headers over "
                "16 KiB), "
                "503 with Retry-After (queue full), 504 (timed out in the queue). SIGINT or SIGTERM stops "
                "accepting, answers every request already read and exits 0.");
            return c;
          },
          [args] { return run(*args); }};
}

}  // namespace kiln::tools

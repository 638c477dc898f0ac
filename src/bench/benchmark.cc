#include "bench/benchmark.h"

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <latch>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "bench/bench_inputs.h"
#include "common/error.h"
#include "io/npy.h"
#include "onnx/model_io.h"
#include "runtime/session.h"
#include "runtime/threads.h"

namespace kiln::bench {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Feeds = std::unordered_map<std::string, ir::Datum>;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

constexpr double kMiB = 1024.0 * 1024.0;

// A fresh folder under the system temp dir, removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (fs::temp_directory_path() / "kiln_bench_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) fail("cannot create a temporary folder in ", fs::temp_directory_path().string());
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void finish_round(RoundResult& r) {
  r.stats = summarize(r.latencies_ms);
  r.inferences_per_s = r.wall_ms > 0 ? static_cast<double>(r.latencies_ms.size()) * 1000.0 / r.wall_ms : 0;
}

// One round of W warmup calls then the timed calls, on `concurrency` callers sharing the session.
RoundResult kiln_round(const runtime::Session& session, const Feeds& feeds, const BenchOptions& o,
                       const std::string& label, const Progress& progress) {
  RoundResult r;
  const bool by_time = o.duration_s > 0;
  const auto duration = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s));
  // Per-call progress at most 5 times a second, so that drawing it costs nothing next to the calls.
  Clock::time_point last_shown;
  auto tick = [&](auto&&... text) {
    if (!progress || Clock::now() - last_shown < std::chrono::milliseconds(200)) return;
    last_shown = Clock::now();
    progress(str(label, ": ", text...), true);
  };
  if (o.concurrency <= 1) {
    // The same outputs from call to call: the session writes into them, and a steady-state call allocates
    // nothing (Session::run).
    std::vector<ir::Datum> outputs;
    for (int i = 0; i < o.warmup; ++i) {
      tick("warmup ", i + 1, "/", o.warmup);
      session.run(feeds, outputs);
    }
    const auto start = Clock::now();
    for (int64_t i = 0; by_time ? (i == 0 || Clock::now() - start < duration) : i < o.iterations; ++i) {
      if (by_time)
        tick("call ", i + 1);
      else
        tick("call ", i + 1, "/", o.iterations);
      const auto t = Clock::now();
      session.run(feeds, outputs);
      r.latencies_ms.push_back(ms_since(t));
    }
    r.wall_ms = ms_since(start);
    finish_round(r);
    return r;
  }

  // Session::run is const and keeps no state between calls (each call has its own value scope), so the
  // callers share one session. The timed phase starts when every caller has finished its warmup.
  if (progress) progress(str(label, ": ", o.concurrency, " callers"), true);
  const int per_caller_threads = std::max(1, o.threads / o.concurrency);
  std::latch warmed(o.concurrency), go(1);
  std::atomic<int64_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::exception_ptr error;
  Clock::time_point start;
  std::vector<std::vector<double>> per_caller(static_cast<size_t>(o.concurrency));
  std::vector<std::thread> callers;
  for (int c = 0; c < o.concurrency; ++c) {
    callers.emplace_back([&, c] {
      try {
        runtime::set_intra_op_threads(per_caller_threads);
        std::vector<ir::Datum> outputs;
        try {
          for (int i = 0; i < o.warmup && !stop; ++i) session.run(feeds, outputs);
        } catch (...) {
          warmed.count_down();
          throw;
        }
        warmed.count_down();
        go.wait();
        auto& mine = per_caller[static_cast<size_t>(c)];
        for (;;) {
          if (stop) break;
          if (by_time ? (!mine.empty() && Clock::now() - start >= duration) : next.fetch_add(1) >= o.iterations) break;
          const auto t = Clock::now();
          session.run(feeds, outputs);
          mine.push_back(ms_since(t));
        }
      } catch (...) {
        std::lock_guard lock(mu);
        if (!error) error = std::current_exception();
        stop = true;
      }
    });
  }
  warmed.wait();
  start = Clock::now();
  go.count_down();
  for (auto& t : callers) t.join();
  r.wall_ms = ms_since(start);
  if (error) std::rethrow_exception(error);
  for (const auto& v : per_caller) r.latencies_ms.insert(r.latencies_ms.end(), v.begin(), v.end());
  finish_round(r);
  return r;
}

RoundResult peer_round(const PeerScript& peer, const PeerEngine& engine, const BenchOptions& o,
                       const fs::path& input_dir, const fs::path& scratch, EngineResult* result) {
  PeerRoundOptions po;
  po.threads = o.threads;
  po.warmup = o.warmup;
  po.iterations = o.iterations;
  po.duration_s = o.duration_s;
  PeerRound p = run_peer_round(peer, engine, o.model, input_dir.string(), scratch.string(), po);
  RoundResult r;
  r.latencies_ms = std::move(p.latencies_ms);
  r.wall_ms = p.total_ms;
  r.load_ms = p.load_ms;
  r.first_ms = p.first_ms;
  r.peak_rss_mb = p.peak_rss_mb;
  result->version = p.version;
  result->precision = p.precision;
  finish_round(r);
  return r;
}

void validate(const BenchOptions& o) {
  std::error_code ec;
  if (!fs::exists(o.model, ec)) fail("cannot read model ", o.model, ": no such file");
  if (fs::is_directory(o.model, ec)) fail("cannot read model ", o.model, ": it is a folder, not an .onnx file");
  if (o.batches.empty()) fail("--batch needs at least one batch size");
  if (o.seqs.empty()) fail("--seq needs at least one sequence length");
  for (int64_t b : o.batches)
    if (b < 1) fail("--batch: batch sizes must be >= 1 (got ", b, ")");
  for (int64_t s : o.seqs)
    if (s < 1) fail("--seq: sequence lengths must be >= 1 (got ", s, ")");
  if (o.threads < 1) fail("--threads must be >= 1 (got ", o.threads, ")");
  if (o.warmup < 0) fail("--warmup must be >= 0 (got ", o.warmup, ")");
  if (o.iterations < 1) fail("--iterations must be >= 1 (got ", o.iterations, ")");
  if (!(o.duration_s >= 0) || !std::isfinite(o.duration_s)) fail("--duration must be a number of seconds > 0");
  if (o.concurrency < 1) fail("--concurrency must be >= 1 (got ", o.concurrency, ")");
  if (o.rounds < 1) fail("--rounds must be >= 1 (got ", o.rounds, ")");
  if (!o.inputs_npz.empty() && !o.input_dir.empty()) fail("give --inputs or --input-dir, not both");
  if (o.profile_runs < 0) fail("the number of profiled calls must be >= 0 (got ", o.profile_runs, ")");
  if (!o.peers.empty() && o.concurrency > 1)
    fail("--vs measures one caller at a time (the peers run calls one after another): drop --concurrency");
}

}  // namespace

void EngineResult::summarize() {
  auto med = [&](auto field) {
    std::vector<double> v;
    for (const auto& r : rounds) v.push_back(field(r));
    return median(std::move(v));
  };
  summary.count = 0;
  for (const auto& r : rounds) summary.count += r.stats.count;
  summary.min_ms = med([](const RoundResult& r) { return r.stats.min_ms; });
  summary.mean_ms = med([](const RoundResult& r) { return r.stats.mean_ms; });
  summary.p50_ms = med([](const RoundResult& r) { return r.stats.p50_ms; });
  summary.p90_ms = med([](const RoundResult& r) { return r.stats.p90_ms; });
  summary.p95_ms = med([](const RoundResult& r) { return r.stats.p95_ms; });
  summary.p99_ms = med([](const RoundResult& r) { return r.stats.p99_ms; });
  summary.max_ms = med([](const RoundResult& r) { return r.stats.max_ms; });
  iterations = med([](const RoundResult& r) { return static_cast<double>(r.stats.count); });
  inferences_per_s = med([](const RoundResult& r) { return r.inferences_per_s; });
  items_per_s = inferences_per_s * static_cast<double>(batch);
  if (engine != "kiln") {
    load_ms = med([](const RoundResult& r) { return r.load_ms; });
    first_ms = med([](const RoundResult& r) { return r.first_ms; });
    peak_rss_mb = 0;
    for (const auto& r : rounds) peak_rss_mb = std::max(peak_rss_mb, r.peak_rss_mb);
  }
}

double peak_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      double kb = 0;
      fields >> kb;
      return kb / 1024.0;
    }
  return 0;
}

bool reset_peak_rss() {
  // "5" resets the peak RSS to the current RSS (Linux 4.0+, see proc(5)).
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

BenchReport run_benchmark(const BenchOptions& o, const Progress& progress) {
  const Clock::time_point started = Clock::now();  // time 0 of the profiles
  validate(o);
  BenchReport report;
  report.options = o;
  std::optional<PeerScript> peer;
  if (!o.peers.empty()) peer = find_peer_script();  // before the long load: a missing peer fails at once
  runtime::set_intra_op_threads(o.threads);
  report.model_size_mb = static_cast<double>(fs::file_size(o.model)) / kMiB;
  auto say = [&](const std::string& text) {
    if (progress) progress(text, false);
  };

  // The first configuration's model is read before the configurations are known: its inputs decide
  // whether there is a sequence dim.
  std::optional<ir::Model> model;
  double read_ms = 0;
  auto read_model = [&] {
    reset_peak_rss();
    say("loading " + o.model);
    const auto t = Clock::now();
    model = onnx_io::load_model(o.model);
    read_ms = ms_since(t);
  };
  read_model();
  const InputPlan plan = plan_inputs(model->graph);

  std::vector<ir::Tensor> given;
  if (!o.inputs_npz.empty()) given = read_npz_inputs(plan, o.inputs_npz);
  if (!o.input_dir.empty()) given = read_input_dir(plan, o.input_dir);
  std::vector<std::pair<int64_t, std::optional<int64_t>>> configs;
  if (!given.empty()) {
    configs.push_back(bound_sizes(plan, given));
    report.notes.push_back("inputs from " + (o.inputs_npz.empty() ? o.input_dir : o.inputs_npz) +
                           ": one configuration with their shapes");
  } else if (plan.batch_dim.empty()) {
    configs.push_back({1, std::nullopt});
    report.notes.push_back("the model's inputs have no dynamic dims: --batch and --seq are ignored");
  } else {
    if (!plan.has_seq()) report.notes.push_back("the model has no sequence dim: --seq is ignored");
    for (int64_t b : o.batches) {
      if (!plan.has_seq()) {
        if (std::none_of(configs.begin(), configs.end(), [&](const auto& c) { return c.first == b; }))
          configs.push_back({b, std::nullopt});
        continue;
      }
      for (int64_t s : o.seqs) configs.push_back({b, s});
    }
    for (const auto& in : plan.inputs)
      if (in.vocab_guessed)
        report.notes.push_back("input \"" + in.info.name + "\": no embedding table found for its ids; token ids " +
                               "are drawn from [0, " + std::to_string(kFallbackVocabSize) + ")");
  }
  if (o.concurrency > 1)
    report.notes.push_back(str(o.concurrency, " callers share one session, each with ",
                               std::max(1, o.threads / o.concurrency), " intra-op thread(s)"));

  for (size_t ci = 0; ci < configs.size(); ++ci) {
    const auto [batch, seq] = configs[ci];
    const std::string name = seq ? str("batch ", batch, ", seq ", *seq) : str("batch ", batch);
    if (!model) read_model();
    say(name + ": creating the session");
    const auto t = Clock::now();
    runtime::SessionOptions so;
    so.optimization = o.level;
    so.precision = o.precision;
    std::optional<runtime::Session> session;
    session.emplace(std::move(*model), so);
    model.reset();
    if (ci == 0 && session->precision() == runtime::Precision::kBfloat16 && !session->computes_bf16())
      report.notes.push_back("bf16 asked for, but this CPU computes bfloat16 no faster than float32 (no AVX512-BF16 "
                             "or AMX), so kiln's matrix products ran in float32");

    ConfigResult cr;
    cr.batch = batch;
    cr.seq = seq;
    EngineResult& k = cr.kiln;
    k.engine = "kiln";
    k.precision = session->computes_bf16() ? "bf16" : "f32";
    k.batch = batch;
    k.seq = seq;
    k.threads = o.threads;
    k.concurrency = o.concurrency;
    k.model_size_mb = report.model_size_mb;
    k.load_ms = read_ms + ms_since(t);

    std::vector<ir::Tensor> tensors = given.empty() ? generate_inputs(plan, batch, seq.value_or(1), o.seed) : given;
    Feeds feeds;
    for (size_t i = 0; i < plan.inputs.size(); ++i)
      for (const auto& in : session->inputs())
        if (in.name == plan.inputs[i].info.name) feeds[in.name] = tensors[i];

    std::optional<ScratchDir> scratch;
    if (!o.peers.empty()) {
      scratch.emplace();
      fs::create_directories(scratch->path() / "inputs");
      for (size_t i = 0; i < plan.inputs.size(); ++i)
        io::write_npy((scratch->path() / "inputs" / (io::npy_file_stem(plan.inputs[i].info.name) + ".npy")).string(),
                      tensors[i]);
      for (const PeerEngine& engine : o.peers) {
        EngineResult& e = cr.peers.emplace_back();
        e.engine = engine.name;
        e.batch = batch;
        e.seq = seq;
        e.threads = o.threads;
        e.concurrency = 1;
        e.model_size_mb = report.model_size_mb;
      }
    }

    say(name + ": first call");
    const auto first = Clock::now();
    session->run(feeds);
    k.first_ms = ms_since(first);
    for (int r = 0; r < o.rounds; ++r) {
      const std::string round = o.rounds > 1 ? str(" round ", r + 1, "/", o.rounds) : "";
      say(name + ": kiln" + round);
      k.rounds.push_back(kiln_round(*session, feeds, o, name + ": kiln" + round, progress));
      for (size_t p = 0; p < o.peers.size(); ++p) {
        say(name + ": " + o.peers[p].name + round);
        EngineResult& e = cr.peers[p];
        e.rounds.push_back(peer_round(*peer, o.peers[p], o, scratch->path() / "inputs", scratch->path(), &e));
      }
    }
    k.peak_rss_mb = peak_rss_mb();
    if (o.profile_runs > 0) {
      // After every timed figure: the profile's overhead and storage touch none of them.
      say(name + ": kiln, profiled");
      auto profiler = std::make_shared<runtime::Profiler>(static_cast<size_t>(o.profile_runs), started);
      session->set_profiler(profiler.get());
      std::vector<ir::Datum> outputs;
      for (int i = 0; i < o.profile_runs; ++i) session->run(feeds, outputs);
      session->set_profiler(nullptr);
      cr.profile = std::move(profiler);
    }
    k.summarize();
    for (EngineResult& e : cr.peers) e.summarize();
    report.configs.push_back(std::move(cr));
  }
  return report;
}

}  // namespace kiln::bench

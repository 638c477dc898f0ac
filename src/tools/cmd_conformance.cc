// kiln conformance: ONNX's backend test suite through the reference runtime (or, with --fast-kernels,
// through the fast kernels where they cover a node).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "common/error.h"
#include "conformance/runner.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {

struct ConformanceArgs {
  conformance::Options options;
  std::string dir;
  std::string suite;
  bool verbose = false;
  std::string expected_file;
  std::string known_failures_file;
  std::string write_expected;
};

std::set<std::string> read_id_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, ": cannot open file");
  std::set<std::string> ids;
  std::string line;
  while (std::getline(in, line)) {
    size_t hash = line.find('#');
    if (hash != std::string::npos) line = line.substr(0, hash);
    size_t a = line.find_first_not_of(" \t"), b = line.find_last_not_of(" \t\r");
    if (a != std::string::npos) ids.insert(line.substr(a, b - a + 1));
  }
  return ids;
}

// A known-failures list: one case a line, its id then its reason ("node/test_x   why it fails").
std::map<std::string, std::string> read_known_failures(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, ": cannot open file");
  std::map<std::string, std::string> known;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    size_t a = line.find_first_not_of(" \t");
    if (a == std::string::npos || line[a] == '#') continue;
    size_t b = line.find_first_of(" \t", a);
    size_t r = b == std::string::npos ? std::string::npos : line.find_first_not_of(" \t\r", b);
    if (r == std::string::npos) fail(path, ":", number, ": \"", line.substr(a), "\" has no reason after the case id");
    known[line.substr(a, b - a)] = line.substr(r);
  }
  return known;
}

int run(const ConformanceArgs& args) {
  conformance::Options o = args.options;
  // Read before the run, so that a mistyped path fails at once rather than after every case.
  std::map<std::string, std::string> known;
  if (!args.known_failures_file.empty()) known = read_known_failures(args.known_failures_file);
  if (!args.suite.empty()) o.root = conformance::suite_root(args.suite);
  if (!args.dir.empty()) o.root = args.dir;
  if (o.jobs <= 0) o.jobs = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  bool tty = isatty(fileno(stderr));
  auto results = conformance::run_all(o, [&](const conformance::CaseResult& r, size_t done, size_t total) {
    if (args.verbose || r.status == conformance::Status::kFail) {
      if (tty) std::fprintf(stderr, "\r\033[K");
      std::printf("%-11s %s%s%s\n", conformance::status_name(r.status), r.id.c_str(), r.reason.empty() ? "" : "  ",
                  r.reason.c_str());
      std::fflush(stdout);
    }
    if (tty) std::fprintf(stderr, "\r\033[K[%zu/%zu] %s", done, total, r.id.c_str());
  });
  if (tty) std::fprintf(stderr, "\r\033[K");

  // Per-op table: a case counts for every op of its main graph.
  struct Counts {
    int pass = 0, fail = 0, unsupported = 0;
  };
  std::map<std::string, Counts> by_op;
  std::map<std::string, Counts> by_suite;
  Counts total;
  int fast_cases = 0;  // cases where a fast kernel was prepared for some node
  for (const auto& r : results) {
    if (r.fast_nodes > 0) ++fast_cases;
    auto bump = [&](Counts& c) {
      (r.status == conformance::Status::kPass   ? c.pass
       : r.status == conformance::Status::kFail ? c.fail
                                                : c.unsupported)++;
    };
    for (const auto& op : r.ops) bump(by_op[op]);
    bump(by_suite[r.id.substr(0, r.id.find('/'))]);
    bump(total);
  }
  std::printf("\n%-32s %6s %6s %12s\n", "op", "passed", "failed", "unsupported");
  for (const auto& [op, c] : by_op) std::printf("%-32s %6d %6d %12d\n", op.c_str(), c.pass, c.fail, c.unsupported);
  std::printf("\n%-32s %6s %6s %12s %8s\n", "suite", "passed", "failed", "unsupported", "pass %");
  for (const auto& [suite, c] : by_suite) {
    int n = c.pass + c.fail + c.unsupported;
    std::printf("%-32s %6d %6d %12d %7.1f%%\n", suite.c_str(), c.pass, c.fail, c.unsupported,
                n ? 100.0 * c.pass / n : 0.0);
  }

  int rc = 0;
  if (!args.write_expected.empty()) {
    std::string tmp = args.write_expected + ".tmp";
    {
      std::ofstream out(tmp);
      out << "# Conformance cases that pass; `kiln conformance --expected` fails if one stops passing.\n"
             "# Regenerate with `kiln conformance --write-expected FILE` after a deliberate change.\n";
      for (const auto& r : results)
        if (r.status == conformance::Status::kPass) out << r.id << "\n";
    }
    std::rename(tmp.c_str(), args.write_expected.c_str());
  }
  if (!args.expected_file.empty()) {
    std::set<std::string> expected = read_id_list(args.expected_file);
    std::map<std::string, const conformance::CaseResult*> got;
    for (const auto& r : results) got[r.id] = &r;
    int regressions = 0;
    for (const auto& id : expected) {
      auto it = got.find(id);
      if (!o.filter.empty() && it == got.end()) continue;
      if (it == got.end() || it->second->status != conformance::Status::kPass) {
        std::printf("REGRESSION  %s  %s\n", id.c_str(),
                    it == got.end() ? "(case not found)" : it->second->reason.c_str());
        ++regressions;
      }
    }
    if (regressions) {
      std::printf("%d expected-pass case(s) no longer pass (list: %s)\n", regressions, args.expected_file.c_str());
      rc = 1;
    }
  }
  if (!args.known_failures_file.empty()) {
    int unexplained = 0;
    for (const auto& r : results)
      if (r.status != conformance::Status::kPass && !known.count(r.id)) {
        std::printf("UNEXPLAINED %s  %s\n", r.id.c_str(), r.reason.c_str());
        ++unexplained;
      }
    if (unexplained) {
      std::printf("%d case(s) fail without a reason in %s\n", unexplained, args.known_failures_file.c_str());
      rc = 1;
    }
  }
  const int cases = total.pass + total.fail + total.unsupported;
  if (o.fast_kernels) std::printf("fast kernels were prepared for nodes of %d case(s)\n", fast_cases);
  std::printf("conformance%s: %d passed, %d failed, %d unsupported (%.1f%% passed)\n",
              o.fast_kernels ? " (fast kernels)" : "", total.pass, total.fail, total.unsupported,
              cases ? 100.0 * total.pass / cases : 0.0);
  return rc;
}

}  // namespace

Command conformance_command() {
  auto args = std::make_shared<ConformanceArgs>();
  return {[args](CLI::App& app) {
            auto* c = app.add_subcommand(
                "conformance", "Run ONNX's backend test cases through the reference runtime (or the fast kernels)");
            auto* dir = c->add_option("dir", args->dir,
                                      "Folder of test cases, or of suites (node, pytorch-converted, pytorch-operator, "
                                      "simple)")
                            ->capture_default_str();
            args->options.root = "/usr/share/libonnx-testdata/data";
            c->add_option("--suite", args->suite,
                          "A known copy of ONNX's suite instead of dir: libonnx-testdata (the default data, ONNX "
                          "1.12) or onnx-1.22 (the onnx wheel's test data in benchmarks/peers/.venv, `make peers`)")
                ->check(CLI::IsMember({conformance::kSuiteLibonnxTestdata, conformance::kSuiteOnnx122}))
                ->excludes(dir);
            c->add_flag("--fast-kernels", args->options.fast_kernels,
                        "Run with the fast kernels on where they cover a node (default: reference kernels only)");
            c->add_option("--filter", args->options.filter, "Only cases whose id (suite/test_name) matches this regex");
            c->add_flag("-v,--verbose", args->verbose, "Print every case, not only failures");
            c->add_option("--expected", args->expected_file,
                          "Expected-pass list: exit 1 if any listed case does not pass");
            c->add_option("--known-failures", args->known_failures_file,
                          "Known-failures list (case id, then its reason): exit 1 if a case fails that it does not "
                          "name");
            c->add_option("--write-expected", args->write_expected, "Write the list of passing cases to this file");
            c->add_option("--rtol", args->options.rtol, "Relative tolerance")->capture_default_str();
            c->add_option("--atol", args->options.atol, "Absolute tolerance")->capture_default_str();
            c->add_option("-j,--jobs", args->options.jobs, "Cases run at once (default: number of cores)");
            args->options.jobs = 0;
            c->add_option("--timeout", args->options.timeout_seconds, "Seconds per case")->capture_default_str();
            return c;
          },
          [args] { return run(*args); }};
}

}  // namespace kiln::tools

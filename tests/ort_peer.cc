#include "ort_peer.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>
#include <vector>

#include "test_util.h"

extern char** environ;

namespace kiln::testing {

namespace {

namespace fs = std::filesystem;

std::string peer_dir() { return source_path("benchmarks/peers/ort"); }

// The first executable `node` on PATH, or "" (resolved here rather than by posix_spawnp so that
// ort_available can say precisely what is missing).
std::string find_node() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  for (;;) {
    size_t end = dirs.find(':', start);
    // An empty PATH entry means the current folder.
    fs::path dir = end == start
                       ? fs::path(".")
                       : fs::path(dirs.substr(start, end == std::string::npos ? std::string::npos : end - start));
    std::string candidate = (dir / "node").string();
    if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) return candidate;
    if (end == std::string::npos) return "";
    start = end + 1;
  }
}

// Runs argv (argv[0] a path, no shell) with stdin from /dev/null, stdout discarded and stderr captured;
// killed past timeout_s. test_util's run_kiln only runs the kiln binary, hence this small twin of it.
OrtRun run_process(std::vector<std::string> argv_s, int timeout_s) {
  TempDir capture("kiln_ort");
  const std::string err_path = capture.file("stderr");
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + argv_s[0]);

  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int status = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0) throw std::runtime_error("waitpid failed");
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  OrtRun r;
  if (WIFEXITED(status))
    r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    r.exit_code = 128 + WTERMSIG(status);
  r.err = read_file(err_path);
  return r;
}

}  // namespace

OrtRun run_ort(const std::string& model, const std::string& input_dir, const std::string& output_dir,
               const std::string& opt_level, int timeout_s) {
  std::string node = find_node();
  if (node.empty()) throw std::runtime_error("node is not on PATH");
  return run_process({node, (fs::path(peer_dir()) / "run.mjs").string(), "run", model, "--input-dir", input_dir,
                      "--output-dir", output_dir, "--opt-level", opt_level},
                     timeout_s);
}

bool ort_available(std::string* why) {
  std::string reason;
  if (find_node().empty())
    reason = "node (Node.js 20 or later) is not on PATH: install it, then run `make peers`";
  else if (!fs::exists(fs::path(peer_dir()) / "node_modules/onnxruntime-node/package.json"))
    reason = "onnxruntime-node is not installed in " + peer_dir() + "/node_modules: run `make peers`";
  if (why) *why = reason;
  return reason.empty();
}

}  // namespace kiln::testing

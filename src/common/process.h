// Runs another program and waits for it: no shell, no PATH lookup (argv[0] is its path), stdin from
// /dev/null, stdout and stderr captured through files in a folder the caller owns (so output of any
// size never blocks a pipe). Used by `kiln bench --vs ort` to run the ONNX Runtime peer, and by tests.
#pragma once

#include <string>
#include <vector>

namespace kiln {

struct ProcessResult {
  int exit_code = -1;  // the exit status; 128 + the signal number when killed by a signal
  bool timed_out = false;
  std::string out, err;
};

// Throws kiln::Error when the program cannot be started. timeout_s > 0 kills it (SIGKILL) past that
// many seconds; 0 waits for as long as it runs.
ProcessResult run_process(std::vector<std::string> argv, const std::string& capture_dir, int timeout_s = 0);

}  // namespace kiln

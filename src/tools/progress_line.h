// Progress of a long command on stderr: on a terminal, one status line redrawn in place; in logs, the
// steps (non-transient lines) but not every sample or round. The line is cleared when the command's
// work ends, also when it throws, so that the table or error that follows starts on a clean line.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string>

namespace kiln::tools {

class ProgressLine {
 public:
  explicit ProgressLine(bool quiet) : quiet_(quiet), tty_(isatty(fileno(stderr)) != 0) {}
  ~ProgressLine() { clear(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // `transient`: a line the next one may replace (one per sample), left out of logs.
  void show(const std::string& text, bool transient) {
    if (quiet_) return;
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", text.c_str());
      open_ = true;
    } else if (!transient) {
      std::fprintf(stderr, "%s\n", text.c_str());
    }
  }
  void clear() {
    if (open_) std::fprintf(stderr, "\r\033[K");
    open_ = false;
  }

 private:
  bool quiet_, tty_;
  bool open_ = false;
};

}  // namespace kiln::tools

// Helpers of the black-box tests of `kiln serve` (serve_test.cc, serve_batching_test.cc): the real program in
// a child process on a free port, and raw HTTP/1.1 over loopback (so that bad requests can be as bad as a
// client can make them).
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kiln::serve_test {

inline const std::string kModelDir = "tests/data/bert-tiny";

// `kiln serve ARGS...` in a child process, its stdout read until the "ready on" line gives the port.
class Server {
 public:
  // Serves tests/data/bert-tiny/model.onnx with one thread, quietly, plus `extra`.
  explicit Server(std::vector<std::string> extra = {});
  // `kiln serve` with exactly these arguments (then "--port 0").
  static Server with_args(std::vector<std::string> args);
  ~Server();
  Server(Server&& other) noexcept;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // SIGTERM, then the exit code.
  int stop();

 private:
  struct Args {};
  Server(Args, std::vector<std::string> args);
  pid_t pid_ = -1;
  int port_ = 0;
  bool stopped_ = false;
};

struct Reply {
  int status = 0;
  std::string headers;  // the raw header block, lower-cased
  std::string body;
  nlohmann::json error() const { return nlohmann::json::parse(body, nullptr, false); }
};

// Sends `raw` bytes and reads one response (Content-Length framed), or what came before the peer closed.
Reply http_exchange(int port, const std::string& raw);

std::string request(const std::string& method, const std::string& target, const std::string& body = "",
                    const std::string& extra_headers = "");

// The bert-tiny test inputs as the protocol's JSON tensors.
nlohmann::json json_inputs();

}  // namespace kiln::serve_test

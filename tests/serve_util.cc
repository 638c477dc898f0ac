#include "serve_util.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/npy.h"
#include "test_util.h"

namespace kiln::serve_test {

using nlohmann::json;

Server::Server(std::vector<std::string> extra)
    : Server(Args{}, [&] {
        std::vector<std::string> args = {testing::source_path(kModelDir + "/model.onnx"), "--threads", "1", "-q"};
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
      }()) {}

Server Server::with_args(std::vector<std::string> args) { return Server(Args{}, std::move(args)); }

Server::Server(Args, std::vector<std::string> extra) {
  int out[2];
  EXPECT_EQ(pipe(out), 0);
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    std::vector<std::string> args = {KILN_BINARY, "serve", "--port", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  std::string line;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
  close(out[0]);
  const size_t colon = line.rfind(':');
  if (line.find("ready on http://127.0.0.1:") != std::string::npos && colon != std::string::npos)
    port_ = std::stoi(line.substr(colon + 1));
}

Server::Server(Server&& other) noexcept : pid_(other.pid_), port_(other.port_), stopped_(other.stopped_) {
  other.pid_ = -1;
}

Server::~Server() {
  if (pid_ > 0 && !stopped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

int Server::stop() {
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  stopped_ = true;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Sends `raw` bytes and reads one response (Content-Length framed), or what came before the peer closed.
Reply http_exchange(int port, const std::string& raw) {
  Reply r;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return r;
  }
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  size_t sent = 0;
  while (sent < raw.size()) {
    const ssize_t n = send(fd, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer (413, 431) and close before reading everything
    sent += static_cast<size_t>(n);
  }
  std::string in;
  char buf[65536];
  size_t header_end = std::string::npos, want = std::string::npos;
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
    if (header_end == std::string::npos && (header_end = in.find("\r\n\r\n")) != std::string::npos) {
      std::string head = in.substr(0, header_end);
      for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const size_t at = head.find("content-length: ");
      want = at == std::string::npos ? 0 : std::stoul(head.substr(at + 16));
    }
    if (header_end != std::string::npos && in.size() >= header_end + 4 + want) break;
  }
  close(fd);
  if (header_end == std::string::npos) return r;
  r.headers = in.substr(0, header_end);
  for (char& c : r.headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  r.status = std::stoi(in.substr(9, 3));
  r.body = in.substr(header_end + 4);
  return r;
}

std::string request(const std::string& method, const std::string& target, const std::string& body,
                    const std::string& extra_headers) {
  return method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + extra_headers +
         (body.empty() && method == "GET" ? "" : "Content-Length: " + std::to_string(body.size()) + "\r\n") + "\r\n" +
         body;
}

// The test inputs as the protocol's JSON tensors.
json json_inputs() {
  json inputs = json::array();
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"}) {
    const ir::Tensor t = io::read_npy(testing::source_path(kModelDir + "/inputs/" + name + ".npy"));
    json shape = json::array(), data = json::array();
    for (size_t i = 0; i < t.rank(); ++i) shape.push_back(t.dim(i));
    for (int64_t i = 0; i < t.numel(); ++i) data.push_back(t.data<int64_t>()[i]);
    inputs.push_back({{"name", name}, {"datatype", "INT64"}, {"shape", shape}, {"data", data}});
  }
  return inputs;
}


}  // namespace kiln::serve_test

// The HTTP/1.1 layer of `kiln serve`, on Boost.Beast (Debian's libboost-dev): Beast parses requests, kiln
// only routes them. Why Beast rather than Debian 12's cpp-httplib 0.11.4 (tried on loopback): httplib
// answers a header over its 8 KiB with 400, not the 431 the protocol calls for. Its chunked bodies also
// bypassed set_payload_max_length: 2000 bytes were accepted with a limit of 1000. Beast's parser reports
// header_limit and body_limit as errors of their own, chunked or not.
//
// Each connection reads requests one after another (keep-alive), each within `read_timeout`: a client that
// sent part of a request by then gets 408, an idle keep-alive connection is closed. It hands each to the handler on the I/O thread that read it. The
// handler answers through its HttpReply, at once or later from any thread (the batcher answers from its
// workers); while an answer is pending the connection watches its socket, and a client that closes it is
// reported to the reply's on_client_gone hook (the batcher frees its queue slot) and logged with 499.
// Limits answer with a JSON error and close the connection:
//   431  the request line and headers exceed header_bytes
//   413  the body exceeds body_bytes (Content-Length or chunked)
//   400  anything else Beast cannot parse
//   408  a request not received in full within read_timeout
// stop() stops accepting, lets the requests in flight finish and their replies go out, then makes run()
// return.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace kiln::serve {

struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string target;                                        // the path, without the query
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  // The first header of that (lower-case) name, or empty.
  std::string header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type and Content-Length
  // For the access log: JSON members the handler adds to the request's line (`"model":"m","batch":4`).
  std::string log_fields;
};

// {"error": message} with that status.
HttpResponse json_error(int status, const std::string& message);

// How a handler answers one request: send() once, from any thread (later calls are ignored). Copies share
// the one answer.
class HttpReply {
 public:
  struct State;
  explicit HttpReply(std::shared_ptr<State> state) : state_(std::move(state)) {}

  void send(HttpResponse response) const;
  // Whether the client closed its connection before the answer (send() then does nothing).
  bool client_gone() const;
  // Called at most once, on an I/O thread, if the client goes away before send(); not after send().
  void on_client_gone(std::function<void()> hook) const;

 private:
  std::shared_ptr<State> state_;
};

// One line of the access log: what was asked and answered, after the answer is written.
struct HttpExchangeRecord {
  std::string remote;  // "127.0.0.1:51234"
  std::string method, target;
  int status = 0;  // 499: the client went away before the answer
  size_t bytes_in = 0, bytes_out = 0;
  double seconds = 0;  // from the request read to the answer written
  std::string log_fields;
};

struct HttpLimits {
  size_t header_bytes = 16 * 1024;
  size_t body_bytes = size_t{64} << 20;
  std::chrono::milliseconds read_timeout{10000};
};

class HttpServer {
 public:
  using Handler = std::function<void(const HttpRequest&, const HttpReply&)>;
  // Called after every exchange, on an I/O thread (the access log and the request counters).
  using Observer = std::function<void(const HttpExchangeRecord&)>;

  // Binds host:port (port 0: any free one) and starts accepting when run() is called. Throws kiln::Error
  // naming the address when it cannot be bound.
  HttpServer(const std::string& host, uint16_t port, HttpLimits limits, Handler handler, Observer observer = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;  // the bound port
  // Serves on `threads` I/O threads (the caller's among them) until stop(), or SIGINT / SIGTERM when
  // stop_on_signals.
  void run(int threads, bool stop_on_signals);
  // Thread-safe; returns at once (run() returns once the requests in flight are answered).
  void stop();
  // Called once when the server starts stopping (before it waits for the requests in flight), on an I/O
  // thread: the batcher then runs what is queued without waiting for fuller batches.
  void on_stop(std::function<void()> hook);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::serve

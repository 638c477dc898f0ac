#include "serve/http_server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <sys/socket.h>

#include <cerrno>
#include <csignal>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"

namespace kiln::serve {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string HttpRequest::header(const std::string& name) const {
  for (const auto& [n, v] : headers)
    if (n == name) return v;
  return "";
}

HttpResponse json_error(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = nlohmann::json{{"error", message}}.dump();
  return r;
}

// Named, not anonymous: the sanitizer build compiles kiln_core as a unity build.
namespace http_server_detail {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// What the server's connections share: the limits, the handler, and the count of requests in flight (read,
// not yet answered), which stop() waits on.
struct Shared {
  HttpLimits limits;
  HttpServer::Handler handler;
  HttpServer::Observer observer;
  std::atomic<int64_t> in_flight{0};
  // HttpReply::send calls between their answer and their last use of the connection: the server outlives
  // them, so that a connection is never released after its io_context is gone.
  std::atomic<int64_t> sending{0};
  std::atomic<bool> stopping{false};
  std::function<void()> on_stop;
};

class Connection;

}  // namespace http_server_detail

// One request's answer: pending, then answered or abandoned (the client went away), whichever comes first.
struct HttpReply::State {
  enum Phase : int { kPending, kAnswered, kAbandoned };
  std::atomic<int> phase{kPending};
  std::weak_ptr<http_server_detail::Connection> connection;
  std::atomic<int64_t>* sending = nullptr;  // the server's count (Shared::sending)
  std::mutex mutex;  // guards gone_hook
  std::function<void()> gone_hook;
};

namespace http_server_detail {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, Shared& shared)
      : stream_(std::move(socket)), timer_(stream_.get_executor()), shared_(shared) {
    beast::error_code ec;
    const tcp::endpoint peer = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = peer.address().to_string() + ":" + std::to_string(peer.port());
  }

  void start() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Connection::read, shared_from_this()));
  }

  // From HttpReply::send, on any thread: the answer goes out on this connection's strand.
  void answer(HttpResponse out) {
    net::post(stream_.get_executor(), [self = shared_from_this(), out = std::move(out)]() mutable {
      self->stop_watching();
      self->reply(std::move(out), self->keep_alive_);
    });
  }

 private:
  // The read timeout runs on a timer of its own rather than the stream's: a stream that times out closes
  // its socket, and a client that sent part of a request must still get its 408.
  void read() {
    if (shared_.stopping) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_.limits.header_bytes));
    parser_->body_limit(shared_.limits.body_bytes);
    timed_out_ = false;
    timer_.expires_after(shared_.limits.read_timeout);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Connection::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t bytes) {
    timer_.cancel();
    const bool slow = ec == net::error::operation_aborted && timed_out_ && parser_->got_some();
    if (!slow && (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
                  ec == net::error::connection_reset || ec == net::error::eof))
      return close();
    ++shared_.in_flight;
    started_ = std::chrono::steady_clock::now();
    record_ = {};
    record_.remote = remote_;
    record_.bytes_in = bytes;
    if (slow)
      return reply(json_error(408, "the request was not received within " +
                                       std::to_string(shared_.limits.read_timeout.count()) + " ms"),
                   false);
    if (ec == http::error::header_limit)
      return reply(json_error(431, "the request line and headers exceed " +
                                       std::to_string(shared_.limits.header_bytes) + " bytes"),
                   false);
    if (ec == http::error::body_limit)
      return reply(json_error(413, "the request body exceeds " + std::to_string(shared_.limits.body_bytes) + " bytes"),
                   false);
    if (ec) return reply(json_error(400, "malformed HTTP request: " + ec.message()), false);

    http::request<http::string_body>& req = parser_->get();
    HttpRequest r;
    r.method = std::string(req.method_string());
    const std::string target(req.target());
    r.target = target.substr(0, target.find('?'));
    for (const auto& field : req)
      r.headers.emplace_back(lower(std::string(field.name_string())), std::string(field.value()));
    r.body = std::move(req.body());  // the parser is made anew for the next request
    record_.method = r.method;
    record_.target = r.target;
    keep_alive_ = req.keep_alive();
    auto state = std::make_shared<HttpReply::State>();
    state->connection = weak_from_this();
    state->sending = &shared_.sending;
    state_ = state;
    const HttpReply handle(state);
    try {
      shared_.handler(r, handle);
    } catch (const std::exception& e) {
      handle.send(json_error(500, std::string("internal error: ") + e.what()));
    }
    if (state->phase == HttpReply::State::kPending) watch();
  }

  // While the answer is pending: a readable socket that has nothing to read means the client closed it.
  // Each watch has its number, so that a completion queued before stop_watching() is recognised as stale.
  void watch() {
    watching_ = true;
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this(), id = ++watch_id_](
                                                            beast::error_code ec) { self->on_readable(ec, id); });
  }

  void stop_watching() {
    if (!watching_) return;
    watching_ = false;
    beast::error_code ec;
    stream_.socket().cancel(ec);
  }

  void on_readable(beast::error_code ec, uint64_t id) {
    if (ec || !watching_ || id != watch_id_) return;
    char byte;
    // Never blocking: an I/O thread must not wait on one client.
    const ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return watch();  // nothing after all
    watching_ = false;
    if (n > 0) return;  // a pipelined request: the client is still there
    int pending = HttpReply::State::kPending;
    if (!state_->phase.compare_exchange_strong(pending, HttpReply::State::kAbandoned)) return;  // answered meanwhile
    std::function<void()> hook;
    {
      std::lock_guard lock(state_->mutex);
      hook = std::move(state_->gone_hook);
    }
    if (hook) hook();
    record_.status = 499;
    finish(0);
    close();
  }

  void reply(HttpResponse out, bool keep_alive) {
    record_.status = out.status;
    record_.log_fields = std::move(out.log_fields);
    res_ = {};
    res_.version(11);
    res_.result(static_cast<unsigned>(out.status));
    res_.set(http::field::server, "kiln");
    res_.set(http::field::content_type, out.content_type);
    for (const auto& [name, value] : out.headers) res_.set(name, value);
    res_.body() = std::move(out.body);
    res_.keep_alive(keep_alive && !shared_.stopping);
    res_.prepare_payload();
    http::async_write(stream_, res_, beast::bind_front_handler(&Connection::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t bytes) {
    finish(bytes);
    if (ec || !res_.keep_alive()) return close();
    read();
  }

  // The exchange is over: logged, and no longer in flight.
  void finish(size_t bytes_out) {
    record_.bytes_out = bytes_out;
    record_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    if (shared_.observer) {
      try {
        shared_.observer(record_);
      } catch (const std::exception&) {  // a log that cannot be written must not take the server down
      }
    }
    --shared_.in_flight;
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  bool timed_out_ = false;
  Shared& shared_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  bool keep_alive_ = false;
  bool watching_ = false;
  uint64_t watch_id_ = 0;
  std::shared_ptr<HttpReply::State> state_;
  std::chrono::steady_clock::time_point started_;
  HttpExchangeRecord record_;
};

}  // namespace http_server_detail

using namespace http_server_detail;

void HttpReply::send(HttpResponse response) const {
  int pending = State::kPending;
  if (!state_->phase.compare_exchange_strong(pending, State::kAnswered)) return;
  // Answered while in flight: the server waits for `sending` to drop before it stops.
  ++*state_->sending;
  if (auto connection = state_->connection.lock()) connection->answer(std::move(response));
  --*state_->sending;
}

bool HttpReply::client_gone() const { return state_->phase == State::kAbandoned; }

void HttpReply::on_client_gone(std::function<void()> hook) const {
  std::lock_guard lock(state_->mutex);
  if (state_->phase == State::kPending) state_->gone_hook = std::move(hook);
}

struct HttpServer::Impl {
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  Shared shared;
  net::steady_timer drain{ioc};

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (!acceptor.is_open()) return;
      if (!ec) std::make_shared<Connection>(std::move(socket), shared)->start();
      accept();
    });
  }

  // After stop(): once nothing is in flight, the I/O threads end (idle keep-alive connections are dropped).
  void wait_for_drain() {
    if (shared.in_flight == 0 && shared.sending == 0) {
      ioc.stop();
      return;
    }
    drain.expires_after(std::chrono::milliseconds(10));
    drain.async_wait([this](beast::error_code) { wait_for_drain(); });
  }
};

HttpServer::HttpServer(const std::string& host, uint16_t port, HttpLimits limits, Handler handler, Observer observer)
    : impl_(std::make_unique<Impl>()) {
  impl_->shared.limits = limits;
  impl_->shared.handler = std::move(handler);
  impl_->shared.observer = std::move(observer);
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(host, ec);
  if (ec) fail("--host ", host, ": not an IP address (", ec.message(), ")");
  const tcp::endpoint endpoint{address, port};
  auto& a = impl_->acceptor;
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) fail("cannot listen on ", host, ":", port, ": ", ec.message());
}

HttpServer::~HttpServer() = default;

uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

void HttpServer::run(int threads, bool stop_on_signals) {
  net::signal_set signals(impl_->ioc);
  if (stop_on_signals) {
    signals.add(SIGINT);
    signals.add(SIGTERM);
    signals.async_wait([this](beast::error_code ec, int) {
      if (!ec) stop();
    });
  }
  impl_->accept();
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([this] { impl_->ioc.run(); });
  impl_->ioc.run();
  for (auto& t : pool) t.join();
}

void HttpServer::stop() {
  net::post(impl_->ioc, [impl = impl_.get()] {
    if (impl->shared.stopping.exchange(true)) return;
    beast::error_code ec;
    impl->acceptor.close(ec);
    if (impl->shared.on_stop) impl->shared.on_stop();
    impl->wait_for_drain();
  });
}

void HttpServer::on_stop(std::function<void()> hook) { impl_->shared.on_stop = std::move(hook); }

}  // namespace kiln::serve

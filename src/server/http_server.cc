#include "server/http_server.h"

#include <sys/resource.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/private_files.h"
#include "ratelimit/ip_prefix.h"
#include "server/asio_names.h"
#include "server/request_framing.h"
#include "server/response.h"

namespace moat::server {

namespace {

// Accept back-off after a failed accept() (EMFILE, ENFILE, ENOBUFS, ENOMEM): doubles from the
// first to the last value while failures continue.
constexpr std::chrono::milliseconds kFirstAcceptBackoff{5};
constexpr std::chrono::milliseconds kMaxAcceptBackoff{500};
// Descriptors kept out of the connection cap (databases, logs, listeners, resolver), and the
// descriptors one client connection may need (itself and its upstream connection).
constexpr int64_t kReservedDescriptors = 64;
constexpr int64_t kDescriptorsPerConnection = 2;
// After answering a request whose body was never read: how much of it to drain, for how long,
// before closing (so that the client reads the answer rather than a connection reset).
constexpr size_t kLingerDrainBytes = 1 << 20;
// Read-buffer room beyond a request head and body: chunk-size lines (extensions included) and
// trailers of a chunked body.
constexpr size_t kFramingSlackBytes = 64 << 10;
constexpr std::chrono::milliseconds kLingerTimeout{1000};
// TLS close_notify exchange at the end of a connection.
constexpr std::chrono::milliseconds kTlsShutdownTimeout{1000};
constexpr std::string_view kContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n";

// The answer to a connection over a cap, written without waiting before the socket is closed.
const std::string& ConnectionCapResponse() {
  static const std::string text = [] {
    const std::string body = ErrorBody("The gateway has too many open connections; retry shortly.",
                                       "server_error", "too_many_connections");
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
           "Connection: close\r\nRetry-After: 1\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  return text;
}

// The connection cap that fits the process's descriptor limit.
int64_t EffectiveMaxConnections(int64_t configured) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return configured;
  const int64_t fit = std::max<int64_t>(
      1, (static_cast<int64_t>(limit.rlim_cur) - kReservedDescriptors) / kDescriptorsPerConnection);
  return std::min(configured, fit);
}


// RAII: a counter decremented however the scope is left.
class ScopedCount {
 public:
  ScopedCount(std::atomic<int64_t>& n) : n_(n) { n_.fetch_add(1); }
  ~ScopedCount() { n_.fetch_sub(1); }
  ScopedCount(const ScopedCount&) = delete;
  ScopedCount& operator=(const ScopedCount&) = delete;

 private:
  std::atomic<int64_t>& n_;
};

}  // namespace

// The body of one request, read on the gateway's demand (see RequestBody).
class HttpServer::SessionBody final : public RequestBody {
 public:
  SessionBody(HttpServer& server, const std::string& ip_key, ClientConnection& conn, beast::flat_buffer& buffer,
              RequestParser& parser, asio::steady_timer& deadline, bool& timed_out,
              const std::function<void(int64_t)>& arm)
      : server_(server), ip_key_(ip_key), conn_(conn), buffer_(buffer), parser_(parser), deadline_(deadline),
        timed_out_(timed_out), arm_(arm), keep_alive_(parser.get().keep_alive()) {
    // Until the body is read, any answer must close the connection: the unread body would
    // otherwise be taken for the next request.
    if (!parser_.is_done()) parser_.get().keep_alive(false);
  }
  ~SessionBody() override {
    if (reserved_ > 0) server_.ReleaseBodyBytes(ip_key_, reserved_);
  }

  asio::awaitable<std::optional<LocalReply>> Read() override {
    if (parser_.is_done()) co_return std::nullopt;
    const ServerConfig& cfg = server_.config_;
    const auto declared = parser_.content_length();
    if (declared && *declared > cfg.max_body_bytes) {
      // Refused here, after authentication, rather than on reading the head: the request then has
      // an audit record naming its account.
      co_return Refused("body_too_large", 413, "request_too_large",
                        "Request body is " + std::to_string(*declared) + " bytes; it exceeds the limit of " +
                            std::to_string(cfg.max_body_bytes) + " bytes.");
    }
    const int64_t want = static_cast<int64_t>(declared ? *declared : cfg.max_body_bytes);
    const char* refusal = nullptr;
    if (!server_.ReserveBodyBytes(ip_key_, want, &refusal)) {
      server_.protocol_errors_->With({refusal}).Inc();
      co_return LocalReply{503, "server_error", "server_busy",
                           std::string(refusal) == "body_memory_ip"
                               ? "This client address has too many request bodies in flight; retry shortly."
                               : "The gateway is holding too many request bodies; retry shortly.",
                           {{"retry-after", "1"}}, "", {}};
    }
    reserved_ = want;
    if (ExpectsContinue(parser_.get())) {
      const std::string_view go_ahead = kContinueResponse;
      if (co_await conn_.WriteRaw(go_ahead, std::chrono::milliseconds(cfg.write_timeout_ms))) {
        co_return LocalReply{400, "invalid_request_error", "connection_lost", "The connection was lost.", {}, "", {}};
      }
    }
    arm_(cfg.body_timeout_ms);
    beast::error_code ec = co_await conn_.ReadBody(buffer_, parser_);
    deadline_.cancel();
    if (ec) {
      if (timed_out_) {
        co_return Refused("body_timeout", 408, "request_timeout", "Timed out waiting for the request body.");
      }
      if (ec == http::error::buffer_overflow) {
        // Chunk-size lines (with their extensions) or trailers that do not fit the read buffer.
        co_return Refused("framing_too_large", 413, "request_too_large",
                          "The request's chunk framing or trailers are too large.");
      }
      if (ec == http::error::body_limit) {
        co_return Refused("body_too_large", 413, "request_too_large",
                          "Request body exceeds the limit of " + std::to_string(cfg.max_body_bytes) + " bytes.");
      }
      co_return Refused("bad_body", 400, "bad_http_request", "Malformed request body: " + ec.message());
    }
    parser_.get().keep_alive(keep_alive_);
    co_return std::nullopt;
  }

 private:
  // A client error that ends the body read: counted by `kind` in moat_protocol_errors_total.
  LocalReply Refused(const char* kind, int status, const char* code, std::string message) const {
    server_.protocol_errors_->With({kind}).Inc();
    return LocalReply{status, "invalid_request_error", code, std::move(message), {}, "", {}};
  }

  HttpServer& server_;
  const std::string& ip_key_;
  ClientConnection& conn_;
  beast::flat_buffer& buffer_;
  RequestParser& parser_;
  asio::steady_timer& deadline_;
  bool& timed_out_;
  const std::function<void(int64_t)>& arm_;
  const bool keep_alive_;
  int64_t reserved_ = 0;
};

int HttpServer::WorkerCount(const ServerConfig& config) {
  if (config.threads > 0) return config.threads;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

HttpServer::HttpServer(const ServerConfig& config, RequestHandler* handler, MetricsRegistry* metrics)
    : config_(config), handler_(handler) {
  auto* m = metrics;
  open_connections_ = &m->AddGauge("moat_open_connections", "Client connections currently open.", {});
  protocol_errors_ = &m->AddCounter("moat_protocol_errors_total",
                                    "Client connections refused or closed for protocol reasons.", {"kind"});
  connections_refused_ = &m->AddCounter("moat_connections_refused_total",
                                        "Connections closed at once because a connection cap was reached.",
                                        {"reason"});
}

HttpServer::~HttpServer() {
  Stop(0);
  Wait();
}

moat::StatusOr<std::shared_ptr<ssl::context>> MakeServerTlsContext(const std::string& cert_file,
                                                                   const std::string& key_file) {
  MOAT_RETURN_IF_ERROR(CheckSecretFilePermissions(key_file));
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  beast::error_code ec;
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) return moat::InvalidArgumentError("cannot load the TLS certificate " + cert_file + ": " + ec.message());
  ctx->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) return moat::InvalidArgumentError("cannot load the TLS private key " + key_file + ": " + ec.message());
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return moat::InvalidArgumentError("the TLS private key " + key_file + " does not match " + cert_file);
  }
  return ctx;
}

moat::Status HttpServer::ReloadTls() {
  if (config_.tls_listen.empty()) return moat::FailedPreconditionError("no TLS listener is configured");
  MOAT_ASSIGN_OR_RETURN(auto ctx, MakeServerTlsContext(config_.tls_cert_file, config_.tls_key_file));
  std::lock_guard lock(tls_mu_);
  tls_context_ = std::move(ctx);
  return moat::Status::Ok();
}

std::shared_ptr<ssl::context> HttpServer::tls_context() const {
  std::lock_guard lock(tls_mu_);
  return tls_context_;
}

moat::Status HttpServer::Listen(const std::string& host, uint16_t port, bool tls, uint16_t* bound_port) {
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  const char* key = tls ? "server.tls_listen" : "server.listen";
  if (ec) return moat::InvalidArgumentError(std::string(key) + " host is not an IP address: " + host);
  for (auto& w : workers_) {
    Listener l;
    l.tls = tls;
    l.acceptor = std::make_unique<tcp::acceptor>(w->io);
    tcp::endpoint ep(addr, port);
    l.acceptor->open(ep.protocol(), ec);
    if (!ec) l.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(l.acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        return moat::InternalError("setsockopt(SO_REUSEPORT) failed");
    }
    if (!ec) l.acceptor->bind(ep, ec);
    if (!ec) l.acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return moat::UnavailableError("cannot listen on " + host + ":" + std::to_string(port) + " (" + key +
                                    "): " + ec.message());
    }
    port = l.acceptor->local_endpoint().port();  // with port 0, later workers share the first's
    w->listeners.push_back(std::move(l));
  }
  *bound_port = port;
  return moat::Status::Ok();
}

moat::Status HttpServer::Start() {
  max_connections_ = EffectiveMaxConnections(config_.max_connections);
  if (max_connections_ < config_.max_connections) {
    std::cerr << "moat: server.max_connections lowered from " << config_.max_connections << " to "
              << max_connections_ << " to fit the open-file limit (ulimit -n)\n";
  }
  if (!config_.tls_listen.empty()) MOAT_RETURN_IF_ERROR(ReloadTls());
  const int n = WorkerCount(config_);
  for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>());
  MOAT_RETURN_IF_ERROR(Listen(config_.host, config_.port, /*tls=*/false, &port_));
  if (!config_.tls_listen.empty()) {
    MOAT_RETURN_IF_ERROR(Listen(config_.tls_host, config_.tls_port, /*tls=*/true, &tls_port_));
  }
  for (int i = 0; i < n; ++i) {
    Worker& w = *workers_[i];
    for (auto& l : w.listeners) asio::co_spawn(w.io, AcceptLoop(w, i, l), asio::detached);
    w.thread = std::thread([&w] { w.io.run(); });
  }
  return moat::Status::Ok();
}

bool HttpServer::AdmitConnection(const std::string& ip_key, const char** refusal) {
  if (connections_.fetch_add(1) >= max_connections_) {
    connections_.fetch_sub(1);
    *refusal = "process_cap";
    return false;
  }
  // A trusted proxy carries many clients: only the process cap applies to it.
  if (TrustedProxy(ip_key)) return true;
  std::lock_guard lock(ip_mu_);
  int64_t& n = connections_per_ip_[ip_key];
  if (n >= config_.max_connections_per_ip) {
    if (n == 0) connections_per_ip_.erase(ip_key);
    connections_.fetch_sub(1);
    *refusal = "ip_cap";
    return false;
  }
  ++n;
  return true;
}

void HttpServer::ReleaseConnection(const std::string& ip_key) {
  if (TrustedProxy(ip_key)) {
    connections_.fetch_sub(1);
    return;
  }
  {
    std::lock_guard lock(ip_mu_);
    auto it = connections_per_ip_.find(ip_key);
    if (it != connections_per_ip_.end() && --it->second <= 0) connections_per_ip_.erase(it);
  }
  connections_.fetch_sub(1);
}

bool HttpServer::TrustedProxy(const std::string& ip_key) const {
  for (const auto& proxy : config_.trusted_proxies)
    if (proxy == ip_key) return true;
  return false;
}

bool HttpServer::ReserveBodyBytes(const std::string& ip_key, int64_t bytes, const char** refusal) {
  if (buffered_body_bytes_.fetch_add(bytes) + bytes > static_cast<int64_t>(config_.max_buffered_body_bytes)) {
    buffered_body_bytes_.fetch_sub(bytes);
    *refusal = "body_memory";
    return false;
  }
  // A trusted proxy carries many clients: only the process budget applies to it.
  if (TrustedProxy(ip_key)) return true;
  std::lock_guard lock(ip_mu_);
  int64_t& held = body_bytes_per_ip_[ip_key];
  if (held + bytes > static_cast<int64_t>(config_.max_buffered_body_bytes_per_ip)) {
    if (held == 0) body_bytes_per_ip_.erase(ip_key);
    buffered_body_bytes_.fetch_sub(bytes);
    *refusal = "body_memory_ip";
    return false;
  }
  held += bytes;
  return true;
}

void HttpServer::ReleaseBodyBytes(const std::string& ip_key, int64_t bytes) {
  buffered_body_bytes_.fetch_sub(bytes);
  if (TrustedProxy(ip_key)) return;
  std::lock_guard lock(ip_mu_);
  auto it = body_bytes_per_ip_.find(ip_key);
  if (it != body_bytes_per_ip_.end() && (it->second -= bytes) <= 0) body_bytes_per_ip_.erase(it);
}

asio::awaitable<void> HttpServer::AcceptLoop(Worker& w, int index, Listener& listener) {
  asio::steady_timer backoff_timer(w.io);
  std::chrono::milliseconds backoff{0};
  while (!stopping_.load()) {
    auto [ec, socket] = co_await listener.acceptor->async_accept(kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_.load()) break;
      protocol_errors_->With({"accept"}).Inc();
      // Out of descriptors or memory: accepting again at once fails again, in a loop that would
      // starve every open connection. Wait, longer while it keeps failing.
      backoff = std::clamp(backoff * 2, kFirstAcceptBackoff, kMaxAcceptBackoff);
      backoff_timer.expires_after(backoff);
      co_await backoff_timer.async_wait(kNoThrow);
      continue;
    }
    backoff = std::chrono::milliseconds{0};
    asio::co_spawn(w.io, Session(std::move(socket), index, listener.tls), asio::detached);
  }
}

asio::awaitable<void> HttpServer::Session(tcp::socket socket, int index, bool tls) {
  beast::error_code ec;
  std::string peer = socket.remote_endpoint(ec).address().to_string();
  if (peer.rfind("::ffff:", 0) == 0) peer = peer.substr(7);
  auto ip_key_or = ratelimit::ClientIpKey(peer);
  const std::string ip_key = ip_key_or.ok() ? *ip_key_or : peer;
  const char* refusal = nullptr;
  if (!AdmitConnection(ip_key, &refusal)) {
    connections_refused_->With({refusal}).Inc();
    if (!tls) {
      // Best effort, never waiting: a refused client must not hold a coroutine either.
      socket.non_blocking(true, ec);
      socket.write_some(asio::buffer(ConnectionCapResponse()), ec);
    }
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
    co_return;
  }
  struct Admitted {
    HttpServer* server;
    const std::string& key;
    Family<Gauge>* gauge;
    ~Admitted() {
      gauge->With({}).Add(-1);
      server->ReleaseConnection(key);
    }
  } admitted{this, ip_key, open_connections_};
  open_connections_->With({}).Add(1);

  socket.set_option(tcp::no_delay(true), ec);
  std::unique_ptr<ClientConnection> conn =
      tls ? std::make_unique<ClientConnection>(std::move(socket), tls_context())
          : std::make_unique<ClientConnection>(std::move(socket));
  if (beast::error_code hec = co_await conn->Handshake(std::chrono::milliseconds(config_.header_timeout_ms))) {
    protocol_errors_->With({"tls_handshake"}).Inc();
    co_await conn->Close(kTlsShutdownTimeout);
    co_return;
  }
  auto& io = workers_[index]->io;
  // Holds at most one request head, its body and some framing: Beast limits neither a chunk-size
  // line's extensions nor the trailers, which would otherwise grow the buffer without bound.
  beast::flat_buffer buffer(config_.max_header_bytes + config_.max_body_bytes + kFramingSlackBytes);

  // Read deadlines use their own timer that cancels the read, rather than tcp_stream's
  // expiry (which closes the socket), so that a slow client still receives its 408.
  asio::steady_timer deadline(conn->tcp().get_executor());
  bool timed_out = false;
  const std::function<void(int64_t)> arm = [&](int64_t ms) {
    timed_out = false;
    deadline.expires_after(std::chrono::milliseconds(ms));
    deadline.async_wait([&](const beast::error_code& ec) {
      if (ec) return;  // cancelled: the read finished first
      timed_out = true;
      conn->CancelReads();
    });
  };
  // Protocol errors: the response is built first, then sent (not inside co_await, see
  // Respond), and the connection closes.
  std::optional<Response> error;
  auto fail = [&](const char* kind, int status, std::string message, const char* code) {
    protocol_errors_->With({kind}).Inc();
    error = ErrorResponse(LocalReply{status, "invalid_request_error", code, std::move(message), {}, "", {}});
  };

  size_t drain = 0;
  while (!stopping_.load()) {
    RequestParser parser;
    parser.header_limit(static_cast<std::uint32_t>(config_.max_header_bytes));
    // No body limit while the head is read: Beast would refuse an announced length beyond it
    // before the handler can check the key, and the refusal would have no audit record.
    // SessionBody::Read refuses that length; the limit, set before any body byte is parsed,
    // bounds a chunked body.
    parser.body_limit(boost::none);
    arm(config_.header_timeout_ms);
    beast::error_code hec = co_await conn->ReadHeader(buffer, parser);
    deadline.cancel();
    parser.body_limit(config_.max_body_bytes);
    if (hec) {
      if (timed_out) {
        // An idle keep-alive connection closes silently; a half-sent request gets a 408.
        if (buffer.size() > 0) fail("header_timeout", 408, "Timed out waiting for the request headers.", "request_timeout");
      } else if (hec == http::error::header_limit) {
        fail("header_too_large", 431, "Request headers are too large.", "headers_too_large");
      } else if (hec != http::error::end_of_stream && hec != asio::error::connection_reset &&
                 hec != asio::error::eof && hec != asio::error::operation_aborted &&
                 hec != ssl::error::stream_truncated) {
        fail("bad_request", 400, "Malformed HTTP request: " + hec.message(), "bad_http_request");
      }
      break;
    }
    if (auto refused = CheckRequestFraming(parser.get())) {
      protocol_errors_->With({"bad_framing"}).Inc();
      error = ErrorResponse(*refused);
      drain = kLingerDrainBytes;  // discarded unparsed: it may hold a smuggled request
      break;
    }
    bool keep = false;
    {
      ScopedCount in_flight(in_flight_);
      SessionBody body(*this, ip_key, *conn, buffer, parser, deadline, timed_out, arm);
      keep = co_await handler_->Handle(parser.get(), body, *conn, peer, index, io);
    }
    if (!parser.is_done()) {
      // Answered without reading the body (e.g. a bad API key): the answer said
      // "Connection: close"; let the client read it before the connection goes.
      drain = kLingerDrainBytes;
      break;
    }
    if (!keep) break;
  }
  if (error) co_await Respond(*conn, nullptr, *error, std::chrono::milliseconds(config_.write_timeout_ms));
  co_await conn->Close(drain > 0 ? kLingerTimeout : kTlsShutdownTimeout, drain);
}

void HttpServer::Stop(int64_t grace_ms) {
  if (stopping_.exchange(true)) return;
  for (auto& w : workers_) {
    asio::post(w->io, [&w] {
      beast::error_code ec;
      for (auto& l : w->listeners) l.acceptor->close(ec);
    });
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (auto& w : workers_) w->io.stop();
}

void HttpServer::Wait() {
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
}

}  // namespace moat::server

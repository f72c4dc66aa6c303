#include "server/http_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "server/openai.h"

namespace moat::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
}

int HttpServer::WorkerCount(const ServerConfig& config) {
  if (config.threads > 0) return config.threads;
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

HttpServer::HttpServer(const ServerConfig& config, Gateway* gateway)
    : config_(config), gateway_(gateway) {
  auto* m = gateway_->metrics();
  open_connections_ = &m->AddGauge("moat_open_connections", "Client connections currently open.", {});
  protocol_errors_ = &m->AddCounter("moat_protocol_errors_total",
                                    "Client connections refused or closed for protocol reasons.", {"kind"});
}

HttpServer::~HttpServer() {
  Stop(0);
  Wait();
}

moat::Status HttpServer::Start() {
  beast::error_code ec;
  auto addr = asio::ip::make_address(config_.host, ec);
  if (ec) return moat::InvalidArgumentError("server.listen host is not an IP address: " + config_.host);
  uint16_t port = config_.port;
  int n = WorkerCount(config_);
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    w->acceptor = std::make_unique<tcp::acceptor>(w->io);
    tcp::endpoint ep(addr, port);
    w->acceptor->open(ep.protocol(), ec);
    if (!ec) w->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(w->acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        return moat::InternalError("setsockopt(SO_REUSEPORT) failed");
    }
    if (!ec) w->acceptor->bind(ep, ec);
    if (!ec) w->acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return moat::UnavailableError("cannot listen on " + config_.host + ":" + std::to_string(port) + ": " + ec.message());
    port = w->acceptor->local_endpoint().port();  // with port 0, later workers share the first's
    workers_.push_back(std::move(w));
  }
  port_ = port;
  for (int i = 0; i < n; ++i) {
    Worker& w = *workers_[i];
    asio::co_spawn(w.io, AcceptLoop(w, i), asio::detached);
    w.thread = std::thread([&w] { w.io.run(); });
  }
  return moat::Status::Ok();
}

asio::awaitable<void> HttpServer::AcceptLoop(Worker& w, int index) {
  while (!stopping_.load()) {
    auto [ec, socket] = co_await w.acceptor->async_accept(kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_.load()) break;
      protocol_errors_->With({"accept"}).Inc();
      continue;
    }
    asio::co_spawn(w.io, Session(std::move(socket), index), asio::detached);
  }
}

asio::awaitable<void> HttpServer::Session(tcp::socket socket, int index) {
  beast::error_code ec;
  std::string peer = socket.remote_endpoint(ec).address().to_string();
  if (peer.rfind("::ffff:", 0) == 0) peer = peer.substr(7);
  socket.set_option(tcp::no_delay(true), ec);
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  open_connections_->With({}).Add(1);
  auto& io = *static_cast<asio::io_context*>(&workers_[index]->io);
  const int64_t wt = config_.write_timeout_ms;

  // Read deadlines use their own timer that cancels the read, rather than tcp_stream's
  // expiry (which closes the socket), so that a slow client still receives its 408.
  asio::steady_timer deadline(stream.get_executor());
  bool timed_out = false;
  auto arm = [&](int64_t ms) {
    timed_out = false;
    deadline.expires_after(std::chrono::milliseconds(ms));
    deadline.async_wait([&](const beast::error_code& ec) {
      if (ec) return;  // cancelled: the read finished first
      timed_out = true;
      beast::error_code ignored;
      stream.socket().cancel(ignored);
    });
  };
  // Protocol errors close the connection (MakeResponse with no request: no keep-alive).
  auto error_response = [](int status, const std::string& message, const char* code) {
    return Gateway::MakeResponse(nullptr, status, ErrorBody(message, "invalid_request_error", code),
                                 "application/json", {});
  };
  auto too_large = [&](boost::optional<uint64_t> len) {
    return "Request body" + (len ? " is " + std::to_string(*len) + " bytes; it" : std::string()) +
           " exceeds the limit of " + std::to_string(config_.max_body_bytes) + " bytes.";
  };

  while (!stopping_.load()) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(config_.max_body_bytes);
    arm(config_.header_timeout_ms);
    auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, kNoThrow);
    deadline.cancel();
    if (hec) {
      if (timed_out) {
        // An idle keep-alive connection closes silently; a half-sent request gets a 408.
        if (buffer.size() > 0) {
          protocol_errors_->With({"header_timeout"}).Inc();
          {
          auto res = error_response(408, "Timed out waiting for the request headers.", "request_timeout");
          co_await Gateway::SendResponse(stream, res, wt);
        }
        }
      } else if (hec == http::error::header_limit) {
        protocol_errors_->With({"header_too_large"}).Inc();
        {
          auto res = error_response(431, "Request headers are too large.", "headers_too_large");
          co_await Gateway::SendResponse(stream, res, wt);
        }
      } else if (hec == http::error::body_limit) {
        protocol_errors_->With({"body_too_large"}).Inc();
        {
          auto res = error_response(413, too_large(boost::none), "request_too_large");
          co_await Gateway::SendResponse(stream, res, wt);
        }
      } else if (hec != http::error::end_of_stream && hec != asio::error::connection_reset &&
                 hec != asio::error::eof && hec != asio::error::operation_aborted) {
        protocol_errors_->With({"bad_request"}).Inc();
        {
          auto res = error_response(400, "Malformed HTTP request: " + hec.message(), "bad_http_request");
          co_await Gateway::SendResponse(stream, res, wt);
        }
      }
      break;
    }
    if (auto len = parser.content_length(); len && *len > config_.max_body_bytes) {
      protocol_errors_->With({"body_too_large"}).Inc();
      {
          auto res = error_response(413, too_large(len), "request_too_large");
          co_await Gateway::SendResponse(stream, res, wt);
        }
      break;
    }
    arm(config_.body_timeout_ms);
    auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
    deadline.cancel();
    if (bec) {
      if (timed_out) {
        protocol_errors_->With({"body_timeout"}).Inc();
        {
          auto res = error_response(408, "Timed out waiting for the request body.", "request_timeout");
          co_await Gateway::SendResponse(stream, res, wt);
        }
      } else if (bec == http::error::body_limit) {
        protocol_errors_->With({"body_too_large"}).Inc();
        {
          auto res = error_response(413, too_large(parser.content_length()), "request_too_large");
          co_await Gateway::SendResponse(stream, res, wt);
        }
      }
      break;
    }
    stream.expires_never();
    HttpRequest req = parser.release();
    in_flight_.fetch_add(1);
    bool keep = co_await gateway_->Handle(req, stream, peer, index, io);
    in_flight_.fetch_sub(1);
    if (!keep) break;
  }
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.close();
  open_connections_->With({}).Add(-1);
}

void HttpServer::Stop(int64_t grace_ms) {
  if (stopping_.exchange(true)) return;
  for (auto& w : workers_) {
    asio::post(w->io, [&w] {
      beast::error_code ec;
      w->acceptor->close(ec);
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

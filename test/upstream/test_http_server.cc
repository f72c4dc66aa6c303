#include "test/upstream/test_http_server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>

namespace moat::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct TestHttpServer::Impl {
  Impl(TestHttpServer* owner, Handler handler)
      : owner(owner), handler(std::move(handler)), acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}) {}

  asio::awaitable<void> Accept() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      ++owner->connections_;
      asio::co_spawn(io, Serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> Serve(tcp::socket socket) {
    beast::error_code ec;
    auto on_error = asio::redirect_error(asio::use_awaitable, ec);
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      co_await http::async_read(socket, buffer, req, on_error);
      if (ec) co_return;
      Request r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      for (const auto& field : req) {
        std::string name(field.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = std::string(field.value());
      }
      r.body = req.body();
      const Reply reply = handler(r);
      http::response<http::string_body> res{static_cast<http::status>(reply.status), req.version()};
      res.set(http::field::content_type, reply.content_type);
      res.keep_alive(req.keep_alive());
      res.body() = reply.body;
      res.prepare_payload();
      co_await http::async_write(socket, res, on_error);
      if (ec || !res.keep_alive()) co_return;
    }
  }

  TestHttpServer* owner;
  Handler handler;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::thread thread;
};

std::string TestHttpServer::Request::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

TestHttpServer::TestHttpServer(Handler handler) : impl_(std::make_unique<Impl>(this, std::move(handler))) {
  port_ = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->Accept(), asio::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

TestHttpServer::~TestHttpServer() {
  impl_->io.stop();
  impl_->thread.join();
}

std::string TestHttpServer::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

}  // namespace moat::testing

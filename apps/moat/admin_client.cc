#include "admin_client.h"

#include <cstdlib>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

namespace moat::cli {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

moat::StatusOr<AdminClient> AdminClient::Create(const server::GatewayConfig& config, std::string url,
                                                std::string token) {
  AdminClient c;
  if (token.empty())
    if (const char* t = std::getenv("MOAT_ADMIN_TOKEN")) token = t;
  if (token.empty()) return moat::FailedPreconditionError("set MOAT_ADMIN_TOKEN or pass --admin-token");
  c.token_ = token;
  if (url.empty()) {
    std::string host = config.server.host == "0.0.0.0" ? "127.0.0.1" : config.server.host;
    url = "http://" + host + ":" + std::to_string(config.server.port);
  }
  MOAT_ASSIGN_OR_RETURN(HttpUrl u, ParseHttpUrl(url));
  c.host_ = u.host;
  c.port_ = std::to_string(u.port);
  return c;
}

moat::StatusOr<std::string> AdminClient::Get(const std::string& target) const {
  boost::asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::error_code ec;
  auto unreachable = [&] {
    return moat::UnavailableError("cannot reach the gateway at " + host_ + ":" + port_ + ": " +
                                  ec.message());
  };
  auto endpoints = resolver.resolve(host_, port_, ec);
  if (ec) return unreachable();
  stream.connect(endpoints, ec);
  if (ec) return unreachable();
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, host_);
  req.set(http::field::authorization, "Bearer " + token_);
  http::write(stream, req, ec);
  if (ec) return unreachable();
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res, ec);
  if (ec) return unreachable();
  beast::error_code ignored;  // the answer is complete; a failed shutdown changes nothing
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (res.result_int() / 100 == 2) return res.body();
  std::string message = res.body();
  boost::json::error_code jec;
  auto v = boost::json::parse(res.body(), jec);
  if (!jec && v.is_object())
    if (const auto* e = v.as_object().if_contains("error"); e && e->is_object())
      if (const auto* m = e->as_object().if_contains("message"); m && m->is_string())
        message = std::string(m->as_string());
  return moat::Status(res.result_int() == 404 ? moat::StatusCode::kNotFound : moat::StatusCode::kUnavailable,
                      "gateway answered " + std::to_string(res.result_int()) + ": " + message);
}

}  // namespace moat::cli

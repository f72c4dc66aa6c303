#include "admin_client.h"

#include <cstdlib>

#include <boost/json.hpp>

namespace moat::cli {

moat::StatusOr<AdminClient> AdminClient::Create(const server::GatewayConfig& config, std::string url,
                                                std::string token) {
  if (token.empty())
    if (const char* t = std::getenv("MOAT_ADMIN_TOKEN")) token = t;
  if (token.empty()) return moat::FailedPreconditionError("set MOAT_ADMIN_TOKEN or pass --admin-token");
  if (url.empty()) {
    std::string host = config.server.host == "0.0.0.0" ? "127.0.0.1" : config.server.host;
    url = "http://" + host + ":" + std::to_string(config.server.port);
  }
  net::HttpClientOptions options;
  options.total_timeout = kAdminCallTimeout;
  options.user_agent = "moat-cli";
  options.bearer_token = std::move(token);
  MOAT_ASSIGN_OR_RETURN(net::HttpClient http, net::HttpClient::Create(url, options));
  return AdminClient(std::move(http));
}

moat::StatusOr<std::string> AdminClient::Get(const std::string& target) const {
  net::HttpRequest req;
  req.target = target;
  auto res = http_.Send(req);
  if (!res.ok()) {
    const moat::Status& s = res.status();
    if (s.code() != moat::StatusCode::kUnavailable) return s;
    return moat::UnavailableError("cannot reach the gateway at " + http_.url().host + ":" +
                                  std::to_string(http_.url().port) + ": " + s.message());
  }
  if (res->ok()) return std::move(res->body);
  std::string message = res->body;
  boost::json::error_code jec;
  auto v = boost::json::parse(res->body, jec);
  if (!jec && v.is_object())
    if (const auto* e = v.as_object().if_contains("error"); e && e->is_object())
      if (const auto* m = e->as_object().if_contains("message"); m && m->is_string())
        message = std::string(m->as_string());
  return moat::Status(res->status == 404 ? moat::StatusCode::kNotFound : moat::StatusCode::kUnavailable,
                      "gateway answered " + std::to_string(res->status) + ": " + message);
}

}  // namespace moat::cli

#include "traffic/http_replay.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "traffic/event_io.h"
#include "traffic/replay.h"

namespace moat::traffic {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

StatusOr<std::unordered_map<std::string, std::string>> LoadKeysFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open keys file " + path);
  std::unordered_map<std::string, std::string> keys;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string account, secret;
    if (!(ss >> account >> secret)) return InvalidArgumentError("bad keys line: " + line);
    keys[account] = secret;
  }
  return keys;
}

detect::Action ActionFromResponse(int status, std::string_view header) {
  using detect::Action;
  for (Action a : {Action::kAllow, Action::kThrottle, Action::kDegrade, Action::kStepUp,
                   Action::kBlock}) {
    if (!header.empty() && detect::ActionName(a) == header) return a;
  }
  if (status == 429) return Action::kThrottle;
  if (status == 401 || status == 403) return Action::kBlock;
  return Action::kAllow;
}

namespace {

struct Url {
  std::string host, port = "80", prefix;
};

StatusOr<Url> ParseUrl(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) return InvalidArgumentError("gateway URL must be http://...");
  std::string rest = url.substr(kScheme.size());
  Url u;
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) u.prefix = rest.substr(slash);
  while (!u.prefix.empty() && u.prefix.back() == '/') u.prefix.pop_back();
  size_t colon = hostport.rfind(':');
  u.host = hostport.substr(0, colon);
  if (colon != std::string::npos) u.port = hostport.substr(colon + 1);
  if (u.host.empty()) return InvalidArgumentError("gateway URL lacks a host");
  return u;
}

// One keep-alive connection, reopened after any error.
class GatewayClient {
 public:
  GatewayClient(Url url, double timeout_s) : url_(std::move(url)), timeout_s_(timeout_s) {}

  // Returns (status, x-moat-action) or an error.
  StatusOr<std::pair<int, std::string>> Send(const detect::RequestEvent& e,
                                             const std::string& secret, bool forward_ip) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      beast::error_code ec;
      if (!stream_) {
        stream_.emplace(ioc_);
        tcp::resolver resolver(ioc_);
        auto results = resolver.resolve(url_.host, url_.port, ec);
        if (!ec) stream_->connect(results, ec);
        if (ec) {
          stream_.reset();
          return UnavailableError("connect " + url_.host + ":" + url_.port + ": " + ec.message());
        }
      }
      stream_->expires_after(std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000)));
      http::request<http::string_body> req{http::verb::post, url_.prefix + e.endpoint, 11};
      req.set(http::field::host, url_.host);
      for (const auto& [k, v] : e.headers) req.set(k, v);
      req.set(http::field::authorization, "Bearer " + secret);
      req.set(http::field::content_type, "application/json");
      if (forward_ip) req.set("x-forwarded-for", e.client_ip);
      req.body() = e.body_json;
      req.prepare_payload();
      http::write(*stream_, req, ec);
      http::response<http::string_body> res;
      if (!ec) http::read(*stream_, buffer_, res, ec);
      if (ec) {
        stream_.reset();
        buffer_.clear();
        continue;  // a stale keep-alive connection: retry once on a fresh one
      }
      if (!res.keep_alive()) stream_.reset();
      auto it = res.find("x-moat-action");
      std::string action = it == res.end() ? "" : std::string(it->value());
      return std::make_pair(static_cast<int>(res.result_int()), action);
    }
    return UnavailableError("request to gateway failed twice");
  }

 private:
  Url url_;
  double timeout_s_;
  asio::io_context ioc_;
  std::optional<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

}  // namespace

StatusOr<Report> ReplayOverHttp(const std::string& events_path, const std::string& labels_path,
                                const std::unordered_map<std::string, std::string>& keys,
                                const HttpReplayOptions& options) {
  MOAT_ASSIGN_OR_RETURN(Url url, ParseUrl(options.gateway_url));
  Scorer scorer;
  MOAT_RETURN_IF_ERROR(LoadLabels(labels_path, scorer));
  GatewayClient client(url, options.timeout_s);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t sent = 0, skipped = 0, failed = 0;
  std::map<int, int64_t> statuses;
  Status status = ForEachLine(events_path, [&](std::string_view line) -> Status {
    if (options.max_events > 0 && sent >= options.max_events) return Status::Ok();
    MOAT_ASSIGN_OR_RETURN(detect::RequestEvent e, EventFromJson(line));
    auto key = keys.find(e.account_id);
    if (key == keys.end()) {
      ++skipped;
      return Status::Ok();
    }
    if (options.rate > 0) {  // fixed-rate pacing on the real clock
      std::this_thread::sleep_until(t0 + std::chrono::duration<double>(sent / options.rate));
    }
    ++sent;
    auto res = client.Send(e, key->second, options.forward_client_ip);
    if (!res.ok()) {
      ++failed;
      if (failed > 20 && failed * 2 > sent) return res.status();  // the gateway is gone
      return Status::Ok();
    }
    ++statuses[res->first];
    scorer.Record(e.account_id, e.end_user, e.time_ns, ActionFromResponse(res->first, res->second));
    return Status::Ok();
  });
  MOAT_RETURN_IF_ERROR(status);
  Report r = scorer.Finish();
  r.scenario = events_path;
  r.engine = "gateway " + options.gateway_url;
  r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.events_per_second = r.wall_seconds > 0 ? r.events / r.wall_seconds : 0;
  std::string codes;
  for (const auto& [c, n] : statuses) codes += " " + std::to_string(c) + ":" + std::to_string(n);
  std::fprintf(stderr, "http replay: %lld sent, %lld failed, %lld skipped (no key); statuses%s\n",
               static_cast<long long>(sent), static_cast<long long>(failed),
               static_cast<long long>(skipped), codes.c_str());
  return r;
}

}  // namespace moat::traffic

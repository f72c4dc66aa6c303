#include "traffic/http_replay.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "net/http_client.h"
#include "traffic/event_io.h"
#include "traffic/replay.h"

namespace moat::traffic {

namespace json = boost::json;

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

// One keep-alive connection to the gateway (a stale one is replaced transparently), each
// request bounded by `timeout_s`.
StatusOr<net::HttpClient> ConnectToGateway(const std::string& gateway_url, double timeout_s) {
  net::HttpClientOptions options;
  options.total_timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  options.user_agent = "moat-bench";
  return net::HttpClient::Create(gateway_url, options);
}

// A POST to the gateway URL's path prefix + `target`.
net::HttpRequest PostTo(const net::HttpClient& conn, std::string_view target) {
  net::HttpRequest req;
  req.method = "POST";
  req.target = conn.url().path + std::string(target);
  return req;
}

// The event's body with `user` set to its end user when the body names none.
std::string BodyWithEndUser(const detect::RequestEvent& e) {
  if (e.end_user.empty()) return e.body_json;
  boost::system::error_code ec;
  json::value v = json::parse(e.body_json, ec);
  if (ec || !v.is_object() || v.as_object().contains("user")) return e.body_json;
  v.as_object()["user"] = e.end_user;
  return json::serialize(v);
}

// The replayed request's header fields; a later source replaces an earlier one of the same name.
void SetHeaders(net::HttpRequest& req, const detect::RequestEvent& e, const std::string& secret,
                const HttpReplayOptions& options) {
  for (const auto& [k, v] : e.headers) req.SetHeader(k, v);
  if (!e.user_agent.empty()) req.SetHeader("user-agent", e.user_agent);
  for (const auto& [k, v] : options.extra_headers) req.SetHeader(k, v);
  req.SetHeader("authorization", "Bearer " + secret);
  req.SetHeader("content-type", "application/json");
  if (options.forward_client_ip && !e.client_ip.empty()) req.SetHeader("x-forwarded-for", e.client_ip);
  if (options.replay_clock) req.SetHeader("x-moat-replay-time", std::to_string(e.time_ns));
}

// An admin API call: POST `target` with a JSON body. Returns the response (any status).
StatusOr<net::HttpResponse> AdminPost(net::HttpClient& conn, const std::string& token,
                                      std::string_view target, const json::object& body) {
  net::HttpRequest req = PostTo(conn, target);
  req.headers = {{"authorization", "Bearer " + token}, {"content-type", "application/json"}};
  req.body = json::serialize(body);
  return conn.Send(req);
}

Status AdminError(std::string_view what, const net::HttpResponse& res) {
  std::string msg = std::string(what) + ": HTTP " + std::to_string(res.status) + " " +
                    res.body.substr(0, 300);
  switch (res.status) {
    case 401: return UnauthenticatedError(msg + " (check --admin-token)");
    case 404: return NotFoundError(msg + " (is [server] admin_token set on the gateway?)");
    case 400: return InvalidArgumentError(msg);
    default: return UnavailableError(msg);
  }
}

}  // namespace

std::string GatewayAccountName(std::string_view bench_account) {
  return "bench-" + std::string(bench_account);
}

StatusOr<std::unordered_map<std::string, std::string>> ProvisionAccounts(
    const std::string& labels_path, const ProvisionOptions& options) {
  MOAT_ASSIGN_OR_RETURN(net::HttpClient conn,
                        ConnectToGateway(options.gateway_url, options.timeout_s));
  if (options.admin_token.empty()) return InvalidArgumentError("an admin token is required");
  std::unordered_map<std::string, std::string> keys;
  int64_t created = 0, reused = 0;
  Status status = ForEachLine(labels_path, [&](std::string_view line) -> Status {
    MOAT_ASSIGN_OR_RETURN(SubjectLabel l, LabelFromJson(line));
    if (l.account.empty() || keys.count(l.account) > 0) return Status::Ok();
    const std::string name = GatewayAccountName(l.account);
    MOAT_ASSIGN_OR_RETURN(net::HttpResponse acct,
                          AdminPost(conn, options.admin_token, "/admin/accounts",
                                    json::object{{"name", name},
                                                 {"tier", l.tier.empty() || !options.label_tiers ? options.tier : l.tier}}));
    if (acct.status == 409) {
      ++reused;  // provisioned by an earlier run: add a fresh key to it
    } else if (acct.status == 201) {
      ++created;
    } else {
      return AdminError("create account " + name, acct);
    }
    MOAT_ASSIGN_OR_RETURN(net::HttpResponse key, AdminPost(conn, options.admin_token, "/admin/keys",
                                                  json::object{{"account", name},
                                                               {"label", "moat-bench"}}));
    if (key.status != 201) return AdminError("create key for " + name, key);
    boost::system::error_code ec;
    json::value v = json::parse(key.body, ec);
    const json::value* secret = (!ec && v.is_object()) ? v.as_object().if_contains("key") : nullptr;
    if (secret == nullptr || !secret->is_string()) {
      return InternalError("create key for " + name + ": no \"key\" in " + key.body);
    }
    keys[l.account] = std::string(secret->as_string());
    return Status::Ok();
  });
  MOAT_RETURN_IF_ERROR(status);
  std::fprintf(stderr, "provision: %lld accounts created, %lld already existed, %zu keys\n",
               static_cast<long long>(created), static_cast<long long>(reused), keys.size());
  return keys;
}

Status WriteKeysFile(const std::string& path,
                     const std::unordered_map<std::string, std::string>& keys) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return InternalError("cannot write " + path + ": " + std::strerror(errno));
  ::fchmod(fd, 0600);  // an existing file keeps its mode on O_CREAT
  std::FILE* out = ::fdopen(fd, "w");
  if (out == nullptr) {
    ::close(fd);
    return InternalError("cannot write " + path);
  }
  std::map<std::string, std::string> sorted(keys.begin(), keys.end());
  std::fprintf(out, "# account secret (moat-bench traffic provision); live API keys, keep private\n");
  for (const auto& [account, secret] : sorted) {
    std::fprintf(out, "%s %s\n", account.c_str(), secret.c_str());
  }
  const bool ok = std::ferror(out) == 0;
  if (std::fclose(out) != 0 || !ok) return InternalError("write error on " + path);
  return Status::Ok();
}

StatusOr<Report> ReplayOverHttp(const std::string& events_path, const std::string& labels_path,
                                const std::unordered_map<std::string, std::string>& keys,
                                const HttpReplayOptions& options) {
  MOAT_ASSIGN_OR_RETURN(net::HttpClient conn,
                        ConnectToGateway(options.gateway_url, options.timeout_s));
  Scorer scorer;
  MOAT_RETURN_IF_ERROR(LoadLabels(labels_path, scorer));
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
    net::HttpRequest req = PostTo(conn, e.endpoint);
    SetHeaders(req, e, key->second, options);
    req.body = BodyWithEndUser(e);
    auto res = conn.Send(req);
    if (!res.ok()) {
      ++failed;
      if (failed > 20 && failed * 2 > sent) return res.status();  // the gateway is gone
      return Status::Ok();
    }
    GatewayAnswer answer;
    answer.status = res->status;
    answer.moat_action = res->Header("x-moat-action");
    answer.moat_reason = res->Header("x-moat-reason");
    answer.moat_category = res->Header("x-moat-category");
    answer.moat_reference = res->Header("x-moat-reference");
    answer.action = ActionFromResponse(answer.status, answer.moat_action);
    ++statuses[answer.status];
    scorer.Record(e.account_id, e.end_user, e.time_ns, answer.action);
    if (options.on_answer) options.on_answer(e, answer);
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

#include "server/gateway.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <exception>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "audit/audit_export.h"
#include "server/admin_api.h"
#include "server/asio_names.h"
#include "server/openai.h"
#include "server/response.h"

namespace moat::server {

namespace json = boost::json;

namespace {

// Audit records keep at most this much of the client-chosen User-Agent header.
constexpr size_t kMaxAuditedUserAgentBytes = 512;
constexpr std::string_view kBearerPrefix = "Bearer ";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view PathOf(std::string_view target) {
  auto q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

LocalReply AuditUnavailable(const moat::Status& health, std::string_view what) {
  return LocalReply{503, "server_error", "audit_unavailable",
                    std::string(what) + ": the gateway cannot write audit records (" +
                        health.message() + "). Retry shortly.",
                    {{"retry-after", "1"}}, "", {}};
}

// The answer to a request whose audit record could not be made durable.
LocalReply AuditWriteFailed(const moat::Status& audited) {
  return LocalReply{503, "server_error", "audit_unavailable",
                    "the audit record could not be written: " + audited.message(), {}, "", {}};
}

bool IsCompletionPath(std::string_view path) {
  return path == "/v1/chat/completions" || path == "/v1/completions";
}

}  // namespace

// The client side of an SSE response: HTTP/1.1 chunked encoding, or for an HTTP/1.0 client (which
// cannot parse chunks) the raw events delimited by closing the connection.
class SseClientStream final : public ClientStream {
 public:
  SseClientStream(ClientConnection& conn, const HttpRequest& req, int64_t write_timeout_ms)
      : conn_(conn),
        req_(req),
        chunked_(req.version() >= 11),
        write_timeout_(std::chrono::milliseconds(write_timeout_ms)) {}

  asio::awaitable<bool> Begin(const RequestContext& ctx) override {
    if (begun_) co_return ok_;
    begun_ = true;
    http::response<http::empty_body> res{http::status::ok, req_.version()};
    res.set(http::field::content_type, "text/event-stream");
    res.set(http::field::cache_control, "no-cache");
    res.set("x-request-id", ctx.request_id);
    res.set("x-moat-action", ToString(ctx.action));
    for (const auto& [k, v] : ctx.response_headers) res.set(k, v);
    res.keep_alive(keep_alive());
    res.chunked(chunked_);
    http::response_serializer<http::empty_body> sr{res};
    ok_ = !co_await conn_.WriteHead(sr, write_timeout_);
    co_return ok_;
  }

  asio::awaitable<bool> Send(std::string_view events) override {
    if (!ok_) co_return false;
    beast::error_code ec;
    if (chunked_) {
      ec = co_await conn_.WriteChunk(events, write_timeout_);
    } else {
      ec = co_await conn_.WriteRaw(events, write_timeout_);
    }
    ok_ = !ec;
    co_return ok_;
  }

  // Ends the body (the last chunk; nothing for HTTP/1.0, whose body ends with the connection).
  asio::awaitable<bool> Finish() {
    if (!ok_) co_return false;
    if (chunked_) ok_ = !co_await conn_.WriteLastChunk(write_timeout_);
    co_return ok_;
  }

  bool begun() const override { return begun_; }
  // Whether the connection can carry another request after this stream.
  bool keep_alive() const { return chunked_ && req_.keep_alive(); }

 private:
  ClientConnection& conn_;
  const HttpRequest& req_;
  const bool chunked_;
  std::chrono::milliseconds write_timeout_;
  bool begun_ = false;
  bool ok_ = true;
};

Gateway::Gateway(GatewayParts parts) : parts_(std::move(parts)) {
  auto r = audit::ParseRetention(parts_.config->audit.retention);
  retention_ = r.ok() ? *r : TextRetention::kFull;
  id_prefix_ = fmt::format("{:08x}", static_cast<uint32_t>(parts_.random->Next()));
  auto* m = parts_.metrics;
  requests_ = &m->AddCounter("moat_requests_total", "HTTP requests answered, by endpoint and status.",
                             {"endpoint", "status"});
  latency_ = &m->AddHistogram("moat_request_duration_seconds",
                              "Time from request arrival to the last response byte.", {"endpoint"},
                              LatencyBuckets());
  audit_failures_ = &m->AddCounter("moat_audit_failures_total",
                                   "Requests whose audit record could not be made durable.", {"reason"});
  actions_ = &m->AddCounter("moat_policy_actions_total", "Policy actions applied to requests.", {"action"});
  handler_errors_ = &m->AddCounter("moat_handler_errors_total",
                                   "Requests whose handler threw (answered 500, connection closed).", {});
  if (parts_.audit) {
    audit::AuditLog* log = parts_.audit;
    m->AddCallbackGauge("moat_audit_queue_depth", "Audit records waiting to be written.",
                        [log] { return static_cast<double>(log->queue_depth()); });
    m->AddCallbackGauge("moat_audit_records_written", "Audit records committed since start.",
                        [log] { return static_cast<double>(log->records_written()); });
    m->AddCallbackGauge("moat_audit_healthy", "1 while audit records can be written, else 0.",
                        [log] { return log->health().ok() ? 1.0 : 0.0; });
    m->AddCallbackGauge("moat_audit_wal_checkpoints", "WAL checkpoints completed since start.",
                        [log] { return static_cast<double>(log->wal_checkpoints()); });
  }
}

void Gateway::Shutdown() {
  for (auto& [name, backend] : parts_.backends) backend->Shutdown();
}

std::string Gateway::NextRequestId() {
  return fmt::format("req_{}{:012x}", id_prefix_, next_id_.fetch_add(1, std::memory_order_relaxed));
}

std::string Gateway::ModelsJson() const {
  json::array data;
  for (const auto& m : parts_.config->models) {
    json::object o;
    o["id"] = m.name;
    o["object"] = "model";
    o["created"] = 0;
    o["owned_by"] = m.backend == "builtin" ? "moat" : "upstream";
    if (!m.attestation_sha256.empty()) o["attestation_sha256"] = m.attestation_sha256;
    data.push_back(std::move(o));
  }
  json::object root;
  root["object"] = "list";
  root["data"] = std::move(data);
  return json::serialize(root);
}

std::string Gateway::ClientIp(const HttpRequest& req, const std::string& peer_ip,
                              const std::vector<std::string>& trusted) {
  auto is_trusted = [&](std::string_view ip) {
    for (const auto& t : trusted)
      if (t == ip) return true;
    return false;
  };
  if (trusted.empty() || !is_trusted(peer_ip)) return peer_ip;
  auto xff = req["x-forwarded-for"];
  if (xff.empty()) return peer_ip;
  // Walk from the right: the first address not of a trusted proxy is the client.
  std::string list(xff);
  std::string candidate = peer_ip;
  size_t end = list.size();
  while (end > 0) {
    size_t comma = list.rfind(',', end - 1);
    size_t start = comma == std::string::npos ? 0 : comma + 1;
    std::string ip = list.substr(start, end - start);
    ip.erase(0, ip.find_first_not_of(" \t"));
    ip.erase(ip.find_last_not_of(" \t") + 1);
    if (!ip.empty()) {
      candidate = ip;
      if (!is_trusted(ip)) return ip;
    }
    if (comma == std::string::npos) break;
    end = comma;
  }
  return candidate;
}

void Gateway::FillFromHead(const HttpRequest& req, const std::string& peer_ip,
                           const std::vector<std::string>& trusted_proxies, RequestContext* ctx) {
  ctx->client_ip = ClientIp(req, peer_ip, trusted_proxies);
  ctx->headers.reserve(16);
  for (const auto& f : req) ctx->headers.emplace_back(Lower(f.name_string()), std::string(f.value()));
  auto auth = req[http::field::authorization];
  if (auth.size() > kBearerPrefix.size() &&
      (auth.substr(0, kBearerPrefix.size()) == kBearerPrefix ||
       auth.substr(0, kBearerPrefix.size()) == "bearer ")) {
    ctx->bearer_token = std::string(auth.substr(kBearerPrefix.size()));
  }
}

StatusOr<int64_t> Gateway::ReplayTime(const HttpRequest& req, const std::string& peer_ip,
                                      const std::vector<std::string>& replay_peers) {
  if (std::find(replay_peers.begin(), replay_peers.end(), peer_ip) == replay_peers.end()) return int64_t{0};
  auto it = req.find("x-moat-replay-time");
  if (it == req.end()) return int64_t{0};
  const std::string_view text(it->value().data(), it->value().size());
  int64_t ns = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ns);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || ns <= 0) {
    return InvalidArgumentError("x-moat-replay-time must be a positive integer of Unix nanoseconds");
  }
  return ns;
}

void Gateway::ParseBody(const std::string& body, RequestContext* ctx) {
  ctx->raw_body = body;
  json::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    ctx->body_error = ec.message();
  } else if (!v.is_object()) {
    ctx->body_error = "the body must be a JSON object";
  } else {
    ctx->body = std::move(v.as_object());
  }
}

AuditRecord Gateway::MakeAuditRecord(const RequestContext& ctx, int64_t end_ns) const {
  AuditRecord r;
  r.time_ns = ctx.start_ns;
  r.request_id = ctx.request_id;
  r.account_id = ctx.account_id;
  r.org_id = ctx.org_id;
  r.end_user = ctx.end_user;
  r.key_id = ctx.key_id;
  r.client_ip = ctx.client_ip;
  r.user_agent = std::string(ctx.user_agent().substr(0, kMaxAuditedUserAgentBytes));
  r.endpoint = ctx.endpoint;
  r.model = ctx.model;
  r.params_json = ctx.body_error.empty() ? SamplingParamsJson(ctx.body) : "{}";
  r.stream = ctx.stream;
  r.prompt_tokens = ctx.prompt_tokens;
  r.completion_tokens = ctx.completion_tokens;
  r.latency_ms = static_cast<double>(end_ns - ctx.start_ns) / 1e6;
  r.http_status = ctx.http_status();
  r.error_code = ctx.error_code();
  r.verdict = ToString(ctx.verdict);
  r.action = ToString(ctx.action);
  json::array reasons;
  for (const auto& s : ctx.reasons) reasons.emplace_back(s);
  r.reasons_json = json::serialize(reasons);
  r.watermark_key_id = ctx.watermark_key_id;
  // The configured model the request named (a handful: a scan beats a map's allocation).
  for (const auto& m : parts_.config->models) {
    if (m.name == ctx.model) {
      r.model_attestation = m.attestation_sha256;
      break;
    }
  }
  r.retention = parts_.config->audit.retention;
  // A request refused on its headers never had its body read: its record is metadata only.
  r.prompt_text = audit::ApplyRetention(retention_, PromptText(ctx.endpoint, ctx.body));
  r.completion_text = audit::ApplyRetention(retention_, ctx.completion_text);
  return r;
}

asio::awaitable<moat::Status> Gateway::WriteAudit(AuditRecord record) {
  // The writer thread reports durability through a callback; we resume this coroutine on its
  // own executor by cancelling a timer that waits "forever".
  auto executor = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(executor, asio::steady_timer::time_point::max());
  auto result = std::make_shared<moat::Status>(moat::InternalError("audit write did not complete"));
  moat::Status queued = parts_.audit->Append(std::move(record), [timer, result, executor](const moat::Status& s) {
    asio::post(executor, [timer, result, s] {
      *result = s;
      timer->cancel();
    });
  });
  if (!queued.ok()) co_return queued;
  co_await timer->async_wait(kNoThrow);
  co_return *result;
}

void Gateway::RecordDone(const RequestContext& ctx, int status) {
  const int64_t end = parts_.clock->NowNanos();
  requests_->With({ctx.endpoint, std::to_string(status)}).Inc();
  latency_->With({ctx.endpoint}).Observe(static_cast<double>(end - ctx.start_ns) / 1e9);
  actions_->With({std::string(ToString(ctx.action))}).Inc();
}

asio::awaitable<bool> Gateway::Handle(HttpRequest& req, RequestBody& body, ClientConnection& conn,
                                      const std::string& peer_ip, int worker, asio::io_context& io) {
  const uint64_t written_before = conn.bytes_written();
  try {
    co_return co_await Dispatch(req, body, conn, peer_ip, worker, io);
  } catch (const std::exception&) {
    handler_errors_->With({}).Inc();
  }
  // The one boundary for exceptions from handlers: a 500 if nothing was sent yet, and the
  // connection closes (its state is unknown).
  if (conn.bytes_written() == written_before) {
    const Response failed = ErrorResponse(LocalReply{
        500, "server_error", "internal_error", "The gateway failed while handling this request.",
        {}, "", {}});
    co_await Respond(conn, nullptr, failed,
                     std::chrono::milliseconds(parts_.config->server.write_timeout_ms));
  }
  co_return false;
}

asio::awaitable<bool> Gateway::Dispatch(HttpRequest& req, RequestBody& body, ClientConnection& conn,
                                        const std::string& peer_ip, int worker, asio::io_context& io) {
  const std::string_view path = PathOf(req.target());
  if (IsCompletionPath(path) && req.method() == http::verb::post) {
    co_return co_await HandleCompletion(req, body, conn, peer_ip, worker, io, std::string(path));
  }
  if (path.rfind("/admin/", 0) == 0 || path == "/admin") {
    co_return co_await HandleAdmin(req, body, conn, peer_ip);
  }
  const std::pair<std::string, Response> routed = Route(req, path);
  requests_->With({routed.first, std::to_string(routed.second.status)}).Inc();
  co_return co_await Respond(conn, &req, routed.second,
                             std::chrono::milliseconds(parts_.config->server.write_timeout_ms));
}

std::pair<std::string, Response> Gateway::Route(const HttpRequest& req,
                                                std::string_view path) const {
  const bool get = req.method() == http::verb::get;
  if (IsCompletionPath(path)) {
    return {std::string(path),
            ErrorResponse(LocalReply{405, "invalid_request_error", "method_not_allowed",
                                     "Method not allowed: use POST for " + std::string(path),
                                     {{"allow", "POST"}}, "", {}})};
  }
  if (path == "/healthz" && get) {
    return {"/healthz", Response{200, "{\"status\":\"ok\"}", "application/json", {}}};
  }
  if (path == "/metrics" && get) {
    return {"/metrics",
            Response{200, parts_.metrics->RenderPrometheus(), "text/plain; version=0.0.4", {}}};
  }
  if (path == "/v1/models" && get) {
    return {"/v1/models", Response{200, ModelsJson(), "application/json", {}}};
  }
  return {"other", ErrorResponse(LocalReply{404, "invalid_request_error", "unknown_url",
                                            "Unknown request URL: " + std::string(req.method_string()) +
                                                " " + std::string(path),
                                            {}, "", {}})};
}

asio::awaitable<bool> Gateway::HandleAdmin(HttpRequest& req, RequestBody& body,
                                           ClientConnection& conn, const std::string& peer_ip) {
  const auto& scfg = parts_.config->server;
  const int64_t t0 = parts_.clock->NowNanos();
  const std::string path(PathOf(req.target()));
  const std::string client_ip = ClientIp(req, peer_ip, scfg.trusted_proxies);
  HeaderList headers;
  AdminApi::Response r;
  double retry_s = 0;
  if (!parts_.admin) {
    r = {404, ErrorBody("the admin API is disabled: set server.admin_token or server.admin_token_env",
                        "invalid_request_error", "admin_disabled"), std::nullopt};
  } else if (!parts_.admin->Authorized(req[http::field::authorization])) {
    if (parts_.failed_auth && !parts_.failed_auth->Allowed(client_ip, &retry_s)) {
      // Not audited one by one: the limit exists so that failures cannot fill the audit disk.
      const std::string retry = std::to_string(static_cast<int64_t>(std::ceil(std::max(retry_s, 1.0))));
      headers.emplace_back("retry-after", retry);
      r = {429, ErrorBody("Too many failed authentications from your address. Please try again in " + retry + "s.",
                          "rate_limit_error", "too_many_auth_failures"), std::nullopt};
    } else {
      if (parts_.failed_auth) parts_.failed_auth->RecordFailure(client_ip);
      r = {401, ErrorBody("A valid admin token is required (Authorization: Bearer <admin token>).",
                          "authentication_error", "invalid_admin_token"),
           audit::AdminAction::Of("admin.auth_failed")};
    }
  } else if (auto refused = co_await body.Read()) {
    r = {refused->http_status, ErrorBody(*refused), std::nullopt};
  } else if (auto health = parts_.audit ? parts_.audit->health() : moat::Status::Ok();
             req.method() != http::verb::get && !health.ok()) {
    // A change must be recorded: none is made while the audit log cannot be written.
    audit_failures_->With({"unhealthy"}).Inc();
    LocalReply reply = AuditUnavailable(health, "Admin changes are refused");
    headers = reply.headers;
    r = {503, ErrorBody(reply), std::nullopt};
  } else {
    r = parts_.admin->Handle(req.method_string(), path, req.body());
  }
  if (r.change && parts_.audit) {
    audit::AdminAction& change = *r.change;
    change.actor = r.status == 401 ? "unauthenticated" : parts_.admin->actor();
    change.source = client_ip;
    change.via = path;
    change.user_agent = std::string(req[http::field::user_agent]).substr(0, kMaxAuditedUserAgentBytes);
    change.status = r.status;
    change.time_ns = t0;
    moat::Status audited = co_await WriteAudit(audit::AdminAuditRecord(change));
    if (!audited.ok()) audit_failures_->With({"write"}).Inc();
  }
  requests_->With({"/admin", std::to_string(r.status)}).Inc();
  latency_->With({"/admin"}).Observe(static_cast<double>(parts_.clock->NowNanos() - t0) / 1e9);
  const Response answer{r.status, std::move(r.body), "application/json", std::move(headers)};
  co_return co_await Respond(conn, &req, answer, std::chrono::milliseconds(scfg.write_timeout_ms));
}

asio::awaitable<bool> Gateway::HandleCompletion(HttpRequest& req, RequestBody& request_body,
                                                ClientConnection& conn, const std::string& peer_ip,
                                                int worker, asio::io_context& io,
                                                const std::string& endpoint) {
  const auto& scfg = parts_.config->server;
  RequestContext ctx;
  ctx.request_id = NextRequestId();
  ctx.start_ns = parts_.clock->NowNanos();
  ctx.endpoint = endpoint;
  FillFromHead(req, peer_ip, scfg.trusted_proxies, &ctx);
  SseClientStream client(conn, req, scfg.write_timeout_ms);
  if (auto replay = ReplayTime(req, peer_ip, parts_.config->detection.replay_clock_peers); replay.ok()) {
    ctx.detection_time_ns = *replay;
  } else {
    ctx.SetLocalReply(LocalReply{400, "invalid_request_error", "invalid_replay_time",
                                 std::string(replay.status().message()), {}, "", {}});
    co_return co_await Answer(req, conn, ctx, client, {});
  }

  // Refuse new work rather than lose audit records when the writer cannot keep up (and do not
  // add a record to the backlog for it).
  if (parts_.audit && parts_.audit->queue_depth() >= scfg.audit_backlog_limit) {
    audit_failures_->With({"backlog"}).Inc();
    ctx.skip_audit = true;
    ctx.SetLocalReply(LocalReply{503, "server_error", "audit_backlog",
                                  "The gateway's audit log is backlogged; retry shortly.",
                                  {{"retry-after", "1"}}, "", {}});
    co_return co_await Answer(req, conn, ctx, client, {});
  }

  // Header phase (authentication): a refusal here never reads, parses or stores the body.
  std::vector<std::unique_ptr<Filter>> filters;
  filters.reserve(parts_.filters.size());
  for (const auto& factory : parts_.filters) {
    filters.push_back(factory->Create());
    FilterStatus status = filters.back()->OnHeaders(ctx);
    if (status.is_local_reply()) {
      ctx.SetLocalReply(std::move(status).TakeReply());
      co_return co_await Answer(req, conn, ctx, client, {});
    }
  }
  // Nothing is served whose record is known to be unwritable.
  if (parts_.audit) {
    if (moat::Status health = parts_.audit->health(); !health.ok()) {
      audit_failures_->With({"unhealthy"}).Inc();
      ctx.SetLocalReply(AuditUnavailable(health, "The request was refused before it was forwarded"));
      co_return co_await Answer(req, conn, ctx, client, {});
    }
  }
  if (auto refused = co_await request_body.Read()) {
    ctx.SetLocalReply(std::move(*refused));
    co_return co_await Answer(req, conn, ctx, client, {});
  }
  ParseBody(req.body(), &ctx);

  // Request phase, in order; remember how many ran so OnComplete reaches exactly those.
  size_t ran = 0;
  bool stopped = false;
  for (auto& f : filters) {
    ++ran;
    FilterStatus status = f->OnRequest(ctx);
    if (status.is_local_reply()) {
      ctx.SetLocalReply(std::move(status).TakeReply());
      stopped = true;
      break;
    }
  }

  std::string body;
  if (!stopped) {
    Backend* backend = parts_.backends.at(ctx.model).get();
    BackendCall call{ctx, worker, &io, ctx.stream ? &client : nullptr, nullptr};
    call.on_progress = [&]() {
      // A stream whose record can no longer be written stops at its next event.
      if (parts_.audit) {
        if (moat::Status health = parts_.audit->health(); !health.ok()) {
          audit_failures_->With({"unhealthy"}).Inc();
          ctx.SetLocalReply(AuditUnavailable(health, "The stream was stopped"));
          return false;
        }
      }
      for (auto& f : filters) {
        FilterStatus status = f->OnStreamProgress(ctx);
        if (status.is_local_reply()) {
          ctx.SetLocalReply(std::move(status).TakeReply());
          return false;
        }
      }
      return true;
    };
    BackendResult result = co_await backend->Handle(call);
    body = std::move(result.body);
  }
  for (size_t i = ran; i-- > 0;) filters[i]->OnComplete(ctx);
  co_return co_await Answer(req, conn, ctx, client, std::move(body));
}

asio::awaitable<bool> Gateway::Answer(HttpRequest& req, ClientConnection& conn, RequestContext& ctx,
                                      SseClientStream& client, std::string body) {
  // The audit record must be durable before the client sees the end of the response.
  moat::Status audited = moat::Status::Ok();
  if (parts_.audit && !ctx.skip_audit) {
    audited = co_await WriteAudit(MakeAuditRecord(ctx, parts_.clock->NowNanos()));
    if (!audited.ok()) audit_failures_->With({"write"}).Inc();
  }
  std::optional<LocalReply> failure = ctx.local_reply();
  if (!audited.ok()) failure = AuditWriteFailed(audited);

  if (client.begun()) {
    // A stream that failed, or whose record failed, ends with an error event and without
    // [DONE]: the client can tell that the answer is not complete.
    const std::string tail = failure ? "data: " + ErrorBody(*failure) + "\n\n" : "data: [DONE]\n\n";
    bool ok = co_await client.Send(tail) && co_await client.Finish();
    RecordDone(ctx, ctx.http_status());
    co_return ok && client.keep_alive();
  }
  if (!failure && ctx.stream && ctx.http_status() == 200) {
    // The backend produced no events at all: still answer with a well-formed stream.
    const std::string done = "data: [DONE]\n\n";
    bool ok = co_await client.Begin(ctx) && co_await client.Send(done) && co_await client.Finish();
    RecordDone(ctx, 200);
    co_return ok && client.keep_alive();
  }
  Response answer = failure ? ErrorResponse(*failure)
                            : Response{ctx.http_status(), std::move(body), "application/json", {}};
  HeaderList headers = ctx.response_headers;
  headers.emplace_back("x-request-id", ctx.request_id);
  headers.emplace_back("x-moat-action", ToString(ctx.action));
  headers.insert(headers.end(), answer.headers.begin(), answer.headers.end());
  answer.headers = std::move(headers);
  RecordDone(ctx, answer.status);
  co_return co_await Respond(conn, &req, answer,
                             std::chrono::milliseconds(parts_.config->server.write_timeout_ms));
}

}  // namespace moat::server

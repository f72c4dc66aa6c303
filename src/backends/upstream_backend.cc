#include "backends/upstream_backend.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <mutex>

#include "moat/clock.h"
#include "resistance/hardened_response.h"
#include "server/openai.h"
#include "server/sse_relay.h"
#include "watermark/logit_bias.h"

namespace moat::backends {

using server::Backend;
using server::BackendCall;
using server::BackendResult;
using server::ModelConfig;
using server::ParseBaseUrl;
using server::EstimateTokens;
using server::SseRelay;
using server::StripReasoning;
using server::TakeUsageAndText;
using server::WatermarkSettings;

namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kMaxResponseBytes = 64 << 20;
constexpr size_t kCoalesceBytes = 32768;  // most stream bytes gathered into one client write
// Beast's default, which the upstream's answer header was always held to.
constexpr size_t kMaxResponseHeaderBytes = 8192;

void SetGatewayError(RequestContext& ctx, int status, const std::string& code, std::string message) {
  ctx.SetLocalReply(LocalReply{status, "upstream_error", code, std::move(message), {}, "", {}});
}

}  // namespace

moat::StatusOr<std::unique_ptr<UpstreamBackend>> UpstreamBackend::Create(
    const ModelConfig& config, int workers, MetricsRegistry* metrics, const Clock* clock,
    const WatermarkSettings& wm,
    const std::string& wm_secret_path) {
  MOAT_ASSIGN_OR_RETURN(HttpUrl url, ParseBaseUrl(config.base_url));
  std::shared_ptr<const net::TlsClientContext> tls;
  if (url.tls) {
    net::TlsClientOptions t;
    t.verify = config.tls_verify;
    t.ca_file = config.tls_ca_file;
    t.server_name = config.tls_server_name;
    t.client_cert_file = config.tls_client_cert_file;
    t.client_key_file = config.tls_client_key_file;
    auto made = net::TlsClientContext::Create(t, url.host);
    if (!made.ok()) {
      return moat::Status(made.status().code(),
                          "model '" + config.name + "': " + made.status().message());
    }
    tls = std::move(*made);
  }
  // Checked once at start, so a misspelt host fails `moat serve` rather than every request;
  // each worker's client then resolves once more, off its thread, and keeps the address.
  {
    asio::io_context io;
    tcp::resolver resolver(io);
    boost::system::error_code ec;
    auto results = resolver.resolve(url.host, std::to_string(url.port), ec);
    if (ec || results.empty())
      return moat::UnavailableError("cannot resolve upstream host \"" + url.host +
                                    "\" for model \"" + config.name + "\": " + ec.message());
  }
  std::unique_ptr<UpstreamBackend> backend(
      new UpstreamBackend(config, url, workers, metrics, clock));
  net::HttpClientOptions& o = backend->http_options_;
  o.connect_timeout = std::chrono::milliseconds(config.connect_timeout_ms);
  o.total_timeout = std::chrono::milliseconds(0);  // a stream lasts as long as it keeps coming
  o.idle_timeout = std::chrono::milliseconds(config.read_timeout_ms);
  o.max_response_header_bytes = kMaxResponseHeaderBytes;
  o.max_idle_connections = config.max_idle_connections;
  o.resolve_once = true;
  o.user_agent.clear();  // nothing about the gateway or its clients is sent upstream unasked
  if (!config.api_key.empty()) o.bearer_token = config.api_key;
  o.tls = std::move(tls);
  Family<Counter>* handshakes = backend->tls_handshakes_;
  o.on_tls_handshake = [handshakes, name = config.name](bool resumed) {
    handshakes->With({name, resumed ? "yes" : "no"}).Inc();
  };
  if (config.watermark_vocab_size > 0 && wm.enabled) {
    MOAT_ASSIGN_OR_RETURN(backend->wm_secret_, watermark::MasterSecret::LoadOrCreate(wm_secret_path));
    backend->wm_config_.scheme = watermark::Scheme::kUnigram;  // the only scheme a static map can carry
    backend->wm_config_.gamma = wm.gamma;
    backend->wm_config_.delta = wm.delta;
    MOAT_RETURN_IF_ERROR(backend->wm_config_.Validate());
    backend->wm_epoch_ = wm.epoch;
  }
  return backend;
}

UpstreamBackend::UpstreamBackend(const ModelConfig& config, HttpUrl url, int workers,
                                 MetricsRegistry* metrics, const Clock* clock)
    : config_(config), clock_(clock), url_(std::move(url)), pools_(workers) {
  static std::once_flag once;
  static Family<Counter>* errors = nullptr;
  static Family<Histogram>* ttfb = nullptr;
  static Family<Counter>* handshakes = nullptr;
  // Families are shared by all upstream backends of the process (label: model).
  std::call_once(once, [&] {
    errors = &metrics->AddCounter("moat_upstream_errors_total",
                                  "Upstream failures by model and kind.", {"model", "kind"});
    ttfb = &metrics->AddHistogram("moat_upstream_ttfb_seconds",
                                  "Time from forwarding a request to the upstream's response headers.",
                                  {"model"}, LatencyBuckets());
    handshakes = &metrics->AddCounter("moat_upstream_tls_handshakes_total",
                                      "TLS handshakes with upstreams, by model and whether a session was resumed.",
                                      {"model", "resumed"});
  });
  upstream_errors_ = errors;
  upstream_ttfb_ = ttfb;
  tls_handshakes_ = handshakes;
}

UpstreamBackend::~UpstreamBackend() = default;

void UpstreamBackend::Shutdown() {
  for (auto& pool : pools_) pool.http.reset();
}

void UpstreamBackend::CountError(const char* kind) { upstream_errors_->With({config_.name, kind}).Inc(); }

void UpstreamBackend::InjectWatermark(Pool& pool, RequestContext& ctx, json::object& body) const {
  if (!wm_secret_ || ctx.account_id.empty()) return;
  auto it = pool.bias_cache.find(ctx.account_id);
  if (it == pool.bias_cache.end()) {
    watermark::WatermarkKey key = watermark::DeriveKey(*wm_secret_, ctx.account_id, wm_epoch_);
    auto bias = watermark::UnigramLogitBias(key, wm_config_, config_.watermark_vocab_size);
    if (!bias.ok()) return;
    json::object map;
    map.reserve(bias->size());
    for (const auto& [token, b] : *bias) map[std::to_string(token)] = b;
    if (pool.bias_cache.size() >= 1024) pool.bias_cache.clear();  // bounded per worker
    it = pool.bias_cache.emplace(ctx.account_id, std::move(map)).first;
  }
  json::object merged = it->second;
  if (const auto* client = body.if_contains("logit_bias"); client && client->is_object()) {
    for (const auto& [token, b] : client->as_object()) {
      if (!b.is_number()) continue;
      double sum = b.to_number<double>();
      if (const auto* ours = merged.if_contains(token)) sum += ours->to_number<double>();
      merged[token] = std::clamp(sum, -100.0, 100.0);
    }
  }
  body["logit_bias"] = std::move(merged);
  ctx.watermark_key_id = watermark::KeyId(ctx.account_id, wm_epoch_);
}

std::string UpstreamBackend::ForwardBody(Pool& pool, RequestContext& ctx) const {
  json::object body = ctx.body;
  InjectWatermark(pool, ctx, body);
  body["model"] = config_.upstream_model;
  // Bound the upstream's work so a token reservation cannot be overshot.
  if (!body.contains("max_tokens") && !body.contains("max_completion_tokens"))
    body["max_tokens"] = ctx.max_tokens;
  if (ctx.stream && config_.request_usage_in_streams) {
    json::object so;
    if (auto* existing = body.if_contains("stream_options"); existing && existing->is_object())
      so = existing->as_object();
    so["include_usage"] = true;
    body["stream_options"] = std::move(so);
  }
  return json::serialize(body);
}

net::HttpRequest UpstreamBackend::UpstreamRequest(Pool& pool, RequestContext& ctx) const {
  net::HttpRequest req;
  req.method = "POST";
  req.target = url_.path + ctx.endpoint;
  req.headers.reserve(3 + config_.forward_headers.size());
  req.headers.emplace_back("content-type", "application/json");
  req.headers.emplace_back("accept", ctx.stream ? "text/event-stream" : "application/json");
  req.headers.emplace_back("x-request-id", ctx.request_id);
  for (const auto& name : config_.forward_headers)
    if (const std::string* v = ctx.FindHeader(name)) req.SetHeader(name, *v);
  req.body = ForwardBody(pool, ctx);
  return req;
}

void UpstreamBackend::FailCall(RequestContext& ctx, const moat::Status& status,
                               const net::HttpCallTrace& trace, bool relay_stream) {
  const bool timeout = status.code() == StatusCode::kDeadlineExceeded;
  switch (trace.stage) {
    case net::HttpCallStage::kConnect:
      CountError(timeout ? "connect_timeout" : "connect");
      SetGatewayError(
          ctx, 502, timeout ? "upstream_connect_timeout" : "upstream_unreachable",
          "the upstream for model '" + ctx.model + "' is unreachable (" + status.message() + ")");
      return;
    case net::HttpCallStage::kTlsHandshake:
      CountError("tls_handshake");
      SetGatewayError(ctx, 502, "upstream_tls_error",
                      "the TLS handshake with the upstream for model '" + ctx.model + "' failed (" +
                          status.message() + ")");
      return;
    case net::HttpCallStage::kExchange:
      if (timeout) {
        CountError("timeout");
        SetGatewayError(ctx, 504, "upstream_timeout",
                        "the upstream for model '" + ctx.model + "' did not answer within " +
                            std::to_string(config_.read_timeout_ms) + " ms");
      } else {
        CountError("reset");
        SetGatewayError(ctx, 502, "upstream_connection_reset",
                        "the upstream for model '" + ctx.model + "' closed the connection (" +
                            status.message() + ")");
      }
      return;
    case net::HttpCallStage::kBody:
      CountError(timeout ? "timeout" : "reset");
      if (relay_stream) {
        SetGatewayError(ctx, timeout ? 504 : 502,
                        timeout ? "upstream_timeout" : "upstream_stream_interrupted",
                        timeout ? "the upstream stopped sending for " +
                                      std::to_string(config_.read_timeout_ms) + " ms"
                                : "the upstream closed the stream before it was complete (" +
                                      status.message() + ")");
      } else {
        SetGatewayError(ctx, timeout ? 504 : 502,
                        timeout ? "upstream_timeout" : "upstream_connection_reset",
                        "the upstream's response was cut short (" + status.message() + ")");
      }
      return;
  }
}

asio::awaitable<BackendResult> UpstreamBackend::Handle(BackendCall& call) {
  RequestContext& ctx = call.ctx;
  Pool& pool = pools_[call.worker];
  if (!pool.http) {
    auto client =
        net::AsyncHttpClient::Create(call.io->get_executor(), config_.base_url, http_options_);
    if (!client.ok()) {  // the URL and TLS settings were checked by Create: not expected
      CountError("connect");
      SetGatewayError(ctx, 502, "upstream_unreachable", client.status().message());
      co_return BackendResult{};
    }
    pool.http.emplace(std::move(*client));
  }

  bool client_wants_usage = false;
  if (const auto* so = ctx.body.if_contains("stream_options"); so && so->is_object())
    if (const auto* iu = so->as_object().if_contains("include_usage"); iu && iu->is_bool())
      client_wants_usage = iu->as_bool();

  // What the handlers below learn while the answer arrives.
  SseRelay relay(ctx, client_wants_usage);
  int status = 0;
  bool relay_stream = false;  // relayed event by event to the client
  std::string body;           // or gathered here
  std::string forward;        // relayed bytes not yet written to the client
  int64_t last_events = 0;
  int64_t sent_ns = 0;
  bool stopped = false;           // the client left or a filter stopped the stream
  const char* refused = nullptr;  // the answer broke a limit: "event_too_large" | "too_large"

  // Writes what the relay produced to the client; false (and stopped) when the client is gone.
  auto flush = [&]() -> asio::awaitable<bool> {
    if (forward.empty()) co_return true;
    if (!call.client->begun() && !co_await call.client->Begin(ctx)) {
      stopped = true;
    } else if (!co_await call.client->Send(forward)) {
      stopped = true;
    }
    forward.clear();
    if (stopped) ctx.SetResponseStatus(499, "client_disconnected");
    co_return !stopped;
  };

  net::HttpStreamHandlers handlers;
  handlers.on_request_sent = [&] {
    sent_ns = clock_->NowNanos();
    // Once the prompt has left for the upstream it costs tokens, whatever happens to the answer
    // (client gone, limit cut, upstream failure): charged unless the upstream reports usage.
    if (!ctx.usage_from_upstream) ctx.prompt_tokens = ctx.prompt_tokens_estimate;
  };
  handlers.on_head = [&](const net::HttpResponseHead& head) {
    upstream_ttfb_->With({config_.name})
        .Observe(static_cast<double>(clock_->NowNanos() - sent_ns) / 1e9);
    status = head.status;
    ctx.SetResponseStatus(status);
    const bool is_sse = head.Header("content-type").find("text/event-stream") != std::string::npos;
    if (status == 429 || status == 503) {
      std::string ra = head.Header("retry-after");
      if (!ra.empty()) ctx.response_headers.emplace_back("retry-after", std::move(ra));
    }
    relay_stream = ctx.stream && status == 200 && is_sse;
    return true;
  };
  handlers.on_body = [&](std::string_view piece, bool more_ready) -> asio::awaitable<bool> {
    if (!relay_stream) {
      if (body.size() + piece.size() > kMaxResponseBytes) {
        refused = "too_large";
        co_return false;
      }
      body.append(piece);
      co_return true;
    }
    relay.Feed(piece, &forward);
    if (relay.overflowed()) {
      refused = "event_too_large";
      co_return false;
    }
    // Coalesce events whose bytes already wait in the socket into one write; never wait for more.
    if (!more_ready || forward.size() >= kCoalesceBytes) {
      const bool sent = co_await flush();
      if (!sent) co_return false;
    }
    if (!ctx.usage_from_upstream) ctx.completion_tokens = relay.content_events();
    if (relay.content_events() != last_events) {
      last_events = relay.content_events();
      if (call.on_progress && !call.on_progress()) {
        stopped = true;
        co_return false;
      }
    }
    co_return true;
  };

  net::HttpCallTrace trace;
  StatusOr<net::HttpStreamedAnswer> answer =
      co_await pool.http->SendStreamed(UpstreamRequest(pool, ctx), handlers, &trace);
  // Relayed events held back for more that never came go out before anything else.
  if (relay_stream && !stopped && refused == nullptr) co_await flush();
  if (!answer.ok()) {
    FailCall(ctx, answer.status(), trace, relay_stream);
    co_return BackendResult{};
  }
  if (refused != nullptr) {
    CountError(refused);
    if (std::string_view(refused) == "event_too_large") {
      SetGatewayError(ctx, 502, "upstream_event_too_large",
                      "the upstream sent a stream event larger than " +
                          std::to_string(SseRelay::kDefaultMaxEventBytes) + " bytes");
    } else {
      SetGatewayError(ctx, 502, "upstream_response_too_large",
                      "the upstream's response is larger than 64 MiB");
    }
    co_return BackendResult{};
  }
  if (stopped) co_return BackendResult{};

  if (relay_stream) {
    if (!ctx.usage_from_upstream) {
      ctx.prompt_tokens = ctx.prompt_tokens_estimate;
      ctx.completion_tokens = relay.content_events();
    }
    if (!relay.done()) {
      CountError("stream_incomplete");
      SetGatewayError(ctx, 502, "upstream_stream_interrupted", "the upstream ended the stream without [DONE]");
    }
    co_return BackendResult{};
  }

  // A non-streamed answer (or an upstream error answered without a stream).
  json::error_code jec;
  json::value v = json::parse(body, jec);
  if (jec || !v.is_object()) {
    CountError("invalid_response");
    SetGatewayError(ctx, 502, "upstream_invalid_response",
                    "the upstream answered with HTTP " + std::to_string(status) + " and a body that is not JSON");
    co_return BackendResult{};
  }
  if (status != 200) {
    CountError(status >= 500 ? "status_5xx" : "status_4xx");
    // The upstream's own error: its body goes to the client as it is, its code to the audit.
    std::string code;
    if (const auto* e = v.as_object().if_contains("error"); e && e->is_object())
      if (const auto* c = e->as_object().if_contains("code"); c && c->is_string())
        code = std::string(c->as_string());
    if (code.empty()) code = "upstream_status_" + std::to_string(status);
    ctx.SetResponseStatus(status, std::move(code));
    co_return BackendResult{std::move(body)};
  }
  TakeUsageAndText(v.as_object(), ctx, nullptr);
  if (ctx.hardening != nullptr ? resistance::HardenResponse(*ctx.hardening, ctx.raw_body, v.as_object())
                               : ctx.strip_reasoning && StripReasoning(v.as_object())) {
    body = json::serialize(v);
  }
  if (!ctx.usage_from_upstream) {
    ctx.prompt_tokens = ctx.prompt_tokens_estimate;
    ctx.completion_tokens = EstimateTokens(ctx.completion_text);
  }
  if (ctx.stream) {
    // Asked for a stream but got plain JSON: send it as one event so the client's stream
    // parser still works.
    if (!co_await call.client->Begin(ctx) || !co_await call.client->Send("data: " + body + "\n\n")) {
      ctx.SetResponseStatus(499, "client_disconnected");
    }
    co_return BackendResult{};
  }
  co_return BackendResult{std::move(body)};
}

}  // namespace moat::backends

#include "backends/upstream_backend.h"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

#include "common/private_files.h"
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
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxResponseBytes = 64 << 20;
constexpr size_t kReadChunkBytes = 16384;
constexpr size_t kCoalesceBytes = 32768;  // most stream bytes gathered into one client write

bool IsConnectionLoss(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::connection_aborted ||
         ec == ssl::error::stream_truncated;
}

// The TLS client context of one https upstream (see UpstreamBackend).
moat::StatusOr<std::shared_ptr<ssl::context>> MakeClientTlsContext(const ModelConfig& config) {
  const std::string where = "model '" + config.name + "': ";
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  beast::error_code ec;
  if (config.tls_verify) {
    ctx->set_verify_mode(ssl::verify_peer);
    if (!config.tls_ca_file.empty()) {
      ctx->load_verify_file(config.tls_ca_file, ec);
      if (ec) return moat::InvalidArgumentError(where + "cannot load tls_ca_file " + config.tls_ca_file + ": " + ec.message());
    } else {
      ctx->set_default_verify_paths(ec);
      if (ec) return moat::InvalidArgumentError(where + "cannot load the system trust store: " + ec.message());
    }
  } else {
    ctx->set_verify_mode(ssl::verify_none);
  }
  if (!config.tls_client_cert_file.empty()) {
    MOAT_RETURN_IF_ERROR(CheckSecretFilePermissions(config.tls_client_key_file));
    ctx->use_certificate_chain_file(config.tls_client_cert_file, ec);
    if (ec) return moat::InvalidArgumentError(where + "cannot load tls_client_cert_file: " + ec.message());
    ctx->use_private_key_file(config.tls_client_key_file, ssl::context::pem, ec);
    if (ec) return moat::InvalidArgumentError(where + "cannot load tls_client_key_file: " + ec.message());
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
      return moat::InvalidArgumentError(where + "tls_client_key_file does not match tls_client_cert_file");
  }
  return ctx;
}

void SetGatewayError(RequestContext& ctx, int status, const std::string& code, std::string message) {
  ctx.SetLocalReply(LocalReply{status, "upstream_error", code, std::move(message), {}, ""});
}

}  // namespace

moat::StatusOr<std::unique_ptr<UpstreamBackend>> UpstreamBackend::Create(
    const ModelConfig& config, int workers, MetricsRegistry* metrics, const Clock* clock,
    const WatermarkSettings& wm,
    const std::string& wm_secret_path) {
  MOAT_ASSIGN_OR_RETURN(HttpUrl url, ParseBaseUrl(config.base_url));
  std::shared_ptr<ssl::context> tls;
  if (url.tls) {
    MOAT_ASSIGN_OR_RETURN(tls, MakeClientTlsContext(config));
  }
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::error_code ec;
  auto results = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec || results.empty())
    return moat::UnavailableError("cannot resolve upstream host \"" + url.host + "\" for model \"" +
                                  config.name + "\": " + ec.message());
  std::unique_ptr<UpstreamBackend> backend(
      new UpstreamBackend(config, url, results.begin()->endpoint(), workers, metrics, clock));
  backend->tls_context_ = std::move(tls);
  backend->tls_server_name_ = config.tls_server_name.empty() ? url.host : config.tls_server_name;
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

UpstreamBackend::UpstreamBackend(const ModelConfig& config, HttpUrl url, tcp::endpoint ep,
                                 int workers, MetricsRegistry* metrics, const Clock* clock)
    : config_(config), clock_(clock), url_(std::move(url)), endpoint_(ep), pools_(workers) {
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

void UpstreamBackend::SessionFree::operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }

void UpstreamBackend::Shutdown() {
  for (auto& pool : pools_) {
    pool.idle.clear();
    pool.tls_session.reset();
  }
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

asio::awaitable<std::unique_ptr<UpstreamBackend::Connection>> UpstreamBackend::Connect(Pool& pool,
                                                                                      BackendCall& call) {
  RequestContext& ctx = call.ctx;
  const auto connect_timeout = std::chrono::milliseconds(config_.connect_timeout_ms);
  beast::tcp_stream stream(*call.io);
  stream.expires_after(connect_timeout);
  auto [ec] = co_await stream.async_connect(endpoint_, kNoThrow);
  if (ec) {
    bool timeout = ec == beast::error::timeout;
    CountError(timeout ? "connect_timeout" : "connect");
    SetGatewayError(ctx, 502, timeout ? "upstream_connect_timeout" : "upstream_unreachable",
                    "the upstream for model '" + ctx.model + "' is unreachable (" + ec.message() + ")");
    co_return nullptr;
  }
  stream.socket().set_option(tcp::no_delay(true));
  auto conn = std::make_unique<Connection>();
  if (!tls_context_) {
    stream.expires_never();
    conn->plain = std::make_unique<beast::tcp_stream>(std::move(stream));
    co_return conn;
  }
  conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(stream), *tls_context_);
  SSL* ssl = conn->tls->native_handle();
  beast::error_code addr_ec;
  asio::ip::make_address(tls_server_name_, addr_ec);
  // SNI names hosts only, never literal addresses (RFC 6066 §3).
  if (addr_ec) SSL_set_tlsext_host_name(ssl, tls_server_name_.c_str());
  if (config_.tls_verify) conn->tls->set_verify_callback(ssl::host_name_verification(tls_server_name_));
  if (pool.tls_session) SSL_set_session(ssl, pool.tls_session.get());
  beast::get_lowest_layer(*conn->tls).expires_after(connect_timeout);
  auto [hec] = co_await conn->tls->async_handshake(ssl::stream_base::client, kNoThrow);
  beast::get_lowest_layer(*conn->tls).expires_never();
  if (hec) {
    CountError("tls_handshake");
    std::string why = hec.message();
    if (long verify = SSL_get_verify_result(ssl); verify != X509_V_OK)
      why = std::string("certificate verification failed: ") + X509_verify_cert_error_string(verify);
    SetGatewayError(ctx, 502, "upstream_tls_error",
                    "the TLS handshake with the upstream for model '" + ctx.model + "' failed (" + why + ")");
    co_return nullptr;
  }
  tls_handshakes_->With({config_.name, SSL_session_reused(ssl) ? "yes" : "no"}).Inc();
  co_return conn;
}

template <class Stream>
asio::awaitable<UpstreamBackend::Attempt> UpstreamBackend::Exchange(
    Stream& conn, bool reused, BackendCall& call, http::request<http::string_body>& req,
    bool client_wants_usage) {
  RequestContext& ctx = call.ctx;
  const auto read_timeout = std::chrono::milliseconds(config_.read_timeout_ms);
  beast::tcp_stream& lowest = beast::get_lowest_layer(conn);
  Attempt attempt;
  const int64_t sent_ns = clock_->NowNanos();

  lowest.expires_after(read_timeout);
  auto [wec, wn] = co_await http::async_write(conn, req, kNoThrow);
  // Once the prompt has left for the upstream it costs tokens, whatever happens to the answer
  // (client gone, limit cut, upstream failure): charged unless the upstream reports usage.
  if (!wec && !ctx.usage_from_upstream) ctx.prompt_tokens = ctx.prompt_tokens_estimate;
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  beast::error_code hec = wec;
  if (!hec) {
    lowest.expires_after(read_timeout);
    auto [ec, n] = co_await http::async_read_header(conn, buf, parser, kNoThrow);
    hec = ec;
  }
  if (hec) {
    if (reused && IsConnectionLoss(hec)) {  // a stale pooled connection: retry fresh
      attempt.retry = true;
      co_return attempt;
    }
    if (hec == beast::error::timeout) {
      CountError("timeout");
      SetGatewayError(ctx, 504, "upstream_timeout",
                      "the upstream for model '" + ctx.model + "' did not answer within " +
                          std::to_string(config_.read_timeout_ms) + " ms");
    } else {
      CountError("reset");
      SetGatewayError(ctx, 502, "upstream_connection_reset",
                      "the upstream for model '" + ctx.model + "' closed the connection (" + hec.message() + ")");
    }
    co_return attempt;
  }
  upstream_ttfb_->With({config_.name}).Observe(
      static_cast<double>(clock_->NowNanos() - sent_ns) / 1e9);

  const int status = parser.get().result_int();
  ctx.SetResponseStatus(status);
  const std::string content_type(parser.get()[http::field::content_type]);
  const bool is_sse = content_type.find("text/event-stream") != std::string::npos;
  if (status == 429 || status == 503) {
    auto ra = parser.get()[http::field::retry_after];
    if (!ra.empty()) ctx.response_headers.emplace_back("retry-after", std::string(ra));
  }

  char chunk[kReadChunkBytes];
  std::string body;
  std::string forward;
  SseRelay relay(ctx, client_wants_usage);
  const bool relay_stream = ctx.stream && status == 200 && is_sse;
  int64_t last_events = 0;
  bool stopped = false;
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    lowest.expires_after(read_timeout);
    auto [ec, n] = co_await http::async_read_some(conn, buf, parser, kNoThrow);
    if (ec == http::error::need_buffer) ec = {};
    size_t got = sizeof(chunk) - parser.get().body().size;
    if (relay_stream) {
      if (got > 0) relay.Feed(std::string_view(chunk, got), &forward);
      if (relay.overflowed()) {
        CountError("event_too_large");
        SetGatewayError(ctx, 502, "upstream_event_too_large",
                        "the upstream sent a stream event larger than " +
                            std::to_string(SseRelay::kDefaultMaxEventBytes) + " bytes");
        co_return attempt;
      }
      // Coalesce events whose bytes already wait in the socket into one write; never wait for
      // more. (Bytes left in `buf` may be just chunk framing, so they do not count.)
      beast::error_code aec;
      const bool more_ready = !parser.is_done() && !ec && lowest.socket().available(aec) > 0 &&
                              forward.size() < kCoalesceBytes;
      if (!forward.empty() && !more_ready) {
        if (!call.client->begun() && !co_await call.client->Begin(ctx)) {
          stopped = true;
        } else if (!co_await call.client->Send(forward)) {
          stopped = true;
        }
        forward.clear();
        if (stopped) {
          ctx.SetResponseStatus(499, "client_disconnected");
          break;
        }
      }
      if (!ctx.usage_from_upstream) ctx.completion_tokens = relay.content_events();
      if (relay.content_events() != last_events) {
        last_events = relay.content_events();
        if (call.on_progress && !call.on_progress()) {
          stopped = true;
          break;
        }
      }
    } else if (got > 0) {
      if (body.size() + got > kMaxResponseBytes) {
        CountError("too_large");
        SetGatewayError(ctx, 502, "upstream_response_too_large", "the upstream's response is larger than 64 MiB");
        co_return attempt;
      }
      body.append(chunk, got);
    }
    if (ec) {
      bool timeout = ec == beast::error::timeout;
      CountError(timeout ? "timeout" : "reset");
      if (relay_stream) {
        SetGatewayError(ctx, timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_stream_interrupted",
                        timeout ? "the upstream stopped sending for " + std::to_string(config_.read_timeout_ms) + " ms"
                                : "the upstream closed the stream before it was complete (" + ec.message() + ")");
      } else {
        SetGatewayError(ctx, timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_connection_reset",
                        "the upstream's response was cut short (" + ec.message() + ")");
      }
      co_return attempt;
    }
  }

  attempt.complete = parser.is_done();
  attempt.reusable = !stopped && parser.is_done() && parser.get().keep_alive();
  if (attempt.reusable) lowest.expires_never();  // an idle pooled connection has no deadline
  if (stopped) co_return attempt;

  if (relay_stream) {
    if (!ctx.usage_from_upstream) {
      ctx.prompt_tokens = ctx.prompt_tokens_estimate;
      ctx.completion_tokens = relay.content_events();
    }
    if (!relay.done()) {
      CountError("stream_incomplete");
      SetGatewayError(ctx, 502, "upstream_stream_interrupted", "the upstream ended the stream without [DONE]");
    }
    co_return attempt;
  }

  // A non-streamed answer (or an upstream error answered without a stream).
  json::error_code jec;
  json::value v = json::parse(body, jec);
  if (jec || !v.is_object()) {
    CountError("invalid_response");
    SetGatewayError(ctx, 502, "upstream_invalid_response",
                    "the upstream answered with HTTP " + std::to_string(status) + " and a body that is not JSON");
    co_return attempt;
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
    attempt.result.body = std::move(body);
    co_return attempt;
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
    co_return attempt;
  }
  attempt.result.body = std::move(body);
  co_return attempt;
}

asio::awaitable<BackendResult> UpstreamBackend::Handle(BackendCall& call) {
  RequestContext& ctx = call.ctx;
  Pool& pool = pools_[call.worker];

  http::request<http::string_body> req{http::verb::post, url_.path + ctx.endpoint, 11};
  req.set(http::field::host, url_.host + ":" + std::to_string(url_.port));
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, ctx.stream ? "text/event-stream" : "application/json");
  req.set("x-request-id", ctx.request_id);
  if (!config_.api_key.empty()) req.set(http::field::authorization, "Bearer " + config_.api_key);
  for (const auto& name : config_.forward_headers)
    if (const std::string* v = ctx.FindHeader(name)) req.set(name, *v);
  req.keep_alive(true);
  req.body() = ForwardBody(pool, ctx);
  req.prepare_payload();

  bool client_wants_usage = false;
  if (const auto* so = ctx.body.if_contains("stream_options"); so && so->is_object())
    if (const auto* iu = so->as_object().if_contains("include_usage"); iu && iu->is_bool())
      client_wants_usage = iu->as_bool();

  for (int attempt_no = 0; attempt_no < 2; ++attempt_no) {
    std::unique_ptr<Connection> conn;
    bool reused = false;
    if (!pool.idle.empty()) {
      conn = std::move(pool.idle.back());
      pool.idle.pop_back();
      reused = true;
    } else {
      conn = co_await Connect(pool, call);
      if (!conn) co_return BackendResult{};
    }
    // (if/else, not ?: : GCC 12 mishandles co_await in both arms of a conditional expression.)
    Attempt attempt;
    if (conn->tls) {
      attempt = co_await Exchange(*conn->tls, reused, call, req, client_wants_usage);
    } else {
      attempt = co_await Exchange(*conn->plain, reused, call, req, client_wants_usage);
    }
    if (attempt.retry) continue;
    if (conn->tls && attempt.complete) {
      // The session (with the tickets a TLS 1.3 server sent after the handshake) lets the next
      // connection of this worker resume instead of a full handshake. A copy: OpenSSL marks a
      // connection's own session unresumable when the connection is dropped without a TLS
      // shutdown, as pooled connections are.
      SSL_SESSION* session = SSL_get_session(conn->tls->native_handle());
      if (session != nullptr && SSL_SESSION_is_resumable(session)) pool.tls_session.reset(SSL_SESSION_dup(session));
    }
    if (attempt.reusable && pool.idle.size() < config_.max_idle_connections) pool.idle.push_back(std::move(conn));
    co_return std::move(attempt.result);
  }
  CountError("reset");
  SetGatewayError(ctx, 502, "upstream_connection_reset", "the upstream closed the connection twice in a row");
  co_return BackendResult{};
}

}  // namespace moat::backends

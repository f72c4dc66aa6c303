#include "server/upstream_backend.h"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "moat/clock.h"
#include "server/openai.h"
#include "watermark/logit_bias.h"

namespace moat::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxResponseBytes = 64 << 20;

bool IsConnectionLoss(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::connection_aborted;
}

// Extracts usage and output text from one completion or chunk object.
void TakeUsageAndText(const json::object& o, RequestContext& ctx, int64_t* content_events) {
  if (const auto* u = o.if_contains("usage"); u && u->is_object()) {
    const auto& uo = u->as_object();
    auto num = [&](const char* k) -> int64_t {
      const auto* v = uo.if_contains(k);
      if (!v) return -1;
      if (v->is_int64()) return v->as_int64();
      if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
      return -1;
    };
    int64_t p = num("prompt_tokens"), c = num("completion_tokens");
    if (p >= 0 && c >= 0) {
      ctx.prompt_tokens = p;
      ctx.completion_tokens = c;
      ctx.usage_from_upstream = true;
    }
  }
  const auto* choices = o.if_contains("choices");
  if (!choices || !choices->is_array()) return;
  for (const auto& ch : choices->as_array()) {
    if (!ch.is_object()) continue;
    const auto& co = ch.as_object();
    const json::value* text = nullptr;
    if (const auto* d = co.if_contains("delta"); d && d->is_object()) text = d->as_object().if_contains("content");
    if (const auto* m = co.if_contains("message"); m && m->is_object()) text = m->as_object().if_contains("content");
    if (!text) text = co.if_contains("text");
    if (text && text->is_string() && !text->as_string().empty()) {
      ctx.completion_text.append(text->as_string().data(), text->as_string().size());
      if (content_events) ++*content_events;
    }
  }
}

// Removes reasoning traces (vLLM / SGLang `reasoning_content`, `reasoning`) from every
// choice's delta or message. Returns true when something was removed.
bool StripReasoning(json::object& o) {
  bool removed = false;
  auto* choices = o.if_contains("choices");
  if (!choices || !choices->is_array()) return false;
  for (auto& ch : choices->as_array()) {
    if (!ch.is_object()) continue;
    for (const char* part : {"delta", "message"}) {
      auto* p = ch.as_object().if_contains(part);
      if (!p || !p->is_object()) continue;
      removed |= p->as_object().erase("reasoning_content") > 0;
      removed |= p->as_object().erase("reasoning") > 0;
    }
  }
  return removed;
}

// Splits complete SSE events off `pending` and decides, event by event, what to forward.
class SseRelay {
 public:
  SseRelay(RequestContext& ctx, bool client_wants_usage)
      : ctx_(ctx), client_wants_usage_(client_wants_usage) {}

  // Consumes bytes; appends the events to forward to `out`.
  void Feed(std::string_view bytes, std::string* out) {
    pending_.append(bytes);
    size_t start = 0;
    for (;;) {
      size_t end = pending_.find("\n\n", start);
      size_t sep = 2;
      size_t crlf = pending_.find("\r\n\r\n", start);
      if (crlf != std::string::npos && (end == std::string::npos || crlf < end)) {
        end = crlf;
        sep = 4;
      }
      if (end == std::string::npos) break;
      HandleEvent(std::string_view(pending_).substr(start, end - start), out);
      start = end + sep;
    }
    pending_.erase(0, start);
  }

  bool done() const { return done_; }
  int64_t content_events() const { return content_events_; }

 private:
  void HandleEvent(std::string_view event, std::string* out) {
    std::string data;
    size_t pos = 0;
    while (pos <= event.size()) {
      size_t nl = event.find('\n', pos);
      std::string_view line = event.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.rfind("data:", 0) == 0) {
        line.remove_prefix(5);
        if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        if (!data.empty()) data.push_back('\n');
        data.append(line);
      }
      if (nl == std::string_view::npos) break;
      pos = nl + 1;
    }
    if (data == "[DONE]") {
      done_ = true;  // the pipeline sends [DONE] itself once the audit record is durable
      return;
    }
    if (!data.empty()) {
      json::error_code ec;
      json::value v = json::parse(data, ec);
      if (!ec && v.is_object()) {
        auto& o = v.as_object();
        TakeUsageAndText(o, ctx_, &content_events_);
        const auto* choices = o.if_contains("choices");
        bool usage_only = o.contains("usage") && !o.at("usage").is_null() && choices &&
                          choices->is_array() && choices->as_array().empty();
        if (usage_only && !client_wants_usage_) return;  // injected by us: not the client's
        if (ctx_.strip_reasoning && StripReasoning(o)) {
          out->append("data: ");
          out->append(json::serialize(o));
          out->append("\n\n");
          return;
        }
      }
    }
    out->append(event);
    out->append("\n\n");
  }

  RequestContext& ctx_;
  const bool client_wants_usage_;
  std::string pending_;
  bool done_ = false;
  int64_t content_events_ = 0;
};

void SetGatewayError(RequestContext& ctx, int status, const std::string& code, std::string message) {
  ctx.http_status = status;
  ctx.error_code = code;
  ctx.local_reply = LocalReply{status, "upstream_error", code, std::move(message), {}, ""};
}

}  // namespace

moat::StatusOr<std::unique_ptr<UpstreamBackend>> UpstreamBackend::Create(
    const ModelConfig& config, int workers, MetricsRegistry* metrics, const WatermarkSettings& wm,
    const std::string& wm_secret_path) {
  MOAT_ASSIGN_OR_RETURN(HttpUrl url, ParseBaseUrl(config.base_url));
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::error_code ec;
  auto results = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec || results.empty())
    return moat::UnavailableError("cannot resolve upstream host \"" + url.host + "\" for model \"" +
                                  config.name + "\": " + ec.message());
  std::unique_ptr<UpstreamBackend> backend(
      new UpstreamBackend(config, url, results.begin()->endpoint(), workers, metrics));
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
                                 int workers, MetricsRegistry* metrics)
    : config_(config), url_(std::move(url)), endpoint_(ep), pools_(workers) {
  static std::once_flag once;
  static Family<Counter>* errors = nullptr;
  static Family<Histogram>* ttfb = nullptr;
  // Families are shared by all upstream backends of the process (label: model).
  std::call_once(once, [&] {
    errors = &metrics->AddCounter("moat_upstream_errors_total",
                                  "Upstream failures by model and kind.", {"model", "kind"});
    ttfb = &metrics->AddHistogram("moat_upstream_ttfb_seconds",
                                  "Time from forwarding a request to the upstream's response headers.",
                                  {"model"}, LatencyBuckets());
  });
  upstream_errors_ = errors;
  upstream_ttfb_ = ttfb;
}

void UpstreamBackend::Shutdown() {
  for (auto& pool : pools_) pool.idle.clear();
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

asio::awaitable<BackendResult> UpstreamBackend::Handle(BackendCall& call) {
  RequestContext& ctx = call.ctx;
  Pool& pool = pools_[call.worker];
  const auto connect_timeout = std::chrono::milliseconds(config_.connect_timeout_ms);
  const auto read_timeout = std::chrono::milliseconds(config_.read_timeout_ms);

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

  const int64_t sent_ns = SystemClock::Get()->NowNanos();
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<beast::tcp_stream> conn;
    bool reused = false;
    if (!pool.idle.empty()) {
      conn = std::move(pool.idle.back());
      pool.idle.pop_back();
      reused = true;
    } else {
      conn = std::make_unique<beast::tcp_stream>(*call.io);
      conn->expires_after(connect_timeout);
      auto [ec] = co_await conn->async_connect(endpoint_, kNoThrow);
      if (ec) {
        bool timeout = ec == beast::error::timeout;
        CountError(timeout ? "connect_timeout" : "connect");
        SetGatewayError(ctx, 502, timeout ? "upstream_connect_timeout" : "upstream_unreachable",
                        "the upstream for model '" + ctx.model + "' is unreachable (" + ec.message() + ")");
        co_return BackendResult{};
      }
      conn->socket().set_option(tcp::no_delay(true));
    }

    conn->expires_after(read_timeout);
    auto [wec, wn] = co_await http::async_write(*conn, req, kNoThrow);
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    beast::error_code hec = wec;
    if (!hec) {
      conn->expires_after(read_timeout);
      auto [ec, n] = co_await http::async_read_header(*conn, buf, parser, kNoThrow);
      hec = ec;
    }
    if (hec) {
      if (reused && IsConnectionLoss(hec)) continue;  // a stale pooled connection: retry fresh
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
      co_return BackendResult{};
    }
    upstream_ttfb_->With({config_.name}).Observe(
        static_cast<double>(SystemClock::Get()->NowNanos() - sent_ns) / 1e9);

    const int status = parser.get().result_int();
    ctx.http_status = status;
    const std::string content_type(parser.get()[http::field::content_type]);
    const bool is_sse = content_type.find("text/event-stream") != std::string::npos;
    if (status == 429 || status == 503) {
      auto ra = parser.get()[http::field::retry_after];
      if (!ra.empty()) ctx.response_headers.emplace_back("retry-after", std::string(ra));
    }

    char chunk[16384];
    std::string body;
    std::string forward;
    SseRelay relay(ctx, client_wants_usage);
    const bool relay_stream = ctx.stream && status == 200 && is_sse;
    int64_t last_events = 0;
    bool stopped = false;
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof(chunk);
      conn->expires_after(read_timeout);
      auto [ec, n] = co_await http::async_read_some(*conn, buf, parser, kNoThrow);
      if (ec == http::error::need_buffer) ec = {};
      size_t got = sizeof(chunk) - parser.get().body().size;
      if (relay_stream) {
        if (got > 0) relay.Feed(std::string_view(chunk, got), &forward);
        // Coalesce events whose bytes already wait in the socket into one write; never wait for
        // more. (Bytes left in `buf` may be just chunk framing, so they do not count.)
        beast::error_code aec;
        const bool more_ready = !parser.is_done() && !ec && conn->socket().available(aec) > 0 &&
                                forward.size() < 32768;
        if (!forward.empty() && !more_ready) {
          if (!call.client->begun() && !co_await call.client->Begin(ctx)) {
            stopped = true;
          } else if (!co_await call.client->Send(forward)) {
            stopped = true;
          }
          forward.clear();
          if (stopped) {
            ctx.http_status = 499;
            ctx.error_code = "client_disconnected";
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
          co_return BackendResult{};
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
        co_return BackendResult{};
      }
    }

    if (!stopped && parser.is_done() && parser.get().keep_alive() &&
        pool.idle.size() < config_.max_idle_connections) {
      conn->expires_never();
      pool.idle.push_back(std::move(conn));
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
      if (const auto* e = v.as_object().if_contains("error"); e && e->is_object())
        if (const auto* c = e->as_object().if_contains("code"); c && c->is_string())
          ctx.error_code = std::string(c->as_string());
      if (ctx.error_code.empty()) ctx.error_code = "upstream_status_" + std::to_string(status);
      co_return BackendResult{std::move(body)};
    }
    TakeUsageAndText(v.as_object(), ctx, nullptr);
    if (ctx.strip_reasoning && StripReasoning(v.as_object())) body = json::serialize(v);
    if (!ctx.usage_from_upstream) {
      ctx.prompt_tokens = ctx.prompt_tokens_estimate;
      ctx.completion_tokens = EstimateTokens(ctx.completion_text);
    }
    if (ctx.stream) {
      // Asked for a stream but got plain JSON: send it as one event so the client's stream
      // parser still works.
      if (!co_await call.client->Begin(ctx) || !co_await call.client->Send("data: " + body + "\n\n")) {
        ctx.http_status = 499;
        ctx.error_code = "client_disconnected";
      }
      co_return BackendResult{};
    }
    co_return BackendResult{std::move(body)};
  }
  CountError("reset");
  SetGatewayError(ctx, 502, "upstream_connection_reset", "the upstream closed the connection twice in a row");
  co_return BackendResult{};
}

}  // namespace moat::server

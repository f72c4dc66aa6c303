#pragma once
// UpstreamBackend: forwards completion requests to an OpenAI-compatible server (vLLM,
// llama.cpp server, SGLang, TGI, ...) through the internal HTTP client (src/net), one
// net::AsyncHttpClient per worker thread (its pool of HTTP/1.1 keep-alive connections, plain or
// TLS), passing streamed responses through event by event as they arrive.
//
// TLS (https:// base URLs): the upstream's certificate chain is verified against
// ModelConfig::tls_ca_file or the system trust store, and its name against tls_server_name (or
// the URL's host), unless tls_verify is false; SNI carries that name; a client certificate is
// presented when configured. Connections stay pooled after their handshake, and a new connection
// resumes the worker's last TLS session, so handshakes are rare and mostly abbreviated.

#include <boost/json/object.hpp>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/metrics.h"
#include "moat/clock.h"
#include "moat/status.h"
#include "net/http_client.h"
#include "server/backend.h"
#include "server/config.h"
#include "watermark/green_list.h"
#include "watermark/watermark_key.h"

namespace moat::backends {

class UpstreamBackend final : public server::Backend {
 public:
  // Resolves the upstream's address once and, for https://, builds the TLS client context
  // (InvalidArgument when its CA or client certificate files cannot be loaded). `workers` is the
  // number of worker threads; each gets its own connection pool, touched only from that thread.
  // `wm_secret` is used only when config.watermark_vocab_size > 0 (upstream-mode watermark).
  static moat::StatusOr<std::unique_ptr<UpstreamBackend>> Create(
      const server::ModelConfig& config, int workers, MetricsRegistry* metrics, const Clock* clock,
      const server::WatermarkSettings& wm = {}, const std::string& wm_secret_path = "");
  ~UpstreamBackend() override;

  boost::asio::awaitable<server::BackendResult> Handle(server::BackendCall& call) override;
  void Shutdown() override;

 private:
  UpstreamBackend(const server::ModelConfig& config, HttpUrl url, int workers,
                  MetricsRegistry* metrics, const Clock* clock);

  // One worker's state, touched only by that worker's thread.
  struct Pool {
    std::optional<net::AsyncHttpClient> http;  // created on the worker's first request
    // account -> its serialized-ready logit_bias map (upstream watermark), bounded.
    std::unordered_map<std::string, boost::json::object> bias_cache;
  };

  // The request sent upstream for `ctx`.
  net::HttpRequest UpstreamRequest(Pool& pool, RequestContext& ctx) const;
  // Turns a failed call into the gateway's error on ctx (by the stage the call reached).
  void FailCall(RequestContext& ctx, const moat::Status& status, const net::HttpCallTrace& trace,
                bool relay_stream);

  // Adds the account's watermark logit_bias to `body` (summing with the client's own entries).
  void InjectWatermark(Pool& pool, RequestContext& ctx, boost::json::object& body) const;

  // Builds the body sent upstream from the (possibly filter-edited) client body.
  std::string ForwardBody(Pool& pool, RequestContext& ctx) const;
  void CountError(const char* kind);

  const server::ModelConfig config_;
  const Clock* const clock_;  // times the upstream's first byte
  const HttpUrl url_;
  net::HttpClientOptions http_options_;  // shared by the workers' clients (TLS context included)
  std::vector<Pool> pools_;  // one per worker, each touched only by its worker thread
  Family<Counter>* upstream_errors_;
  Family<Histogram>* upstream_ttfb_;
  Family<Counter>* tls_handshakes_;
  std::optional<watermark::MasterSecret> wm_secret_;  // set when the upstream watermark is on
  watermark::WatermarkConfig wm_config_;
  uint32_t wm_epoch_ = 0;
};

}  // namespace moat::backends

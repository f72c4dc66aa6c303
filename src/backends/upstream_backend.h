#pragma once
// UpstreamBackend: forwards completion requests to an OpenAI-compatible server (vLLM,
// llama.cpp server, SGLang, TGI, ...) over pooled HTTP/1.1 keep-alive connections, plain or
// TLS, passing streamed responses through event by event as they arrive.
//
// TLS (https:// base URLs): the upstream's certificate chain is verified against
// ModelConfig::tls_ca_file or the system trust store, and its name against tls_server_name (or
// the URL's host), unless tls_verify is false; SNI carries that name; a client certificate is
// presented when configured. Connections stay pooled after their handshake, and a new connection
// resumes the worker's last TLS session, so handshakes are rare and mostly abbreviated.

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/object.hpp>

#include "common/metrics.h"
#include "moat/clock.h"
#include "moat/status.h"
#include "server/backend.h"
#include "server/config.h"
#include "watermark/green_list.h"
#include "watermark/watermark_key.h"

typedef struct ssl_session_st SSL_SESSION;

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
  UpstreamBackend(const server::ModelConfig& config, HttpUrl url, boost::asio::ip::tcp::endpoint ep,
                  int workers, MetricsRegistry* metrics, const Clock* clock);

  // One pooled connection to the upstream: exactly one of the two streams is set.
  struct Connection {
    std::unique_ptr<boost::beast::tcp_stream> plain;
    std::unique_ptr<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls;
  };
  struct SessionFree {
    void operator()(SSL_SESSION* s) const;
  };
  struct Pool {
    std::vector<std::unique_ptr<Connection>> idle;
    std::unique_ptr<SSL_SESSION, SessionFree> tls_session;  // offered to new TLS connections
    // account -> its serialized-ready logit_bias map (upstream watermark), bounded.
    std::unordered_map<std::string, boost::json::object> bias_cache;
  };
  // What one attempt on one connection came to.
  struct Attempt {
    bool retry = false;     // a pooled connection had gone stale: try again on a fresh one
    bool reusable = false;  // the connection may go back to the pool
    bool complete = false;  // the whole response was read
    server::BackendResult result;
  };

  // Opens a connection (TCP connect, then the TLS handshake for https). On failure sets the
  // gateway error on ctx and returns null.
  boost::asio::awaitable<std::unique_ptr<Connection>> Connect(Pool& pool, server::BackendCall& call);
  // Sends `req` on `stream` and reads (or relays) the answer.
  template <class Stream>
  boost::asio::awaitable<Attempt> Exchange(Stream& stream, bool reused, server::BackendCall& call,
                                           boost::beast::http::request<boost::beast::http::string_body>& req,
                                           bool client_wants_usage);

  // Adds the account's watermark logit_bias to `body` (summing with the client's own entries).
  void InjectWatermark(Pool& pool, RequestContext& ctx, boost::json::object& body) const;

  // Builds the body sent upstream from the (possibly filter-edited) client body.
  std::string ForwardBody(Pool& pool, RequestContext& ctx) const;
  void CountError(const char* kind);

  const server::ModelConfig config_;
  const Clock* const clock_;  // times the upstream's first byte
  const HttpUrl url_;
  const boost::asio::ip::tcp::endpoint endpoint_;
  std::string tls_server_name_;
  std::shared_ptr<boost::asio::ssl::context> tls_context_;  // null for http://
  std::vector<Pool> pools_;  // one per worker, each touched only by its worker thread
  Family<Counter>* upstream_errors_;
  Family<Histogram>* upstream_ttfb_;
  Family<Counter>* tls_handshakes_;
  std::optional<watermark::MasterSecret> wm_secret_;  // set when the upstream watermark is on
  watermark::WatermarkConfig wm_config_;
  uint32_t wm_epoch_ = 0;
};

}  // namespace moat::backends

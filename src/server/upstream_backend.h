#pragma once
// UpstreamBackend: forwards completion requests to an OpenAI-compatible server (vLLM,
// llama.cpp server, SGLang, TGI, ...) over pooled HTTP/1.1 keep-alive connections, passing
// streamed responses through event by event as they arrive.

#include <memory>
#include <optional>
#include <unordered_map>

#include <boost/json/object.hpp>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "common/metrics.h"
#include "moat/status.h"
#include "server/backend.h"
#include "server/config.h"
#include "watermark/green_list.h"
#include "watermark/watermark_key.h"

namespace moat::server {

class UpstreamBackend final : public Backend {
 public:
  // Resolves the upstream's address once. `workers` is the number of worker threads; each
  // gets its own connection pool, touched only from that thread.
  // `wm_secret` is used only when config.watermark_vocab_size > 0 (upstream-mode watermark).
  static moat::StatusOr<std::unique_ptr<UpstreamBackend>> Create(
      const ModelConfig& config, int workers, MetricsRegistry* metrics,
      const WatermarkSettings& wm = {}, const std::string& wm_secret_path = "");

  boost::asio::awaitable<BackendResult> Handle(BackendCall& call) override;
  std::string owned_by() const override { return "upstream"; }
  void Shutdown() override;

 private:
  UpstreamBackend(const ModelConfig& config, HttpUrl url, boost::asio::ip::tcp::endpoint ep,
                  int workers, MetricsRegistry* metrics);

  struct Pool {
    std::vector<std::unique_ptr<boost::beast::tcp_stream>> idle;
    // account -> its serialized-ready logit_bias map (upstream watermark), bounded.
    std::unordered_map<std::string, boost::json::object> bias_cache;
  };
  // Adds the account's watermark logit_bias to `body` (summing with the client's own entries).
  void InjectWatermark(Pool& pool, RequestContext& ctx, boost::json::object& body) const;

  // Builds the body sent upstream from the (possibly filter-edited) client body.
  std::string ForwardBody(Pool& pool, RequestContext& ctx) const;
  void CountError(const char* kind);

  const ModelConfig config_;
  const HttpUrl url_;
  const boost::asio::ip::tcp::endpoint endpoint_;
  std::vector<Pool> pools_;  // one per worker, each touched only by its worker thread
  Family<Counter>* upstream_errors_;
  Family<Histogram>* upstream_ttfb_;
  std::optional<watermark::MasterSecret> wm_secret_;  // set when the upstream watermark is on
  watermark::WatermarkConfig wm_config_;
  uint32_t wm_epoch_ = 0;
};

}  // namespace moat::server

#pragma once
// UpstreamBackend: forwards completion requests to an OpenAI-compatible server (vLLM,
// llama.cpp server, SGLang, TGI, ...) over pooled HTTP/1.1 keep-alive connections, passing
// streamed responses through event by event as they arrive.

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "common/metrics.h"
#include "moat/status.h"
#include "server/backend.h"
#include "server/config.h"

namespace moat::server {

class UpstreamBackend final : public Backend {
 public:
  // Resolves the upstream's address once. `workers` is the number of worker threads; each
  // gets its own connection pool, touched only from that thread.
  static moat::StatusOr<std::unique_ptr<UpstreamBackend>> Create(const ModelConfig& config,
                                                                 int workers,
                                                                 MetricsRegistry* metrics);

  boost::asio::awaitable<BackendResult> Handle(BackendCall& call) override;
  std::string owned_by() const override { return "upstream"; }

 private:
  UpstreamBackend(const ModelConfig& config, ParsedUrl url, boost::asio::ip::tcp::endpoint ep,
                  int workers, MetricsRegistry* metrics);

  struct Pool {
    std::vector<std::unique_ptr<boost::beast::tcp_stream>> idle;
  };

  // Builds the body sent upstream from the (possibly filter-edited) client body.
  std::string ForwardBody(const RequestContext& ctx) const;
  void CountError(const char* kind);

  const ModelConfig config_;
  const ParsedUrl url_;
  const boost::asio::ip::tcp::endpoint endpoint_;
  std::vector<Pool> pools_;  // one per worker, each touched only by its worker thread
  Family<Counter>* upstream_errors_;
  Family<Histogram>* upstream_ttfb_;
};

}  // namespace moat::server

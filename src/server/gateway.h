#pragma once
// Gateway: the request pipeline. Routes each HTTP request, runs the filter chain
// (auth -> validate -> rate limit -> [analysis, later] -> backend -> audit), and writes the
// response. One Gateway is shared by all worker threads; per-request state lives in a
// RequestContext and the per-request Filter objects.

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "audit/audit_log.h"
#include "common/metrics.h"
#include "moat/audit_record.h"
#include "moat/clock.h"
#include "moat/filter.h"
#include "server/backend.h"
#include "server/config.h"

namespace moat::server {

class AdminApi;

struct GatewayParts {
  const GatewayConfig* config = nullptr;
  std::vector<std::unique_ptr<FilterFactory>> filters;       // pipeline order
  std::map<std::string, std::unique_ptr<Backend>> backends;  // by model name
  audit::AuditLog* audit = nullptr;
  AdminApi* admin = nullptr;  // null: /admin is disabled
  MetricsRegistry* metrics = nullptr;
  const Clock* clock = nullptr;
};

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

class Gateway {
 public:
  explicit Gateway(GatewayParts parts);

  // Answers one request on `stream`. Returns false when the connection must be closed.
  boost::asio::awaitable<bool> Handle(HttpRequest& req, boost::beast::tcp_stream& stream,
                                      const std::string& peer_ip, int worker,
                                      boost::asio::io_context& io);

  using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;
  // Builds a complete non-streamed response (keep-alive as the request asked; `req` may be null
  // for protocol errors, which close the connection).
  static HttpResponse MakeResponse(const HttpRequest* req, int status, std::string body,
                                   std::string_view content_type, const HeaderList& headers);
  // Writes it. Returns false when the connection must be closed. (Responses are built outside
  // the co_await expression: GCC 12 miscompiles string literals inside co_await arguments.)
  static boost::asio::awaitable<bool> SendResponse(boost::beast::tcp_stream& stream,
                                                   HttpResponse& res, int64_t write_timeout_ms);

  // Releases the backends' per-worker resources; call after HttpServer::Wait().
  void Shutdown();

  MetricsRegistry* metrics() const { return parts_.metrics; }
  const GatewayConfig& config() const { return *parts_.config; }

 private:
  boost::asio::awaitable<bool> HandleCompletion(HttpRequest& req, boost::beast::tcp_stream& stream,
                                                const std::string& peer_ip, int worker,
                                                boost::asio::io_context& io,
                                                const std::string& endpoint);
  std::string ModelsJson() const;
  std::string ClientIp(const HttpRequest& req, const std::string& peer_ip) const;
  AuditRecord MakeAuditRecord(const RequestContext& ctx, int64_t end_ns) const;
  boost::asio::awaitable<moat::Status> WriteAudit(AuditRecord record);
  std::string NextRequestId();

  GatewayParts parts_;
  TextRetention retention_;
  std::string id_prefix_;
  std::atomic<uint64_t> next_id_{1};
  Family<Counter>* requests_;
  Family<Histogram>* latency_;
  Family<Counter>* audit_failures_;
  Family<Counter>* actions_;
};

}  // namespace moat::server

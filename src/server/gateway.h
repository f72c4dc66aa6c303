#pragma once
// Gateway: routes each HTTP request the server has framed and answers it. GET /healthz,
// /metrics and /v1/models are answered directly, /admin/* by the AdminApi; POST
// /v1/chat/completions and /v1/completions run the pipeline: the filter chain's header phase
// (OnHeaders: auth, before the body is read), the audit-health check, the body read, the
// request phase (OnRequest: validate -> rate limit -> analysis), the backend, OnComplete in
// reverse order, the audit record (durable before the end of the response is sent), then the
// response. Protocol errors (bad framing, oversized or slow heads) never reach the Gateway: the
// HttpServer answers them. One Gateway is shared by all worker threads; per-request state lives
// in a RequestContext and the per-request Filter objects.

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "audit/admin_record.h"
#include "audit/audit_log.h"
#include "common/metrics.h"
#include "moat/audit_record.h"
#include "moat/clock.h"
#include "moat/filter.h"
#include "ratelimit/failed_auth_limiter.h"
#include "server/backend.h"
#include "server/client_connection.h"
#include "server/config.h"

namespace moat::server {

class AdminApi;

struct GatewayParts {
  const GatewayConfig* config = nullptr;
  std::vector<std::unique_ptr<FilterFactory>> filters;       // pipeline order
  std::map<std::string, std::unique_ptr<Backend>> backends;  // by model name
  audit::AuditLog* audit = nullptr;
  AdminApi* admin = nullptr;  // null: /admin is disabled
  // Failed admin-token attempts are charged here too (shared with the auth filter); may be null.
  ratelimit::FailedAuthLimiter* failed_auth = nullptr;
  MetricsRegistry* metrics = nullptr;
  const Clock* clock = nullptr;
};

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

// The body of the request being handled. The server reads it only when the pipeline asks, i.e.
// after the header-phase filters (authentication) admitted the request; a request answered
// without asking never has its body read (the server then closes the connection).
class RequestBody {
 public:
  virtual ~RequestBody() = default;
  // Reads the whole body into the request (sending "100 Continue" first when the client waits
  // for it). Returns nullopt on success, else the refusal to answer: 408 (too slow), 413 (too
  // large), 400 (malformed chunked framing) or 503 (the gateway's memory for request bodies is
  // taken); the connection is closed after that answer. Call at most once.
  virtual boost::asio::awaitable<std::optional<LocalReply>> Read() = 0;
};

class Gateway {
 public:
  explicit Gateway(GatewayParts parts);

  // Answers the request whose head is `req` on `conn`; `body` reads the body when the pipeline
  // wants it. Returns false when the connection must be closed. Never throws: an exception from
  // a handler becomes a 500 and closes the connection.
  boost::asio::awaitable<bool> Handle(HttpRequest& req, RequestBody& body, ClientConnection& conn,
                                      const std::string& peer_ip, int worker,
                                      boost::asio::io_context& io);

  using HttpResponse = StringResponse;
  // Builds a complete non-streamed response (keep-alive as the request asked; `req` may be null
  // for protocol errors, which close the connection).
  static HttpResponse MakeResponse(const HttpRequest* req, int status, std::string body,
                                   std::string_view content_type, const HeaderList& headers);
  // Writes it. Returns false when the connection must be closed. (Responses are built outside
  // the co_await expression: GCC 12 miscompiles string literals inside co_await arguments.)
  static boost::asio::awaitable<bool> SendResponse(ClientConnection& conn, HttpResponse& res,
                                                   int64_t write_timeout_ms);

  // Releases the backends' per-worker resources; call after HttpServer::Wait().
  void Shutdown();

  MetricsRegistry* metrics() const { return parts_.metrics; }
  const GatewayConfig& config() const { return *parts_.config; }

  // The client address of a request: the peer, or the X-Forwarded-For client when the peer is a
  // trusted proxy (walking the list from the right).
  static std::string ClientIp(const HttpRequest& req, const std::string& peer_ip,
                              const std::vector<std::string>& trusted_proxies);
  // Fills the RequestContext fields known from the request head alone (client address, user
  // agent, headers, bearer token); the caller sets the request id, time and endpoint.
  static void FillFromHead(const HttpRequest& req, const std::string& peer_ip,
                           const std::vector<std::string>& trusted_proxies, RequestContext* ctx);
  // Parses the body into ctx.body (or ctx.body_error) and points ctx.raw_body at it.
  static void ParseBody(const std::string& body, RequestContext* ctx);

 private:
  boost::asio::awaitable<bool> Dispatch(HttpRequest& req, RequestBody& body, ClientConnection& conn,
                                        const std::string& peer_ip, int worker,
                                        boost::asio::io_context& io);
  boost::asio::awaitable<bool> HandleCompletion(HttpRequest& req, RequestBody& body,
                                                ClientConnection& conn, const std::string& peer_ip,
                                                int worker, boost::asio::io_context& io,
                                                const std::string& endpoint);
  boost::asio::awaitable<bool> HandleAdmin(HttpRequest& req, RequestBody& body,
                                           ClientConnection& conn, const std::string& peer_ip);
  // Answers a request refused before its backend ran (ctx.local_reply set), writing its audit
  // record first unless ctx.skip_audit.
  boost::asio::awaitable<bool> Refuse(HttpRequest& req, ClientConnection& conn, RequestContext& ctx);
  std::string ModelsJson() const;
  AuditRecord MakeAuditRecord(const RequestContext& ctx, int64_t end_ns) const;
  boost::asio::awaitable<moat::Status> WriteAudit(AuditRecord record);
  std::string NextRequestId();
  void RecordDone(const RequestContext& ctx, int status);

  GatewayParts parts_;
  TextRetention retention_;
  std::string id_prefix_;
  std::atomic<uint64_t> next_id_{1};
  Family<Counter>* requests_;
  Family<Histogram>* latency_;
  Family<Counter>* audit_failures_;
  Family<Counter>* actions_;
  Family<Counter>* handler_errors_;
};

}  // namespace moat::server

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
#include "common/random.h"
#include "moat/audit_record.h"
#include "moat/clock.h"
#include "moat/filter.h"
#include "ratelimit/failed_auth_limiter.h"
#include "server/backend.h"
#include "server/client_connection.h"
#include "server/config.h"
#include "server/request_handler.h"
#include "server/response.h"

namespace moat::server {

class AdminApi;
class SseClientStream;

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
  Random* random = nullptr;  // required: draws the request-id prefix
};

class Gateway final : public RequestHandler {
 public:
  explicit Gateway(GatewayParts parts);

  // Answers the request (RequestHandler). An exception from a handler becomes a 500 and closes
  // the connection.
  boost::asio::awaitable<bool> Handle(HttpRequest& req, RequestBody& body, ClientConnection& conn,
                                      const std::string& peer_ip, int worker,
                                      boost::asio::io_context& io) override;

  // Releases the backends' per-worker resources; call after HttpServer::Wait().
  void Shutdown();

  const GatewayConfig& config() const { return *parts_.config; }

  // The client address of a request: the peer, or the X-Forwarded-For client when the peer is a
  // trusted proxy (walking the list from the right).
  static std::string ClientIp(const HttpRequest& req, const std::string& peer_ip,
                              const std::vector<std::string>& trusted_proxies);
  // Fills the RequestContext fields known from the request head alone (client address, user
  // agent, headers, bearer token); the caller sets the request id, time and endpoint.
  static void FillFromHead(const HttpRequest& req, const std::string& peer_ip,
                           const std::vector<std::string>& trusted_proxies, RequestContext* ctx);
  // The `x-moat-replay-time` of a request from one of `replay_peers` (the socket's peer, exact
  // address): Unix nanoseconds, the time detection judges it at. 0 when the peer is not one of
  // them or sends no such header; InvalidArgument when it sends one that is not a positive
  // integer of nanoseconds.
  static StatusOr<int64_t> ReplayTime(const HttpRequest& req, const std::string& peer_ip,
                                      const std::vector<std::string>& replay_peers);
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
  // The simple routes (health, metrics, models, 404, 405): the endpoint label and the answer.
  std::pair<std::string, Response> Route(const HttpRequest& req, std::string_view path) const;
  // Ends a completion request once its filters' OnComplete ran: writes the audit record (unless
  // ctx.skip_audit), then the rest of the answer: the end of a begun stream, or the whole
  // response (the context's local reply, or `body` with its http_status()).
  boost::asio::awaitable<bool> Answer(HttpRequest& req, ClientConnection& conn,
                                      RequestContext& ctx, SseClientStream& client,
                                      std::string body);
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

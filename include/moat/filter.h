#pragma once
// The request pipeline's filter interface, in the style of Envoy's HTTP filters.
//
// A completion request flows through the chain in two phases: OnHeaders before the body is
// read (auth; so a request refused on its headers, e.g. a bad API key, costs no body read,
// parse or stored text), then OnRequest once the body is parsed (validate -> rate limit ->
// analysis, i.e. detection and policy); then the backend (which applies the watermark while it
// samples or forwards), OnStreamProgress while a stream runs, OnComplete in reverse order, and
// the audit record. Each stage is a Filter created per request by its
// FilterFactory (built once at start-up from the config and shared read-only by all
// threads). Filters never touch the server's control flow: they answer with a closed
// FilterStatus, and when they stop a request they fill RequestContext::local_reply.
// See docs/architecture.md.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

namespace moat::resistance {
struct HardeningProfile;
}

namespace moat {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// An error answered by the gateway itself, in the OpenAI error format:
// {"error": {"message", "type", "param", "code"}}.
struct LocalReply {
  int http_status = 500;
  std::string type;     // e.g. "rate_limit_error"
  std::string code;     // e.g. "rate_limit_exceeded"
  std::string message;  // human-readable, actionable
  HeaderList headers;   // extra headers, e.g. Retry-After
  std::string param;    // the offending request parameter, "" when none
};

// Everything the pipeline knows about one request. Owned by the server's request handler;
// filters read and write it in pipeline order on one thread at a time.
struct RequestContext {
  // --- Set by the server before the chain runs (headers only; the body fields below are
  // filled after every OnHeaders has continued).
  std::string request_id;
  int64_t start_ns = 0;      // arrival, ns since the Unix epoch (from the Clock)
  std::string endpoint;      // "/v1/chat/completions" or "/v1/completions"
  std::string client_ip;     // the socket's peer, or X-Forwarded-For's client when the peer
                             // is a trusted proxy
  std::string user_agent;
  HeaderList headers;        // request headers, names lower-cased
  std::string bearer_token;  // the presented API key ("" when missing)
  std::string_view raw_body;  // the request body as received (valid while the request runs)
  boost::json::object body;  // the parsed request body (forwarded after filters may edit it)
  std::string body_error;    // why the body is not a JSON object ("" when it parsed)
  std::string model;         // body["model"]
  bool stream = false;       // body["stream"]
  int64_t max_tokens = 0;    // effective max_tokens (the gateway fills the default when absent)
  int64_t prompt_tokens_estimate = 0;  // estimated before forwarding, for token reservations

  // --- Set by the auth filter.
  std::string account_id;
  std::string org_id;
  std::string key_id;
  std::string tier;
  std::string end_user;  // OpenAI `user` field or the configured end-user header

  // --- Set by the rate-limit and analysis (detection and policy) filters.
  std::string verdict = "allow";  // the detection verdict ("allow" when detection is off)
  std::string action = "allow";   // the action taken: allow, degrade, step_up, throttle, block
  std::vector<std::string> reasons;  // why, e.g. "rate_limit:key_requests", "campaign:<id>"
  bool strip_reasoning = false;  // degrade: drop reasoning traces from the response
  // degrade: the response hardening profile (src/resistance), owned by the analysis filter's
  // factory; nullptr when the request is not degraded.
  const resistance::HardeningProfile* hardening = nullptr;

  // --- Set by the backend that applies the account's watermark.
  std::string watermark_key_id;

  // --- Set by the backend as the response is produced.
  int http_status = 0;
  std::string error_code;          // OpenAI error code when the request failed
  int64_t prompt_tokens = 0;       // real usage when known, else our own count
  int64_t completion_tokens = 0;
  bool usage_from_upstream = false;
  std::string completion_text;     // concatenated output text (for audit and watermark)
  HeaderList response_headers;     // extra headers filters add to the client's response

  // --- Set by a filter that stops the request.
  std::optional<LocalReply> local_reply;
  // Set with a refusal that must not write an audit record of its own: failed-authentication
  // throttling, whose records would otherwise let an unauthenticated client fill the audit
  // disk. The gateway counts such refusals in its metrics instead.
  bool skip_audit = false;

  const std::string* FindHeader(std::string_view lower_name) const {
    for (const auto& [k, v] : headers)
      if (k == lower_name) return &v;
    return nullptr;
  }
};

enum class FilterStatus {
  kContinue,  // pass the request to the next stage
  kStop,      // stop here; ctx.local_reply holds the answer
};

// One stage's per-request state and hooks. Created by FilterFactory::Create for each request.
class Filter {
 public:
  virtual ~Filter() = default;
  // After the request headers, before the body is read: only the server-set fields above the
  // body are valid. Returns kStop with ctx.local_reply set to answer without reading the body
  // (the request then gets no OnRequest and no OnComplete in any filter).
  virtual FilterStatus OnHeaders(RequestContext& ctx) { return FilterStatus::kContinue; }
  // Before the backend, with the body parsed. Returns kStop with ctx.local_reply set to answer
  // the request itself.
  virtual FilterStatus OnRequest(RequestContext& ctx) = 0;
  // During a streamed response, after each event that added output tokens
  // (ctx.completion_tokens is up to date). Returning kStop ends the stream with an error
  // event built from ctx.local_reply.
  virtual FilterStatus OnStreamProgress(RequestContext& ctx) { return FilterStatus::kContinue; }
  // Exactly once per request whose OnRequest reached this filter (the filter that stopped the
  // request included), in reverse pipeline order, once the backend has finished or failed or a
  // filter stopped the request: before the audit record is written and before the client gets
  // the end of the response. A request stopped in the header phase, or before OnRequest (audit
  // log unhealthy, body unreadable), gets no OnComplete.
  virtual void OnComplete(RequestContext& ctx) {}
};

// Builds a stage's per-request filters. Immutable after start-up; shared by all threads.
class FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  virtual std::string_view name() const = 0;
  virtual std::unique_ptr<Filter> Create() const = 0;
};

// Fills ctx.local_reply and returns kStop: the one way filters refuse a request.
inline FilterStatus StopWith(RequestContext& ctx, int http_status, std::string type,
                             std::string code, std::string message, HeaderList headers = {}) {
  ctx.local_reply = LocalReply{http_status, std::move(type), std::move(code), std::move(message),
                               std::move(headers), ""};
  return FilterStatus::kStop;
}

}  // namespace moat

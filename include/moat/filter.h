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
// FilterStatus, either Continue or a LocalReply that carries the client's answer; the
// pipeline records it in the RequestContext (SetLocalReply). See docs/architecture.md.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

#include "moat/action.h"

namespace moat::resistance {
struct HardeningProfile;
}

namespace moat {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// An error answered by the gateway itself, in the OpenAI error format:
// {"error": {"message", "type", "param", "code"}}, plus "verification_url" when it is set.
struct LocalReply {
  int http_status = 500;
  std::string type;     // e.g. "rate_limit_error"
  std::string code;     // e.g. "rate_limit_exceeded"
  std::string message;  // human-readable, actionable
  HeaderList headers;   // extra headers, e.g. Retry-After
  std::string param;    // the offending request parameter, "" when none
  // step_up_required: where the account is verified ([detection] step_up_url filled in),
  // written as the error's "verification_url" field; "" when none (the field is then absent).
  std::string verification_url;
};

// Everything the pipeline knows about one request. Owned by the server's request handler;
// filters read and write it in pipeline order on one thread at a time.
struct RequestContext {
  // --- Set by the server before the chain runs (headers only; the body fields below are
  // filled after every OnHeaders has continued).
  std::string request_id;
  int64_t start_ns = 0;      // arrival, ns since the Unix epoch (from the Clock)
  // The time detection judges the request at: start_ns, or the `x-moat-replay-time` of a
  // replay from one of [detection] replay_clock_peers (0: start_ns).
  int64_t detection_time_ns = 0;
  std::string endpoint;      // "/v1/chat/completions" or "/v1/completions"
  std::string client_ip;     // the socket's peer, or X-Forwarded-For's client when the peer
                             // is a trusted proxy
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
  Action verdict = Action::kAllow;  // the detection verdict (allow when detection is off)
  Action action = Action::kAllow;   // the action taken, which the client is told
  std::vector<std::string> reasons;  // why, e.g. "rate_limit:key_requests", "campaign:<id>"
  bool strip_reasoning = false;  // degrade: drop reasoning traces from the response
  // degrade: the response hardening profile (src/resistance), owned by the analysis filter's
  // factory; nullptr when the request is not degraded.
  const resistance::HardeningProfile* hardening = nullptr;

  // --- Set by the backend that applies the account's watermark.
  std::string watermark_key_id;

  // --- Set by the backend as the response is produced.
  int64_t prompt_tokens = 0;       // real usage when known, else our own count
  int64_t completion_tokens = 0;
  bool usage_from_upstream = false;
  std::string completion_text;     // concatenated output text (for audit and watermark)
  HeaderList response_headers;     // extra headers filters add to the client's response

  // Set with a refusal that must not write an audit record of its own: failed-authentication
  // throttling, whose records would otherwise let an unauthenticated client fill the audit
  // disk. The gateway counts such refusals in its metrics instead.
  bool skip_audit = false;

  const std::string* FindHeader(std::string_view lower_name) const {
    for (const auto& [k, v] : headers)
      if (k == lower_name) return &v;
    return nullptr;
  }
  // The User-Agent header ("" when absent).
  std::string_view user_agent() const {
    const std::string* ua = FindHeader("user-agent");
    return ua ? std::string_view(*ua) : std::string_view();
  }

  // --- The outcome: set only through these two, so that the status, the error code and the
  // reply always agree.
  // The request ends with the gateway's own answer `reply` (a filter's LocalReply, a backend
  // failure, an audit failure): the status and code are the reply's.
  void SetLocalReply(LocalReply reply) {
    http_status_ = reply.http_status;
    error_code_ = reply.code;
    local_reply_ = std::move(reply);
  }
  // The backend's answer, or how the exchange ended without one: its HTTP status and, for an
  // error the upstream made itself or a client that went away (499), its code.
  void SetResponseStatus(int status, std::string code = {}) {
    http_status_ = status;
    error_code_ = std::move(code);
  }
  int http_status() const { return http_status_; }  // what the client got; 0 until known
  const std::string& error_code() const { return error_code_; }  // OpenAI code; "" on success
  const std::optional<LocalReply>& local_reply() const { return local_reply_; }

 private:
  int http_status_ = 0;
  std::string error_code_;
  std::optional<LocalReply> local_reply_;
};

// A filter's answer, closed: Continue (pass the request to the next stage) or LocalReply (stop
// here and answer the client with the reply it carries). A stop without a reply cannot be
// expressed.
class [[nodiscard]] FilterStatus {
 public:
  static FilterStatus Continue() { return FilterStatus(); }
  static FilterStatus Reply(LocalReply reply) {
    FilterStatus status;
    status.reply_ = std::move(reply);
    return status;
  }
  // A reply in the OpenAI error format: HTTP status, error type (e.g. "rate_limit_error"),
  // code (e.g. "rate_limit_exceeded"), message, extra headers and the offending parameter.
  static FilterStatus Reply(int http_status, std::string type, std::string code,
                            std::string message, HeaderList headers = {}, std::string param = {}) {
    return Reply(LocalReply{http_status, std::move(type), std::move(code), std::move(message),
                            std::move(headers), std::move(param), {}});
  }

  bool is_continue() const { return !reply_.has_value(); }
  bool is_local_reply() const { return reply_.has_value(); }
  // The reply of a LocalReply status (precondition: is_local_reply()).
  const LocalReply& reply() const { return *reply_; }
  LocalReply&& TakeReply() && { return std::move(*reply_); }

 private:
  FilterStatus() = default;
  std::optional<LocalReply> reply_;
};

// One stage's per-request state and hooks. Created by FilterFactory::Create for each request.
class Filter {
 public:
  virtual ~Filter() = default;
  // After the request headers, before the body is read: only the server-set fields above the
  // body are valid. A LocalReply answers without reading the body (the request then gets no
  // OnRequest and no OnComplete in any filter).
  virtual FilterStatus OnHeaders(RequestContext& ctx) { return FilterStatus::Continue(); }
  // Before the backend, with the body parsed. A LocalReply answers the request here.
  virtual FilterStatus OnRequest(RequestContext& ctx) = 0;
  // During a streamed response, after each event that added output tokens
  // (ctx.completion_tokens is up to date). A LocalReply ends the stream with an error event
  // made from the reply.
  virtual FilterStatus OnStreamProgress(RequestContext& ctx) { return FilterStatus::Continue(); }
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

}  // namespace moat

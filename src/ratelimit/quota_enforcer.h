#pragma once
// QuotaEnforcer: per-request rate limits and token quotas over every scope (API key, account,
// client IP, IP prefix), by account tier, with reservation and reconciliation of token usage.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "moat/clock.h"
#include "ratelimit/gcra_limiter.h"

namespace moat::ratelimit {

// Limits for one tier: requests/min and tokens/min for each scope. An unlimited Rate (the
// default) disables that scope.
struct TierLimits {
  Rate key_requests, key_tokens;
  Rate account_requests, account_tokens;
  Rate ip_requests, ip_tokens;
  Rate prefix_requests, prefix_tokens;
};

// Who is asking. Empty fields skip their scopes (e.g. no key_id: no per-key limits).
struct Subject {
  std::string key_id;
  std::string account_id;
  std::string client_ip;  // textual address as seen on the socket
  std::string tier;       // e.g. "verified"; see QuotaEnforcer for unknown tiers
};

// What Reserve() charged, so that Reconcile()/Extend() hit the same scopes. Copyable and cheap.
struct Reservation {
  std::string tier;
  std::string key_id, account_id;
  std::string ip_key;      // ClientIpKey(client_ip), "" when not applied
  std::string prefix_key;  // IpPrefix(client_ip), "" when not applied
  int64_t reserved_tokens = 0;  // tokens charged so far on every token scope (Extend adds)
};

// Enforces all scopes of a tier together and atomically: a request is admitted only if every
// scope admits it, and then charged on all of them; otherwise it is charged on none (the
// limiter shards of all its scopes are locked together, see GcraLimiter::AcquireAll), so limits
// are exact under concurrency and a refused request never consumes another scope. Memory: at most max_keys entries per scope family (key, account, IP,
// prefix), i.e. bounded whatever the number of accounts or addresses. Thread-safe.
//
// A subject whose tier has no limits gets the "unverified" limits if those are configured, and
// is otherwise denied (scope "tier") so a misconfiguration fails closed.
class QuotaEnforcer {
 public:
  // `clock` must outlive the enforcer.
  QuotaEnforcer(const moat::Clock* clock, std::map<std::string, TierLimits> limits_by_tier,
                size_t max_keys);

  struct Denial {
    // The refusing scope with the longest wait: "key_requests", "key_tokens",
    // "account_requests", "account_tokens", "ip_requests", "ip_tokens", "prefix_requests",
    // "prefix_tokens" or "tier".
    std::string scope;
    // The longest wait over all refusing scopes (use for Retry-After). +infinity when the
    // request can never fit (tokens above a scope's burst): answer 400, not 429. Round up to
    // whole seconds for the Retry-After header.
    double retry_after_s;
  };

  // Charges 1 request and `tokens` (prompt tokens + max_tokens) on every applicable scope.
  // Returns the reservation, or a Denial with nothing charged.
  std::variant<Reservation, Denial> Reserve(const Subject& subject, int64_t tokens);

  // After the response: charges (actual - reserved) tokens on every token scope, refunding when
  // negative. Call once per reservation.
  void Reconcile(const Reservation& reservation, int64_t actual_tokens);

  // Streams: charges `more_tokens` on every token scope if all admit it (then
  // reservation.reserved_tokens grows by it) and returns true; returns false with nothing
  // charged if any would refuse (the caller stops the stream, then calls Reconcile).
  bool Extend(Reservation& reservation, int64_t more_tokens);

  // Decision counters, for metrics.
  struct Stats {
    uint64_t admitted = 0;
    uint64_t denied = 0;
    uint64_t extended = 0;
    uint64_t extend_denied = 0;
  };
  Stats stats() const;
  // Limiter entries currently held over all scope families (<= 4 * max_keys).
  size_t TrackedKeys() const;

 private:
  enum Family { kKey, kAccount, kIp, kPrefix, kNumFamilies };
  struct Charge {
    Family family;
    std::string limiter_key;
    const Rate* rate;
    double cost;
    const char* scope;
  };

  const TierLimits* LimitsFor(const std::string& tier) const;
  // Appends the charges of the request (tokens < 0: requests only) or token scopes.
  static void PlanCharges(const Reservation& r, const TierLimits& limits, bool requests,
                          double tokens, std::vector<Charge>* out);
  // Acquires every charge or none (atomically); on refusal fills `denial`.
  bool AcquireAll(const std::vector<Charge>& charges, Denial* denial);

  const std::map<std::string, TierLimits> limits_by_tier_;
  std::array<std::unique_ptr<GcraLimiter>, kNumFamilies> limiters_;
  std::atomic<uint64_t> admitted_{0}, denied_{0}, extended_{0}, extend_denied_{0};
};

}  // namespace moat::ratelimit

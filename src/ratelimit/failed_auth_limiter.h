#pragma once
// FailedAuthLimiter: how many failed authentications (unknown, revoked or missing API keys,
// wrong admin tokens) a client address and its network prefix may make per minute. The gateway
// asks it before looking at a presented credential and tells it about every failure, so a client
// that floods bogus keys is refused with 429 at the cost of a hash lookup: no body read, no key
// hashed, no audit record per refusal.

#include <cstddef>
#include <memory>
#include <string_view>

#include "moat/clock.h"
#include "ratelimit/gcra_limiter.h"

namespace moat::ratelimit {

struct FailedAuthLimits {
  // Failures per minute (and at once, the burst) of one client address (IPv6: its /64).
  // <= 0 disables the scope.
  double per_ip_per_minute = 30;
  // Failures per minute (and at once) of one network prefix (IPv4 /24, IPv6 /48).
  double per_prefix_per_minute = 300;
  // Addresses and prefixes tracked at most (memory bound; see GcraLimiter).
  size_t max_tracked = 100'000;
};

// Thread-safe.
class FailedAuthLimiter {
 public:
  // `clock` must outlive the limiter.
  FailedAuthLimiter(const moat::Clock* clock, const FailedAuthLimits& limits);

  // True when `client_ip` may present a credential now. When not, *retry_after_s (if given)
  // receives the seconds until it may (rounded up by the caller for Retry-After).
  bool Allowed(std::string_view client_ip, double* retry_after_s = nullptr) const;
  // Charges one failure to the client's address and prefix.
  void RecordFailure(std::string_view client_ip);

 private:
  struct Keys {
    std::string ip, prefix;
  };
  static Keys KeysOf(std::string_view client_ip);

  const Rate ip_rate_;
  const Rate prefix_rate_;
  std::unique_ptr<GcraLimiter> limiter_;
};

}  // namespace moat::ratelimit

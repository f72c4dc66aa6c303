#include "ratelimit/failed_auth_limiter.h"

#include <algorithm>
#include <string>

#include "ratelimit/ip_prefix.h"

namespace moat::ratelimit {

FailedAuthLimiter::FailedAuthLimiter(const moat::Clock* clock, const FailedAuthLimits& limits)
    : ip_rate_{limits.per_ip_per_minute, limits.per_ip_per_minute},
      prefix_rate_{limits.per_prefix_per_minute, limits.per_prefix_per_minute},
      limiter_(std::make_unique<GcraLimiter>(clock, std::max<size_t>(limits.max_tracked, 1))) {}

FailedAuthLimiter::Keys FailedAuthLimiter::KeysOf(std::string_view client_ip) {
  Keys keys;
  auto ip = ClientIpKey(client_ip);
  // An unparsable address is still limited as itself, just without a prefix.
  keys.ip = "ip:" + (ip.ok() ? *ip : std::string(client_ip));
  if (auto prefix = IpPrefix(client_ip); prefix.ok()) keys.prefix = "prefix:" + *prefix;
  return keys;
}

bool FailedAuthLimiter::Allowed(std::string_view client_ip, double* retry_after_s) const {
  const Keys keys = KeysOf(client_ip);
  double wait = 0;
  const GcraLimiter::Decision ip = limiter_->Peek(keys.ip, ip_rate_, 1.0);
  if (!ip.allowed) wait = std::max(wait, ip.retry_after_s);
  if (!keys.prefix.empty()) {
    const GcraLimiter::Decision prefix = limiter_->Peek(keys.prefix, prefix_rate_, 1.0);
    if (!prefix.allowed) wait = std::max(wait, prefix.retry_after_s);
  }
  if (retry_after_s != nullptr) *retry_after_s = wait;
  return wait == 0;
}

void FailedAuthLimiter::RecordFailure(std::string_view client_ip) {
  const Keys keys = KeysOf(client_ip);
  limiter_->Adjust(keys.ip, ip_rate_, 1.0);
  if (!keys.prefix.empty()) limiter_->Adjust(keys.prefix, prefix_rate_, 1.0);
}

}  // namespace moat::ratelimit

#include "ratelimit/quota_enforcer.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "ratelimit/ip_prefix.h"

namespace moat::ratelimit {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct ScopeSpec {
  int family;
  bool tokens;
  Rate TierLimits::*rate;
  const char* name;
};

// Request scopes first: a request refused for its request rate never touches token state.
constexpr ScopeSpec kScopes[] = {
    {0, false, &TierLimits::key_requests, "key_requests"},
    {1, false, &TierLimits::account_requests, "account_requests"},
    {2, false, &TierLimits::ip_requests, "ip_requests"},
    {3, false, &TierLimits::prefix_requests, "prefix_requests"},
    {0, true, &TierLimits::key_tokens, "key_tokens"},
    {1, true, &TierLimits::account_tokens, "account_tokens"},
    {2, true, &TierLimits::ip_tokens, "ip_tokens"},
    {3, true, &TierLimits::prefix_tokens, "prefix_tokens"},
};

}  // namespace

QuotaEnforcer::QuotaEnforcer(const Clock* clock, std::map<std::string, TierLimits> limits_by_tier,
                             size_t max_keys)
    : limits_by_tier_(std::move(limits_by_tier)) {
  // Each family holds a request entry and a token entry per subject.
  for (auto& l : limiters_) l = std::make_unique<GcraLimiter>(clock, max_keys);
}

const TierLimits* QuotaEnforcer::LimitsFor(const std::string& tier) const {
  auto it = limits_by_tier_.find(tier);
  if (it == limits_by_tier_.end()) it = limits_by_tier_.find("unverified");
  return it == limits_by_tier_.end() ? nullptr : &it->second;
}

void QuotaEnforcer::PlanCharges(const Reservation& r, const TierLimits& limits, bool requests,
                                double tokens, std::vector<Charge>* out) {
  const std::string* ids[kNumFamilies] = {&r.key_id, &r.account_id, &r.ip_key, &r.prefix_key};
  for (const ScopeSpec& s : kScopes) {
    const Rate& rate = limits.*(s.rate);
    const std::string& id = *ids[s.family];
    if (rate.unlimited() || id.empty()) continue;
    if (!s.tokens && !requests) continue;
    if (s.tokens && !(tokens > 0)) continue;
    out->push_back({static_cast<Family>(s.family), std::string(s.tokens ? "t:" : "r:") + id,
                    &rate, s.tokens ? tokens : 1.0, s.name});
  }
}

bool QuotaEnforcer::AcquireAll(const std::vector<Charge>& charges, Denial* denial) {
  std::array<GcraLimiter::BatchItem, std::size(kScopes)> items;
  for (size_t i = 0; i < charges.size(); ++i) {
    const Charge& c = charges[i];
    items[i] = {limiters_[c.family].get(), c.limiter_key, c.rate, c.cost};
  }
  GcraLimiter::BatchDecision d =
      GcraLimiter::AcquireAll(std::span<const GcraLimiter::BatchItem>(items.data(), charges.size()));
  if (d.allowed) return true;
  denial->scope = charges[d.refused_index].scope;
  denial->retry_after_s = d.retry_after_s;
  return false;
}

std::variant<Reservation, QuotaEnforcer::Denial> QuotaEnforcer::Reserve(const Subject& subject,
                                                                        int64_t tokens) {
  const TierLimits* limits = LimitsFor(subject.tier);
  if (limits == nullptr) {
    denied_.fetch_add(1, std::memory_order_relaxed);
    return Denial{"tier", kInf};
  }
  Reservation r;
  r.tier = subject.tier;
  r.key_id = subject.key_id;
  r.account_id = subject.account_id;
  if (!subject.client_ip.empty()) {
    auto ip_key = ClientIpKey(subject.client_ip);
    // An unparsable address is still limited as itself, just without a prefix.
    r.ip_key = ip_key.ok() ? *ip_key : subject.client_ip;
    auto prefix = IpPrefix(subject.client_ip);
    if (prefix.ok()) r.prefix_key = *prefix;
  }
  std::vector<Charge> charges;
  charges.reserve(8);
  PlanCharges(r, *limits, /*requests=*/true, static_cast<double>(tokens), &charges);
  Denial denial;
  if (!AcquireAll(charges, &denial)) {
    denied_.fetch_add(1, std::memory_order_relaxed);
    return denial;
  }
  r.reserved_tokens = std::max<int64_t>(tokens, 0);
  admitted_.fetch_add(1, std::memory_order_relaxed);
  return r;
}

void QuotaEnforcer::Reconcile(const Reservation& reservation, int64_t actual_tokens) {
  const TierLimits* limits = LimitsFor(reservation.tier);
  if (limits == nullptr) return;
  const double delta =
      static_cast<double>(std::max<int64_t>(actual_tokens, 0) - reservation.reserved_tokens);
  if (delta == 0) return;
  std::vector<Charge> charges;
  // Plan with a positive dummy cost to select the token scopes; Adjust applies `delta`.
  PlanCharges(reservation, *limits, /*requests=*/false, 1.0, &charges);
  for (const Charge& c : charges) limiters_[c.family]->Adjust(c.limiter_key, *c.rate, delta);
}

bool QuotaEnforcer::Extend(Reservation& reservation, int64_t more_tokens) {
  if (more_tokens <= 0) return true;
  const TierLimits* limits = LimitsFor(reservation.tier);
  if (limits == nullptr) return false;
  std::vector<Charge> charges;
  PlanCharges(reservation, *limits, /*requests=*/false, static_cast<double>(more_tokens),
              &charges);
  Denial denial;
  if (!AcquireAll(charges, &denial)) {
    extend_denied_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  reservation.reserved_tokens += more_tokens;
  extended_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

QuotaEnforcer::Stats QuotaEnforcer::stats() const {
  return {admitted_.load(std::memory_order_relaxed), denied_.load(std::memory_order_relaxed),
          extended_.load(std::memory_order_relaxed),
          extend_denied_.load(std::memory_order_relaxed)};
}

size_t QuotaEnforcer::TrackedKeys() const {
  size_t n = 0;
  for (const auto& l : limiters_) n += l->size();
  return n;
}

}  // namespace moat::ratelimit

#include "filters/auth/auth_filter.h"

#include <algorithm>
#include <cmath>

namespace moat::filters {
namespace {

class AuthFilter final : public Filter {
 public:
  explicit AuthFilter(const AuthFilterFactory& f) : f_(f) {}

  // Authenticates from the Authorization header alone, so an unauthenticated client never gets
  // its body read, parsed or stored. A valid key is always accepted (a throttled address may be
  // shared with legitimate clients); failures are charged to the address, and failures beyond
  // its budget are answered 429 without an audit record of their own.
  FilterStatus OnHeaders(RequestContext& ctx) override {
    const bool missing = ctx.bearer_token.empty();
    StatusOr<store::Principal> principal =
        missing ? StatusOr<store::Principal>(UnauthenticatedError("no key"))
                : f_.accounts()->Authenticate(ctx.bearer_token);
    if (principal.ok()) {
      ctx.account_id = principal->account.id;
      ctx.org_id = principal->account.org_id;
      ctx.key_id = principal->key_id;
      ctx.tier = std::string(store::TierName(principal->account.tier));
      return FilterStatus::Continue();
    }
    ratelimit::FailedAuthLimiter* limiter = f_.failed_auth();
    double retry_s = 0;
    if (limiter != nullptr && !limiter->Allowed(ctx.client_ip, &retry_s)) {
      f_.failures().With({"throttled"}).Inc();
      const int64_t retry = static_cast<int64_t>(std::ceil(std::max(retry_s, 1.0)));
      ctx.skip_audit = true;
      return FilterStatus::Reply(429, "rate_limit_error", "too_many_auth_failures",
                                 "Too many failed authentications from your address. Please try "
                                 "again in " + std::to_string(retry) + "s.",
                                 {{"retry-after", std::to_string(retry)}});
    }
    if (limiter != nullptr) limiter->RecordFailure(ctx.client_ip);
    if (missing) {
      f_.failures().With({"missing_key"}).Inc();
      return FilterStatus::Reply(401, "invalid_request_error", "missing_api_key",
                                 "You didn't provide an API key. Send it in the Authorization "
                                 "header as 'Authorization: Bearer YOUR_KEY'.");
    }
    f_.failures().With({"invalid_key"}).Inc();
    return FilterStatus::Reply(401, "invalid_request_error", "invalid_api_key",
                               "Incorrect, revoked or disabled API key provided.");
  }

  FilterStatus OnRequest(RequestContext& ctx) override { return FilterStatus::Continue(); }

 private:
  const AuthFilterFactory& f_;
};

}  // namespace

AuthFilterFactory::AuthFilterFactory(const store::AccountStore* accounts, MetricsRegistry* metrics,
                                     ratelimit::FailedAuthLimiter* failed_auth)
    : accounts_(accounts),
      failed_auth_(failed_auth),
      failures_(&metrics->AddCounter("moat_auth_failures_total", "Requests refused by authentication.",
                                     {"reason"})) {}

std::unique_ptr<Filter> AuthFilterFactory::Create() const { return std::make_unique<AuthFilter>(*this); }

}  // namespace moat::filters

#include "filters/ratelimit/ratelimit_filter.h"

#include <cmath>
#include <optional>
#include <string>

namespace moat::filters {
namespace {

// QuotaEnforcer's scope name for "the subject's tier has no limits".
constexpr std::string_view kTierScope = "tier";

class RateLimitFilter final : public Filter {
 public:
  explicit RateLimitFilter(const RateLimitFilterFactory& f) : f_(f) {}

  FilterStatus OnRequest(RequestContext& ctx) override {
    ratelimit::Subject subject{ctx.key_id, ctx.account_id, ctx.client_ip, ctx.tier};
    auto result = f_.enforcer().Reserve(subject, ctx.prompt_tokens_estimate + ctx.max_tokens);
    if (auto* denial = std::get_if<ratelimit::QuotaEnforcer::Denial>(&result)) {
      f_.rejections().With({denial->scope}).Inc();
      if (denial->scope == kTierScope) {
        // No limits exist for the account's tier: a configuration error, refused (fail closed).
        return FilterStatus::Reply(403, "permission_error", "tier_not_configured",
                                   "No rate limits are configured for this account's tier '" +
                                       ctx.tier + "'; ask the gateway operator to add [limits." +
                                       ctx.tier + "].");
      }
      if (!std::isfinite(denial->retry_after_s)) {
        // More tokens than the scope's burst: waiting would never help, so this is not a 429.
        return FilterStatus::Reply(
            400, "invalid_request_error", "request_exceeds_limit",
            "This request reserves " + std::to_string(ctx.prompt_tokens_estimate + ctx.max_tokens) +
                " tokens (prompt estimate + max_tokens x n), more than the " + denial->scope +
                " limit allows at once; lower max_tokens or n.",
            {{"x-moat-limit-scope", denial->scope}}, "max_tokens");
      }
      int64_t retry = static_cast<int64_t>(std::ceil(std::max(denial->retry_after_s, 0.001)));
      ctx.action = Action::kThrottle;
      ctx.reasons.push_back("rate_limit:" + denial->scope);
      return FilterStatus::Reply(
          429, "rate_limit_error", "rate_limit_exceeded",
          "Rate limit reached (" + denial->scope + "). Please try again in " +
              std::to_string(retry) + "s.",
          {{"retry-after", std::to_string(retry)}, {"x-moat-limit-scope", denial->scope}});
    }
    reservation_ = std::get<ratelimit::Reservation>(std::move(result));
    return FilterStatus::Continue();
  }

  FilterStatus OnStreamProgress(RequestContext& ctx) override {
    if (!reservation_) return FilterStatus::Continue();
    int64_t used = ctx.prompt_tokens_estimate + ctx.completion_tokens;
    if (used <= reservation_->reserved_tokens) return FilterStatus::Continue();
    if (f_.enforcer().Extend(*reservation_, used - reservation_->reserved_tokens))
      return FilterStatus::Continue();
    f_.rejections().With({"stream_tokens"}).Inc();
    return FilterStatus::Reply(429, "rate_limit_error", "rate_limit_exceeded",
                               "Token rate limit reached while streaming; the stream was cut short.");
  }

  void OnComplete(RequestContext& ctx) override {
    if (!reservation_) return;
    f_.enforcer().Reconcile(*reservation_, ctx.prompt_tokens + ctx.completion_tokens);
  }

 private:
  const RateLimitFilterFactory& f_;
  std::optional<ratelimit::Reservation> reservation_;
};

}  // namespace

RateLimitFilterFactory::RateLimitFilterFactory(std::unique_ptr<ratelimit::QuotaEnforcer> enforcer,
                                               MetricsRegistry* metrics)
    : enforcer_(std::move(enforcer)),
      rejections_(&metrics->AddCounter("moat_ratelimit_rejections_total",
                                       "Requests refused by rate limits, by scope.", {"scope"})) {}

std::unique_ptr<Filter> RateLimitFilterFactory::Create() const {
  return std::make_unique<RateLimitFilter>(*this);
}

}  // namespace moat::filters

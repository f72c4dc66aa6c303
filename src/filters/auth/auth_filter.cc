#include "filters/auth/auth_filter.h"

namespace moat::filters {
namespace {

class AuthFilter final : public Filter {
 public:
  explicit AuthFilter(const AuthFilterFactory& f) : f_(f) {}

  FilterStatus OnRequest(RequestContext& ctx) override {
    if (ctx.bearer_token.empty()) {
      f_.failures().With({"missing_key"}).Inc();
      ctx.error_code = "missing_api_key";
      return StopWith(ctx, 401, "invalid_request_error", "missing_api_key",
                      "You didn't provide an API key. Send it in the Authorization header as "
                      "'Authorization: Bearer YOUR_KEY'.");
    }
    auto principal = f_.accounts()->Authenticate(ctx.bearer_token);
    if (!principal.ok()) {
      f_.failures().With({"invalid_key"}).Inc();
      ctx.error_code = "invalid_api_key";
      return StopWith(ctx, 401, "invalid_request_error", "invalid_api_key",
                      "Incorrect, revoked or disabled API key provided.");
    }
    ctx.account_id = principal->account.id;
    ctx.org_id = principal->account.org_id;
    ctx.key_id = principal->key_id;
    ctx.tier = std::string(store::TierName(principal->account.tier));
    return FilterStatus::kContinue;
  }

 private:
  const AuthFilterFactory& f_;
};

}  // namespace

AuthFilterFactory::AuthFilterFactory(const store::AccountStore* accounts, MetricsRegistry* metrics)
    : accounts_(accounts),
      failures_(&metrics->AddCounter("moat_auth_failures_total", "Requests refused by authentication.",
                                     {"reason"})) {}

std::unique_ptr<Filter> AuthFilterFactory::Create() const { return std::make_unique<AuthFilter>(*this); }

}  // namespace moat::filters

#pragma once
// AuthFilter: the first pipeline stage. From the request headers alone (before the body is
// read) it resolves the presented API key to an account through the AccountStore's in-memory
// snapshot (no disk I/O) and fills the account fields of the RequestContext; answers 401 in the
// OpenAI format otherwise. Every failure is charged to the client's address and prefix in the
// FailedAuthLimiter; a failure from an address over its budget is answered 429 instead, without
// an audit record of its own (see RequestContext::skip_audit). Valid keys are never throttled
// here (rate limits are the rate-limit filter's job).

#include "common/metrics.h"
#include "moat/filter.h"
#include "ratelimit/failed_auth_limiter.h"
#include "store/account_store.h"

namespace moat::filters {

class AuthFilterFactory final : public FilterFactory {
 public:
  // `failed_auth` may be null (no failed-authentication limit); both must outlive the factory.
  AuthFilterFactory(const store::AccountStore* accounts, MetricsRegistry* metrics,
                    ratelimit::FailedAuthLimiter* failed_auth = nullptr);
  std::string_view name() const override { return "auth"; }
  std::unique_ptr<Filter> Create() const override;

  const store::AccountStore* accounts() const { return accounts_; }
  ratelimit::FailedAuthLimiter* failed_auth() const { return failed_auth_; }
  Family<Counter>& failures() const { return *failures_; }

 private:
  const store::AccountStore* accounts_;
  ratelimit::FailedAuthLimiter* failed_auth_;
  Family<Counter>* failures_;
};

}  // namespace moat::filters

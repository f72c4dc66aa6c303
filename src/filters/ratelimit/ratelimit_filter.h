#pragma once
// RateLimitFilter: enforces requests/minute and tokens/minute per key, account, client IP
// and IP prefix by tier (QuotaEnforcer). Before forwarding it reserves the estimated prompt
// tokens plus max_tokens; during a stream it extends the reservation when the output outgrows
// it (and cuts the stream when a limit would be exceeded); afterwards it reconciles with the
// real usage: the prompt is charged once it was sent to the backend, even when the response is
// cut short. Refusals are 429 with Retry-After and the OpenAI error body; a request that can
// never fit a scope's burst (waiting would not help) is 400 request_exceeds_limit, and a tier
// without configured limits is 403 tier_not_configured.

#include <memory>

#include "common/metrics.h"
#include "moat/filter.h"
#include "ratelimit/quota_enforcer.h"

namespace moat::filters {

class RateLimitFilterFactory final : public FilterFactory {
 public:
  RateLimitFilterFactory(std::unique_ptr<ratelimit::QuotaEnforcer> enforcer, MetricsRegistry* metrics);
  std::string_view name() const override { return "ratelimit"; }
  std::unique_ptr<Filter> Create() const override;

  ratelimit::QuotaEnforcer& enforcer() const { return *enforcer_; }
  Family<Counter>& rejections() const { return *rejections_; }

 private:
  std::unique_ptr<ratelimit::QuotaEnforcer> enforcer_;
  Family<Counter>* rejections_;
};

}  // namespace moat::filters

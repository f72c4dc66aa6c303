#pragma once
// AnalysisFilter: the detection and policy stage. It hands each authenticated request to the
// behavioural DetectionEngine (src/detect) and applies the verdict:
//   allow    -> pass
//   throttle -> 429 rate_limit_error, code "throttled_by_policy", Retry-After
//   degrade  -> pass, hardened by the tier's HardeningProfile (by default: refuse logprobs, cap
//               max_tokens, strip reasoning traces; see docs/resistance.md)
//   step_up  -> 403 permission_error, code "step_up_required" (verify the account to continue):
//               the error carries the filled verification URL (message and "verification_url"),
//               and the StepUpNotifier, when configured, is told (a signed webhook, deduplicated
//               per subject, sent off the request path: src/stepup/step_up_notifier.h)
//   block    -> 403 permission_error, code "account_blocked"
// Every restriction is visible by default: the client sees the action (`x-moat-action`), a
// coarse category (`x-moat-category`: automated_extraction, coordinated_activity,
// account_policy) and a reference id to quote to support (`x-moat-reference`) — never the
// evidence families, features or scores that led to it, which an adaptive attacker would use
// to rephrase around them. Those stay in the audit record (`reasons`) and the admin views;
// tiers configured with show_evidence (trusted enterprise customers) also get them in
// `x-moat-reason`. Silent degradation (no headers for degrade) is an opt-in.

#include <string>

#include <map>

#include "common/metrics.h"
#include "common/url_template.h"
#include "moat/detect_engine.h"
#include "moat/filter.h"
#include "resistance/hardening.h"
#include "stepup/step_up_notifier.h"

namespace moat::filters {

struct AnalysisSettings {
  int64_t degrade_max_tokens = 256;
  int64_t throttle_retry_after_s = 30;
  // Where a customer verifies the account ([detection] step_up_url, placeholders filled per
  // restriction: src/stepup/verification_url.h); empty: no URL.
  UrlTemplate step_up_url;
  bool silent_degrade = false;   // opt-in: degrade without telling the client
  size_t max_reason_header = 4;  // evidence items listed in x-moat-reason (show_evidence tiers)
  // How degraded answers are hardened (docs/resistance.md): the default profile, and per tier.
  resistance::HardeningProfile hardening;
  std::map<std::string, resistance::HardeningProfile> tier_hardening;
};

class AnalysisFilterFactory final : public FilterFactory {
 public:
  // `notifier` (the step-up webhook) may be null: no webhook. `engine`, `metrics` and
  // `notifier` must outlive the factory.
  AnalysisFilterFactory(detect::Engine* engine, AnalysisSettings settings, MetricsRegistry* metrics,
                        stepup::StepUpNotifier* notifier = nullptr);
  std::string_view name() const override { return "analysis"; }
  std::unique_ptr<Filter> Create() const override;

  detect::Engine* engine() const { return engine_; }
  stepup::StepUpNotifier* notifier() const { return notifier_; }
  const AnalysisSettings& settings() const { return settings_; }
  Family<Counter>& verdicts() const { return *verdicts_; }
  // moat_detection_duration_seconds: how long Observe took (the engine's share of a request's
  // latency, since it judges on the request's own thread).
  Histogram& judge_seconds() const { return *judge_seconds_; }

 private:
  detect::Engine* engine_;
  const AnalysisSettings settings_;
  Family<Counter>* verdicts_;
  Histogram* judge_seconds_;
  stepup::StepUpNotifier* notifier_;
};

}  // namespace moat::filters

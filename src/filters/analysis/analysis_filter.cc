#include "filters/analysis/analysis_filter.h"

#include <chrono>

#include "stepup/verification_url.h"

namespace moat::filters {
namespace {

// Evidence codes for the header of show_evidence tiers: the evidence items ("stage.reason")
// before their ':' (no scores, no account ids).
std::string EvidenceHeader(const std::vector<std::string>& reasons, size_t max) {
  std::string out;
  size_t n = 0;
  for (const std::string& r : reasons) {
    if (n >= max) break;
    const std::string code = r.substr(0, r.find_first_of(":( "));
    if (code == "posterior" || code == "rule" || code == "value" || code == "pool_value" || code == "ref" ||
        code == "evidence" || code == "campaign") {
      continue;
    }
    if (!out.empty()) out += ",";
    out += code;
    ++n;
  }
  return out;
}

class AnalysisFilter final : public Filter {
 public:
  explicit AnalysisFilter(const AnalysisFilterFactory& f) : f_(f) {}

  FilterStatus OnRequest(RequestContext& ctx) override {
    detect::RequestEvent ev;
    ev.time_ns = ctx.detection_time_ns != 0 ? ctx.detection_time_ns : ctx.start_ns;
    ev.account_id = ctx.account_id;
    ev.key_id = ctx.key_id;
    ev.end_user = ctx.end_user;
    ev.tier = ctx.tier;
    ev.client_ip = ctx.client_ip;
    ev.user_agent = std::string(ctx.user_agent());
    ev.headers = ctx.headers;
    ev.endpoint = ctx.endpoint;
    ev.body_json = std::string(ctx.raw_body);
    const auto judged_from = std::chrono::steady_clock::now();
    detect::Verdict v = f_.engine()->Observe(ev);
    const std::chrono::duration<double> judged_in = std::chrono::steady_clock::now() - judged_from;
    f_.judge_seconds().Observe(judged_in.count());

    f_.verdicts().With({std::string(ToString(v.action))}).Inc();
    ctx.verdict = v.action;
    ctx.action = v.action;
    ctx.reasons.insert(ctx.reasons.end(), v.reasons.begin(), v.reasons.end());
    const auto& s = f_.settings();
    // What the client may see: the action, a coarse category and a reference it can quote.
    HeaderList visible;
    if (!v.category.empty()) visible.emplace_back("x-moat-category", v.category);
    if (!v.reference.empty()) visible.emplace_back("x-moat-reference", v.reference);
    if (v.show_evidence) visible.emplace_back("x-moat-reason", EvidenceHeader(v.reasons, s.max_reason_header));
    const std::string quote = v.reference.empty() ? "" : " Quote reference " + v.reference + " to support.";

    switch (v.action) {
      case detect::Action::kAllow:
        return FilterStatus::Continue();
      case detect::Action::kDegrade:
        Degrade(ctx);
        if (s.silent_degrade) {
          ctx.action = Action::kAllow;  // what the client sees; the audit keeps the verdict
        } else {
          ctx.response_headers.insert(ctx.response_headers.end(), visible.begin(), visible.end());
        }
        return FilterStatus::Continue();
      case detect::Action::kThrottle:
        visible.emplace_back("retry-after", std::to_string(s.throttle_retry_after_s));
        return FilterStatus::Reply(429, "rate_limit_error", "throttled_by_policy",
                        "Requests from this account are being throttled (" + v.category +
                            "). Retry later, or contact support to review the account." + quote,
                        std::move(visible));
      case detect::Action::kStepUp:
        return StepUp(ctx, v, quote, std::move(visible));
      case detect::Action::kBlock:
        return FilterStatus::Reply(403, "permission_error", "account_blocked",
                        "This account is blocked (" + v.category +
                            "). Contact support if you believe this is a mistake." + quote,
                        std::move(visible));
    }
    return FilterStatus::Continue();
  }

 private:
  // The step_up_required answer, with the verification URL filled for this subject; the
  // identity service is notified (queued, never waited for).
  FilterStatus StepUp(const RequestContext& ctx, const detect::Verdict& v, const std::string& quote,
                      HeaderList visible) const {
    const auto& s = f_.settings();
    std::string url = stepup::FillVerificationUrl(s.step_up_url, ctx.account_id, ctx.end_user, v.reference);
    if (f_.notifier() != nullptr) {
      f_.notifier()->Notify(stepup::StepUpEvent{ctx.account_id, ctx.end_user, v.reference, v.category,
                                                ctx.request_id, ctx.start_ns, url});
    }
    LocalReply reply{403, "permission_error", "step_up_required",
                     "This account must complete identity verification before it can continue (" + v.category +
                         ")." + (url.empty() ? "" : " Verify at " + url + ".") + quote,
                     std::move(visible), "", url};
    return FilterStatus::Reply(std::move(reply));
  }

  // Response hardening for risky accounts, by the tier's profile: by default no logprobs,
  // shorter answers, no reasoning traces. The backends apply the profile's answer modes.
  void Degrade(RequestContext& ctx) const {
    const auto& s = f_.settings();
    const auto tier = s.tier_hardening.find(ctx.tier);
    const resistance::HardeningProfile& h = tier != s.tier_hardening.end() ? tier->second : s.hardening;
    ctx.hardening = &h;
    auto& b = ctx.body;
    if (h.refuse_logprobs) {
      b.erase("logprobs");
      b.erase("top_logprobs");
      b.erase("prompt_logprobs");  // vLLM's: the prompt tokens' logprobs
    }
    // One answer, sampled: no extra samples to choose from (n, best_of) and no beam search
    // (vLLM), which buy a better answer than the one the subject is allowed.
    b.erase("n");
    b.erase("best_of");
    b.erase("use_beam_search");
    int64_t cap = h.max_tokens > 0 ? h.max_tokens : s.degrade_max_tokens;
    if (ctx.max_tokens > cap) ctx.max_tokens = cap;
    for (const char* k : {"max_tokens", "max_completion_tokens"})
      if (auto* v = b.if_contains(k); v && v->is_int64() && v->as_int64() > cap) *v = cap;
    if (!b.contains("max_tokens") && !b.contains("max_completion_tokens")) b["max_tokens"] = cap;
    ctx.strip_reasoning = h.trace != resistance::TraceMode::kKeep;  // streams drop the trace
  }

  const AnalysisFilterFactory& f_;
};

}  // namespace

AnalysisFilterFactory::AnalysisFilterFactory(detect::Engine* engine, AnalysisSettings settings,
                                             MetricsRegistry* metrics, stepup::StepUpNotifier* notifier)
    : engine_(engine), settings_(std::move(settings)),
      verdicts_(&metrics->AddCounter("moat_analysis_verdicts_total",
                                     "Detection verdicts by action.", {"action"})),
      // No labels: the one histogram is looked up once, not per request.
      judge_seconds_(&metrics
                          ->AddHistogram("moat_detection_duration_seconds",
                                         "Time the detection engine took to judge a request.", {},
                                         {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                          0.0025, 0.005, 0.01, 0.025, 0.1})
                          .With({})),
      notifier_(notifier) {}

std::unique_ptr<Filter> AnalysisFilterFactory::Create() const {
  return std::make_unique<AnalysisFilter>(*this);
}

}  // namespace moat::filters

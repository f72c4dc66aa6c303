#include "detect/detection_settings.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace moat::detect {

std::vector<SettingInfo> ListSettings(DetectionConfig& c) {
  std::vector<SettingInfo> s = {
      // The engine: sums, sequential test, policy.
      {"engine.request_llr_clip", &c.request_llr_clip, "one request's summed evidence is clipped to +-this"},
      {"engine.content_llr_clip", &c.content_llr_clip, "when above 0, the content-reading stages' summed evidence of one request is at most this"},
      {"engine.mixed_share", &c.mixed_share, "campaign share of the mixed sequential alternative (cover traffic)"},
      {"engine.evidence_half_life_hours", &c.evidence_half_life_hours, "half-life of a subject's sequential evidence"},
      {"engine.evidence_cap", &c.evidence_cap, "a subject's sequential evidence is capped to +-this"},
      {"engine.prior_cap", &c.prior_cap, "standing evidence (cohort, linkage, ...) is capped to +-this"},
      {"engine.pool_min_prior", &c.pool_min_prior, "a stage's pool counts when its prior is at least this"},
      {"engine.typical_answer_tokens", &c.typical_answer_tokens, "expected answer tokens of a request (capped by max_tokens, times n)"},
      {"engine.established_hours", &c.established_hours, "age from which an unsuspicious subject feeds the organic baseline"},
      {"engine.established_max_posterior", &c.established_max_posterior, "... if its posterior is at most this"},
      {"engine.established_max_high_share", &c.established_max_high_share, "subjects with this share of campaign-like requests never feed the baseline"},
      {"engine.content_half_life_requests", &c.content_half_life_requests, "a subject's campaign-like share forgets at this pace"},
      {"engine.established_hourly_requests", &c.established_hourly_requests, "... each subject speaking for about this many requests an hour"},
      {"engine.continuation_weight", &c.continuation_weight, "weight of the evidence of a request that goes on with the subject's own conversation"},
      {"engine.continuation_min_shared_words", &c.continuation_min_shared_words, "... when it is a short follow-up or shares at least this many content words with the turn before"},
      {"engine.explain_posterior", &c.explain_posterior, "allowed verdicts carry their evidence from this posterior on"},
      {"policy.restrict_posterior", &c.policy.restrict_posterior, "posterior at which a subject over a budget is restricted"},
      {"policy.release_posterior", &c.policy.release_posterior, "a restricted subject stays restricted above this posterior"},
      {"policy.value_half_life_hours", &c.policy.value_half_life_hours, "half-life of the suspected distillation value (the budget window)"},
      {"policy.min_requests_for_pool", &c.policy.min_requests_for_pool, "pooled evidence restricts a subject from its n-th request on"},
      {"policy.pool_min_evidence", &c.policy.pool_min_evidence, "own evidence a subject needs before pooled evidence restricts it"},
      {"policy.strong_evidence", &c.policy.strong_evidence, "own evidence from which a subject is held to its tier's evidence budget"},
      {"policy.churn_budget", &c.policy.churn_budget, "suspected value an account whose end users churn may take once its own evidence is strong, whatever its tier"},
      {"policy.churn_budget_return_share", &c.policy.churn_budget_return_share, "share of its requests that may bring an end user back for the churn budget to apply"},
      {"policy.human_gap_s", &c.policy.human_gap_s, "when above 0, only subjects whose mean gap between requests is at least this are held to the evidence budget"},
      {"policy.human_gap_spread", &c.policy.human_gap_spread, "... and whose gaps spread at least this (std of log10 gap)"},
      {"policy.harness_template_share", &c.policy.harness_template_share, "share of a subject's recent requests in one template that makes it a harness"},
      {"policy.harness_known_set_share", &c.policy.harness_known_set_share, "share of a subject's recent requests that are items of one known set that makes it a harness"},
      {"policy.harness_min_requests", &c.policy.harness_min_requests, "requests before the harness test judges a subject (until then every subject gets its harness evidence budget)"},
      {"policy.shared_items_exempt", &c.policy.shared_items_exempt, "items shared with others within the hour that exempt a subject from its evidence budget"},
      {"policy.multi_user_accounts", &c.policy.multi_user_accounts, "end users from which an account is judged per end user (unless they churn)"},
      // Content (families 1-3).
      {"content.weight", &c.content.weight, "multiplies the content model's clipped log-likelihood ratio"},
      {"content.clip", &c.content.clip, "the content model's ratio is trusted up to +this"},
      {"content.jailbreak_clip", &c.content.jailbreak_clip, "... and up to +this when the jailbreak head fires"},
      {"content.clip_low", &c.content.clip_low, "... and down to -this"},
      {"corpus.member_llr", &c.corpus.member_llr, "evidence of a request that is a known public item"},
      {"baseline.max_correction", &c.baseline.max_correction, "most the local organic baseline moves a content ratio"},
      {"cohort.restricted_weight", &c.cohort.restricted_weight, "multiplies a member's evidence from the model of restricted traffic (0: off)"},
      {"cohort.restricted_temper", &c.cohort.restricted_temper, "divides the restricted-to-established naive-Bayes log ratio"},
      {"cohort.restricted_clip", &c.cohort.restricted_clip, "the restricted-traffic evidence is clipped to +-this per request"},
      {"baseline.prior_requests", &c.baseline_data.prior_requests, "weight of the model's organic distribution in the baseline, in requests"},
      {"baseline.half_life_requests", &c.baseline_data.half_life_requests, "the baseline forgets at this pace"},
      {"baseline.high_llr", &c.baseline_data.high_llr, "a request is campaign-like at this content ratio (cohort and account shares)"},
      {"baseline.min_feature_requests", &c.baseline_data.min_feature_requests, "requests before the baseline's feature counts are used"},
      {"baseline.restricted_min_llr", &c.baseline_data.restricted_min_llr, "a restricted subject's request feeds the restricted-traffic model only above this content ratio"},
      {"baseline.feature_alpha", &c.baseline_data.feature_alpha, "smoothing of the baseline's feature counts"},
      // Cohorts (family 5).
      {"cohort.window_hours", &c.cohort.window_hours, "first-seen window of a cohort"},
      {"cohort.young_hours", &c.cohort.young_hours, "subjects older than this belong to no cohort"},
      {"cohort.graduate_hours", &c.cohort.graduate_hours, "an account this old that was unsuspicious at a verdict leaves its cohort's judgement (0: never)"},
      {"cohort.half_life_hours", &c.cohort.half_life_hours, "a cohort's counts decay"},
      {"cohort.min_members", &c.cohort.min_members, "distinct subjects before a cohort is tested"},
      {"cohort.z_threshold", &c.cohort.z_threshold, "one-sided z of the cohort shift test"},
      {"cohort.max_share", &c.cohort.max_share, "cap of the mixture estimate of a cohort's campaign share"},
      {"cohort.min_campaign_excess", &c.cohort.min_campaign_excess, "the binomial test takes campaigns' campaign-like share at least the baseline's plus this"},
      {"cohort.base_share", &c.cohort.base_share, "campaign share the tier priors assume"},
      {"cohort.weight", &c.cohort.weight, "multiplies the prior a shifted cohort gives its members"},
      {"cohort.prior_max_share", &c.cohort.prior_max_share, "the cohort prior uses at most this campaign share"},
      {"cohort.machine_gap_s", &c.cohort.machine_gap_s, "mean gap below which a subject is machine-paced (no cohort prior where its tier's machines_judged_alone)"},
      {"cohort.nb_temper", &c.cohort.nb_temper, "divides the cohort-vs-baseline naive-Bayes log ratio"},
      {"cohort.attribution_weight", &c.cohort.attribution_weight, "multiplies a member request's attribution evidence"},
      {"cohort.attribution_clip", &c.cohort.attribution_clip, "attribution evidence is clipped to +-this"},
      {"cohort.attribution_min_share", &c.cohort.attribution_min_share, "campaign share the attribution assumes at least (limits the noise it amplifies)"},
      {"cohort.min_cohort_features", &c.cohort.min_cohort_features, "feature counts before a cohort's prompts are modelled"},
      {"cohort.nb_alpha", &c.cohort.nb_alpha, "smoothing of a cohort's feature counts"},
      {"cohort.feature_shift", &c.cohort.feature_shift, "mean per-feature log ratio (cohort's own model over the baseline's) that shifts a cohort (0: no feature test)"},
      {"cohort.feature_full_shift", &c.cohort.feature_full_shift, "feature-test mean at which a cohort's campaign share estimate reaches 1"},
      {"cohort.feature_min_members", &c.cohort.feature_min_members, "distinct subjects before the feature test applies"},
      {"cohort.feature_min_requests", &c.cohort.feature_min_requests, "measured requests before the feature test applies"},
      {"cohort.feature_attribution_clip", &c.cohort.feature_attribution_clip, "attribution_clip in a cohort the feature test (not the binomial one) shifted"},
      {"cohort.feature_requests_per_member", &c.cohort.feature_requests_per_member, "a member's first this many requests measure the feature test"},
      // Work queues (family 6).
      {"workqueue.diffuse_llr", &c.workqueue.diffuse_llr, "evidence of an item unrelated subjects asked before (x content/3)"},
      {"workqueue.dense_llr", &c.workqueue.dense_llr, "evidence of an item shared with known co-askers"},
      {"workqueue.popular_llr", &c.workqueue.popular_llr, "evidence of an item others asked minutes ago"},
      {"workqueue.vouched_diffuse_weight", &c.workqueue.vouched_diffuse_weight, "multiplies the diffuse evidence of an item an established subject asked before"},
      {"workqueue.min_content_llr", &c.workqueue.min_content_llr, "shared items count only for content at least this campaign-like"},
      {"workqueue.fresh_minutes", &c.workqueue.fresh_minutes, "an item asked within this many minutes is fresh"},
      {"workqueue.crowd_minutes", &c.workqueue.crowd_minutes, "an item fresh_askers others asked within this many minutes is a crowd's: no queue evidence"},
      {"workqueue.fresh_askers", &c.workqueue.fresh_askers, "fresh askers that make an item popular"},
      {"workqueue.machine_gap_s", &c.workqueue.machine_gap_s, "mean gap below which a subject earns no organic credit for shared items"},
      {"workqueue.group_min_items", &c.workqueue.group_min_items, "shared items after which a subject is a group's member"},
      {"workqueue.group_prior", &c.workqueue.group_prior, "standing evidence of a group member"},
      {"workqueue.group_check_items", &c.workqueue.group_check_items, "shared items after which a subject's co-askers must be many for organic credit"},
      {"workqueue.group_min_people", &c.workqueue.group_min_people, "distinct co-askers a subject must have met to keep the organic credit of sharing"},
      {"workqueue.group_min_share", &c.workqueue.group_min_share, "share of its requests a member's shared items must be for the standing evidence to hold on every request"},
      // End users (family 4).
      {"end_users.churn_weight", &c.end_users.churn_weight, "prior of an account whose end users churn"},
      {"end_users.churn_min_users", &c.end_users.churn_min_users, "end users before churn is judged"},
      {"end_users.churn_min_hours", &c.end_users.churn_min_hours, "an account is seen this long before churn is judged"},
      {"end_users.churn_return_share", &c.end_users.churn_return_share, "an account churns when fewer of its end users came back"},
      {"end_users.share_weight", &c.end_users.share_weight, "multiplies an end user's prior from its account's campaign share"},
      {"end_users.share_cap", &c.end_users.share_cap, "the account's (or end-user cohort's) share used for that prior, at most"},
      {"end_users.share_min_requests", &c.end_users.share_min_requests, "account (or end-user cohort) requests before its share is used"},
      {"end_users.window_hours", &c.end_users.window_hours, "end users an account first saw within this many hours form a cohort (0: none)"},
      {"end_users.window_memory_hours", &c.end_users.window_memory_hours, "an end-user cohort's requests are counted this long from its window's start"},
      {"end_users.window_min_members", &c.end_users.window_min_members, "end users an end-user cohort needs before its share is used"},
      {"end_users.window_shift", &c.end_users.window_shift, "log-odds a cohort's share adds over its account's to count as shifted"},
      {"end_users.window_min_evidence", &c.end_users.window_min_evidence, "own evidence at which a shifted end-user cohort's pool restricts a member"},
      // Behaviour and linkage.
      {"behaviour.ip_rotation_weight", &c.behaviour.ip_rotation_weight, "x Ramp(distinct client addresses, 3, 6)"},
      {"behaviour.volume_weight", &c.behaviour.volume_weight, "x Ramp(requests per hour, volume_lo, volume_hi)"},
      {"behaviour.volume_lo", &c.behaviour.volume_lo, "requests per hour where volume starts to count"},
      {"behaviour.volume_hi", &c.behaviour.volume_hi, "requests per hour where volume counts fully"},
      {"behaviour.diversity_weight", &c.behaviour.diversity_weight, "single-turn, every prompt a new skeleton, sustained"},
      {"behaviour.conduct_min", &c.behaviour.conduct_min, "behaviour evidence that makes a subject its own pool"},
      {"behaviour.conduct_llr", &c.behaviour.conduct_llr, "... and adds this to each of its requests"},
      {"policy.jailbreak_value_weight", &c.policy.jailbreak_value_weight, "a jailbreak probe's answer counts this many times its tokens"},
      {"linkage.cap", &c.linkage.cap, "most evidence linkage alone adds"},
      {"linkage.campaign_weight", &c.linkage.campaign_weight, "x linked campaign score, when two kinds of keys are risky"},
  };
  for (int k = 0; k < kNumSignals; ++k) {
    if (c.behaviour.signals[k].weight == 0) continue;
    s.push_back({"behaviour." + std::string(SignalName(k)) + "_weight", &c.behaviour.signals[k].weight,
                 "weight of the signal's rate"});
  }
  for (int k = 0; k < kNumLinkKinds; ++k) {
    s.push_back({"linkage." + std::string(LinkKindName(k)) + "_weight", &c.linkage.kind_weights[k],
                 "weight of a risky key of this kind"});
  }
  for (size_t t = 0; t < c.policy.tiers.size(); ++t) {
    const std::string tier(TierName(static_cast<Tier>(t)));
    s.push_back({"tier." + tier + ".prior_log_odds", &c.policy.tiers[t].prior_log_odds, "the tier's prior log-odds"});
    s.push_back({"tier." + tier + ".subject_budget", &c.policy.tiers[t].subject_budget, "suspected value a subject may take"});
    s.push_back({"tier." + tier + ".pool_budget", &c.policy.tiers[t].pool_budget, "suspected value a pool may take"});
    s.push_back({"tier." + tier + ".evidence_budget", &c.policy.tiers[t].evidence_budget, "suspected value a subject with strong own evidence may take"});
    s.push_back({"tier." + tier + ".harness_evidence_budget", &c.policy.tiers[t].harness_evidence_budget, "... while it looks like an evaluation harness (policy.harness_*)"});
  }
  return s;
}

Status ApplySetting(DetectionConfig& config, std::string_view name, double value) {
  if (!std::isfinite(value)) return InvalidArgumentError("detection setting " + std::string(name) + " must be finite");
  for (SettingInfo& s : ListSettings(config)) {
    if (s.name == name) {
      *s.value = value;
      return Status::Ok();
    }
  }
  return InvalidArgumentError("unknown detection setting '" + std::string(name) + "' (see docs/detection.md)");
}

Status ApplySetting(DetectionConfig& config, std::string_view assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos) return InvalidArgumentError("expected name=value, got '" + std::string(assignment) + "'");
  const std::string value(assignment.substr(eq + 1));
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || end != value.c_str() + value.size()) {
    return InvalidArgumentError("not a number in '" + std::string(assignment) + "'");
  }
  return ApplySetting(config, assignment.substr(0, eq), v);
}

}  // namespace moat::detect

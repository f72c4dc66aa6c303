#pragma once
// The evidence-stage interface of the detection engine (engine.h), in the spirit of a sampler
// chain: each family of evidence is one stage with its own bounded state, that turns what it
// sees of a request into log-likelihood ratios ("campaign" vs "organic") and a reason. The
// engine only sums them, runs each subject's sequential test, and applies the policy; a stage
// can be switched off by configuration (for ablations) and new ones added without touching
// the engine.
//
// Per request the engine calls, in chain order:
//   1. OnRequest   request-level evidence, no subject state involved (no subject lock held);
//                  a stage may annotate the request for later stages (RequestView::content_llr);
//   2. OnSubject   once for the account and, when the request names an end user, once for the
//                  end user, under that subject's lock: standing evidence about the subject
//                  (its prior) and subject-dependent request evidence;
//   3. OnVerdict   after the verdict, for stages that learn from it (no subject lock held).
// Stages must be thread-safe: OnRequest/OnVerdict run concurrently for different requests.
// Lock order: a stage may take its own locks inside OnSubject (subject lock, then stage lock);
// it never calls back into the engine.

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "detect/account_state.h"
#include "detect/campaign_linker.h"
#include "detect/features.h"
#include "moat/detect_engine.h"

namespace moat::detect {

// The account's verification tier, which sets its prior and budgets (engine.h TierPolicy).
enum class Tier : uint8_t { kUnknown = 0, kUnverified, kVerified, kEnterprise, kCount };
// "unverified", "verified", "enterprise"; anything else is kUnknown.
Tier ParseTier(std::string_view name);
std::string_view TierName(Tier tier);

enum class SubjectRole { kAccount, kEndUser };

// What the engine knows about a request while the stages run.
class IndicatorMatcher;  // indicator_evidence.h

struct RequestView {
  RequestView(const RequestEvent& e, const RequestFeatures& f) : event(e), features(f) {}
  const RequestEvent& event;
  const RequestFeatures& features;
  int64_t now_ns = 0;
  Tier tier = Tier::kUnknown;
  double tier_prior_log_odds = 0;  // the policy's prior for the account's tier
  bool tier_vouches_for_end_users = false;  // TierPolicy::vouches_for_end_users of that tier
  bool tier_machines_judged_alone = true;    // TierPolicy::machines_judged_alone of that tier
  uint64_t account_hash = 0;
  uint64_t end_user_hash = 0;  // 0 when the request names no end user
  // The content log-likelihood ratio after the stages that adjust it (content, baseline);
  // later stages read it. Starts at 0.
  float content_llr = 0;
  // Linkage (LinkageStage): the request's link keys, how risky they are, and after the
  // verdict the campaign the subject was linked to (0 none).
  LinkKeys link_keys;
  CampaignLinker::Assessment link;
  uint64_t campaign_root = 0;
  // Shared indicators (IndicatorStage): the set in use for this request, and the key of the
  // indicator the request matched (0 none); matched once, then read for the account and its
  // end user.
  std::shared_ptr<const IndicatorMatcher> indicators;
  uint32_t indicator_match = 0;
};

// What the engine tells a stage about the account while it judges one of the account's end
// users (the account is judged first).
struct AccountSummary {
  bool restricted = false;
  float llr_n = 0, llr_hi = 0;  // its decayed content counters (SubjectState)
  float value = 0;              // suspected distillation value it has taken
  float requests = 0;           // its decayed daily request count
};

// What one stage found, for one subject, in one request.
struct StageEvidence {
  float request_llr = 0;  // evidence carried by this request: summed into the sequential test
  float prior = 0;        // standing log-odds about the subject, relative to its tier's prior
  // A pool this subject belongs to (a shifted cohort, a campaign, a reseller's end users) and
  // the suspected distillation value the pool has taken: the policy restricts a suspicious
  // member once its pool has exceeded the pool budget. 0: none.
  float pool_value = 0;
  // When above 0 and below policy.pool_min_evidence: the own evidence at which this stage's
  // pool (pool_value, not another stage's) restricts the subject (a stage that knows the pool
  // is a specific one: an end user's shifted cohort within its account). 0: the policy's.
  float pool_min_evidence = 0;
  int reason = -1;        // index into the stage's ReasonNames(); -1 none
};

// Everything decided about one request, for the stages that learn from verdicts.
struct VerdictFacts {
  Action action = Action::kAllow;
  bool account_restricted = false;
  bool end_user_restricted = false;
  bool account_established = false;  // old enough and unrestricted: a baseline subject
  int64_t account_first_seen_ns = 0;
  float account_daily_requests = 0;  // its decayed request count (24 h half-life)
  float account_posterior = 0;
  float end_user_posterior = 0;
  float value = 0;  // the request's suspected distillation value (tokens x posterior)
};

class EvidenceStage {
 public:
  virtual ~EvidenceStage() = default;
  // Short stable name, used in config ([detection] stages), reasons and reports.
  virtual std::string_view name() const = 0;
  // Names of the reasons this stage reports (StageEvidence::reason indexes it).
  virtual const std::vector<std::string_view>& reason_names() const = 0;
  // True when the stage's per-request evidence is a reading of the prompt's content (the
  // content model, known-corpus membership, the baseline's correction, the cohort's
  // attribution). Such readings are not independent of each other, so the engine clips their
  // sum to DetectionConfig::content_llr_clip before adding the other stages' evidence.
  virtual bool reads_content() const { return false; }

  virtual void OnRequest(RequestView& r, StageEvidence* out) {}
  // `account` is null when judging the account itself.
  virtual void OnSubject(const RequestView& r, SubjectRole role, SubjectState& s,
                         const AccountSummary* account, StageEvidence* out) {}
  virtual void OnVerdict(RequestView& r, const VerdictFacts& facts) {}
};

// The most stages a chain holds (the engine keeps per-stage evidence in fixed arrays).
inline constexpr int kMaxStages = 12;

}  // namespace moat::detect

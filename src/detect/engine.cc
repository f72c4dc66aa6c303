#include "detect/engine.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

namespace moat::detect {
namespace {

constexpr double kHourNs = 3600.0 * 1e9;

// Two decimals, without printf (reasons are formatted for every restricted request).
std::string Fixed2(double x) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::fixed, 2);
  return std::string(buf, r.ptr);
}
std::string Signed2(double x) { return x >= 0 ? "+" + Fixed2(x) : Fixed2(x); }

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// log((e^a + e^b) / 2) without overflow.
double LogMeanExp(double a, double b) {
  const double m = std::max(a, b);
  return m + std::log(0.5 * (std::exp(a - m) + std::exp(b - m)));
}

// Share of a model's held-out campaign requests whose combined ratio reaches `high`.
double CampaignHighShare(const DetectionModel* model, float high) {
  if (model == nullptr) return 0.6;
  double share = 0, total = 0;
  const auto& dist = model->content.campaign_distribution();
  for (int b = 0; b < kLlrBins; ++b) {
    total += dist[b];
    if (LlrBinFloor(b) >= high - 1e-6) share += dist[b];
  }
  return total > 0 ? share / total : 0.6;
}

const char* CategoryOf(RestrictionRule rule) {
  switch (rule) {
    case RestrictionRule::kDenyList: return "account_policy";
    case RestrictionRule::kPoolBudget: return "coordinated_activity";
    default: return "automated_extraction";
  }
}

// The evidence budget of a subject: its tier's, or its tier's harness budget (if larger) while it
// looks like an evaluation harness running one benchmark (its prompts in one template, or items
// of one known set), or has not yet sent enough requests to tell.
double EvidenceBudgetOf(const PolicyConfig& policy, const TierPolicy& tier, const SubjectState& s) {
  // Counted over the requests that voted, so that a subject loaded from an older state file
  // (requests, but no votes yet) is given the benefit of the doubt until it has voted enough.
  const bool harness = s.harness_requests < policy.harness_min_requests ||
                       s.TemplateShare() >= policy.harness_template_share ||
                       s.KnownSetShare() >= policy.harness_known_set_share;
  return harness ? std::max(tier.evidence_budget, tier.harness_evidence_budget) : tier.evidence_budget;
}

// The budget a subject restricted by `rule` spent (its subject budget unless the evidence or
// the churn budget restricted it).
double SpentBudget(const PolicyConfig& policy, const TierPolicy& tier, RestrictionRule rule,
                   double evidence_budget) {
  switch (rule) {
    case RestrictionRule::kEvidenceBudget: return evidence_budget;
    case RestrictionRule::kChurnBudget: return policy.churn_budget;
    default: return tier.subject_budget;
  }
}

}  // namespace

std::string_view RestrictionRuleName(RestrictionRule rule) {
  switch (rule) {
    case RestrictionRule::kNone: return "";
    case RestrictionRule::kSubjectBudget: return "subject_budget";
    case RestrictionRule::kPoolBudget: return "pool_budget";
    case RestrictionRule::kDenyList: return "deny_list";
    case RestrictionRule::kHeld: return "held";
    case RestrictionRule::kEvidenceBudget: return "evidence_budget";
    case RestrictionRule::kChurnBudget: return "churn_budget";
  }
  return "unknown";
}

Tier ParseTier(std::string_view name) {
  if (name == "unverified") return Tier::kUnverified;
  if (name == "verified") return Tier::kVerified;
  if (name == "enterprise") return Tier::kEnterprise;
  return Tier::kUnknown;
}

std::string_view TierName(Tier tier) {
  switch (tier) {
    case Tier::kUnverified: return "unverified";
    case Tier::kVerified: return "verified";
    case Tier::kEnterprise: return "enterprise";
    default: return "unknown";
  }
}

std::array<TierPolicy, static_cast<size_t>(Tier::kCount)> PolicyConfig::DefaultTiers() {
  std::array<TierPolicy, static_cast<size_t>(Tier::kCount)> t{};
  // Budgets are suspected distillation value (answer tokens x posterior) per rolling day.
  // unverified: about a hundred suspicious answers alone, then verify (step-up); five when
  // the subject is human-paced and its own evidence is strong (evidence_budget; the other
  // tiers' evidence budgets equal their subject budgets: a verified or unknown researcher
  // whose harness happens to be slow and irregular is not held to it).
  // unknown (a request that names no tier, e.g. an offline log): judged like an unverified
  // subject, but its own budget fits one public benchmark run (a researcher we know nothing
  // about), and a restriction degrades rather than asks for a verification it cannot do.
  // enterprise: a pool (a shifted cohort, a linked campaign) its suspicious members belong to
  // may take five times what the other tiers' may (at 1,000,000 a campaign that copied the
  // organic tier mix kept its enterprise accounts to the end: docs/detection.md, Tiers); its
  // contract covers its end users, who keep part of its trust.
  t[static_cast<size_t>(Tier::kUnknown)] = {-5.0, 500000, 20000, 500000, Action::kDegrade, false};
  t[static_cast<size_t>(Tier::kUnverified)] = {-5.0, 30000, 20000, 1500, Action::kStepUp, false};
  t[static_cast<size_t>(Tier::kUnverified)].machines_judged_alone = false;
  t[static_cast<size_t>(Tier::kVerified)] = {-6.0, 2000000, 20000, 2000000, Action::kDegrade, false};
  t[static_cast<size_t>(Tier::kEnterprise)] = {-7.0, 20000000, 100000, 20000000, Action::kDegrade, true, true};
  // A subject that looks like an evaluation harness keeps the budget above; the verified tier
  // holds one that does not, once its own evidence is strong, to about ten suspicious answers
  // (docs/detection.md, "The evidence budget").
  for (TierPolicy& tier : t) tier.harness_evidence_budget = tier.evidence_budget;
  t[static_cast<size_t>(Tier::kVerified)].evidence_budget = 3000;
  return t;
}

StatusOr<StageSwitches> StageSwitches::Parse(std::string_view spec) {
  StageSwitches s;
  bool* flags[] = {&s.content, &s.corpus, &s.baseline, &s.cohort, &s.workqueue,
                   &s.end_users, &s.behaviour, &s.linkage};
  constexpr std::string_view kNames[] = {"content", "corpus", "baseline", "cohort", "workqueue",
                                         "end_users", "behaviour", "linkage"};
  const bool subtractive = !spec.empty() && spec.front() == '-';
  if (!subtractive) {
    for (bool* f : flags) *f = spec.empty();
  }
  size_t pos = 0;
  while (pos < spec.size()) {
    size_t comma = spec.find(',', pos);
    if (comma == std::string_view::npos) comma = spec.size();
    std::string_view item = spec.substr(pos, comma - pos);
    pos = comma + 1;
    const bool drop = !item.empty() && item.front() == '-';
    if (drop) item.remove_prefix(1);
    if (item.empty()) continue;
    size_t i = 0;
    while (i < std::size(kNames) && kNames[i] != item) ++i;
    if (i == std::size(kNames)) {
      return InvalidArgumentError("unknown detection stage '" + std::string(item) +
                                  "' (content, corpus, baseline, cohort, workqueue, end_users, behaviour, linkage)");
    }
    *flags[i] = !drop;
  }
  return s;
}

// Manual list entries, by account id. Read on every request, written rarely.
struct DetectionEngine::ListTable {
  mutable std::shared_mutex mu;
  std::unordered_map<std::string, ListEntry> entries;  // GUARDED_BY(mu)
  std::atomic<size_t> size{0};
};

// What Judge found about one subject.
struct DetectionEngine::Judgement {
  double posterior = 0;
  double prior = 0;          // tier prior + standing evidence
  double evidence = 0;       // own sequential evidence
  double value = 0;
  double pool_value = 0;
  double evidence_budget = 0;  // the subject's (EvidenceBudgetOf)
  bool restricted = false;
  RestrictionRule rule = RestrictionRule::kNone;
  int64_t first_seen_ns = 0;
  float daily_requests = 0;
  float hourly_requests = 0;
  float distinct_end_users = 0;
  bool end_users_churn = false;  // a fresh end user on most requests: its end users mean nothing
  bool returning = false;        // an end user on its second request
  AccountSummary summary;
  // Per stage: (log-odds it added for this subject, reason index).
  std::array<float, kMaxStages> contribution{};
  std::array<float, kMaxStages> prior_part{};  // the standing part of each contribution
  std::array<int, kMaxStages> reason{};
};

DetectionEngine::DetectionEngine(DetectionConfig config)
    : config_(std::move(config)),
      model_(config_.model ? config_.model : config_.use_default_model ? DefaultDetectionModel() : nullptr),
      subjects_(config_.max_subjects, config_.store ? config_.store
                                                    : std::make_shared<InMemorySubjectStore>(config_.max_evicted_subjects)),
      lists_(std::make_unique<ListTable>()) {
  std::array<float, kLlrBins> organic{};
  if (model_) organic = model_->content.organic_distribution();
  baseline_ = std::make_shared<OrganicBaseline>(config_.baseline_data, organic,
                                                CampaignHighShare(model_.get(), config_.baseline_data.high_llr));
  const StageSwitches& on = config_.stages;
  if (on.content) stages_.push_back(std::make_unique<ContentStage>(config_.content));
  if (on.corpus) stages_.push_back(std::make_unique<CorpusStage>(config_.corpus));
  if (on.baseline) stages_.push_back(std::make_unique<BaselineStage>(config_.baseline, baseline_));
  if (on.workqueue) {
    auto w = std::make_unique<WorkQueueStage>(config_.workqueue);
    workqueue_ = w.get();
    stages_.push_back(std::move(w));
  }
  if (on.cohort) {
    auto c = std::make_unique<CohortStage>(config_.cohort, baseline_);
    cohort_ = c.get();
    stages_.push_back(std::move(c));
  }
  if (on.end_users) {
    auto e = std::make_unique<EndUserStage>(config_.end_users, baseline_);
    end_users_ = e.get();
    stages_.push_back(std::move(e));
  }
  if (on.behaviour) stages_.push_back(std::make_unique<BehaviourStage>(config_.behaviour));
  if (on.linkage) {
    auto l = std::make_unique<LinkageStage>(config_.linkage);
    linkage_ = l.get();
    stages_.push_back(std::move(l));
  }
  if (config_.indicators) {
    auto i = std::make_unique<IndicatorStage>(config_.indicators);
    indicators_ = i.get();
    stages_.push_back(std::move(i));
  }
}

DetectionEngine::~DetectionEngine() = default;

bool DetectionEngine::SetIndicators(std::shared_ptr<const IndicatorMatcher> indicators) {
  if (indicators_ == nullptr) return false;
  indicators_->Replace(std::move(indicators));
  return true;
}

std::vector<std::string_view> DetectionEngine::stage_names() const {
  std::vector<std::string_view> out;
  for (const auto& s : stages_) out.push_back(s->name());
  return out;
}

ListEntry DetectionEngine::ListOf(const std::string& account) const {
  ListTable& lists = *lists_;
  if (lists.size.load(std::memory_order_relaxed) == 0) return ListEntry::kNone;
  std::shared_lock<std::shared_mutex> lock(lists.mu);
  auto it = lists.entries.find(account);
  return it == lists.entries.end() ? ListEntry::kNone : it->second;
}

std::string DetectionEngine::Reference(const RequestEvent& event, uint64_t subject_hash) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "ref_%016llx",
                static_cast<unsigned long long>(HashCombine(subject_hash, static_cast<uint64_t>(event.time_ns))));
  return buf;
}

DetectionEngine::Judgement DetectionEngine::Judge(RequestView& r, SubjectRole role, const std::string& id,
                                                  uint64_t hash,
                                                  const std::array<StageEvidence, kMaxStages>& request_evidence,
                                                  ListEntry list,
                                                  const AccountSummary* account) {
  Judgement j;
  const TierPolicy& tier = config_.policy.tiers[static_cast<size_t>(r.tier)];
  const RequestFeatures& f = r.features;
  subjects_.With(hash, id, [&](SubjectState& s, bool) {
    const int64_t dt = s.requests == 0 ? 0 : r.now_ns - s.last_seen_ns;
    ObserveRequest(s, f, r.event.client_ip, r.now_ns, config_.decay);
    // A tier change (a verification, or its expiry) ends a held restriction: the subject is
    // judged afresh under its new tier's budgets.
    const bool same_tier = s.tier == static_cast<uint8_t>(r.tier);
    s.tier = static_cast<uint8_t>(r.tier);
    // Content counters: what share of the subject's traffic is campaign-like.
    const float keep = 1.0f - 1.0f / static_cast<float>(config_.content_half_life_requests);
    s.llr_n = s.llr_n * keep + 1.0f;
    s.llr_hi = s.llr_hi * keep + (f.content.combined >= config_.baseline_data.high_llr ? 1.0f : 0.0f);

    std::array<StageEvidence, kMaxStages> sub{};
    double content_llr = 0, other_llr = 0, prior = 0, pool = 0;
    for (size_t i = 0; i < stages_.size(); ++i) {
      stages_[i]->OnSubject(r, role, s, account, &sub[i]);
      (stages_[i]->reads_content() ? content_llr : other_llr) += request_evidence[i].request_llr + sub[i].request_llr;
      prior += sub[i].prior;
      // A pool counts when the stage that names it moved the subject's prior.
      if (sub[i].prior >= config_.pool_min_prior) pool = std::max<double>(pool, sub[i].pool_value);
      j.contribution[i] = request_evidence[i].request_llr + sub[i].request_llr + sub[i].prior;
      j.prior_part[i] = sub[i].prior;
      j.reason[i] = sub[i].reason >= 0 ? sub[i].reason : request_evidence[i].reason;
    }
    double llr = (config_.content_llr_clip > 0 ? std::min(content_llr, config_.content_llr_clip) : content_llr) +
                 other_llr;
    if (f.continues_conversation) llr *= config_.continuation_weight;
    llr = std::clamp(llr, -config_.request_llr_clip, config_.request_llr_clip);
    prior = std::clamp(prior, -config_.prior_cap, config_.prior_cap);

    // The subject's own evidence: two decayed sequential statistics, averaged as likelihoods.
    const float d = DecayFactor(dt, static_cast<int64_t>(config_.evidence_half_life_hours * kHourNs));
    const double cap = config_.evidence_cap;
    s.seq_full = static_cast<float>(std::clamp(s.seq_full * d + llr, -cap, cap));
    s.seq_mixed = static_cast<float>(
        std::clamp(s.seq_mixed * d + std::log1p(config_.mixed_share * std::expm1(llr)), -cap, cap));
    j.evidence = LogMeanExp(s.seq_full, s.seq_mixed);
    j.prior = tier.prior_log_odds + prior;
    j.posterior = Sigmoid(j.prior + j.evidence);

    const float dv = DecayFactor(dt, static_cast<int64_t>(config_.policy.value_half_life_hours * kHourNs));
    const bool probe = f.signal[kContentJailbreak] > 0 && f.content.top_head == kHeadJailbreak;
    const double weight = probe ? config_.policy.jailbreak_value_weight : 1.0;
    s.value = static_cast<float>(s.value * dv + f.expected_answer_tokens * j.posterior * weight);
    j.value = s.value;
    j.pool_value = pool;

    // The policy.
    const PolicyConfig& p = config_.policy;
    // Each pool over the budget restricts at the own evidence its stage asks: policy.pool_min_evidence,
    // or less for a pool that knows it is specific (a shifted cohort of end users).
    bool pool_spent = false;
    for (size_t i = 0; i < stages_.size(); ++i) {
      if (sub[i].prior < config_.pool_min_prior || sub[i].pool_value < tier.pool_budget) continue;
      const double floor = sub[i].pool_min_evidence > 0 ? std::min<double>(p.pool_min_evidence, sub[i].pool_min_evidence)
                                                        : p.pool_min_evidence;
      pool_spent = pool_spent || j.evidence >= floor;
    }
    j.evidence_budget = EvidenceBudgetOf(p, tier, s);
    const bool churns = role == SubjectRole::kAccount && end_users_ != nullptr && end_users_->Churns(s);
    RestrictionRule rule = RestrictionRule::kNone;
    if (list == ListEntry::kDeny) {
      rule = RestrictionRule::kDenyList;
    } else if (list == ListEntry::kAllow) {
      rule = RestrictionRule::kNone;
    } else if (j.posterior >= p.restrict_posterior && s.value >= tier.subject_budget) {
      rule = RestrictionRule::kSubjectBudget;
    } else if (j.posterior >= p.restrict_posterior && j.evidence >= p.strong_evidence &&
               s.value >= j.evidence_budget && s.requests >= 3 &&
               (p.human_gap_s <= 0 ||
                (s.log_gap.mean() >= std::log10(p.human_gap_s) &&
                 s.log_gap.variance() >= p.human_gap_spread * p.human_gap_spread)) &&
               s.items_shared_fresh < p.shared_items_exempt) {
      rule = RestrictionRule::kEvidenceBudget;
    } else if (j.posterior >= p.restrict_posterior && p.churn_budget > 0 && churns &&
               s.returning_end_users <= p.churn_budget_return_share * s.requests &&
               j.evidence >= p.strong_evidence && s.value >= p.churn_budget) {
      rule = RestrictionRule::kChurnBudget;
    } else if (j.posterior >= p.restrict_posterior && pool_spent &&
               s.requests >= p.min_requests_for_pool) {
      rule = RestrictionRule::kPoolBudget;
    } else if (s.pool_pending && j.posterior >= p.release_posterior && pool_spent) {
      rule = RestrictionRule::kPoolBudget;  // was held back only by min_requests_for_pool
    } else if (s.restricted && same_tier && j.posterior >= p.release_posterior) {
      rule = RestrictionRule::kHeld;
    }
    s.pool_pending = rule == RestrictionRule::kNone && j.posterior >= p.restrict_posterior &&
                     pool >= tier.pool_budget && s.requests < p.min_requests_for_pool ? 1 : 0;
    const bool restricted = rule != RestrictionRule::kNone;
    if (rule != RestrictionRule::kHeld) s.restricted_by = static_cast<uint8_t>(rule);
    j.restricted = restricted;
    j.rule = rule == RestrictionRule::kHeld ? static_cast<RestrictionRule>(s.restricted_by) : rule;

    const float score = static_cast<float>(j.posterior);
    const bool changed = restricted != (s.restricted != 0) || std::abs(score - s.score) >= 0.1;
    s.score = score;
    s.peak_score = std::max(s.peak_score, score);
    uint32_t bits = 0;
    for (size_t i = 0; i < stages_.size(); ++i) bits |= (std::abs(j.contribution[i]) >= 0.5 ? 1u : 0u) << i;
    s.reason_bits = bits;
    s.restricted = restricted ? 1 : 0;
    // An account that has been around for cohort.graduate_hours and is unsuspicious now has a
    // history of its own: its first-seen cohort stops judging it, until its own evidence reaches
    // what a pool needs to restrict it (docs/detection.md, "Cohorts").
    if (role == SubjectRole::kAccount && config_.cohort.graduate_hours > 0) {
      if (Unsuspicious(restricted, j.posterior, s.llr_n, s.llr_hi) &&
          r.now_ns - s.first_seen_ns >= config_.cohort.graduate_hours * kHourNs) {
        s.graduated = 1;
      } else if (j.evidence >= p.pool_min_evidence) {
        s.graduated = 0;
      }
    }
    if (changed) s.PushHistory(r.now_ns, score, static_cast<uint8_t>(restricted ? tier.action : Action::kAllow));
    j.first_seen_ns = s.first_seen_ns;
    j.daily_requests = s.n;
    j.hourly_requests = s.n_hour;
    j.distinct_end_users = static_cast<float>(s.end_users.Estimate());
    j.end_users_churn = churns;
    j.returning = role == SubjectRole::kEndUser && s.requests == 2;
    j.summary = {restricted, s.llr_n, s.llr_hi, s.value, s.n};
  });
  return j;
}

Verdict DetectionEngine::Observe(const RequestEvent& event) {
  RequestFeatures f = Extract(event, model_.get(), static_cast<int>(config_.typical_answer_tokens));
  RequestView r{event, f};
  r.now_ns = event.time_ns;
  if (event.time_ns > latest_event_ns_.load(std::memory_order_relaxed) + 1'000'000'000) {
    latest_event_ns_.store(event.time_ns, std::memory_order_relaxed);
  }
  r.tier = ParseTier(event.tier);
  const TierPolicy& tier = config_.policy.tiers[static_cast<size_t>(r.tier)];
  r.tier_prior_log_odds = tier.prior_log_odds;
  r.tier_vouches_for_end_users = tier.vouches_for_end_users;
  r.tier_machines_judged_alone = tier.machines_judged_alone;
  r.account_hash = Hash64(event.account_id);
  std::string end_user_id;
  if (!event.end_user.empty()) {
    end_user_id.reserve(event.account_id.size() + 1 + event.end_user.size());
    end_user_id.append(event.account_id).append("/").append(event.end_user);
    r.end_user_hash = Hash64(end_user_id);
  }
  // Whose conversation a history is. Its turns are not independent evidence when the subject
  // sent them (engine.continuation_weight), so a request with assistant turns counts as going on
  // with the subject's own conversation only when the user turn before its prompt is one the
  // subject sent before (a chat's next turn; each sent prompt vouches for one such request), or
  // it answers a tool after a prompt the subject sent before (an agent's next step). A history
  // made up around a request (a dataset's opener and its answer) was never counted: the request
  // counts in full. Take comes before SeenBefore, so that a prompt repeated as its own earlier
  // turn does not vouch for itself.
  // A next turn must also be about what was said: a short follow-up, or a prompt that shares
  // content words with the turn before (engine.continuation_min_shared_words). A long prompt on
  // another topic is a new question, even in the subject's own conversation: it counts in full,
  // and leaves the earlier prompt's vouching unspent.
  const uint64_t sender = r.end_user_hash != 0 ? r.end_user_hash : r.account_hash;
  const bool next_turn = f.short_follow_up || f.words_shared_with_previous >= config_.continuation_min_shared_words;
  const bool earlier_turn_sent = f.assistant_turns > 0 && next_turn && f.previous_text_hash != f.text_hash &&
                                 recent_prompts_.Take(sender, f.previous_text_hash);
  // An agent's next step resends the user's task with one more tool output: the task counted
  // when the subject first sent it; from then on only the output is new (RecentPrompts). Every
  // request with a prompt is remembered, with a tool output or not.
  const bool agent_step = f.prompt_chars > 0 && recent_prompts_.SeenBefore(sender, f.text_hash) && f.answers_tool;
  if (agent_step) CountToolOutputOnly(&f);
  f.continues_conversation = f.assistant_turns > 0 && (earlier_turn_sent || agent_step);
  // A system message that scores higher than the prompt counts when it differs from the one of
  // the account's last such request: a request hidden there under a plain user carrier is scored
  // from the account's second one on; an app's fixed system prompt (a persona, a tutor's
  // instructions) never is.
  if (f.system_content.combined > f.content.combined) {
    const uint8_t tag = SystemTag(f);
    bool changed = false;
    subjects_.With(r.account_hash, event.account_id, [&](SubjectState& s, bool) {
      changed = s.system_tag != 0 && s.system_tag != tag;
      s.system_tag = tag;
    });
    if (changed) UseCarriedContent(f.system_content, &f);
  }

  std::array<StageEvidence, kMaxStages> req{};
  for (size_t i = 0; i < stages_.size(); ++i) stages_[i]->OnRequest(r, &req[i]);

  const ListEntry list = ListOf(event.account_id);
  const Judgement acc = Judge(r, SubjectRole::kAccount, event.account_id, r.account_hash, req, list, nullptr);
  std::optional<Judgement> eu;
  if (r.end_user_hash != 0) {
    eu = Judge(r, SubjectRole::kEndUser, end_user_id, r.end_user_hash, req, list, &acc.summary);
  }
  // An end user came back: the account's end users are people, not a fresh `user` per request.
  if (eu && eu->returning) {
    subjects_.With(r.account_hash, event.account_id, [](SubjectState& s, bool) {
      if (s.returning_end_users < UINT16_MAX) ++s.returning_end_users;
    });
  }
  // The account's verdict applies to the request unless it serves many end users (who are not
  // a fresh `user` per request).
  bool account_applies = true;
  if (eu && acc.distinct_end_users >= config_.policy.multi_user_accounts) {
    account_applies = acc.end_users_churn || acc.rule == RestrictionRule::kDenyList;
  }
  const Judgement& decider = (eu && (eu->restricted || !(account_applies && acc.restricted))) ? *eu : acc;
  const bool restricted = (account_applies && acc.restricted) || (eu && eu->restricted);

  Verdict v;
  v.action = restricted ? (decider.rule == RestrictionRule::kDenyList ? Action::kBlock : tier.action) : Action::kAllow;
  v.account_score = decider.posterior;
  v.show_evidence = tier.show_evidence;

  VerdictFacts facts;
  facts.action = v.action;
  facts.account_restricted = account_applies && acc.restricted;
  facts.end_user_restricted = eu && eu->restricted;
  facts.account_posterior = static_cast<float>(acc.posterior);
  facts.end_user_posterior = eu ? static_cast<float>(eu->posterior) : 0.0f;
  facts.account_first_seen_ns = acc.first_seen_ns;
  facts.account_daily_requests = acc.daily_requests;
  facts.value = static_cast<float>(f.expected_answer_tokens * decider.posterior);
  // The baseline learns from the finest subject (an end user is a person too: a coding tool's
  // users define normal for code) that is old enough, unrestricted and unsuspicious.
  const Judgement& finest = eu ? *eu : acc;
  facts.account_established = Unsuspicious(restricted, finest.posterior, finest.summary.llr_n, finest.summary.llr_hi) &&
                              r.now_ns - finest.first_seen_ns >= config_.established_hours * kHourNs;
  // Each established subject speaks for about established_hourly_requests requests an hour, so
  // that a few heavy users (a batch job) do not define normal alone, while a person's
  // conversation counts as it comes (cohorts count their members' requests as they come too).
  if (facts.account_established) {
    const double keep = config_.established_hourly_requests / std::max<double>(1.0, finest.hourly_requests);
    if (keep >= 1.0 || (Mix64(r.account_hash ^ static_cast<uint64_t>(r.now_ns)) % 1024) < keep * 1024) {
      baseline_->Record(f);
    }
  }
  if (restricted && decider.rule != RestrictionRule::kDenyList) {
    baseline_->RecordRestricted(f);
  }
  for (auto& stage : stages_) stage->OnVerdict(r, facts);

  if (r.campaign_root != 0 && linkage_ != nullptr) {
    v.campaign_id = CampaignLinker::CampaignId(r.campaign_root);
    v.campaign_score = r.link.campaign_score;
  }
  if (restricted || decider.posterior >= config_.explain_posterior) {
    v.reasons.push_back("posterior:" + Fixed2(decider.posterior));
    if (restricted) {
      v.category = CategoryOf(decider.rule);
      v.reference = Reference(event, eu ? r.end_user_hash : r.account_hash);
      v.reasons.push_back("rule:" + std::string(RestrictionRuleName(decider.rule)));
      v.reasons.push_back("value:" + std::to_string(static_cast<int64_t>(decider.value)) + "/" +
                          std::to_string(static_cast<int64_t>(SpentBudget(
                              config_.policy, tier, decider.rule, decider.evidence_budget))));
      if (decider.rule == RestrictionRule::kPoolBudget) {
        v.reasons.push_back("pool_value:" + std::to_string(static_cast<int64_t>(decider.pool_value)) + "/" +
                            std::to_string(static_cast<int64_t>(tier.pool_budget)));
      }
      v.reasons.push_back("ref:" + v.reference);
    }
    v.reasons.push_back("evidence:" + Signed2(decider.evidence));
    // The stages' contributions, largest first.
    std::array<int, kMaxStages> order{};
    for (size_t i = 0; i < stages_.size(); ++i) order[i] = static_cast<int>(i);
    std::sort(order.begin(), order.begin() + stages_.size(), [&](int a, int b) {
      return std::abs(decider.contribution[a]) > std::abs(decider.contribution[b]);
    });
    for (size_t k = 0; k < stages_.size(); ++k) {
      const int i = order[k];
      if (std::abs(decider.contribution[i]) < 0.5) break;
      std::string item(stages_[i]->name());
      const auto& names = stages_[i]->reason_names();
      if (decider.reason[i] >= 0 && static_cast<size_t>(decider.reason[i]) < names.size()) {
        item.append(".").append(names[decider.reason[i]]);
      }
      item.append(":").append(Signed2(decider.contribution[i]));
      if (decider.prior_part[i] != 0 && decider.prior_part[i] != decider.contribution[i]) {
        item.append("(prior").append(Signed2(decider.prior_part[i])).append(")");
      }
      v.reasons.push_back(std::move(item));
    }
    if (!v.campaign_id.empty()) v.reasons.push_back("campaign:" + v.campaign_id);
  }
  return v;
}

std::vector<CampaignInfo> DetectionEngine::Campaigns() const {
  return linkage_ != nullptr ? linkage_->linker().Campaigns() : std::vector<CampaignInfo>{};
}

std::vector<CohortInfo> DetectionEngine::Cohorts() const {
  return cohort_ != nullptr ? cohort_->Cohorts() : std::vector<CohortInfo>{};
}

std::optional<AccountReport> DetectionEngine::Account(const std::string& id) const {
  SubjectState s;
  const uint64_t h = Hash64(id);
  if (!subjects_.Read(h, &s)) return std::nullopt;
  AccountReport r;
  r.id = id;
  r.tier = std::string(TierName(static_cast<Tier>(s.tier)));
  r.requests = s.requests;
  r.score = s.score;
  r.peak_score = s.peak_score;
  r.restricted = s.restricted != 0;
  r.restricted_by = r.restricted ? std::string(RestrictionRuleName(static_cast<RestrictionRule>(s.restricted_by))) : "";
  r.rate_per_hour = s.RatePerHour();
  r.distinct_ips = s.DistinctIps();
  r.distinct_prefixes = s.DistinctPrefixes();
  r.distinct_skeletons = s.DistinctSkeletons();
  r.distinct_end_users = s.end_users.Estimate();
  r.evidence = LogMeanExp(s.seq_full, s.seq_mixed);
  r.value = s.value;
  const TierPolicy& tier = config_.policy.tiers[std::min<size_t>(s.tier, config_.policy.tiers.size() - 1)];
  r.budget = r.restricted
                 ? SpentBudget(config_.policy, tier, static_cast<RestrictionRule>(s.restricted_by),
                               EvidenceBudgetOf(config_.policy, tier, s))
                 : tier.subject_budget;
  r.items_spread = s.items_diffuse;
  r.items_shared = s.items_dense;
  r.cohort_graduated = s.graduated != 0;
  for (int k = 0; k < kNumSignals; ++k) r.signal_rates[k] = s.n > 0 ? s.signal[k] / s.n : 0;
  for (int i = 0; i < kScoreHistory; ++i) {
    const ScorePoint& p = s.history[(s.history_pos + i) % kScoreHistory];
    if (p.minute == 0) continue;
    r.history.emplace_back(static_cast<int64_t>(p.minute) * 60, p.score / 255.0);
  }
  for (size_t i = 0; i < stages_.size(); ++i) {
    if (s.reason_bits & (1u << i)) r.reasons.emplace_back(stages_[i]->name());
  }
  if (indicators_ != nullptr && s.indicator != 0) r.indicator = indicators_->Describe(s.indicator);
  if (linkage_ != nullptr) {
    if (const uint64_t root = linkage_->linker().CampaignOf(h); root != 0) {
      r.campaign_id = CampaignLinker::CampaignId(root);
      if (auto info = linkage_->linker().Campaign(root)) {
        for (const auto& m : info->sample_members) {
          if (m != id) r.linked_accounts.push_back(m);
        }
      }
    }
  }
  r.list = ListOf(id);
  r.first_seen_ns = s.first_seen_ns;
  r.last_seen_ns = s.last_seen_ns;
  return r;
}

void DetectionEngine::SetListEntry(const std::string& account, ListEntry entry) {
  ListTable& lists = *lists_;
  std::unique_lock<std::shared_mutex> lock(lists.mu);
  if (entry == ListEntry::kNone) {
    lists.entries.erase(account);
  } else {
    lists.entries[account] = entry;
  }
  lists.size.store(lists.entries.size(), std::memory_order_relaxed);
}

}  // namespace moat::detect

#include "detect/engine.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

namespace moat::detect {
namespace {

std::string Fixed2(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", x);
  return buf;
}

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

// Manual allow/deny entries, by account id. Read on every request, written rarely.
struct DetectionEngine::ListTable {
  mutable std::shared_mutex mu;
  std::unordered_map<std::string, ListEntry> entries;  // GUARDED_BY(mu)
  std::atomic<size_t> size{0};
};

std::array<SignalWeight, kNumSignals> DetectionConfig::DefaultSignalWeights() {
  std::array<SignalWeight, kNumSignals> w{};
  w[kCot] = {4.5, 0.15, 0.4, 3};
  w[kJailbreak] = {5.0, 0.15, 0.4, 2.5};
  w[kHarmful] = {0.8, 0.2, 0.5, 3};
  w[kBenchmark] = {3.5, 0.2, 0.5, 4};
  w[kDistillStyle] = {1.2, 0.3, 0.7, 5};
  w[kLogprobs] = {2.0, 0.05, 0.2, 2};
  w[kMultiSample] = {1.0, 0.2, 0.5, 3};
  w[kLongOutput] = {0.8, 0.3, 0.7, 3};
  w[kReasoningParam] = {1.2, 0.2, 0.5, 2};
  w[kGreedy] = {0.3, 0.5, 0.9, 5};
  w[kSingleTurn] = {0, 0.5, 0.9, 5};
  return w;
}

std::string_view DetectionEngine::EvidenceName(int e) {
  if (e >= kEvSignalBase && e < kNumSignals) return SignalName(e);
  switch (e) {
    case kEvIpRotation: return "ip_rotation";
    case kEvVolume: return "volume";
    case kEvDiversity: return "single_turn_diversity";
    case kEvCampaign: return "campaign";
    case kEvDenyList: return "deny_list";
    default: break;
  }
  if (e >= kEvLinkBase && e < kEvLinkBase + kNumLinkKinds) return LinkKindName(e - kEvLinkBase);
  return "unknown";
}

DetectionEngine::DetectionEngine(DetectionConfig config)
    : config_(std::move(config)),
      subjects_(config_.max_subjects,
                config_.store ? config_.store : std::make_shared<InMemorySubjectStore>()),
      linker_(config_.linker),
      lists_(std::make_unique<ListTable>()) {}

DetectionEngine::~DetectionEngine() = default;

std::string DetectionEngine::SubjectId(const RequestEvent& event) {
  if (event.end_user.empty()) return event.account_id;
  std::string id;
  id.reserve(event.account_id.size() + 1 + event.end_user.size());
  id.append(event.account_id).append("/").append(event.end_user);
  return id;
}

std::array<double, DetectionEngine::kNumEvidence> DetectionEngine::OwnEvidence(
    const SubjectState& s) const {
  std::array<double, kNumEvidence> ev{};
  const double n = s.n;
  for (int k = 0; k < kNumSignals; ++k) {
    const SignalWeight& w = config_.signals[k];
    if (w.weight == 0) continue;
    const double hits = s.signal[k];
    const double rate = hits / (n + 1.5);
    ev[kEvSignalBase + k] = w.weight * Ramp(rate, w.rate_lo, w.rate_hi) * Ramp(hits, 0.5, w.hits_full);
  }
  ev[kEvIpRotation] = config_.ip_rotation_weight * Ramp(s.DistinctIps(), 3, 6);
  ev[kEvVolume] = config_.volume_weight * Ramp(s.RatePerHour(), config_.volume_lo, config_.volume_hi);
  const double single_turn = s.signal[kSingleTurn] / std::max(1.0, n);
  const double novelty = s.DistinctSkeletons() / std::max<double>(1.0, std::min<double>(s.requests, 128));
  ev[kEvDiversity] = config_.diversity_weight * Ramp(single_turn, 0.85, 0.98) *
                     Ramp(novelty, 0.6, 0.9) * Ramp(s.requests, 10, 30);
  return ev;
}

Action DetectionEngine::PolicyAction(double score, bool restricted, size_t campaign_members) const {
  const PolicyConfig& p = config_.policy;
  if (score >= p.block_score) return Action::kBlock;
  if (score >= p.step_up_score && campaign_members >= p.step_up_campaign_members) {
    return Action::kStepUp;
  }
  if (score >= p.degrade_score || (restricted && score >= p.release_score)) return Action::kDegrade;
  if (score >= p.throttle_score) return Action::kThrottle;
  return Action::kAllow;
}

Verdict DetectionEngine::Observe(const RequestEvent& event) {
  const int64_t now = event.time_ns;
  const RequestFeatures f = Extract(event);
  const std::string sid = SubjectId(event);
  const uint64_t h = Hash64(sid);
  const LinkKeys keys = MakeLinkKeys(event, f);
  const CampaignLinker::Assessment link = linker_.Assess(keys, now);

  ListEntry list = ListEntry::kNone;
  {
    ListTable& lists = *lists_;
    if (lists.size.load(std::memory_order_relaxed) > 0) {
      std::shared_lock<std::shared_mutex> lock(lists.mu);
      auto it = lists.entries.find(event.account_id);
      if (it != lists.entries.end()) list = it->second;
    }
  }

  std::array<double, kNumEvidence> ev{};
  Verdict v;
  subjects_.With(h, sid, [&](SubjectState& s, bool) {
    ObserveRequest(s, f, event.client_ip, now, config_.decay);
    ev = OwnEvidence(s);
    double link_sum = 0;
    for (int k = 0; k < kNumLinkKinds; ++k) {
      ev[kEvLinkBase + k] = config_.link_weights[k] * link.risk[k];
      link_sum += ev[kEvLinkBase + k];
    }
    if (link_sum > config_.link_cap) {
      for (int k = 0; k < kNumLinkKinds; ++k) ev[kEvLinkBase + k] *= config_.link_cap / link_sum;
    }
    if (link.risky_kinds >= 2) ev[kEvCampaign] = config_.campaign_weight * link.campaign_score;
    double log_odds = config_.prior_log_odds + (s.restricted ? config_.restricted_bonus : 0.0);
    for (double e : ev) log_odds += e;
    double score = Sigmoid(log_odds);
    Action action = PolicyAction(score, s.restricted != 0, link.campaign_members);
    if (list == ListEntry::kAllow) {
      action = Action::kAllow;
    } else if (list == ListEntry::kDeny) {
      action = Action::kBlock;
      ev[kEvDenyList] = 1;
      score = 1;
    }
    uint32_t bits = 0;
    for (int e = 0; e < kNumEvidence; ++e) bits |= (ev[e] >= 0.25 ? 1u : 0u) << e;
    const bool changed = (action != Action::kAllow) != (s.restricted != 0) ||
                         std::abs(score - s.score) >= 0.1;
    s.score = static_cast<float>(score);
    s.peak_score = std::max(s.peak_score, s.score);
    s.reason_bits = bits;
    s.restricted = action != Action::kAllow;
    if (changed) s.PushHistory(now, s.score, static_cast<uint8_t>(action));
    v.action = action;
    v.account_score = score;
  });

  const bool restricted = v.action != Action::kAllow;
  const uint64_t root = linker_.Record(keys, h, sid, restricted, static_cast<float>(v.account_score),
                                       FeatureBin(f), now);
  const uint64_t campaign = root != 0 ? root : link.campaign_root;
  if (campaign != 0) {
    v.campaign_id = CampaignLinker::CampaignId(campaign);
    v.campaign_score = link.campaign_score;
  }
  if (restricted || v.account_score >= 0.3) {
    v.reasons.push_back("score:" + Fixed2(v.account_score));
    // Evidence items, largest first.
    std::array<int, kNumEvidence> order{};
    for (int e = 0; e < kNumEvidence; ++e) order[e] = e;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return ev[a] > ev[b]; });
    std::string via;
    for (int e : order) {
      if (ev[e] < 0.25) break;
      if (e >= kEvLinkBase && e < kEvLinkBase + kNumLinkKinds) {
        if (!via.empty()) via += ",";
        via += LinkKindName(e - kEvLinkBase);
        continue;
      }
      v.reasons.push_back(std::string(EvidenceName(e)) + ":" + Fixed2(ev[e]));
    }
    if (!via.empty() && campaign != 0) {
      std::string linked = "linked:";
      linker_.AppendSampleMembers(campaign, sid, 3, &linked, &v.campaign_score);
      linked.append(" via ").append(via);
      v.reasons.push_back(std::move(linked));
    } else if (!via.empty()) {
      v.reasons.push_back("shared_keys via " + via);
    }
    if (campaign != 0) v.reasons.push_back("campaign:" + v.campaign_id);
  }
  return v;
}

std::vector<CampaignInfo> DetectionEngine::Campaigns() const { return linker_.Campaigns(); }

std::optional<AccountReport> DetectionEngine::Account(const std::string& id) const {
  SubjectState s;
  const uint64_t h = Hash64(id);
  if (!subjects_.Read(h, &s)) return std::nullopt;
  AccountReport r;
  r.id = id;
  r.requests = s.requests;
  r.score = s.score;
  r.peak_score = s.peak_score;
  r.restricted = s.restricted != 0;
  r.rate_per_hour = s.RatePerHour();
  r.distinct_ips = s.DistinctIps();
  r.distinct_prefixes = s.DistinctPrefixes();
  r.distinct_skeletons = s.DistinctSkeletons();
  for (int k = 0; k < kNumSignals; ++k) r.signal_rates[k] = s.n > 0 ? s.signal[k] / s.n : 0;
  for (int i = 0; i < kScoreHistory; ++i) {
    const ScorePoint& p = s.history[(s.history_pos + i) % kScoreHistory];
    if (p.minute == 0) continue;
    r.history.emplace_back(static_cast<int64_t>(p.minute) * 60, p.score / 255.0);
  }
  for (int e = 0; e < kNumEvidence; ++e) {
    if (s.reason_bits & (1u << e)) r.reasons.emplace_back(EvidenceName(e));
  }
  if (const uint64_t root = linker_.CampaignOf(h); root != 0) {
    r.campaign_id = CampaignLinker::CampaignId(root);
    if (auto info = linker_.Campaign(root)) {
      for (const auto& m : info->sample_members) {
        if (m != id) r.linked_accounts.push_back(m);
      }
    }
  }
  {
    ListTable& lists = *lists_;
    std::shared_lock<std::shared_mutex> lock(lists.mu);
    auto it = lists.entries.find(id);
    if (it != lists.entries.end()) r.list = it->second;
  }
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

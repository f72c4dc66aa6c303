#include "detect/campaign_linker.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "detect/shards.h"

namespace moat::detect {
namespace {

constexpr int kKeyShards = 64;

int PopCount(uint64_t x) { return __builtin_popcountll(x); }

// Linear-counting estimate of the distinct elements hashed into a 128-bit bitmap.
double LinearCount(uint64_t lo, uint64_t hi) {
  const int set = PopCount(lo) + PopCount(hi);
  if (set >= 127) return 128.0 * std::log(128.0);  // saturated: about 620
  return 128.0 * std::log(128.0 / (128.0 - set));
}

void SetBit(std::array<uint64_t, 4>& bm, uint64_t subject_hash) {
  const uint64_t bit = Mix64(subject_hash ^ 0x6a09e667f3bcc909ULL) & 127;
  bm[bit >> 6] |= 1ULL << (bit & 63);
}

// Moves a key's bitmaps forward to `epoch` (current -> previous, previous dropped).
template <typename K>
void RollEpoch(K& k, int64_t epoch) {
  if (k.epoch == epoch) return;
  if (k.epoch + 1 == epoch) {
    k.subjects = {0, 0, k.subjects[0], k.subjects[1]};
    k.flagged = {0, 0, k.flagged[0], k.flagged[1]};
  } else {
    k.subjects = {};
    k.flagged = {};
  }
  k.epoch = epoch;
}

}  // namespace

std::string_view LinkKindName(int kind) {
  static constexpr std::string_view kNames[kNumLinkKinds] = {
      "network", "fingerprint", "template_prefix", "template_suffix", "skeleton"};
  return kind >= 0 && kind < kNumLinkKinds ? kNames[kind] : "unknown";
}

LinkKeys MakeLinkKeys(const RequestEvent& event, const RequestFeatures& f) {
  LinkKeys keys;
  keys.text_hash = f.text_hash;
  keys.content_llr = std::clamp(f.content.combined, -2.0f, 2.0f);
  keys.tokens = static_cast<float>(f.expected_answer_tokens);
  keys.Add(kLinkNetwork, Hash64(NetworkPrefix(event.client_ip), 0x6e6574));
  // Client fingerprint: the tooling an operator reuses across its accounts.
  uint64_t fp = Hash64(event.user_agent, 0x66707231);
  for (const auto& [name, value] : event.headers) {
    if (name.rfind("x-stainless-", 0) == 0 || name == "openai-beta" || name == "x-client-name") {
      fp = HashCombine(fp, HashCombine(Hash64(name), Hash64(value)));
    }
  }
  fp = HashCombine(fp, f.model_hash);
  fp = HashCombine(fp, f.system_hash);
  fp = HashCombine(fp, static_cast<uint64_t>(std::llround(f.temperature * 100 + 1000)));
  fp = HashCombine(fp, static_cast<uint64_t>(f.max_tokens));
  fp = HashCombine(fp, static_cast<uint64_t>(f.n) * 4 + f.stream * 2 + f.reasoning);
  keys.Add(kLinkFingerprint, fp);
  keys.Add(kLinkPrefix, f.prefix_hash);
  keys.Add(kLinkSuffix, f.suffix_hash);
  if (f.prompt_words >= 12 && !f.minhash.empty()) {
    for (int b = 0; b < kLshBands; ++b) keys.Add(kLinkSkeleton, f.minhash.BandKey(b, kLshRows));
  }
  return keys;
}

int FeatureBin(const RequestFeatures& f) {
  int bin = 0;
  for (int h = 0; h < kNumHeads; ++h) {
    if (f.signal[kContentInstruction + h] >= 0.5f) bin |= 1 << h;
  }
  if (f.logprobs || f.max_tokens >= 2048 || f.reasoning || f.n > 1) bin |= 16;
  return bin;
}

double ShiftScore(const std::array<float, kFeatureBins>& counts,
                  const std::array<double, kFeatureBins>& baseline) {
  double total = 0, base_total = 0;
  for (int i = 0; i < kFeatureBins; ++i) {
    total += counts[i];
    base_total += baseline[i];
  }
  if (total < 30 || base_total <= 0) return 0;
  double chi2 = 0;
  for (int i = 0; i < kFeatureBins; ++i) {
    // Smoothed baseline proportion, so empty baseline bins do not explode the statistic.
    const double p = (baseline[i] + 0.5) / (base_total + 0.5 * kFeatureBins);
    const double expected = total * p;
    const double d = counts[i] - expected;
    chi2 += d * d / expected;
  }
  // Wilson-Hilferty: chi-square with df degrees of freedom to an approximate z.
  const double df = kFeatureBins - 1;
  const double z = (std::cbrt(chi2 / df) - (1 - 2 / (9 * df))) / std::sqrt(2 / (9 * df));
  // Effect size (phi^2 = chi2 / N), so that a huge sample alone does not make a shift.
  const double phi2 = chi2 / total;
  return Ramp(z, 3, 6) * Ramp(phi2, 0.2, 1.0);
}

CampaignLinker::CampaignLinker(LinkerConfig config)
    : config_(config), per_shard_keys_(std::max<size_t>(16, config.max_keys / kKeyShards)) {
  for (int i = 0; i < kKeyShards; ++i) key_shards_.push_back(std::make_unique<KeyShard>());
  for (auto& b : baseline_) b.store(0, std::memory_order_relaxed);
}

std::string CampaignLinker::CampaignId(uint64_t root) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "camp-%012llx", static_cast<unsigned long long>(Mix64(root) >> 16));
  return buf;
}

float CampaignLinker::KeyRisk(const KeyStats& k, int64_t now_ns) const {
  const float seeded = KeyShare(k, now_ns, config_.min_flagged_subjects);
  // Seedless: many subjects, campaign-like content on this key.
  if (k.w <= 0 || now_ns / config_.epoch_ns > k.epoch + 1) return seeded;
  if (k.kind >= kLinkPrefix) {
    const int set = PopCount(k.texts);
    const double texts = set >= 63 ? 300.0 : 64.0 * std::log(64.0 / (64.0 - set));
    if (texts < config_.min_template_texts) return seeded;
  }
  const bool shifted = now_ns / config_.epoch_ns == k.epoch + 1;
  const uint64_t lo = shifted ? k.subjects[0] : k.subjects[0] | k.subjects[2];
  const uint64_t hi = shifted ? k.subjects[1] : k.subjects[1] | k.subjects[3];
  const double subjects = LinearCount(lo, hi);
  const double content = Ramp(k.llr_sum / k.w, config_.content_risk_lo, config_.content_risk_hi) *
                         Ramp(subjects, config_.content_min_subjects, config_.content_full_subjects);
  return std::max(seeded, static_cast<float>(content));
}

float CampaignLinker::KeyShare(const KeyStats& k, int64_t now_ns, double min_flagged) const {
  const int64_t epoch = now_ns / config_.epoch_ns;
  if (epoch > k.epoch + 1) return 0;  // nothing recent
  const bool shifted = epoch == k.epoch + 1;  // the stored "current" is now the previous epoch
  const uint64_t slo = shifted ? k.subjects[0] : k.subjects[0] | k.subjects[2];
  const uint64_t shi = shifted ? k.subjects[1] : k.subjects[1] | k.subjects[3];
  const uint64_t flo = shifted ? k.flagged[0] : k.flagged[0] | k.flagged[2];
  const uint64_t fhi = shifted ? k.flagged[1] : k.flagged[1] | k.flagged[3];
  if (k.kind >= kLinkPrefix) {
    // A content key links only as a template: one prompt reused with different content.
    // The same popular prompt sent by many people is not evidence of a shared operator.
    const int set = PopCount(k.texts);
    const double texts = set >= 63 ? 300.0 : 64.0 * std::log(64.0 / (64.0 - set));
    if (texts < config_.min_template_texts) return 0;
  }
  const double flagged = LinearCount(flo, fhi);
  if (flagged < min_flagged) return 0;
  const double subjects = std::max(flagged, LinearCount(slo, shi));
  const float decay = DecayFactor(now_ns - k.last_ns, config_.key_half_life_ns);
  const double w = k.w * decay, wf = k.wf * decay;
  const double subject_ratio = flagged / (subjects + 1.0);
  const double request_ratio = wf / (w + 1.0);
  return static_cast<float>(std::min(subject_ratio, request_ratio));
}

CampaignLinker::Assessment CampaignLinker::Assess(const LinkKeys& keys, int64_t now_ns) const {
  Assessment a;
  float best = 0;
  for (int i = 0; i < keys.count; ++i) {
    KeyShard& s = ShardOf(keys.key[i]);
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(keys.key[i]);
    if (it == s.map.end()) continue;
    const float r = KeyRisk(it->second, now_ns);
    float& slot = a.risk[keys.kind[i]];
    slot = std::max(slot, r);
    if (r >= config_.merge_risk) {
      const float value = it->second.value * DecayFactor(now_ns - it->second.last_ns, config_.key_half_life_ns);
      a.key_value = std::max<double>(a.key_value, value);
    }
    if (r > best && it->second.campaign_root != 0) {
      best = r;
      a.campaign_root = it->second.campaign_root;
    }
  }
  a.risky_kinds = (a.risk[kLinkNetwork] >= config_.merge_risk) +
                  (a.risk[kLinkFingerprint] >= config_.merge_risk) +
                  (std::max({a.risk[kLinkPrefix], a.risk[kLinkSuffix], a.risk[kLinkSkeleton]}) >=
                   config_.merge_risk);
  if (a.campaign_root != 0) {
    std::lock_guard<std::mutex> lock(uf_mu_);
    const uint64_t root = parent_.contains(a.campaign_root) ? Find(a.campaign_root) : 0;
    auto it = campaigns_.find(root);
    if (it != campaigns_.end()) {
      a.campaign_root = root;
      a.campaign_score = ScoreOf(it->second);
      a.campaign_members = it->second.members;
      a.campaign_value = it->second.value;
    } else {
      a.campaign_root = 0;
    }
  }
  return a;
}

void CampaignLinker::PruneKeys(KeyShard& s, int64_t now_ns) {
  // First drop keys idle for two epochs, then the lightest ones, until a quarter is free.
  const size_t target = per_shard_keys_ * 3 / 4;
  boost::unordered::erase_if(s.map, [&](const auto& kv) { return now_ns - kv.second.last_ns > 2 * config_.epoch_ns; });
  for (float limit = 1.5f; s.map.size() > target && limit < 1e9f; limit *= 4) {
    for (auto it = s.map.begin(); it != s.map.end() && s.map.size() > target;) {
      const float w = it->second.w * DecayFactor(now_ns - it->second.last_ns, config_.key_half_life_ns);
      if (w < limit) {
        s.map.erase(it++);  // erasing leaves the other iterators of a flat map valid
      } else {
        ++it;
      }
    }
  }
}

uint64_t CampaignLinker::Find(uint64_t x) const {
  uint64_t root = x;
  for (auto it = parent_.find(root); it != parent_.end() && it->second != root; it = parent_.find(root)) {
    root = it->second;
  }
  // Path compression.
  while (x != root) {
    auto it = parent_.find(x);
    if (it == parent_.end()) break;
    const uint64_t next = it->second;
    it->second = root;
    x = next;
  }
  return root;
}

uint64_t CampaignLinker::Union(uint64_t a, uint64_t b) {
  uint64_t ra = Find(a), rb = Find(b);
  if (ra == rb) return ra;
  const size_t ma = campaigns_[ra].members;
  const size_t mb = campaigns_[rb].members;
  if (ma < mb) std::swap(ra, rb);
  CampaignStats& big = campaigns_[ra];
  CampaignStats& small = campaigns_[rb];
  big.members += small.members;
  big.mass += small.mass;
  big.requests += small.requests;
  big.value += small.value;
  big.first_seen_ns = std::min(big.first_seen_ns, small.first_seen_ns);
  big.last_seen_ns = std::max(big.last_seen_ns, small.last_seen_ns);
  for (int k = 0; k < kNumLinkKinds; ++k) big.links[k] += small.links[k];
  for (int i = 0; i < kFeatureBins; ++i) big.hist[i] += small.hist[i];
  for (auto& m : small.sample) {
    if (big.sample.size() < 16) big.sample.push_back(std::move(m));
  }
  campaigns_.erase(rb);
  parent_[rb] = ra;
  return ra;
}

double CampaignLinker::ScoreOf(const CampaignStats& c) const {
  std::array<double, kFeatureBins> base{};
  for (int i = 0; i < kFeatureBins; ++i) base[i] = static_cast<double>(baseline_[i].load(std::memory_order_relaxed));
  const double shift = ShiftScore(c.hist, base);
  const double aggregate = 1.0 - std::exp(-c.mass / config_.member_scale);
  return 1.0 - (1.0 - aggregate) * (1.0 - 0.5 * shift);
}

uint64_t CampaignLinker::Record(const LinkKeys& keys, uint64_t subject_hash,
                                std::string_view subject_id, bool restricted, float score,
                                float value, int feature_bin, int64_t now_ns) {
  const int64_t epoch = now_ns / config_.epoch_ns;
  // Update the keys and collect the campaigns behind the risky ones.
  std::array<uint64_t, LinkKeys::kMax> roots{};
  std::array<uint8_t, LinkKeys::kMax> root_kinds{};
  int nroots = 0;
  for (int i = 0; i < keys.count; ++i) {
    KeyShard& s = ShardOf(keys.key[i]);
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(keys.key[i]);
    if (it == s.map.end()) {
      if (s.map.size() >= per_shard_keys_) PruneKeys(s, now_ns);
      it = s.map.emplace(keys.key[i], KeyStats{}).first;
      it->second.epoch = epoch;
      it->second.last_ns = now_ns;
      it->second.kind = keys.kind[i];
    }
    KeyStats& k = it->second;
    // Merge through a key when most of its recent subjects were restricted (even one).
    if (restricted && k.campaign_root != 0 && KeyShare(k, now_ns, 0.5) >= config_.merge_risk) {
      roots[nroots] = k.campaign_root;
      root_kinds[nroots] = keys.kind[i];
      ++nroots;
    }
    const float d = DecayFactor(now_ns - k.last_ns, config_.key_half_life_ns);
    RollEpoch(k, epoch);
    k.w = k.w * d + 1.0f;
    k.wf = k.wf * d + (restricted ? 1.0f : 0.0f);
    k.llr_sum = k.llr_sum * d + keys.content_llr;
    k.value = k.value * d + keys.tokens / (1.0f + std::exp(-keys.content_llr));
    k.last_ns = std::max(k.last_ns, now_ns);
    SetBit(k.subjects, subject_hash);
    if (k.kind >= kLinkPrefix) k.texts |= 1ULL << (Mix64(keys.text_hash) & 63);
    if (restricted) SetBit(k.flagged, subject_hash);
  }
  if (!restricted) {
    baseline_[feature_bin & (kFeatureBins - 1)].fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(uf_mu_);
    auto it = parent_.find(subject_hash);
    return it == parent_.end() ? 0 : Find(subject_hash);
  }

  uint64_t root;
  {
    std::lock_guard<std::mutex> lock(uf_mu_);
    auto node = parent_.find(subject_hash);
    if (node == parent_.end()) {
      if (parent_.size() >= config_.max_nodes && now_ns >= next_prune_ns_) {
        PruneCampaigns(now_ns);
        next_prune_ns_ = now_ns + 60'000'000'000LL;
      }
      // Still full of live campaigns: this subject is restricted all the same, only not linked.
      if (parent_.size() >= config_.max_nodes) return 0;
      parent_[subject_hash] = subject_hash;
      CampaignStats& c = campaigns_[subject_hash];
      c.members = 1;
      c.mass = score;
      c.first_seen_ns = now_ns;
      c.sample.emplace_back(subject_id);
    }
    root = Find(subject_hash);
    for (int i = 0; i < nroots; ++i) {
      if (!parent_.contains(roots[i])) continue;
      const uint64_t other = Find(roots[i]);
      if (other == root) continue;
      root = Union(root, other);
      campaigns_[root].links[root_kinds[i]] += 1;
    }
    CampaignStats& c = campaigns_[root];
    c.requests += 1;
    c.value += value;
    c.last_seen_ns = std::max(c.last_seen_ns, now_ns);
    float total = 0;
    for (float h : c.hist) total += h;
    if (total >= 4096) {
      for (float& h : c.hist) h *= 0.5f;
    }
    c.hist[feature_bin & (kFeatureBins - 1)] += 1;
  }
  // Point the keys at the campaign, so later subjects on them are linked to it.
  for (int i = 0; i < keys.count; ++i) {
    KeyShard& s = ShardOf(keys.key[i]);
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(keys.key[i]);
    if (it != s.map.end()) it->second.campaign_root = root;
  }
  return root;
}

void CampaignLinker::PruneCampaigns(int64_t now_ns) {
  for (auto it = campaigns_.begin(); it != campaigns_.end();) {
    it = now_ns - it->second.last_seen_ns > config_.campaign_idle_ns ? campaigns_.erase(it)
                                                                     : std::next(it);
  }
  // Singletons are cheap to rebuild: drop them too if still over the cap.
  if (parent_.size() >= config_.max_nodes) {
    for (auto it = campaigns_.begin(); it != campaigns_.end();) {
      it = it->second.members <= 1 ? campaigns_.erase(it) : std::next(it);
    }
  }
  for (auto it = parent_.begin(); it != parent_.end();) {
    if (campaigns_.contains(Find(it->first))) {
      ++it;
    } else {
      parent_.erase(it++);  // Find only rewrites values; erasing leaves other iterators valid
    }
  }
}

CampaignInfo CampaignLinker::InfoOf(uint64_t root, const CampaignStats& c) const {
  CampaignInfo info;
  info.id = CampaignId(root);
  info.members = c.members;
  info.member_mass = c.mass;
  info.score = ScoreOf(c);
  std::array<double, kFeatureBins> base{};
  for (int i = 0; i < kFeatureBins; ++i) base[i] = static_cast<double>(baseline_[i].load(std::memory_order_relaxed));
  info.shift = ShiftScore(c.hist, base);
  info.requests = c.requests;
  info.value = c.value;
  info.first_seen_ns = c.first_seen_ns;
  info.last_seen_ns = c.last_seen_ns;
  info.links = c.links;
  info.sample_members = c.sample;
  return info;
}

std::vector<CampaignInfo> CampaignLinker::Campaigns() const {
  std::lock_guard<std::mutex> lock(uf_mu_);
  std::vector<CampaignInfo> out;
  for (const auto& [root, c] : campaigns_) {
    if (c.members >= 2) out.push_back(InfoOf(root, c));
  }
  std::sort(out.begin(), out.end(), [](const CampaignInfo& a, const CampaignInfo& b) {
    return a.members != b.members ? a.members > b.members : a.id < b.id;
  });
  return out;
}

std::optional<CampaignInfo> CampaignLinker::Campaign(uint64_t root) const {
  std::lock_guard<std::mutex> lock(uf_mu_);
  if (!parent_.contains(root)) return std::nullopt;
  const uint64_t r = Find(root);
  auto it = campaigns_.find(r);
  if (it == campaigns_.end()) return std::nullopt;
  return InfoOf(r, it->second);
}

bool CampaignLinker::AppendSampleMembers(uint64_t root, std::string_view exclude, size_t max,
                                         std::string* out, double* score) const {
  std::lock_guard<std::mutex> lock(uf_mu_);
  if (!parent_.contains(root)) return false;
  auto it = campaigns_.find(Find(root));
  if (it == campaigns_.end()) return false;
  size_t n = 0;
  for (const std::string& m : it->second.sample) {
    if (n >= max) break;
    if (m == exclude) continue;
    if (n++ > 0) out->push_back(',');
    out->append(m);
  }
  *score = ScoreOf(it->second);
  return true;
}

uint64_t CampaignLinker::CampaignOf(uint64_t subject_hash) const {
  std::lock_guard<std::mutex> lock(uf_mu_);
  return parent_.contains(subject_hash) ? Find(subject_hash) : 0;
}

size_t CampaignLinker::key_count() const {
  return SumOverShards(key_shards_, [](const auto& shard) { return shard.map.size(); });
}

size_t CampaignLinker::node_count() const {
  std::lock_guard<std::mutex> lock(uf_mu_);
  return parent_.size();
}

}  // namespace moat::detect

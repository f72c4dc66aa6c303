#pragma once
// CampaignLinker: cross-account linkage. Requests are hashed into link keys (network prefix,
// client fingerprint, template prefix/suffix, skeleton-MinHash LSH bands); each key keeps
// decayed traffic counts and small distinct-subject bitmaps, so that a key whose recent
// subjects were mostly restricted is "risky" and passes suspicion to new subjects using it.
// Restricted subjects that share risky keys are merged with union-find into campaigns, whose
// score aggregates their members and a window-level chi-square test of the campaign's request
// feature histogram against the organic baseline.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "detect/features.h"
#include "moat/detect_engine.h"

namespace moat::detect {

enum LinkKind : int { kLinkNetwork = 0, kLinkFingerprint, kLinkPrefix, kLinkSuffix, kLinkSkeleton, kNumLinkKinds };

// "network", "fingerprint", "template_prefix", "template_suffix", "skeleton".
std::string_view LinkKindName(int kind);

// The link keys of one request.
struct LinkKeys {
  static constexpr int kMax = 4 + kLshBands;
  std::array<uint64_t, kMax> key{};
  std::array<uint8_t, kMax> kind{};
  int count = 0;
  uint64_t text_hash = 0;  // the prompt's exact text, to tell templates from repeated prompts
  float content_llr = 0;   // the request's content log-likelihood ratio (clipped)
  float tokens = 0;        // its expected answer tokens
  void Add(LinkKind k, uint64_t h) {
    if (h == 0 || count >= kMax) return;
    key[count] = HashCombine(h, static_cast<uint64_t>(k) + 1);
    kind[count] = static_cast<uint8_t>(k);
    ++count;
  }
};

// Derives the link keys of a request: its network prefix, its client fingerprint (user agent,
// SDK headers, model, system prompt, sampling-parameter shape), its template prefix/suffix and
// LSH bands of its skeleton MinHash (only for prompts long enough to have a template).
LinkKeys MakeLinkKeys(const RequestEvent& event, const RequestFeatures& f);

// Bin of a request in the feature histogram used by the distribution-shift test.
int FeatureBin(const RequestFeatures& f);
inline constexpr int kFeatureBins = 32;

// Chi-square shift of `counts` against the baseline proportions: returns a score in [0, 1]
// (0: indistinguishable or too few samples; 1: a strong, large shift). Exposed for tests.
double ShiftScore(const std::array<float, kFeatureBins>& counts,
                  const std::array<double, kFeatureBins>& baseline);

struct CampaignInfo {
  std::string id;                 // "camp-<hex>"
  size_t members = 0;             // restricted subjects merged into it
  double score = 0;               // in [0, 1]
  double member_mass = 0;         // sum of member scores when they joined
  double shift = 0;               // window-level distribution-shift score in [0, 1]
  uint64_t requests = 0;          // restricted requests of its members
  double value = 0;               // suspected distillation value of those requests
  int64_t first_seen_ns = 0, last_seen_ns = 0;
  std::array<uint64_t, kNumLinkKinds> links{};  // merges by link kind
  std::vector<std::string> sample_members;      // up to 16 subject ids
};

struct LinkerConfig {
  size_t max_keys = 1 << 20;          // link keys kept (all shards)
  size_t max_nodes = 1 << 20;         // restricted subjects in the union-find
  int64_t epoch_ns = 6LL * 3600 * 1'000'000'000;          // distinct-subject bitmap epoch
  int64_t key_half_life_ns = 6LL * 3600 * 1'000'000'000;  // traffic counters of a key
  int64_t campaign_idle_ns = 72LL * 3600 * 1'000'000'000; // campaigns idle longer are pruned
  double min_flagged_subjects = 1.8;  // distinct restricted subjects before a key is risky
  double min_template_texts = 3;      // distinct prompts before a content key is a template
  double merge_risk = 0.3;            // key risk needed to merge through it
  double member_scale = 3.0;          // campaign aggregate: 1 - exp(-mass / member_scale)
  // Seedless risk: a key that many subjects use with campaign-like content is risky without any
  // of them restricted: Ramp(mean content llr, lo, hi) * Ramp(distinct subjects, min, full).
  double content_risk_lo = 0.5, content_risk_hi = 1.5;
  double content_min_subjects = 5, content_full_subjects = 20;
};

// Thread-safe. Memory is bounded by max_keys and max_nodes.
class CampaignLinker {
 public:
  explicit CampaignLinker(LinkerConfig config = {});

  struct Assessment {
    std::array<float, kNumLinkKinds> risk{};  // the riskiest key of each kind
    // Independent kinds of risky keys (network, fingerprint, content: the template and
    // skeleton keys of one prompt count once).
    int risky_kinds = 0;
    uint64_t campaign_root = 0;               // campaign behind the riskiest key, 0 none
    double campaign_score = 0;
    size_t campaign_members = 0;
    double campaign_value = 0;                // suspected distillation value it has taken
    double key_value = 0;                     // the largest suspected value on a risky key
  };
  // How risky this request's keys are, given the traffic seen so far.
  Assessment Assess(const LinkKeys& keys, int64_t now_ns) const;

  // Records the request on its keys. When `restricted`, the subject joins (or merges) the
  // campaigns behind its risky keys, adding `value` (the request's suspected distillation
  // value) to the campaign; returns the subject's campaign root (0 if none).
  uint64_t Record(const LinkKeys& keys, uint64_t subject_hash, std::string_view subject_id,
                  bool restricted, float score, float value, int feature_bin, int64_t now_ns);

  std::vector<CampaignInfo> Campaigns() const;
  std::optional<CampaignInfo> Campaign(uint64_t root) const;
  // For verdict reasons, without copying the campaign: appends to *out, comma-separated, up to
  // `max` of the campaign's sample members other than `exclude` (in sample order) and sets
  // *score to the campaign score. Returns false (and touches nothing) when `root` names no
  // live campaign, exactly when Campaign(root) would return nullopt.
  bool AppendSampleMembers(uint64_t root, std::string_view exclude, size_t max, std::string* out,
                           double* score) const;
  // The campaign root of a restricted subject, 0 if none.
  uint64_t CampaignOf(uint64_t subject_hash) const;
  static std::string CampaignId(uint64_t root);
  size_t key_count() const;
  size_t node_count() const;

 private:
  struct KeyStats {
    float w = 0, wf = 0;  // decayed requests, decayed restricted requests
    int64_t last_ns = 0;
    int64_t epoch = 0;
    std::array<uint64_t, 4> subjects{};  // 128-bit bitmaps: [cur lo, cur hi, prev lo, prev hi]
    std::array<uint64_t, 4> flagged{};
    uint64_t campaign_root = 0;
    uint64_t texts = 0;  // 64-bit bitmap of distinct prompt texts seen on the key
    float llr_sum = 0;   // decayed sum of the requests' content llr
    float value = 0;     // decayed suspected value: tokens x sigmoid(content llr)
    uint8_t kind = 0;
  };
  struct KeyShard {
    mutable std::mutex mu;
    boost::unordered_flat_map<uint64_t, KeyStats> map;  // GUARDED_BY(mu)
  };
  struct CampaignStats {
    size_t members = 0;
    double mass = 0;
    uint64_t requests = 0;
    double value = 0;
    int64_t first_seen_ns = 0, last_seen_ns = 0;
    std::array<uint64_t, kNumLinkKinds> links{};
    std::array<float, kFeatureBins> hist{};
    std::vector<std::string> sample;
  };

  // Share of the key's recent subjects (and requests) that were restricted; 0 below
  // min_flagged distinct restricted subjects.
  float KeyShare(const KeyStats& k, int64_t now_ns, double min_flagged) const;
  float KeyRisk(const KeyStats& k, int64_t now_ns) const;
  KeyShard& ShardOf(uint64_t key) const { return *key_shards_[Mix64(key) % key_shards_.size()]; }
  void PruneKeys(KeyShard& s, int64_t now_ns);
  uint64_t Find(uint64_t x) const;  // REQUIRES(uf_mu_)
  uint64_t Union(uint64_t a, uint64_t b);  // REQUIRES(uf_mu_)
  void PruneCampaigns(int64_t now_ns);  // REQUIRES(uf_mu_)
  CampaignInfo InfoOf(uint64_t root, const CampaignStats& c) const;  // REQUIRES(uf_mu_)
  double ScoreOf(const CampaignStats& c) const;  // REQUIRES(uf_mu_)

  LinkerConfig config_;
  size_t per_shard_keys_;
  std::vector<std::unique_ptr<KeyShard>> key_shards_;

  mutable std::mutex uf_mu_;
  mutable boost::unordered_flat_map<uint64_t, uint64_t> parent_;  // GUARDED_BY(uf_mu_)
  std::unordered_map<uint64_t, CampaignStats> campaigns_;    // GUARDED_BY(uf_mu_)
  // When the union-find is full of live campaigns, the next prune waits until this time (a
  // prune reads every node), and new subjects stay unlinked meanwhile.
  int64_t next_prune_ns_ = 0;  // GUARDED_BY(uf_mu_)
  // Feature histogram of unrestricted traffic: the organic baseline of the shift test.
  std::array<std::atomic<uint64_t>, kFeatureBins> baseline_{};
};

}  // namespace moat::detect

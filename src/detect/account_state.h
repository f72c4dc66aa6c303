#pragma once
// Per-subject behavioural state (a subject is an account, or one end user of an account that
// aggregates end users) in fixed-size memory, and the bounded, sharded table that holds the
// live subjects and evicts idle or least-recently-seen ones to a SubjectStore.

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "detect/features.h"
#include "detect/sketches.h"

namespace moat::detect {

// One point of a subject's score history.
struct ScorePoint {
  uint32_t minute = 0;  // minutes since the Unix epoch
  uint8_t score = 0;    // score * 255
  uint8_t action = 0;   // Action
  uint16_t reserved = 0;
};

inline constexpr int kScoreHistory = 8;
inline constexpr size_t kSubjectIdChars = 56;

// Everything the engine remembers about one subject. Fixed size whatever the volume: decayed
// counters, sketches, a 24-bucket diurnal profile and a short score history.
struct SubjectState {
  uint64_t id_hash = 0;
  std::array<char, kSubjectIdChars> id{};  // "account" or "account/end_user", truncated
  int64_t first_seen_ns = 0;
  int64_t last_seen_ns = 0;
  uint32_t requests = 0;                   // lifetime requests (saturating)
  float n = 0;                             // decayed request count (long half-life)
  float n_hour = 0;                        // decayed request count (1 h half-life): the rate
  std::array<float, kNumSignals> signal{}; // decayed sums of each signal's per-request score
  DecayedWelford log_gap;                  // log10 inter-arrival seconds
  HyperLogLog<64> ips;                     // distinct client addresses
  HyperLogLog<64> prefixes;                // distinct network prefixes (/24)
  HyperLogLog<128> skeletons;              // distinct prompt skeletons
  std::array<uint8_t, 24> hours{};         // UTC hour-of-day histogram (halved on overflow)
  float score = 0;                         // last risk score in [0, 1]
  float peak_score = 0;
  uint32_t reason_bits = 0;                // evidence items active at the last verdict
  uint8_t restricted = 0;                  // 1 while the subject is restricted (hysteresis)
  uint8_t list = 0;                        // 0 none, 1 allow-listed, 2 deny-listed
  uint8_t history_pos = 0;
  // Items this subject and another subject asked within the same hour, either way round: it
  // asked what someone had just asked, or someone asked what it had just asked (saturating).
  // A class or a team does this; a work queue hands an item out once per pass.
  uint8_t items_shared_fresh = 0;
  uint64_t campaign_root = 0;              // the campaign this subject was linked to, 0 none
  // Distinct subjects seen asking the same items as this one: a 64-bit linear-counting sketch
  // (one bit per co-asker hash; WorkQueueStage). A class is many people, a campaign that asks
  // each item with a few of its own accounts is a few.
  uint64_t co_asker_sketch = 0;
  // --- Detection v2 (see engine.h): the subject's sequential evidence and extraction value.
  float seq_full = 0;    // decayed sum of per-request log-likelihood ratios (all campaign-like)
  float seq_mixed = 0;   // the same under "a share of its requests is campaign-like" (cover traffic)
  float value = 0;       // suspected distillation value taken: answer tokens x posterior, decayed
  float llr_n = 0;       // decayed requests with content evidence (cohort of end users)
  float llr_hi = 0;      // ... of which campaign-like (content llr above the cohort threshold)
  float items_diffuse = 0;  // items this subject asked that unrelated subjects asked too
  float items_dense = 0;    // items shared with the same few subjects (a class, a team)
  std::array<uint32_t, 4> co_askers{};  // subjects recently seen asking the same items
  uint8_t co_asker_pos = 0;
  uint8_t tier = 0;          // Tier
  uint8_t restricted_by = 0; // the rule that restricted it (RestrictionRule), 0 none
  uint8_t pool_pending = 0;  // over the pool budget before min_requests_for_pool: next time
  uint16_t returning_end_users = 0;  // accounts: end users seen again after their first request
  // Accounts: 1 once the account, at least cohort.graduate_hours old, was unsuspicious at a
  // verdict (the criteria of an established subject); its first-seen cohort no longer judges it
  // (CohortStage). Back to 0 while its own evidence reaches policy.pool_min_evidence.
  uint8_t graduated = 0;
  // Accounts: SystemTag of the system message of the last request whose system message scored
  // higher than its prompt (DetectionEngine::Observe), 0 none.
  uint8_t system_tag = 0;
  uint32_t indicator = 0;    // key of the shared indicator it matched (IndicatorHit::key), 0 none
  HyperLogLog<32> end_users;  // accounts: distinct end users named
  std::array<ScorePoint, kScoreHistory> history{};
  // Intrusive LRU links inside a table shard (slot indices).
  uint32_t lru_prev = 0, lru_next = 0;
  // Whether the subject looks like an evaluation harness running one benchmark, over its last
  // 255 requests or so (the counts halve together); each a Boyer-Moore majority vote:
  //   - its prompts follow one template: 16-bit digests of their first five words, of their
  //     last five, and of their first and last word (RequestFeatures::prefix_hash, suffix_hash,
  //     ends_hash); a prompt without one votes against;
  //   - they are items of one known public set (RequestFeatures::corpus): a request matching
  //     another set votes against, one matching none abstains.
  // A harness renders every item of one benchmark through one template, or sends the items as
  // they are; people, and work queues spoken in a voice across many sets, do neither. (Last in
  // the struct: a state file written before these fields existed loads with them zero,
  // engine_state.cc.)
  std::array<uint16_t, 3> template_candidate{};  // prefix, suffix, ends
  std::array<uint8_t, 3> template_votes{};
  uint16_t known_set_candidate = 0;  // CorpusMatch::corpus + 1, 0 none
  uint8_t known_set_votes = 0;
  uint8_t harness_requests = 0;  // requests the votes are over

  std::string_view IdView() const;
  void SetId(std::string_view subject_id);
  double DistinctIps() const { return ips.Estimate(); }
  double DistinctPrefixes() const { return prefixes.Estimate(); }
  double DistinctSkeletons() const { return skeletons.Estimate(); }
  // Rate over the last hour or so (requests per hour).
  double RatePerHour() const;
  // Paced like a machine: from its second request on, the mean gap between its requests
  // (geometric, decayed) is under `gap_s` seconds.
  bool MachinePaced(double gap_s) const { return requests >= 2 && log_gap.mean() < std::log10(gap_s); }
  // The share of its recent requests in its most common template, as far as the majority votes
  // tell: exact when every request has it, about p for a template in a share p > 1/2 of them
  // in a steady mix, about 1/2 or less when no template holds a majority. 0 before its first
  // request.
  double TemplateShare() const;
  // The share of its recent requests that are items of its most common known set, net of the
  // requests that are items of other sets (a lower bound of that set's share). 0 before its
  // first request.
  double KnownSetShare() const;
  void PushHistory(int64_t now_ns, float score, uint8_t action);
};

// Decay settings of SubjectState counters.
struct DecayConfig {
  int64_t signal_half_life_ns = 24LL * 3600 * 1'000'000'000;  // signal sums and n
  int64_t rate_half_life_ns = 3600LL * 1'000'000'000;         // n_hour
};

// Folds one request into the subject's state (decays first). `ip` is the client address.
void ObserveRequest(SubjectState& s, const RequestFeatures& f, std::string_view ip, int64_t now_ns,
                    const DecayConfig& decay);

// Where evicted subjects go, and where they come back from. Implementations must be
// thread-safe.
class SubjectStore {
 public:
  virtual ~SubjectStore() = default;
  // Keeps an evicted subject.
  virtual void Put(const SubjectState& state) = 0;
  // Moves a kept subject out of the store into *out; returns false if it is not there.
  virtual bool Take(uint64_t id_hash, SubjectState* out) = 0;
  // Copies a kept subject without removing it; returns false if it is not there.
  virtual bool Peek(uint64_t id_hash, SubjectState* out) const = 0;
  // Calls fn on a copy of every kept subject (the engine's state file, DetectionEngine::SaveState).
  virtual void ForEach(const std::function<void(const SubjectState&)>& fn) const = 0;
};

// The default store: an in-memory map, optionally capped (beyond the cap, evicted subjects
// are dropped, oldest first is not tracked: the incoming one is dropped).
class InMemorySubjectStore final : public SubjectStore {
 public:
  explicit InMemorySubjectStore(size_t max_subjects = 4'000'000) : max_(max_subjects) {}
  void Put(const SubjectState& state) override;
  bool Take(uint64_t id_hash, SubjectState* out) override;
  bool Peek(uint64_t id_hash, SubjectState* out) const override;
  void ForEach(const std::function<void(const SubjectState&)>& fn) const override;
  size_t size() const;

 private:
  size_t max_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, SubjectState> map_;  // GUARDED_BY(mu_)
};

// A bounded table of live subjects, sharded by id hash, each shard under its own mutex, with
// least-recently-seen eviction to the store when a shard is full. Thread-safe.
class SubjectTable {
 public:
  // `capacity` live subjects in all; `store` may be null (evicted subjects are then dropped).
  SubjectTable(size_t capacity, std::shared_ptr<SubjectStore> store, int shards = 64);

  // Runs fn(state, created) on the subject's state under its shard lock; the subject is
  // created (or restored from the store) when absent. `created` is true for a new subject.
  void With(uint64_t id_hash, std::string_view id, const std::function<void(SubjectState&, bool)>& fn);
  // Copies the subject's state (from the table or the store); false if unknown.
  bool Read(uint64_t id_hash, SubjectState* out) const;
  // Evicts subjects idle since before `cutoff_ns` to the store; returns how many.
  size_t EvictIdle(int64_t cutoff_ns);
  // Calls fn on every live subject, each under its shard's lock (fn must not call back into the
  // table); ForEachEvicted on every subject of the store.
  void ForEachLive(const std::function<void(const SubjectState&)>& fn) const;
  void ForEachEvicted(const std::function<void(const SubjectState&)>& fn) const;
  // Puts a saved subject back (DetectionEngine::LoadState): live, replacing the subject of the
  // same id hash, as the most recently seen of its shard (a full shard evicts to the store as
  // usual); or into the store.
  void RestoreLive(const SubjectState& saved);
  void RestoreEvicted(const SubjectState& saved);
  size_t size() const;
  size_t capacity() const { return capacity_; }
  uint64_t evictions() const;

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  struct Shard {
    mutable std::mutex mu;
    std::vector<SubjectState> slots;               // GUARDED_BY(mu)
    std::vector<uint32_t> free;                    // GUARDED_BY(mu)
    boost::unordered_flat_map<uint64_t, uint32_t> index;  // GUARDED_BY(mu)
    uint32_t head = kNil, tail = kNil;             // LRU: head most recent. GUARDED_BY(mu)
    uint64_t evictions = 0;                        // GUARDED_BY(mu)
  };
  Shard& ShardOf(uint64_t h) const { return *shards_[Mix64(h) % shards_.size()]; }
  static void Unlink(Shard& s, uint32_t i);
  static void PushFront(Shard& s, uint32_t i);
  void EvictSlot(Shard& s, uint32_t i);

  size_t capacity_;
  size_t per_shard_;
  std::shared_ptr<SubjectStore> store_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace moat::detect

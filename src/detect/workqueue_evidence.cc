#include "detect/workqueue_evidence.h"

#include <atomic>

#include <algorithm>
#include <bit>
#include <cmath>

#include "detect/binary_fields.h"
#include "detect/sketches.h"
#include "detect/shards.h"

namespace moat::detect {
namespace {

constexpr int kShards = 64;
constexpr int64_t kHourNs = 3600LL * 1'000'000'000LL;

// As many matching bands as a known-corpus match (see corpus_index.h for the rates).
constexpr int kMinBandVotes = kCorpusMinBandMatches;

uint32_t AskerId(uint64_t subject_hash) { return static_cast<uint32_t>(Mix64(subject_hash) >> 32) | 1u; }

// The table key of an item's band b: OnSubject and OnVerdict must find the same entries.
uint64_t ItemBandKey(const ItemSketch& item, int b) {
  return HashCombine(static_cast<uint64_t>(b) + 1, item.band[b]);
}

}  // namespace

double DistinctCoAskers(uint64_t sketch) {
  const int bits = std::popcount(sketch);
  if (bits >= 64) return 300;
  return -64.0 * std::log(1.0 - bits / 64.0);
}

WorkQueueStage::WorkQueueStage(WorkQueueStageConfig config)
    : config_(config),
      memory_ns_(config.memory_hours * kHourNs),
      memory_minutes_(static_cast<uint32_t>(config.memory_hours * 60)),
      per_shard_(std::max<size_t>(64, config.max_entries / kShards)) {
  for (int i = 0; i < kShards; ++i) shards_.push_back(std::make_unique<Shard>());
  followed_ = std::make_unique<std::atomic<uint64_t>[]>(kFollowedSlots);
  for (size_t i = 0; i < kFollowedSlots; ++i) followed_[i].store(0, std::memory_order_relaxed);
}

const std::vector<std::string_view>& WorkQueueStage::reason_names() const {
  static const std::vector<std::string_view> kNames = {"items_spread_across_accounts",
                                                       "items_shared_with_a_group"};
  return kNames;
}

void WorkQueueStage::SaveTo(std::string* out) const {
  // Shard by shard: each is locked only to copy its entries.
  std::vector<std::pair<uint64_t, Entry>> copy;
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    copy.insert(copy.end(), shard->map.begin(), shard->map.end());
  }
  PutU64(out, copy.size());
  for (const auto& [key, e] : copy) {
    PutU64(out, key);
    for (uint32_t a : e.askers) PutU32(out, a);
    for (uint32_t m : e.minute) PutU32(out, m);
    PutU64(out, static_cast<uint64_t>(e.last_ns));
    out->push_back(static_cast<char>(e.next | (e.established ? 0x10 : 0)));
  }
}

bool WorkQueueStage::LoadFrom(std::string_view* in) {
  uint64_t n = 0;
  if (!GetU64(in, &n) || n > in->size() / (8 + kEntryBytes)) return false;
  std::vector<std::pair<uint64_t, Entry>> loaded(n);
  for (auto& [key, e] : loaded) {
    uint64_t last = 0;
    bool ok = GetU64(in, &key);
    for (uint32_t& a : e.askers) ok = ok && GetU32(in, &a);
    for (uint32_t& m : e.minute) ok = ok && GetU32(in, &m);
    ok = ok && GetU64(in, &last) && !in->empty();
    if (!ok) return false;
    e.last_ns = static_cast<int64_t>(last);
    const auto last_byte = static_cast<unsigned char>(in->front());
    e.next = static_cast<uint8_t>((last_byte & 0x0f) % kAskers);
    e.established = (last_byte & 0x10) != 0;
    in->remove_prefix(1);
  }
  for (auto& [key, e] : loaded) {
    Shard& shard = ShardOf(Mix64(key));
    std::lock_guard<std::mutex> lock(shard.mu);
    if (shard.map.size() < per_shard_) shard.map[key] = e;
  }
  return true;
}

size_t WorkQueueStage::entries() const {
  return SumOverShards(shards_, [](const auto& shard) { return shard.map.size(); });
}

void WorkQueueStage::MakeRoom(Shard& shard, int64_t now_ns) {
  const size_t target = per_shard_ - std::max<size_t>(1, per_shard_ / 8);
  // Idle longer than the memory, then than half of it, a quarter, ... down to a second; past
  // that (a flood within the last second) whichever entries come first.
  for (int64_t idle = memory_ns_; shard.map.size() > target && idle >= 1'000'000'000LL; idle /= 2) {
    boost::unordered::erase_if(shard.map,
                               [&](const auto& e) { return now_ns - e.second.last_ns > idle; });
  }
  for (auto it = shard.map.begin(); it != shard.map.end() && shard.map.size() > target;) {
    shard.map.erase(it++);  // erasing leaves the other iterators of a flat map valid
  }
}

void WorkQueueStage::OnSubject(const RequestView& r, SubjectRole role, SubjectState& s,
                               const AccountSummary*, StageEvidence* out) {
  // The asker is the finest subject: the end user when the request names one.
  if (role == SubjectRole::kAccount && r.end_user_hash != 0) return;
  const uint32_t me = AskerId(role == SubjectRole::kAccount ? r.account_hash : r.end_user_hash);
  const uint32_t now_minute = static_cast<uint32_t>(r.now_ns / 60'000'000'000LL);
  // Was this subject followed since its last request? (Counted once per following.)
  {
    std::atomic<uint64_t>& slot = followed_[me & (kFollowedSlots - 1)];
    uint64_t seen = slot.load(std::memory_order_relaxed);
    if (seen >> 32 == me && now_minute - static_cast<uint32_t>(seen) <= memory_minutes_ &&
        slot.compare_exchange_strong(seen, 0, std::memory_order_relaxed) && s.items_shared_fresh < 255) {
      ++s.items_shared_fresh;
    }
  }
  // Many shared items, always with the same few co-askers: a campaign acting as a class.
  const bool closed_few = s.items_dense >= config_.group_check_items &&
                          DistinctCoAskers(s.co_asker_sketch) < config_.group_min_people;
  // A group's member (a class, a team) stays one: its standing evidence holds on every request,
  // not only on those that repeat the group's items.
  if (!closed_few && s.items_dense >= config_.group_min_items && s.items_shared_fresh >= config_.group_min_items &&
      s.items_dense >= config_.group_min_share * static_cast<double>(s.requests)) {
    out->prior = static_cast<float>(config_.group_prior);
    out->reason = 1;
  }
  const ItemSketch& item = r.features.item;
  if (!item.valid) return;
  // A shared item marks a class or a team only when it is campaign-like (cover traffic drawn from
  // popular prompts would mark every campaign account that uses it) and not a jailbreak template
  // (probing campaigns share those).
  const bool marks_sharing =
      r.features.content.combined >= config_.min_content_llr && r.features.content.top_head != kHeadJailbreak;

  // Other subjects that asked this item: those seen on at least kMinBandVotes of its bands.
  std::array<uint32_t, kCorpusBands * kAskers> cand{};
  std::array<uint8_t, kCorpusBands * kAskers> votes{};
  std::array<uint32_t, kCorpusBands * kAskers> last_minute{};
  int vouched_bands = 0;
  int ncand = 0;
  for (int b = 0; b < kCorpusBands; ++b) {
    const uint64_t key = ItemBandKey(item, b);
    Shard& shard = ShardOf(Mix64(key));
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(key);
    if (it == shard.map.end()) {
      if (shard.map.size() >= per_shard_) MakeRoom(shard, r.now_ns);
      it = shard.map.emplace(key, Entry{}).first;
    }
    Entry& e = it->second;
    if (r.now_ns - e.last_ns > memory_ns_) e = Entry{};
    int mine = -1;
    for (int a = 0; a < kAskers; ++a) {
      const uint32_t asker = e.askers[a];
      if (asker == 0) continue;
      if (asker == me) {
        mine = a;
        continue;
      }
      int k = 0;
      while (k < ncand && cand[k] != asker) ++k;
      if (k == ncand) cand[ncand++] = asker;
      ++votes[k];
      last_minute[k] = std::max(last_minute[k], e.minute[a]);
    }
    if (mine < 0) {
      mine = e.next;
      e.askers[mine] = me;
      e.next = static_cast<uint8_t>((e.next + 1) % kAskers);
    }
    if (e.established) ++vouched_bands;
    e.minute[mine] = now_minute;
    e.last_ns = std::max(e.last_ns, r.now_ns);
  }

  bool any = false, dense = false, vouched = vouched_bands >= kMinBandVotes;
  int fresh = 0;  // other subjects that asked it within fresh_minutes
  int recent = 0;  // ... within crowd_minutes
  for (int k = 0; k < ncand; ++k) {
    if (votes[k] < kMinBandVotes) continue;
    any = true;
    s.co_asker_sketch |= uint64_t{1} << (Mix64(cand[k]) & 63);
    if (now_minute - last_minute[k] <= config_.crowd_minutes) ++recent;
    if (now_minute - last_minute[k] <= config_.fresh_minutes) {
      ++fresh;
      if (marks_sharing) {
        followed_[cand[k] & (kFollowedSlots - 1)].store(static_cast<uint64_t>(cand[k]) << 32 | now_minute,
                                                        std::memory_order_relaxed);
      }
    }
    const bool known = std::find(s.co_askers.begin(), s.co_askers.end(), cand[k]) != s.co_askers.end();
    dense = dense || known;
    if (!known) {
      s.co_askers[s.co_asker_pos] = cand[k];
      s.co_asker_pos = static_cast<uint8_t>((s.co_asker_pos + 1) % s.co_askers.size());
    }
  }
  // Renditions of one item share some bands each; their mean count over the item's bands says
  // how often it was asked lately.
  if (!any) return;
  const bool popular = fresh >= config_.fresh_askers;
  // Only shared *campaign-like* items say something: cover traffic made of popular organic
  // prompts earns no credit.
  const float content = r.features.content.combined;
  if (marks_sharing && fresh > 0 && s.items_shared_fresh < 255) {
    ++s.items_shared_fresh;
  }
  if (content < config_.min_content_llr) {
    if (!popular && !dense) s.items_diffuse += 1;
    return;
  }
  // Sharing a jailbreak template with others is how a probing campaign works, not a class.
  if ((dense || popular) && r.features.content.top_head == kHeadJailbreak) return;
  const bool machine_paced = s.MachinePaced(config_.machine_gap_s);
  if ((dense || popular) && !machine_paced) {
    s.items_dense += 1;
    if (closed_few) return;  // no evidence either way
    out->request_llr = static_cast<float>(popular ? config_.popular_llr : config_.dense_llr);
    if (s.items_dense >= config_.group_min_items) out->prior = static_cast<float>(config_.group_prior);
    out->reason = 1;
    return;
  }
  // Asked by someone else minutes ago, but not (yet) by a crowd: a classmate as likely as a
  // queue; no evidence either way. (Measured: counting these as organic, or crediting a subject
  // that others follow, lets campaigns whose accounts share items through, e.g. mimic leakage
  // 24% -> 39-81% on default seed 1; docs/detection.md.)
  if (fresh > 0) return;
  // Asked by a crowd within the last hours (not a queue's single hand-out): no evidence either way.
  if (recent >= config_.fresh_askers) return;
  s.items_diffuse += 1;
  const double weight = vouched ? config_.vouched_diffuse_weight : 1.0;
  if (weight <= 0) return;
  out->request_llr = static_cast<float>(weight * config_.diffuse_llr * std::min(1.0f, content / 3.0f));
  if (out->prior == 0) out->reason = 0;
}

void WorkQueueStage::OnVerdict(RequestView& r, const VerdictFacts& facts) {
  const ItemSketch& item = r.features.item;
  if (!facts.account_established || !item.valid) return;
  // The item keeps the mark while anyone asks it within memory_hours (OnSubject resets an
  // entry nobody asked for that long).
  for (int b = 0; b < kCorpusBands; ++b) {
    const uint64_t key = ItemBandKey(item, b);
    Shard& shard = ShardOf(Mix64(key));
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(key);
    if (it == shard.map.end()) continue;
    Entry& e = it->second;
    e.established = true;
  }
}

}  // namespace moat::detect

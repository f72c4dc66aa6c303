#pragma once
// Work-queue evidence (family 6 of docs/detection.md): who else asked the same item.
//
// Every prompt long enough to have an identity is sketched (content-word MinHash bands,
// corpus_index.h); a bounded table remembers, per band, the last few subjects that asked it.
// When a subject asks an item others asked before, the overlap has one of two shapes:
//   diffuse  each of its items was asked by *different* subjects: a work queue handed out
//            across many accounts (and recycled), paraphrased per account;
//   dense    its items were asked by the *same* few subjects again and again: a class doing
//            the same homework, researchers running the same benchmark, a team.
//   popular  other subjects asked it within the hour: a class's homework, a trending question
//            (a work queue hands an item out once per pass, hours apart). Only people earn
//            this credit: a machine-paced subject asking what others asked is a queue worker.
// Diffuse repeats of campaign-like content are evidence of a campaign, unless an established
// subject asked the item too (organic people ask what others asked days ago); dense and popular
// ones are evidence of organic use (except jailbreak templates, which probing campaigns share).
// A subject remembers its last few co-askers to tell dense from diffuse, and a sketch of how
// many distinct ones it met, to tell a class from a few accounts acting as one.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/unordered/unordered_flat_map.hpp>

#include "detect/evidence.h"

namespace moat::detect {

struct WorkQueueStageConfig {
  double diffuse_llr = 1.5;     // evidence of an item seen before with unrelated subjects,
                                // scaled by how campaign-like its content is (content llr / 3)
  double dense_llr = -2.0;      // evidence of a campaign-like item shared with known co-askers
                                // or popular right now
  double popular_llr = -8.0;    // evidence of a campaign-like item many asked within the hour
  double group_min_items = 3;   // shared items after which the subject is a group's member
  double group_prior = -6.0;    // standing evidence of a group member (a class, a team)
  // A member keeps that standing evidence on every request (not only on those repeating the
  // group's items) while it also shared group_min_items items within the hour and shared items
  // are at least this share of its requests: a class works on the same set together, while a
  // sweep's or a queue's accounts overlap now and then.
  double group_min_share = 0.3;
  // A class is many people. A campaign can act as one: a few of its accounts ask each item
  // together, within minutes (the `study-group` scenario). Once a subject has shared
  // group_check_items items, it earns the organic credit of sharing (popular_llr, dense_llr,
  // group_prior) only while it has met at least group_min_people distinct co-askers
  // (SubjectState::co_asker_sketch); a small closed group's shared items count neither way.
  // Measured (docs/detection.md, Work queues): study-group leakage 48-59 % -> 33-40 %, no
  // other scenario moved.
  double group_check_items = 5;
  double group_min_people = 8;
  double min_content_llr = 0.5; // diffuse repeats count only for content at least this campaign-like
  // Multiplies the diffuse evidence of an item that an *established* subject (old enough,
  // unrestricted, unsuspicious: the engine's baseline subjects, VerdictFacts) asked before.
  // Organic people ask what other organic people asked hours or days ago (a famous riddle, a
  // popular homework problem); a work queue's items are asked by the campaign's young accounts.
  // 0: such an item is no evidence either way; 1: it counts as any other diffuse repeat.
  // Measured (docs/detection.md, Work queues): with organic prompts that recur less than the
  // benchmark's own, most organic false positives came from diffuse repeats.
  double vouched_diffuse_weight = 0;
  // An item is "popular" when fresh_askers other subjects asked it within fresh_minutes: a
  // class or a team asks the same things at the same time, a work queue hands an item out once
  // per pass. (Three: distinct items of a templated set can look alike, and campaigns drawing
  // on the same public sets may ask one item twice the same hour.) One hour: a queue recycled
  // by thousands of accounts hands one item out again within a few hours, a class asks it
  // together (measured, docs/detection.md: 240 minutes and -4 took topic-sweep leakage to
  // 16-19% and the stealth reseller's to 25-28%; 60 and -8 give 10-12% and 15-17%).
  double fresh_minutes = 60;
  double fresh_askers = 3;
  // An item that fresh_askers others asked within crowd_minutes (but none within fresh_minutes)
  // is a crowd's, not a work queue's: no evidence either way. People come back to what others
  // asked that afternoon; a queue hands an item out once per pass. Measured (docs/detection.md,
  // Work queues): organic users restricted with --prompt-split all, stealth 18/14/27 -> 16/7/24,
  // stealth-hydra leakage +0.1-0.2 points; 480 minutes costs the hydra 0.9-1.5 points. 0: off.
  double crowd_minutes = 240;
  // A class or a team is people: a subject whose mean gap between requests is below this
  // (machine-paced) earns no organic credit for items others asked too.
  double machine_gap_s = 15;
  int64_t memory_hours = 72;    // how long the table remembers an asker
  size_t max_entries = 1 << 21; // band entries kept (all shards)
};

// Distinct co-askers a SubjectState::co_asker_sketch holds (linear counting over 64 bits: exact
// enough from a few to a few dozen; a full sketch reads as 300).
double DistinctCoAskers(uint64_t sketch);

class WorkQueueStage final : public EvidenceStage {
 public:
  explicit WorkQueueStage(WorkQueueStageConfig config);
  std::string_view name() const override { return "workqueue"; }
  const std::vector<std::string_view>& reason_names() const override;
  void OnSubject(const RequestView& r, SubjectRole role, SubjectState& s, const AccountSummary* account,
                 StageEvidence* out) override;
  // Marks the request's item as asked by an established subject, when the asker is one.
  void OnVerdict(RequestView& r, const VerdictFacts& facts) override;

  size_t entries() const;
  // The item table as bytes (the engine's state file), and back (entries are added to what the
  // table holds, up to its bound); LoadFrom returns false on bytes that do not hold a table,
  // loading nothing.
  void SaveTo(std::string* out) const;
  bool LoadFrom(std::string_view* in);

 private:
  static constexpr int kAskers = 4;
  struct Entry {
    std::array<uint32_t, kAskers> askers{};  // 0: empty slot
    std::array<uint32_t, kAskers> minute{};  // when each asked last (minutes since the epoch)
    int64_t last_ns = 0;
    uint8_t next = 0;          // the slot the next new asker takes
    bool established = false;  // an established subject asked it (VerdictFacts), within the memory
  };
  // `next` and `established` share the last byte (next | 0x10 when established); a file
  // written before `established` existed reads as "no established asker".
  static constexpr size_t kEntryBytes = 2 * kAskers * 4 + 8 + 1;
  struct Shard {
    std::mutex mu;
    boost::unordered_flat_map<uint64_t, Entry> map;  // GUARDED_BY(mu)
  };
  Shard& ShardOf(uint64_t key) { return *shards_[key % shards_.size()]; }
  // Frees an eighth of a full shard at once (entries nobody asked within the memory first,
  // then the least recently asked), so that a flood of new items costs one sweep of the shard
  // per per_shard_/8 new items, not one per item. Call with shard.mu held.
  void MakeRoom(Shard& shard, int64_t now_ns);

  WorkQueueStageConfig config_;
  int64_t memory_ns_;
  uint32_t memory_minutes_;
  size_t per_shard_;
  std::vector<std::unique_ptr<Shard>> shards_;
  // Subjects that someone followed: another subject asked an item within fresh_minutes after
  // them. Slot (asker & mask) holds asker << 32 | minute; a lossy, fixed-size table (a lost
  // entry only loses a subject one count of SubjectState::items_shared_fresh).
  static constexpr size_t kFollowedSlots = 1 << 16;
  std::unique_ptr<std::atomic<uint64_t>[]> followed_;
};

}  // namespace moat::detect

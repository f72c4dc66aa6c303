#pragma once
// GcraLimiter: rate limiting of many independent keys with the generic cell rate algorithm
// (GCRA), exact under concurrency and with memory bounded by a fixed number of keys.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "moat/clock.h"

namespace moat::ratelimit {

// A rate: `per_minute` units per minute, of which at most `burst` may be spent at once.
// per_minute <= 0 means unlimited; burst <= 0 means "burst = per_minute".
struct Rate {
  double per_minute = 0;
  double burst = 0;
  bool unlimited() const { return per_minute <= 0; }
  double effective_burst() const { return burst > 0 ? burst : per_minute; }
};

// GCRA over many keys. Each key keeps one number, its theoretical arrival time (TAT): a cost c
// at time `now` is admitted iff max(TAT, now) + c*T - now <= burst*T, where T = 60s/per_minute.
// State lives in sharded hash maps with one mutex per shard, so each decision is an exact
// read-modify-write. Memory is bounded by max_keys: when a shard is full, entries whose TAT has
// passed (indistinguishable from fresh ones) are dropped first, then those closest to expiry.
// Keys are hashed with SipHash under a per-process random key, so colliding keys cannot be
// crafted; a key is identified by that 64-bit hash, so two live keys share state only with
// probability about n^2/2^65. Thread-safe.
class GcraLimiter {
 public:
  // `clock` must outlive the limiter. max_keys >= 1.
  GcraLimiter(const moat::Clock* clock, size_t max_keys);
  ~GcraLimiter();
  GcraLimiter(const GcraLimiter&) = delete;
  GcraLimiter& operator=(const GcraLimiter&) = delete;

  struct Decision {
    bool allowed;
    // Seconds until the same cost would be admitted; 0 when allowed; +infinity when the cost
    // exceeds the burst and can never be admitted.
    double retry_after_s;
  };

  // Charges `cost` (> 0; may exceed 1, e.g. tokens) to `key` if the rate admits it; a denied
  // request charges nothing. Unlimited rates always admit and keep no state.
  Decision Acquire(std::string_view key, const Rate& rate, double cost);
  // What Acquire would answer now, without charging.
  Decision Peek(std::string_view key, const Rate& rate, double cost) const;
  // Charges `delta` more (> 0, unconditionally, so later requests wait longer) or refunds
  // (< 0; never moves the key's TAT below now, i.e. never creates credit beyond a full burst).
  void Adjust(std::string_view key, const Rate& rate, double delta);
  // One charge of a multi-limiter transaction (see AcquireAll).
  struct BatchItem {
    GcraLimiter* limiter;
    std::string_view key;
    const Rate* rate;
    double cost;
  };
  struct BatchDecision {
    bool allowed;
    size_t refused_index;  // when refused: the refusing item with the longest wait
    double retry_after_s;  // when refused: that longest wait (+infinity: can never fit)
  };
  // Charges every item or none, atomically: locks all the shards involved (in address order, so
  // concurrent batches cannot deadlock), evaluates every item, and commits only if all admit.
  // Items must name distinct (limiter, key) pairs.
  static BatchDecision AcquireAll(std::span<const BatchItem> items);

  // Number of keys with state.
  size_t size() const;
  size_t max_keys() const { return max_keys_; }

 private:
  struct Shard;
  struct Evaluation;
  double Now() const;
  // What charging `cost` to the key with hash `h` would do now. Requires the shard's lock.
  Evaluation Evaluate(Shard& shard, uint64_t h, const Rate& rate, double cost, double now) const;
  // Stores the new TAT of an admitted evaluation. Requires the shard's lock.
  static void Commit(Shard& shard, const Evaluation& e, double now);
  Shard& ShardFor(uint64_t hash) const;
  uint64_t Hash(std::string_view key) const;

  const moat::Clock* const clock_;
  const size_t max_keys_;
  const int64_t epoch_ns_;  // TATs are seconds since epoch_ns_ (keeps doubles precise)
  unsigned char hash_key_[16];  // SipHash key, random per process
  size_t num_shards_ = 0;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace moat::ratelimit

#include "ratelimit/gcra_limiter.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace moat::ratelimit {
namespace {

constexpr size_t kMaxShards = 64;
constexpr size_t kMinKeysPerShard = 16;

// Keys are stored by their 64-bit keyed SipHash: no per-key allocation, and since the hash key
// is secret, two distinct keys share state only by chance (about n^2 / 2^65 for n live keys).
struct IdentityHash {
  size_t operator()(uint64_t h) const noexcept { return static_cast<size_t>(h); }
};

// Seconds per unit of cost and the burst tolerance, in seconds.
struct Params {
  double interval;
  double tolerance;
  double burst;
};

Params ParamsOf(const Rate& rate) {
  double interval = 60.0 / rate.per_minute;
  double burst = rate.effective_burst();
  return {interval, burst * interval, burst};
}

}  // namespace

struct GcraLimiter::Shard {
  mutable std::mutex mu;
  std::unordered_map<uint64_t, double, IdentityHash> tat;  // GUARDED_BY(mu)
  size_t capacity = 0;

  // Makes room for one more entry. Requires mu.
  void MakeRoom(double now) {
    if (tat.size() < capacity) return;
    // Entries whose TAT has passed carry no information: drop them all.
    for (auto it = tat.begin(); it != tat.end();) {
      it = it->second <= now ? tat.erase(it) : std::next(it);
    }
    // Free at least 1/8 of the shard per sweep so the O(n) sweep is amortised over n/8
    // inserts; forget the keys closest to expiry (they lose the least).
    size_t target = capacity - std::max<size_t>(1, capacity / 8);
    if (tat.size() <= target) return;
    std::vector<std::pair<double, uint64_t>> by_tat;
    by_tat.reserve(tat.size());
    for (const auto& [k, v] : tat) by_tat.emplace_back(v, k);
    size_t drop = tat.size() - target;
    std::nth_element(by_tat.begin(), by_tat.begin() + static_cast<ptrdiff_t>(drop - 1),
                     by_tat.end());
    for (size_t i = 0; i < drop; ++i) tat.erase(by_tat[i].second);
  }
};

GcraLimiter::GcraLimiter(const Clock* clock, size_t max_keys)
    : clock_(clock), max_keys_(std::max<size_t>(1, max_keys)), epoch_ns_(clock->NowNanos()) {
  if (sodium_init() < 0) std::abort();  // cannot happen on a supported platform
  randombytes_buf(hash_key_, sizeof(hash_key_));
  static_assert(sizeof(hash_key_) == crypto_shorthash_KEYBYTES);
  size_t n = std::clamp<size_t>(max_keys_ / kMinKeysPerShard, 1, kMaxShards);
  shards_ = std::make_unique<Shard[]>(n);
  for (size_t i = 0; i < n; ++i) shards_[i].capacity = max_keys_ / n;  // sum <= max_keys_
  num_shards_ = n;
}

GcraLimiter::~GcraLimiter() = default;

double GcraLimiter::Now() const {
  return static_cast<double>(clock_->NowNanos() - epoch_ns_) / 1e9;
}

uint64_t GcraLimiter::Hash(std::string_view key) const {
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                   hash_key_);
  uint64_t h;
  std::memcpy(&h, out, sizeof(h));
  return h;
}

GcraLimiter::Shard& GcraLimiter::ShardFor(uint64_t hash) const {
  return shards_[(hash >> 32) % num_shards_];
}

struct GcraLimiter::Evaluation {
  uint64_t hash;
  bool allowed;
  double retry_after_s;
  double new_tat;
};

GcraLimiter::Evaluation GcraLimiter::Evaluate(Shard& shard, uint64_t h, const Rate& rate,
                                              double cost, double now) const {
  const Params p = ParamsOf(rate);
  auto it = shard.tat.find(h);
  const double base = it == shard.tat.end() ? now : std::max(it->second, now);
  const double new_tat = base + cost * p.interval;
  // The relative slack absorbs floating-point rounding of repeated additions; it is far below
  // the cost of one unit for any burst under 1e6.
  if (new_tat - now <= p.tolerance * (1 + 1e-9)) return {h, true, 0, new_tat};
  if (cost > p.burst) return {h, false, std::numeric_limits<double>::infinity(), new_tat};
  return {h, false, new_tat - p.tolerance - now, new_tat};
}

void GcraLimiter::Commit(Shard& shard, const Evaluation& e, double now) {
  auto it = shard.tat.find(e.hash);
  if (it != shard.tat.end()) {
    it->second = e.new_tat;
  } else {
    shard.MakeRoom(now);
    shard.tat.emplace(e.hash, e.new_tat);
  }
}

GcraLimiter::Decision GcraLimiter::Acquire(std::string_view key, const Rate& rate, double cost) {
  if (rate.unlimited() || !(cost > 0)) return {true, 0};
  const uint64_t h = Hash(key);
  Shard& shard = ShardFor(h);
  std::lock_guard lock(shard.mu);
  const double now = Now();
  const Evaluation e = Evaluate(shard, h, rate, cost, now);
  if (e.allowed) Commit(shard, e, now);
  return {e.allowed, e.retry_after_s};
}

GcraLimiter::Decision GcraLimiter::Peek(std::string_view key, const Rate& rate,
                                        double cost) const {
  if (rate.unlimited() || !(cost > 0)) return {true, 0};
  const uint64_t h = Hash(key);
  Shard& shard = ShardFor(h);
  std::lock_guard lock(shard.mu);
  const Evaluation e = Evaluate(shard, h, rate, cost, Now());
  return {e.allowed, e.retry_after_s};
}

GcraLimiter::BatchDecision GcraLimiter::AcquireAll(std::span<const BatchItem> items) {
  struct Slot {
    Shard* shard;
    uint64_t hash;
    double now;
    Evaluation eval;
    bool active;
  };
  std::vector<Slot> slots(items.size());
  std::vector<Shard*> shards;
  shards.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItem& it = items[i];
    slots[i].active = !it.rate->unlimited() && it.cost > 0;
    if (!slots[i].active) continue;
    slots[i].hash = it.limiter->Hash(it.key);
    slots[i].shard = &it.limiter->ShardFor(slots[i].hash);
    shards.push_back(slots[i].shard);
  }
  std::sort(shards.begin(), shards.end(), std::less<Shard*>());
  shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
  for (Shard* s : shards) s->mu.lock();

  BatchDecision d{true, 0, 0};
  for (size_t i = 0; i < items.size(); ++i) {
    Slot& s = slots[i];
    if (!s.active) continue;
    s.now = items[i].limiter->Now();
    s.eval = items[i].limiter->Evaluate(*s.shard, s.hash, *items[i].rate, items[i].cost, s.now);
    if (!s.eval.allowed && (d.allowed || s.eval.retry_after_s > d.retry_after_s)) {
      d = {false, i, s.eval.retry_after_s};
    }
  }
  if (d.allowed) {
    for (const Slot& s : slots) {
      if (s.active) Commit(*s.shard, s.eval, s.now);
    }
  }
  for (auto it = shards.rbegin(); it != shards.rend(); ++it) (*it)->mu.unlock();
  return d;
}

void GcraLimiter::Adjust(std::string_view key, const Rate& rate, double delta) {
  if (rate.unlimited() || delta == 0 || !std::isfinite(delta)) return;
  const Params p = ParamsOf(rate);
  const uint64_t h = Hash(key);
  Shard& shard = ShardFor(h);
  std::lock_guard lock(shard.mu);
  const double now = Now();
  auto it = shard.tat.find(h);
  if (delta > 0) {
    if (it != shard.tat.end()) {
      it->second = std::max(it->second, now) + delta * p.interval;
    } else {
      shard.MakeRoom(now);
      shard.tat.emplace(h, now + delta * p.interval);
    }
    return;
  }
  if (it == shard.tat.end()) return;  // nothing charged that could be refunded
  const double refunded = it->second + delta * p.interval;
  if (refunded <= now) {
    shard.tat.erase(it);  // fully drained: same as a fresh key
  } else {
    it->second = refunded;
  }
}

size_t GcraLimiter::size() const {
  size_t n = 0;
  for (size_t i = 0; i < num_shards_; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].tat.size();
  }
  return n;
}

}  // namespace moat::ratelimit

#include "traffic/per_account_rate_engine.h"

#include <algorithm>
#include <functional>

#include "detect/shards.h"

namespace moat::traffic {

namespace {
constexpr size_t kShards = 16;
}

PerAccountRateEngine::PerAccountRateEngine(PerAccountRateOptions options)
    : options_(options), per_shard_cap_(std::max<size_t>(1, options.max_accounts / kShards)) {
  for (size_t i = 0; i < kShards; ++i) shards_.push_back(std::make_unique<Shard>());
}

uint32_t PerAccountRateEngine::Count(Window& w, int64_t bucket) {
  if (bucket > w.last_bucket) {
    // Clear the buckets that slid out of the hour since the account was last seen.
    int64_t stale = std::min<int64_t>(bucket - w.last_bucket, kBuckets);
    for (int64_t i = 1; i <= stale; ++i) w.counts[(w.last_bucket + i) % kBuckets] = 0;
    w.last_bucket = bucket;
  }
  uint32_t total = 0;
  for (uint32_t c : w.counts) total += c;
  return total;
}

detect::Verdict PerAccountRateEngine::Observe(const detect::RequestEvent& event) {
  Shard& shard = *shards_[std::hash<std::string>()(event.account_id) % kShards];
  const int64_t bucket = event.time_ns / kBucketNs;
  uint32_t count = 0;
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.index.find(event.account_id);
    if (it == shard.index.end()) {
      if (shard.lru.size() >= per_shard_cap_) {
        shard.index.erase(shard.lru.back().account);
        shard.lru.pop_back();
      }
      shard.lru.push_front(Entry{event.account_id, Window{bucket, {}}});
      it = shard.index.emplace(event.account_id, shard.lru.begin()).first;
    } else if (it->second != shard.lru.begin()) {
      shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
    }
    Window& w = it->second->window;
    // Events slightly out of order (HTTP replay) count in the current bucket.
    count = Count(w, std::max(bucket, w.last_bucket)) + 1;
    ++w.counts[w.last_bucket % kBuckets];
  }
  detect::Verdict v;
  v.account_score = std::min(1.0, count / (2.0 * options_.max_requests_per_hour));
  if (count > static_cast<uint32_t>(options_.max_requests_per_hour)) {
    v.action = options_.over_limit_action;
    v.reasons.push_back("per-account rate " + std::to_string(count) + "/h exceeds " +
                        std::to_string(options_.max_requests_per_hour) + "/h");
  }
  return v;
}

size_t PerAccountRateEngine::tracked_accounts() const {
  return detect::SumOverShards(shards_, [](const auto& shard) { return shard.lru.size(); });
}

}  // namespace moat::traffic

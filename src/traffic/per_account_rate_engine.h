#pragma once
// PerAccountRateEngine: the naive baseline detector. It throttles an account while that account
// has sent more than R requests in the last hour, and knows nothing else. Sybil campaigns are
// designed to evade exactly this, which is why it is the benchmark's reference point until the
// behavioural engine (src/detect) exists.

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "moat/detect_engine.h"

namespace moat::traffic {

struct PerAccountRateOptions {
  int max_requests_per_hour = 100;  // R: more than this in a sliding hour is throttled
  // Accounts tracked at once; the least recently seen are forgotten beyond it, which bounds
  // memory under a flood of fresh accounts (about 150 bytes per tracked account).
  size_t max_accounts = 1 << 18;
  detect::Action over_limit_action = detect::Action::kThrottle;
};

// Thread-safe: accounts are sharded, each shard under its own mutex.
class PerAccountRateEngine final : public detect::Engine {
 public:
  explicit PerAccountRateEngine(PerAccountRateOptions options = {});
  detect::Verdict Observe(const detect::RequestEvent& event) override;
  // Accounts currently tracked (<= max_accounts).
  size_t tracked_accounts() const;

 private:
  static constexpr int kBuckets = 12;  // 5-minute buckets: the hour slides in 5-minute steps
  static constexpr int64_t kBucketNs = 300'000'000'000LL;
  struct Window {
    int64_t last_bucket = 0;
    std::array<uint32_t, kBuckets> counts{};
  };
  struct Entry {
    std::string account;
    Window window;
  };
  struct Shard {
    mutable std::mutex mu;
    std::list<Entry> lru;  // front: most recently seen. GUARDED_BY(mu)
    std::unordered_map<std::string, std::list<Entry>::iterator> index;  // GUARDED_BY(mu)
  };
  static uint32_t Count(Window& w, int64_t bucket);

  PerAccountRateOptions options_;
  size_t per_shard_cap_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace moat::traffic

#pragma once
// The sharded tables of the detection state (and of the traffic benchmark's rate engine) are a
// vector of pointers to shards, each guarded by its own mutex `mu`. This is what they share.

#include <mutex>

namespace moat::detect {

// Sums `count(shard)` over every shard, each read under its own lock. Shards change between the
// reads, so the total is a statistic, not a snapshot.
template <typename Shards, typename Count>
auto SumOverShards(const Shards& shards, Count count) -> decltype(count(*shards.front())) {
  decltype(count(*shards.front())) total = 0;
  for (const auto& shard : shards) {
    std::lock_guard lock(shard->mu);
    total += count(*shard);
  }
  return total;
}

}  // namespace moat::detect

// Micro-benchmark of GcraLimiter::Acquire: ns per decision, 1 and 2 threads.
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "ratelimit/gcra_limiter.h"
#include "ratelimit/quota_enforcer.h"

namespace moat::ratelimit {
namespace {

GcraLimiter* SharedLimiter() {
  static GcraLimiter limiter(SystemClock::Get(), 100'000);
  return &limiter;
}

std::vector<std::string> Keys() {
  std::vector<std::string> keys;
  for (int i = 0; i < 10'000; ++i) keys.push_back("acct_" + std::to_string(i));
  return keys;
}

// Many keys (hash lookup + shard lock), generous rate so most requests are admitted.
void BM_AcquireManyKeys(benchmark::State& state) {
  static const std::vector<std::string> keys = Keys();
  GcraLimiter* l = SharedLimiter();
  const Rate rate{1e9, 1e9};
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    benchmark::DoNotOptimize(l->Acquire(keys[i++ % keys.size()], rate, 1));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AcquireManyKeys)->Threads(1)->Threads(2)->UseRealTime();

// One hot key: every thread contends on the same shard mutex.
void BM_AcquireOneKey(benchmark::State& state) {
  GcraLimiter* l = SharedLimiter();
  const Rate rate{1e9, 1e9};
  for (auto _ : state) benchmark::DoNotOptimize(l->Acquire("hot", rate, 1));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AcquireOneKey)->Threads(1)->Threads(2)->UseRealTime();

// A full Reserve over all eight scopes.
void BM_QuotaReserve(benchmark::State& state) {
  static const std::vector<std::string> keys = Keys();
  TierLimits lim;
  lim.key_requests = lim.account_requests = lim.ip_requests = lim.prefix_requests = {1e9, 1e9};
  lim.key_tokens = lim.account_tokens = lim.ip_tokens = lim.prefix_tokens = {1e12, 1e12};
  static QuotaEnforcer q(SystemClock::Get(), {{"verified", lim}}, 100'000);
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    const std::string& k = keys[i++ % keys.size()];
    benchmark::DoNotOptimize(q.Reserve(Subject{k, k, "203.0.113.9", "verified"}, 500));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QuotaReserve)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace moat::ratelimit

BENCHMARK_MAIN();

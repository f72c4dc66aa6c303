#include "watermark/tracer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <thread>

namespace moat::watermark {

std::vector<double> AdjustLogPValues(std::span<const double> log_p, Correction correction) {
  const size_t m = log_p.size();
  std::vector<double> adj(m);
  if (correction == Correction::kBonferroni) {
    for (size_t i = 0; i < m; ++i) adj[i] = std::min(0.0, log_p[i] + std::log(static_cast<double>(m)));
    return adj;
  }
  // Holm step-down: the j-th smallest (0-based) is multiplied by (m - j); keep monotone.
  std::vector<size_t> order(m);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return log_p[a] < log_p[b]; });
  double running = -std::numeric_limits<double>::infinity();
  for (size_t j = 0; j < m; ++j) {
    const double v = std::min(0.0, log_p[order[j]] + std::log(static_cast<double>(m - j)));
    running = std::max(running, v);
    adj[order[j]] = running;
  }
  return adj;
}

TraceReport Trace(const ScoringUnits& units, std::span<const WatermarkKey> keys,
                  const WatermarkConfig& config, const TraceOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  TraceReport report;
  report.keys = static_cast<int64_t>(keys.size());
  report.tokens = units.total_tokens();
  report.scored = units.size();
  const int64_t n = units.size();
  std::vector<int64_t> green(keys.size());
  std::vector<double> log_p(keys.size());
  int threads = options.threads > 0 ? options.threads
                                    : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::max(1, std::min<int>(threads, static_cast<int>(keys.size() / 64 + 1)));
  auto work = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      green[i] = CountGreen(units, GreenList(keys[i], config));
      log_p[i] = LogBinomialUpperTail(n, green[i], config.gamma);
    }
  };
  std::vector<std::thread> pool;
  const size_t chunk = (keys.size() + threads - 1) / threads;
  for (int t = 1; t < threads; ++t) {
    const size_t b = std::min(keys.size(), t * chunk), e = std::min(keys.size(), (t + 1) * chunk);
    pool.emplace_back(work, b, e);
  }
  work(0, std::min(keys.size(), chunk));
  for (auto& th : pool) th.join();

  const std::vector<double> adj = AdjustLogPValues(log_p, options.correction);
  std::vector<size_t> order(keys.size());
  std::iota(order.begin(), order.end(), 0);
  const double log_alpha = std::log(options.alpha);
  for (size_t i = 0; i < keys.size(); ++i) report.significant += adj[i] <= log_alpha ? 1 : 0;
  const size_t show = std::min(keys.size(), std::max<size_t>(options.top, report.significant));
  std::partial_sort(order.begin(), order.begin() + show, order.end(), [&](size_t a, size_t b) {
    return log_p[a] != log_p[b] ? log_p[a] < log_p[b] : keys[a].key_id < keys[b].key_id;
  });
  for (size_t r = 0; r < show; ++r) {
    const size_t i = order[r];
    TraceEntry e;
    e.result = MakeResult(keys[i].key_id, units.total_tokens(), n, green[i], config.gamma);
    e.account = keys[i].account;
    e.epoch = keys[i].epoch;
    e.rank = static_cast<int64_t>(r) + 1;
    e.log_adjusted_p = adj[i];
    e.significant = adj[i] <= log_alpha;
    report.ranked.push_back(std::move(e));
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace moat::watermark

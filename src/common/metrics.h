#pragma once
// A small Prometheus metrics registry: counters, gauges and histograms, optionally labelled.
// Metric families are registered at start-up; label sets are created on first use.
// Updates are lock-free atomics; creating a new label set takes a short lock.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

namespace moat {

class Counter {
 public:
  void Inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void Add(int64_t d) { v_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Cumulative histogram with fixed upper bounds (in the metric's unit, e.g. seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (non-cumulative) counts; the last one is +Inf.
  std::vector<uint64_t> bucket_counts() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micro_{0};  // sum in millionths of the unit
};

// Latency buckets in seconds, 100 us .. 60 s.
std::vector<double> LatencyBuckets();

// A named family of metrics sharing a type and label names, e.g.
// moat_requests_total{endpoint="/v1/chat/completions",status="200"}.
template <typename T>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<T>()> make)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)),
        make_(std::move(make)) {}
  // Returns the metric for these label values (same order as the label names).
  T& With(const std::vector<std::string>& label_values);
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Calls fn(label_values, metric) for each label set, in sorted order.
  void ForEach(const std::function<void(const std::vector<std::string>&, const T&)>& fn) const;

 private:
  std::string name_, help_;
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<T>()> make_;
  mutable std::shared_mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> metrics_;  // GUARDED_BY(mu_)
};

// Owns all metric families and renders them in the Prometheus text exposition format.
class MetricsRegistry {
 public:
  Family<Counter>& AddCounter(std::string name, std::string help, std::vector<std::string> labels);
  Family<Gauge>& AddGauge(std::string name, std::string help, std::vector<std::string> labels);
  Family<Histogram>& AddHistogram(std::string name, std::string help,
                                  std::vector<std::string> labels, std::vector<double> bounds);
  // A gauge computed when scraped (e.g. the audit queue depth).
  void AddCallbackGauge(std::string name, std::string help, std::function<double()> fn);
  std::string RenderPrometheus() const;

 private:
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
  struct CallbackGauge {
    std::string name, help;
    std::function<double()> fn;
  };
  std::vector<CallbackGauge> callback_gauges_;
};

template <typename T>
T& Family<T>::With(const std::vector<std::string>& label_values) {
  {
    std::shared_lock lock(mu_);
    auto it = metrics_.find(label_values);
    if (it != metrics_.end()) return *it->second;
  }
  std::unique_lock lock(mu_);
  auto& slot = metrics_[label_values];
  if (!slot) slot = make_();
  return *slot;
}

template <typename T>
void Family<T>::ForEach(
    const std::function<void(const std::vector<std::string>&, const T&)>& fn) const {
  std::shared_lock lock(mu_);
  for (const auto& [labels, m] : metrics_) fn(labels, *m);
}

}  // namespace moat

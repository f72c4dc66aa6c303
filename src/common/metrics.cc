#include "common/metrics.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace moat {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  if (v > 0) sum_micro_.fetch_add(static_cast<uint64_t>(std::llround(v * 1e6)), std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::bucket_counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

double Histogram::sum() const { return static_cast<double>(sum_micro_.load()) / 1e6; }

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
}

Family<Counter>& MetricsRegistry::AddCounter(std::string name, std::string help,
                                             std::vector<std::string> labels) {
  counters_.push_back(std::make_unique<Family<Counter>>(
      std::move(name), std::move(help), std::move(labels), [] { return std::make_unique<Counter>(); }));
  return *counters_.back();
}

Family<Gauge>& MetricsRegistry::AddGauge(std::string name, std::string help,
                                         std::vector<std::string> labels) {
  gauges_.push_back(std::make_unique<Family<Gauge>>(
      std::move(name), std::move(help), std::move(labels), [] { return std::make_unique<Gauge>(); }));
  return *gauges_.back();
}

Family<Histogram>& MetricsRegistry::AddHistogram(std::string name, std::string help,
                                                 std::vector<std::string> labels,
                                                 std::vector<double> bounds) {
  histograms_.push_back(std::make_unique<Family<Histogram>>(
      std::move(name), std::move(help), std::move(labels),
      [bounds] { return std::make_unique<Histogram>(bounds); }));
  return *histograms_.back();
}

void MetricsRegistry::AddCallbackGauge(std::string name, std::string help,
                                       std::function<double()> fn) {
  callback_gauges_.push_back({std::move(name), std::move(help), std::move(fn)});
}

namespace {

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                   const std::string& extra = "") {
  std::string s;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (!s.empty()) s += ',';
    s += names[i] + "=\"" + EscapeLabel(values[i]) + "\"";
  }
  if (!extra.empty()) {
    if (!s.empty()) s += ',';
    s += extra;
  }
  return s.empty() ? "" : "{" + s + "}";
}

std::string FormatDouble(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream os;
  os.precision(10);
  os << v;
  return os.str();
}

}  // namespace

std::string MetricsRegistry::RenderPrometheus() const {
  std::ostringstream out;
  for (const auto& f : counters_) {
    out << "# HELP " << f->name() << ' ' << f->help() << "\n# TYPE " << f->name() << " counter\n";
    f->ForEach([&](const std::vector<std::string>& lv, const Counter& c) {
      out << f->name() << Labels(f->label_names(), lv) << ' ' << c.value() << '\n';
    });
  }
  for (const auto& f : gauges_) {
    out << "# HELP " << f->name() << ' ' << f->help() << "\n# TYPE " << f->name() << " gauge\n";
    f->ForEach([&](const std::vector<std::string>& lv, const Gauge& g) {
      out << f->name() << Labels(f->label_names(), lv) << ' ' << g.value() << '\n';
    });
  }
  for (const auto& g : callback_gauges_) {
    out << "# HELP " << g.name << ' ' << g.help << "\n# TYPE " << g.name << " gauge\n";
    out << g.name << ' ' << FormatDouble(g.fn()) << '\n';
  }
  for (const auto& f : histograms_) {
    out << "# HELP " << f->name() << ' ' << f->help() << "\n# TYPE " << f->name() << " histogram\n";
    f->ForEach([&](const std::vector<std::string>& lv, const Histogram& h) {
      auto counts = h.bucket_counts();
      uint64_t cum = 0;
      for (size_t i = 0; i < counts.size(); ++i) {
        cum += counts[i];
        double le = i < h.bounds().size() ? h.bounds()[i] : INFINITY;
        out << f->name() << "_bucket" << Labels(f->label_names(), lv, "le=\"" + FormatDouble(le) + "\"")
            << ' ' << cum << '\n';
      }
      out << f->name() << "_sum" << Labels(f->label_names(), lv) << ' ' << FormatDouble(h.sum()) << '\n';
      out << f->name() << "_count" << Labels(f->label_names(), lv) << ' ' << h.count() << '\n';
    });
  }
  return out.str();
}

}  // namespace moat

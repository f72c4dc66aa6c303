#include "detect_commands.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "detect/engine.h"
#include "detect/sketches.h"
#include "traffic/event_io.h"
#include "traffic/generator.h"
#include "datasets/prompt_corpus.h"
#include "traffic/scenario.h"
#include "scenario_options.h"

namespace moat::bench {
namespace {

struct DetectBenchOptions : ScenarioOptions {
  DetectBenchOptions() { scenario = "default"; }
  int64_t max_events = 0;  // 0: every event of the scenario
  std::string events;      // replay this events.jsonl (traffic generate) instead of generating
};

// Buffers the generated stream so that the timed replay runs Observe and nothing else.
class BufferSink final : public traffic::TrafficSink {
 public:
  BufferSink(std::vector<detect::RequestEvent>& events, int64_t max_events)
      : events_(events), max_(max_events) {}
  void OnLabel(const traffic::SubjectLabel&) override {}
  void OnEvent(const detect::RequestEvent& event) override {
    if (max_ > 0 && static_cast<int64_t>(events_.size()) >= max_) return;
    events_.push_back(event);
  }

 private:
  std::vector<detect::RequestEvent>& events_;
  int64_t max_;
};

// CPU seconds (user + system) of the calling thread.
double ThreadCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Order-sensitive digest of everything a verdict carries, so that two builds of the engine can
// be compared for identical output on the same stream.
uint64_t Digest(uint64_t h, const detect::Verdict& v) {
  uint64_t score_bits = 0, campaign_bits = 0;
  std::memcpy(&score_bits, &v.account_score, sizeof(score_bits));
  std::memcpy(&campaign_bits, &v.campaign_score, sizeof(campaign_bits));
  h = detect::HashCombine(h, static_cast<uint64_t>(v.action));
  h = detect::HashCombine(h, score_bits);
  h = detect::HashCombine(h, campaign_bits);
  h = detect::HashCombine(h, detect::Hash64(v.campaign_id));
  for (const std::string& r : v.reasons) h = detect::HashCombine(h, detect::Hash64(r));
  return detect::HashCombine(h, v.reasons.size());
}

// Reads the first `max_events` (0: all) events of an events.jsonl file into `events`.
Status ReadEvents(const std::string& path, int64_t max_events, std::vector<detect::RequestEvent>& events) {
  return traffic::ForEachLine(path, [&](std::string_view line) -> Status {
    if (max_events > 0 && static_cast<int64_t>(events.size()) >= max_events) return Status::Ok();
    MOAT_ASSIGN_OR_RETURN(detect::RequestEvent e, traffic::EventFromJson(line));
    events.push_back(std::move(e));
    return Status::Ok();
  });
}

// Generates the scenario's stream (the first `max_events`, 0: all) into `events`.
Status GenerateEvents(const DetectBenchOptions& o, std::vector<detect::RequestEvent>& events) {
  MOAT_ASSIGN_OR_RETURN(auto scenario, traffic::LoadScenario(o.scenario, o.scenarios_dir));
  datasets::CorpusOptions copts;
  if (auto split = datasets::ParseSplit(o.split); split.ok()) copts.split = *split;
  copts.leave_out = o.leave_out;
  MOAT_ASSIGN_OR_RETURN(auto corpus, datasets::PromptCorpus::Load(o.data, copts));
  BufferSink sink(events, o.max_events);
  traffic::TrafficGenerator gen(corpus, scenario, o.seed);
  return gen.Run(sink);
}

int RunDetectBench(const DetectBenchOptions& o) {
  const auto t_load = std::chrono::steady_clock::now();
  std::vector<detect::RequestEvent> events;
  if (Status s = o.events.empty() ? GenerateEvents(o, events) : ReadEvents(o.events, o.max_events, events);
      !s.ok()) {
    std::fprintf(stderr, "moat-bench: %s\n", s.ToString().c_str());
    return 1;
  }
  size_t body_bytes = 0;
  for (const auto& e : events) body_bytes += e.body_json.size();
  std::fprintf(stderr, "prepared %zu events (mean body %.0f bytes) in %.2f s\n", events.size(),
               events.empty() ? 0.0 : static_cast<double>(body_bytes) / events.size(),
               Since(t_load));

  // Timed replay: one thread, events in time order, each Observe timed on the steady clock.
  detect::DetectionEngine engine;
  std::vector<uint32_t> ns(events.size());
  std::array<uint64_t, 5> actions{};
  uint64_t digest = 0;
  const double cpu0 = ThreadCpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < events.size(); ++i) {
    const auto a = std::chrono::steady_clock::now();
    const detect::Verdict v = engine.Observe(events[i]);
    const auto b = std::chrono::steady_clock::now();
    ns[i] = static_cast<uint32_t>(
        std::min<int64_t>(UINT32_MAX, std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count()));
    ++actions[static_cast<size_t>(v.action)];
    digest = Digest(digest, v);
  }
  const double wall = Since(t0);
  const double cpu = ThreadCpuSeconds() - cpu0;
  const double n = static_cast<double>(events.size());
  double in_observe = 0;
  for (uint32_t x : ns) in_observe += x * 1e-9;
  std::sort(ns.begin(), ns.end());
  auto pct = [&](double p) {
    return ns.empty() ? 0.0 : ns[std::min(ns.size() - 1, static_cast<size_t>(p * ns.size()))] / 1e3;
  };
  std::printf("detect bench: %s%s seed %llu, %zu events (real prompts, mean body %.0f B)\n",
              o.events.empty() ? "scenario " : "events ", o.events.empty() ? o.scenario.c_str() : o.events.c_str(),
              static_cast<unsigned long long>(o.seed), events.size(),
              n > 0 ? static_cast<double>(body_bytes) / n : 0.0);
  std::printf("  replay: wall %.2f s, thread CPU %.2f s = %.0f req/s per core (%.2f us CPU/request)\n",
              wall, cpu, n / std::max(cpu, 1e-9), cpu / std::max(n, 1.0) * 1e6);
  std::printf("  Observe latency (steady clock): mean %.2f us  p50 %.2f  p90 %.2f  p99 %.2f  "
              "p99.9 %.2f  max %.1f us\n",
              in_observe / std::max(n, 1.0) * 1e6, pct(0.5), pct(0.9), pct(0.99), pct(0.999),
              ns.empty() ? 0.0 : ns.back() / 1e3);
  std::printf("  verdicts: allow %llu throttle %llu degrade %llu step_up %llu block %llu; "
              "digest %016llx; live subjects %zu\n",
              static_cast<unsigned long long>(actions[0]), static_cast<unsigned long long>(actions[1]),
              static_cast<unsigned long long>(actions[2]), static_cast<unsigned long long>(actions[3]),
              static_cast<unsigned long long>(actions[4]), static_cast<unsigned long long>(digest),
              engine.live_subjects());
  return 0;
}

}  // namespace

void AddDetectCommands(CLI::App& app, int& exit_code) {
  CLI::App* detect = app.add_subcommand("detect", "detection engine benchmarks");
  detect->require_subcommand(1);
  auto o = std::make_shared<DetectBenchOptions>();
  CLI::App* bench = detect->add_subcommand(
      "bench", "replay a scenario's real-prompt traffic through DetectionEngine::Observe alone "
               "(generated up front, not timed) and report req/s per core and latency");
  AddScenarioOptions(bench, *o);
  bench->add_option("--max-events", o->max_events, "replay only the first N events (0: all)")
      ->capture_default_str();
  bench->add_option("--events", o->events,
                    "replay this events.jsonl (or .gz) from `traffic generate` instead of generating "
                    "the scenario (for profilers: no generator in the run)");
  bench->callback([o, &exit_code] { exit_code = RunDetectBench(*o); });
}

}  // namespace moat::bench

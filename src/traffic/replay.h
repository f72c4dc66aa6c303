#pragma once
// In-process replay: feeds traffic into a detection Engine at full speed on the events' own
// (simulated) clock and scores the verdicts. Depends only on the detect::Engine interface.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "moat/detect_engine.h"
#include "moat/status.h"
#include "traffic/explain.h"
#include "traffic/generator.h"
#include "datasets/prompt_corpus.h"
#include "traffic/scenario.h"
#include "traffic/scorer.h"

namespace moat::traffic {

// A gateway restart in the middle of a replay (`moat-bench traffic run --restart-at-hours`): at
// the first event `at_hours` into the scenario the engine in `*engine` is replaced by a new one
// from `make`. With `keep_state` the old engine's state file (DetectionEngine::SaveState, written
// to `state_path`) is loaded into the new one first, as `moat serve` does; without it the new
// engine starts from nothing, as a gateway without a state file does.
struct RestartPlan {
  double at_hours = -1;  // < 0: no restart
  bool keep_state = true;
  std::string state_path;
  std::unique_ptr<detect::Engine>* engine = nullptr;
  std::function<StatusOr<std::unique_ptr<detect::Engine>>()> make;
  // Filled by the restart: what the state file held and what saving and loading it took.
  size_t subjects = 0;
  uint64_t state_bytes = 0;
  double save_seconds = 0, load_seconds = 0;
};

// A sink that asks the engine for a verdict on every event and scores it.
class EngineReplaySink final : public TrafficSink {
 public:
  // All must outlive the sink.
  EngineReplaySink(detect::Engine& engine, Scorer& scorer, Explainer* explainer = nullptr,
                   RestartPlan* restart = nullptr, int64_t restart_at_ns = 0)
      : engine_(&engine), scorer_(scorer), explainer_(explainer), restart_(restart), restart_at_ns_(restart_at_ns) {}
  void OnLabel(const SubjectLabel& label) override {
    scorer_.AddLabel(label);
    if (explainer_ != nullptr) explainer_->AddLabel(label);
  }
  void OnEvent(const detect::RequestEvent& event) override {
    if (restart_ != nullptr && !restarted_ && event.time_ns >= restart_at_ns_) Restart(event.time_ns);
    detect::Verdict v = engine_->Observe(event);
    scorer_.Record(event.account_id, event.end_user, event.time_ns, v.action);
    if (explainer_ != nullptr) explainer_->Record(event, v);
    last_action_ = v.action;
  }
  detect::Action LastAction() const override { return last_action_; }
  // The restart's failure, if any (the replay goes on with the old engine then).
  const Status& restart_status() const { return restart_status_; }

 private:
  void Restart(int64_t now_ns);

  detect::Engine* engine_;
  Scorer& scorer_;
  Explainer* explainer_;
  RestartPlan* restart_;
  int64_t restart_at_ns_;
  bool restarted_ = false;
  Status restart_status_;
  detect::Action last_action_ = detect::Action::kAllow;
};

// Generates the scenario and replays it into `engine` in one pass (nothing is buffered), then
// scores. Fills the report's scenario, seed, engine name, wall time and events/s. With a
// `restart` (its `engine` slot holding `engine`), the slot holds the engine in use at the end.
StatusOr<Report> RunInProcess(const PromptCorpus& corpus, const Scenario& scenario,
                              uint64_t seed, detect::Engine& engine, std::string_view engine_name,
                              Explainer* explainer = nullptr, RestartPlan* restart = nullptr);

// Replays files written by `moat-bench traffic generate` into `engine` and scores them. With
// `compress_time` K > 1 the engine sees each event at first + (t - first) / K (first: the
// stream's first event time), as a gateway's real clock sees a replay K times faster than the
// recording; the scores keep the events' own times. An `explainer` sees every label and verdict;
// `on_verdict`, when set, every event (with its own time) and its verdict, in the file's order.
using VerdictObserver = std::function<void(const detect::RequestEvent&, const detect::Verdict&)>;
StatusOr<Report> ReplayFilesInProcess(const std::string& events_path,
                                      const std::string& labels_path, detect::Engine& engine,
                                      std::string_view engine_name, double compress_time = 1,
                                      Explainer* explainer = nullptr, const VerdictObserver& on_verdict = {});

// Reads a label file into a scorer (and an explainer, when given).
Status LoadLabels(const std::string& labels_path, Scorer& scorer, Explainer* explainer = nullptr);

// How to build the engine under test.
struct EngineOptions {
  int rate_per_hour = 100;      // baseline: requests per account per sliding hour
  std::string detection_model;  // moat: model file ("" the default model, "none" no model)
  std::string stages;           // moat: StageSwitches::Parse spec ("" all stages)
  bool explain = false;         // print why subjects were restricted (Explainer)
  std::vector<std::string> settings;  // moat: "name=value" detection settings
  double restart_at_hours = -1;       // moat: restart the engine this far into the scenario
  bool restart_without_state = false; // ... without loading the old engine's state file
};

// The detection engines the benchmark can judge: "moat" (src/detect) and "baseline"
// (PerAccountRateEngine). Returns InvalidArgument for unknown names or options, and the
// model's load error.
StatusOr<std::unique_ptr<detect::Engine>> MakeEngine(std::string_view name, const EngineOptions& options);

}  // namespace moat::traffic

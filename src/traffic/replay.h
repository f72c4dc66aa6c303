#pragma once
// In-process replay: feeds traffic into a detection Engine at full speed on the events' own
// (simulated) clock and scores the verdicts. Depends only on the detect::Engine interface.

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

// A sink that asks the engine for a verdict on every event and scores it.
class EngineReplaySink final : public TrafficSink {
 public:
  // Both must outlive the sink.
  EngineReplaySink(detect::Engine& engine, Scorer& scorer, Explainer* explainer = nullptr)
      : engine_(engine), scorer_(scorer), explainer_(explainer) {}
  void OnLabel(const SubjectLabel& label) override {
    scorer_.AddLabel(label);
    if (explainer_ != nullptr) explainer_->AddLabel(label);
  }
  void OnEvent(const detect::RequestEvent& event) override {
    detect::Verdict v = engine_.Observe(event);
    scorer_.Record(event.account_id, event.end_user, event.time_ns, v.action);
    if (explainer_ != nullptr) explainer_->Record(event, v);
    last_action_ = v.action;
  }
  detect::Action LastAction() const override { return last_action_; }

 private:
  detect::Engine& engine_;
  Scorer& scorer_;
  Explainer* explainer_;
  detect::Action last_action_ = detect::Action::kAllow;
};

// Generates the scenario and replays it into `engine` in one pass (nothing is buffered), then
// scores. Fills the report's scenario, seed, engine name, wall time and events/s.
StatusOr<Report> RunInProcess(const PromptCorpus& corpus, const Scenario& scenario,
                              uint64_t seed, detect::Engine& engine, std::string_view engine_name,
                              Explainer* explainer = nullptr);

// Replays files written by `moat-bench traffic generate` into `engine` and scores them.
StatusOr<Report> ReplayFilesInProcess(const std::string& events_path,
                                      const std::string& labels_path, detect::Engine& engine,
                                      std::string_view engine_name);

// Reads a label file into a scorer.
Status LoadLabels(const std::string& labels_path, Scorer& scorer);

// How to build the engine under test.
struct EngineOptions {
  int rate_per_hour = 100;      // baseline: requests per account per sliding hour
  std::string detection_model;  // moat: model file ("" the default model, "none" no model)
  std::string stages;           // moat: StageSwitches::Parse spec ("" all stages)
  bool explain = false;         // print why subjects were restricted (Explainer)
  std::vector<std::string> settings;  // moat: "name=value" detection settings
};

// The detection engines the benchmark can judge: "moat" (src/detect) and "baseline"
// (PerAccountRateEngine). Returns InvalidArgument for unknown names or options, and the
// model's load error.
StatusOr<std::unique_ptr<detect::Engine>> MakeEngine(std::string_view name, const EngineOptions& options);

}  // namespace moat::traffic

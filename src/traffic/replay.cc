#include "traffic/replay.h"

#include <chrono>
#include <filesystem>

#include "detect/detection_settings.h"
#include "detect/engine.h"
#include "traffic/event_io.h"
#include "traffic/per_account_rate_engine.h"

namespace moat::traffic {

namespace {
double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void EngineReplaySink::Restart(int64_t now_ns) {
  restarted_ = true;
  const auto* old = dynamic_cast<const detect::DetectionEngine*>(engine_);
  if (old == nullptr || restart_->engine == nullptr || restart_->engine->get() != engine_) {
    restart_status_ = InvalidArgumentError("a restart needs the moat engine");
    return;
  }
  if (restart_->keep_state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto saved = old->SaveState(restart_->state_path, now_ns);
    restart_->save_seconds = SecondsSince(t0);
    if (!saved.ok()) {
      restart_status_ = saved.status();
      return;
    }
    restart_->subjects = saved->live_subjects + saved->evicted_subjects;
    std::error_code ec;
    restart_->state_bytes = std::filesystem::file_size(restart_->state_path, ec);
  }
  auto fresh = restart_->make();
  if (!fresh.ok()) {
    restart_status_ = fresh.status();
    return;
  }
  if (restart_->keep_state) {
    auto* moat = dynamic_cast<detect::DetectionEngine*>(fresh->get());
    const auto t0 = std::chrono::steady_clock::now();
    auto loaded = moat != nullptr ? moat->LoadState(restart_->state_path).status()
                                  : InvalidArgumentError("a restart needs the moat engine");
    restart_->load_seconds = SecondsSince(t0);
    if (!loaded.ok()) {
      restart_status_ = loaded;
      return;
    }
  }
  *restart_->engine = std::move(*fresh);  // the old engine goes here
  engine_ = restart_->engine->get();
}

StatusOr<Report> RunInProcess(const PromptCorpus& corpus, const Scenario& scenario,
                              uint64_t seed, detect::Engine& engine,
                              std::string_view engine_name, Explainer* explainer, RestartPlan* restart) {
  auto t0 = std::chrono::steady_clock::now();
  Scorer scorer;
  const bool restarts = restart != nullptr && restart->at_hours >= 0;
  EngineReplaySink sink(engine, scorer, explainer, restarts ? restart : nullptr,
                        scenario.start_ns() + static_cast<int64_t>((restarts ? restart->at_hours : 0) * 3.6e12));
  TrafficGenerator generator(corpus, scenario, seed);
  MOAT_RETURN_IF_ERROR(generator.Run(sink));
  MOAT_RETURN_IF_ERROR(sink.restart_status());
  Report r = scorer.Finish();
  r.scenario = scenario.name;
  r.seed = seed;
  r.engine = std::string(engine_name);
  r.wall_seconds = SecondsSince(t0);
  r.events_per_second = r.wall_seconds > 0 ? r.events / r.wall_seconds : 0;
  return r;
}

Status LoadLabels(const std::string& labels_path, Scorer& scorer, Explainer* explainer) {
  return ForEachLine(labels_path, [&](std::string_view line) -> Status {
    MOAT_ASSIGN_OR_RETURN(SubjectLabel label, LabelFromJson(line));
    scorer.AddLabel(label);
    if (explainer != nullptr) explainer->AddLabel(label);
    return Status::Ok();
  });
}

StatusOr<Report> ReplayFilesInProcess(const std::string& events_path,
                                      const std::string& labels_path, detect::Engine& engine,
                                      std::string_view engine_name, double compress_time,
                                      Explainer* explainer, const VerdictObserver& on_verdict) {
  if (!(compress_time >= 1)) return InvalidArgumentError("compress_time must be at least 1");
  auto t0 = std::chrono::steady_clock::now();
  Scorer scorer;
  MOAT_RETURN_IF_ERROR(LoadLabels(labels_path, scorer, explainer));
  int64_t first_ns = -1;
  MOAT_RETURN_IF_ERROR(ForEachLine(events_path, [&](std::string_view line) -> Status {
    MOAT_ASSIGN_OR_RETURN(detect::RequestEvent e, EventFromJson(line));
    const int64_t recorded_ns = e.time_ns;
    if (first_ns < 0) first_ns = recorded_ns;
    if (compress_time != 1) {
      e.time_ns = first_ns + static_cast<int64_t>(static_cast<double>(recorded_ns - first_ns) / compress_time);
    }
    detect::Verdict v = engine.Observe(e);
    scorer.Record(e.account_id, e.end_user, recorded_ns, v.action);
    if (explainer != nullptr) explainer->Record(e, v);
    if (on_verdict) {
      e.time_ns = recorded_ns;
      on_verdict(e, v);
    }
    return Status::Ok();
  }));
  Report r = scorer.Finish();
  r.scenario = events_path;
  r.engine = std::string(engine_name);
  r.wall_seconds = SecondsSince(t0);
  r.events_per_second = r.wall_seconds > 0 ? r.events / r.wall_seconds : 0;
  return r;
}

StatusOr<std::unique_ptr<detect::Engine>> MakeEngine(std::string_view name, const EngineOptions& options) {
  if (name == "baseline") {
    PerAccountRateOptions o;
    o.max_requests_per_hour = options.rate_per_hour;
    return std::unique_ptr<detect::Engine>(std::make_unique<PerAccountRateEngine>(o));
  }
  if (name == "moat") {
    detect::DetectionConfig config;
    MOAT_ASSIGN_OR_RETURN(config.stages, detect::StageSwitches::Parse(options.stages));
    for (const std::string& s : options.settings) MOAT_RETURN_IF_ERROR(detect::ApplySetting(config, s));
    if (options.detection_model == "none") {
      config.use_default_model = false;
    } else if (!options.detection_model.empty()) {
      MOAT_ASSIGN_OR_RETURN(detect::DetectionModel m, detect::DetectionModel::Load(options.detection_model));
      config.model = std::make_shared<const detect::DetectionModel>(std::move(m));
    }
    return std::unique_ptr<detect::Engine>(std::make_unique<detect::DetectionEngine>(std::move(config)));
  }
  return InvalidArgumentError("unknown engine '" + std::string(name) +
                              "' (known: baseline, moat)");
}

}  // namespace moat::traffic

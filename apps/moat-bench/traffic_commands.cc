#include "traffic_commands.h"

#include <stdlib.h>

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "detect/engine.h"
#include "traffic/event_io.h"
#include "traffic/generator.h"
#include "traffic/http_replay.h"
#include "datasets/prompt_corpus.h"
#include "traffic/replay.h"
#include "traffic/report.h"
#include "traffic/scenario.h"
#include "scenario_options.h"

namespace moat::bench {
namespace {

using datasets::PromptCorpus;
using traffic::Report;
using traffic::Scenario;

struct CommonOptions : ScenarioOptions {
  std::string out;
};

void AddEngineOptions(CLI::App* cmd, traffic::EngineOptions& o) {
  cmd->add_option("--rate-limit", o.rate_per_hour, "baseline: requests per account per sliding hour")
      ->capture_default_str();
  cmd->add_option("--detection-model", o.detection_model,
                  "moat: detection model file (default: the shipped model; 'none': no model)");
  cmd->add_option("--stages", o.stages,
                  "moat: evidence stages to run, e.g. '-cohort,-baseline' to drop two (ablation)");
  cmd->add_flag("--explain", o.explain, "print why subjects were restricted, per variant and persona");
  cmd->add_option("--set", o.settings, "moat: detection setting NAME=VALUE (repeatable; see docs/detection.md)");
}

// The restart options exist for `traffic run` only (a replay of files could take them too).
void AddRestartOptions(CLI::App* cmd, traffic::EngineOptions& o) {
  cmd->add_option("--restart-at-hours", o.restart_at_hours,
                  "moat: restart the engine this many simulated hours in, through its state file as "
                  "`moat serve` does (docs/detection.md, \"State across restarts\")");
  cmd->add_flag("--restart-without-state", o.restart_without_state,
                "moat: ... and start the new engine from nothing (no state file)");
}

int Fail(const Status& s) {
  std::fprintf(stderr, "moat-bench: %s\n", s.ToString().c_str());
  return 1;
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Loaded {
  Scenario scenario;
  PromptCorpus corpus;
};

StatusOr<Loaded> Load(const CommonOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  Loaded l;
  MOAT_ASSIGN_OR_RETURN(l.scenario, traffic::LoadScenario(o.scenario, o.scenarios_dir));
  datasets::CorpusOptions copts;
  MOAT_ASSIGN_OR_RETURN(copts.split, datasets::ParseSplit(o.split));
  copts.leave_out = o.leave_out;
  MOAT_ASSIGN_OR_RETURN(l.corpus, PromptCorpus::Load(o.data, copts));
  std::fprintf(stderr, "loaded %zu prompt sets (%zu organic, %zu conversations) from %s in %.2f s\n",
               l.corpus.sets().size(), l.corpus.PromptCount("organic"),
               l.corpus.conversation_count(), o.data.c_str(), Since(t0));
  return l;
}

int PrintAndWrite(const Report& r, const std::string& out) {
  std::fputs(traffic::FormatTable(r).c_str(), stdout);
  if (!out.empty()) {
    Status s = traffic::WriteReportFiles(r, out);
    if (!s.ok()) return Fail(s);
    std::printf("wrote %s/report.json and %s/report.html\n", out.c_str(), out.c_str());
  }
  return 0;
}

int RunGenerate(const CommonOptions& o) {
  auto loaded = Load(o);
  if (!loaded.ok()) return Fail(loaded.status());
  if (o.out.empty()) return Fail(InvalidArgumentError("--out DIR is required"));
  auto t0 = std::chrono::steady_clock::now();
  traffic::JsonlTrafficWriter writer(o.out);
  if (!writer.status().ok()) return Fail(writer.status());
  traffic::TrafficGenerator gen(loaded->corpus, loaded->scenario, o.seed);
  Status s = gen.Run(writer);
  if (s.ok()) s = writer.Close();
  if (!s.ok()) return Fail(s);
  double wall = Since(t0);
  std::printf("generated %lld events, %lld labels into %s/{events,labels}.jsonl in %.2f s "
              "(%.0f events/s, peak %lld active actors)\n",
              static_cast<long long>(gen.stats().events),
              static_cast<long long>(gen.stats().labels), o.out.c_str(), wall,
              gen.stats().events / std::max(wall, 1e-9),
              static_cast<long long>(gen.stats().peak_active_actors));
  return 0;
}

int RunRun(const CommonOptions& o, const std::string& engine_name, const traffic::EngineOptions& eo) {
  auto loaded = Load(o);
  if (!loaded.ok()) return Fail(loaded.status());
  auto engine = traffic::MakeEngine(engine_name, eo);
  if (!engine.ok()) return Fail(engine.status());
  traffic::Explainer explainer(std::getenv("MOAT_EXPLAIN_TRACE") != nullptr);
  traffic::RestartPlan restart;
  std::unique_ptr<detect::Engine> slot = std::move(*engine);
  std::string state_dir;
  if (eo.restart_at_hours >= 0) {
    if (engine_name != "moat") return Fail(InvalidArgumentError("--restart-at-hours needs --engine moat"));
    char tmpl[] = "/tmp/moat-bench-state-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return Fail(UnavailableError("cannot create a directory for the state file"));
    state_dir = tmpl;
    restart.at_hours = eo.restart_at_hours;
    restart.keep_state = !eo.restart_without_state;
    restart.state_path = state_dir + "/detection-state.bin";
    restart.engine = &slot;
    restart.make = [&] { return traffic::MakeEngine(engine_name, eo); };
  }
  auto report = traffic::RunInProcess(loaded->corpus, loaded->scenario, o.seed, *slot, engine_name,
                                      eo.explain ? &explainer : nullptr, &restart);
  if (!state_dir.empty()) std::filesystem::remove_all(state_dir);
  if (!report.ok()) return Fail(report.status());
  if (eo.restart_at_hours >= 0) {
    if (restart.keep_state) {
      std::printf("engine restarted at hour %.1f from its state file: %zu subjects, %.1f MB, saved in %.3f s, "
                  "loaded in %.3f s\n",
                  eo.restart_at_hours, restart.subjects, restart.state_bytes / 1e6, restart.save_seconds,
                  restart.load_seconds);
    } else {
      std::printf("engine restarted at hour %.1f from nothing (no state file)\n", eo.restart_at_hours);
    }
  }
  if (eo.explain) {
    std::fputs(explainer.Summary().c_str(), stdout);
    if (const auto* moat = dynamic_cast<const detect::DetectionEngine*>(slot.get())) {
      std::printf("cohorts at the end (tier, window start, members, requests, high share vs baseline, z, "
                  "feature shift, campaign share):\n");
      const auto cohorts = moat->Cohorts();
      if (!cohorts.empty()) {
        std::printf("  (campaign-like share of restricted subjects' requests, the binomial test's campaign share: %.3f)\n",
                    cohorts[0].campaign_high_share);
      }
      for (const auto& c : cohorts) {
        std::printf("  %-11s %lld %8.0f %9.0f  %.3f vs %.3f  z %7.1f  f %6.3f  pi %.2f%s\n", c.tier.c_str(),
                    static_cast<long long>(c.window_start_s), c.members, c.requests, c.high_share,
                    c.baseline_share, c.z, c.feature_shift, c.campaign_share, c.shifted ? "  shifted" : "");
      }
    }
  }
  return PrintAndWrite(*report, o.out);
}

// "name: value" or "name=value" -> (name, value).
StatusOr<std::pair<std::string, std::string>> ParseHeader(const std::string& h) {
  size_t sep = h.find_first_of(":=");
  if (sep == 0 || sep == std::string::npos) {
    return InvalidArgumentError("--header wants NAME:VALUE, got '" + h + "'");
  }
  std::string value = h.substr(sep + 1);
  value.erase(0, value.find_first_not_of(' '));
  return std::make_pair(h.substr(0, sep), value);
}

struct ReplayOptions {
  std::string events, labels, engine = "moat", out;
  traffic::EngineOptions engine_options;
  std::string gateway, keys_file;
  std::vector<std::string> headers;
  traffic::HttpReplayOptions http;
  double compress_time = 1;
};

int RunReplay(ReplayOptions& o) {
  if (!(o.compress_time >= 1)) return Fail(InvalidArgumentError("--compress-time must be at least 1"));
  if (!o.gateway.empty() && o.compress_time != 1) {
    return Fail(InvalidArgumentError("--compress-time is for the in-process replay (the gateway's own clock "
                                     "compresses an HTTP replay already; --replay-clock undoes that)"));
  }
  if (!o.gateway.empty()) {
    if (o.keys_file.empty()) return Fail(InvalidArgumentError("--gateway needs --keys-file"));
    const traffic::EngineOptions& eo = o.engine_options;
    if (eo.explain || !eo.settings.empty() || !eo.stages.empty() || !eo.detection_model.empty()) {
      return Fail(InvalidArgumentError("--explain, --set, --stages and --detection-model are for the in-process "
                                       "replay; a gateway takes its detection settings from its own config"));
    }
    auto keys = traffic::LoadKeysFile(o.keys_file);
    if (!keys.ok()) return Fail(keys.status());
    o.http.gateway_url = o.gateway;
    for (const auto& h : o.headers) {
      auto kv = ParseHeader(h);
      if (!kv.ok()) return Fail(kv.status());
      o.http.extra_headers.push_back(*kv);
    }
    auto report = traffic::ReplayOverHttp(o.events, o.labels, *keys, o.http);
    if (!report.ok()) return Fail(report.status());
    if (!o.http.replay_clock && report->wall_seconds > 0 && report->simulated_hours * 3600 > 4 * report->wall_seconds) {
      std::cerr << fmt::format(
          "note: the gateway judged these requests on its own clock: {:.1f} recorded hours in {:.0f} s ({:.0f} "
          "times faster), which defeats the time-based detection families. Use --replay-clock with the bench "
          "host in the gateway's [detection] replay_clock_peers (apps/moat-bench/README.md).\n",
          report->simulated_hours, report->wall_seconds, report->simulated_hours * 3600 / report->wall_seconds);
    }
    return PrintAndWrite(*report, o.out);
  }
  auto engine = traffic::MakeEngine(o.engine, o.engine_options);
  if (!engine.ok()) return Fail(engine.status());
  traffic::Explainer explainer(std::getenv("MOAT_EXPLAIN_TRACE") != nullptr);
  auto report = traffic::ReplayFilesInProcess(o.events, o.labels, **engine, o.engine, o.compress_time,
                                              o.engine_options.explain ? &explainer : nullptr);
  if (!report.ok()) return Fail(report.status());
  if (o.engine_options.explain) std::fputs(explainer.Summary().c_str(), stdout);
  return PrintAndWrite(*report, o.out);
}

struct ProvisionCommand {
  std::string labels, out;
  traffic::ProvisionOptions options;
};

// Registers every labelled account (and one key each) in a running gateway and writes the
// account -> secret keys file that `replay --keys-file` reads.
int RunProvision(ProvisionCommand& c) {
  if (c.options.admin_token.empty()) {
    if (const char* env = std::getenv("MOAT_ADMIN_TOKEN")) c.options.admin_token = env;
  }
  if (c.options.admin_token.empty()) {
    return Fail(InvalidArgumentError("--admin-token (or MOAT_ADMIN_TOKEN) is required"));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto keys = traffic::ProvisionAccounts(c.labels, c.options);
  if (!keys.ok()) return Fail(keys.status());
  Status s = traffic::WriteKeysFile(c.out, *keys);
  if (!s.ok()) return Fail(s);
  const std::string tiers = c.options.label_tiers ? "each its label's tier, " + c.options.tier + " where none"
                                                  : "tier " + c.options.tier;
  std::printf("registered %zu accounts (%s) in %s and wrote their keys to %s in %.2f s\n", keys->size(),
              tiers.c_str(), c.options.gateway_url.c_str(), c.out.c_str(), Since(t0));
  return 0;
}

}  // namespace

void AddTrafficCommands(CLI::App& app, int& exit_code) {
  CLI::App* traffic = app.add_subcommand("traffic", "labelled traffic benchmark");
  traffic->require_subcommand(1);

  auto gen_opts = std::make_shared<CommonOptions>();
  CLI::App* gen = traffic->add_subcommand("generate", "write events.jsonl and labels.jsonl");
  AddScenarioOptions(gen, *gen_opts);
  gen->add_option("--out", gen_opts->out, "output folder")->required();
  gen->callback([gen_opts, &exit_code] { exit_code = RunGenerate(*gen_opts); });

  auto run_opts = std::make_shared<CommonOptions>();
  auto engine = std::make_shared<std::string>("moat");
  auto engine_opts = std::make_shared<traffic::EngineOptions>();
  CLI::App* run = traffic->add_subcommand(
      "run", "generate, replay into the engine in-process (simulated clock) and score");
  AddScenarioOptions(run, *run_opts);
  run->add_option("--engine", *engine, "detector: moat (the behavioural engine, src/detect) or baseline (per-account hourly rate)")
      ->capture_default_str();
  AddEngineOptions(run, *engine_opts);
  AddRestartOptions(run, *engine_opts);
  run->add_option("--out", run_opts->out, "write report.json and report.html here");
  run->callback([run_opts, engine, engine_opts, &exit_code] {
    exit_code = RunRun(*run_opts, *engine, *engine_opts);
  });

  auto rep = std::make_shared<ReplayOptions>();
  CLI::App* replay = traffic->add_subcommand(
      "replay",
      "replay generated files into an engine in-process (simulated clock), or with --gateway "
      "into a running gateway over HTTP (real clock: simulated hours are compressed into the "
      "replay's wall time, see apps/moat-bench/README.md), and score the verdicts");
  replay->add_option("--events", rep->events, "events.jsonl (or .gz)")->required();
  replay->add_option("--labels", rep->labels, "labels.jsonl (or .gz)")->required();
  replay->add_option("--engine", rep->engine, "detector")->capture_default_str();
  AddEngineOptions(replay, rep->engine_options);
  replay->add_option("--out", rep->out, "write report.json and report.html here");
  replay->add_option("--gateway", rep->gateway,
                     "replay over HTTP into a running gateway at this URL instead (http://host:port)");
  replay->add_option("--keys-file", rep->keys_file, "HTTP: 'account secret' lines");
  replay->add_option("--rate", rep->http.rate, "HTTP: requests per second (real clock)")
      ->capture_default_str();
  replay->add_option("--max-events", rep->http.max_events, "HTTP: stop after N requests");
  replay->add_option("--header", rep->headers,
                     "HTTP: extra header on every request, NAME:VALUE (repeatable)");
  replay->add_option("--timeout", rep->http.timeout_s, "HTTP: seconds per request")
      ->capture_default_str();
  replay->add_option("--compress-time", rep->compress_time,
                     "in-process: the engine sees the stream K times faster than its timestamps (what a "
                     "gateway's real clock does to a fast HTTP replay); scores keep the timestamps")
      ->capture_default_str();
  replay->add_flag("--replay-clock", rep->http.replay_clock,
                   "HTTP: send each event's time as x-moat-replay-time, which a gateway believes "
                   "from its [detection] replay_clock_peers (the scenario's hours, not the replay's)");
  replay->callback([rep, &exit_code] { exit_code = RunReplay(*rep); });

  auto prov = std::make_shared<ProvisionCommand>();
  CLI::App* provision = traffic->add_subcommand(
      "provision",
      "register every labelled account and one API key each in a running gateway (admin API) "
      "and write the keys file for `replay --keys-file`");
  provision->add_option("--gateway", prov->options.gateway_url, "gateway URL (http://host:port)")
      ->required();
  provision->add_option("--admin-token", prov->options.admin_token,
                        "the gateway's [server] admin_token (default: $MOAT_ADMIN_TOKEN)");
  provision->add_option("--labels", prov->labels, "labels.jsonl (or .gz)")->required();
  provision->add_option("--out,--keys-out", prov->out, "keys file to write (mode 0600)")
      ->required();
  provision->add_option("--tier", prov->options.tier,
                        "tier of the created accounts whose label names none (its [limits.TIER] apply)")
      ->capture_default_str();
  provision->add_flag("!--ignore-label-tiers", prov->options.label_tiers,
                      "give every account --tier, whatever its label says");
  provision->callback([prov, &exit_code] { exit_code = RunProvision(*prov); });
}

}  // namespace moat::bench

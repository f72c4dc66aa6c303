// moat detect train | eval | info | settings: the detection model (src/detect/detection_model.h)
// and the engine's named settings (src/detect/detection_settings.h).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "detect/detection_model.h"
#include "detect/detection_settings.h"
#include "detect/engine.h"
#include "detect/training/model_builder.h"

namespace moat::cli {
namespace {

struct TrainOptions {
  detect::ModelBuildOptions build;
  bool all_licences = false;
  std::string out = "models/detection-default.bin";
};

int RunTrain(TrainOptions& o) {
  o.build.redistributable_only = !o.all_licences;
  detect::ModelBuildReport report;
  auto model = detect::BuildDetectionModel(o.build, &report);
  if (!model.ok()) return Fail(model.status());
  const std::string bytes = model->Serialize();
  const auto parent = std::filesystem::path(o.out).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  const std::string tmp = o.out + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) return Fail(InternalError("cannot write " + tmp));
  }
  std::filesystem::rename(tmp, o.out, ec);
  if (ec) return Fail(InternalError("cannot rename " + tmp + ": " + ec.message()));
  std::fputs(report.ToText().c_str(), stdout);
  std::printf("wrote %s (%zu bytes)\n", o.out.c_str(), bytes.size());
  return 0;
}

int RunInfo(const std::string& path) {
  auto model = detect::DetectionModel::Load(path);
  if (!model.ok()) return Fail(model.status());
  std::printf("%s: content model 2^%u buckets x %d heads, known-corpus index %zu items in %zu corpora\n",
              path.c_str(), model->content.buckets_log2(), detect::kNumHeads, model->corpus.items(),
              model->corpus.corpora().size());
  std::printf("%s\n", model->metadata_json.c_str());
  return 0;
}

struct EvalOptions {
  std::string model = "models/detection-default.bin";
  std::string data = "../shared/datasets";
  bool all_rows = false;
};

int RunEval(const EvalOptions& o) {
  auto model = detect::DetectionModel::Load(o.model);
  if (!model.ok()) return Fail(model.status());
  auto ev = detect::EvaluateModelOnFolder(*model, o.data, !o.all_rows);
  if (!ev.ok()) return Fail(ev.status());
  std::fputs(ev->ToText().c_str(), stdout);
  return 0;
}

// Every named setting with its default and what it does, as `[detection.settings]` accepts them.
int RunSettings() {
  detect::DetectionConfig defaults;
  for (const detect::SettingInfo& s : detect::ListSettings(defaults)) {
    std::printf("%-44s %-10g %.*s\n", s.name.c_str(), *s.value, static_cast<int>(s.help.size()), s.help.data());
  }
  return 0;
}

}  // namespace

void AddDetectCommands(CLI::App& app) {
  auto* detect = app.add_subcommand("detect", "the detection model: train it, inspect it");
  detect->require_subcommand(1);

  auto train_opts = std::make_shared<TrainOptions>();
  auto* train = detect->add_subcommand(
      "train", "train the detection model from a dataset folder (MANIFEST layout); deterministic");
  train->add_option("--data", train_opts->build.data_dir, "dataset folder holding MANIFEST.json")
      ->capture_default_str();
  train->add_option("--out", train_opts->out, "model file to write")->capture_default_str();
  train->add_flag("--all-licences", train_opts->all_licences,
                  "learn from every set, also those whose licence forbids redistributing the model "
                  "(non-commercial, unclear); default: redistributable sets only");
  train->add_option("--buckets-log2", train_opts->build.content.buckets_log2,
                    "log2 of the hashed feature buckets")
      ->capture_default_str();
  train->add_option("--epochs", train_opts->build.content.epochs)->capture_default_str();
  train->add_option("--seed", train_opts->build.content.seed, "example order")->capture_default_str();
  train->add_option("--source-balance", train_opts->build.source_balance,
                    "even out large and small source sets within a class: a set of n examples "
                    "weighs n^-this each (0: by rows, 1: by set)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  train->callback([train_opts] { std::exit(RunTrain(*train_opts)); });

  auto eval_opts = std::make_shared<EvalOptions>();
  auto* eval = detect->add_subcommand(
      "eval", "score every dataset of a folder (eval split) with a model, whatever its licence");
  eval->add_option("--model", eval_opts->model)->capture_default_str();
  eval->add_option("--data", eval_opts->data)->capture_default_str();
  eval->add_flag("--all-rows", eval_opts->all_rows, "also the train split (optimistic)");
  eval->callback([eval_opts] { std::exit(RunEval(*eval_opts)); });

  auto info_path = std::make_shared<std::string>("models/detection-default.bin");
  auto* info = detect->add_subcommand("info", "print a detection model's metadata");
  info->add_option("model", *info_path, "model file")->capture_default_str();
  info->callback([info_path] { std::exit(RunInfo(*info_path)); });

  auto* settings = detect->add_subcommand(
      "settings", "list the engine's named settings ([detection.settings] keys) with their defaults");
  settings->callback([] { std::exit(RunSettings()); });
}

}  // namespace moat::cli

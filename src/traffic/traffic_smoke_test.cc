// Integration test: the `smoke` scenario on the real shared datasets, replayed into the baseline
// engine. Skips when the datasets are not beside the clone (MOAT_DATASETS overrides the path).

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "traffic/per_account_rate_engine.h"
#include "datasets/prompt_corpus.h"
#include "traffic/replay.h"
#include "traffic/report.h"
#include "traffic/scenario.h"

namespace moat::traffic {
namespace {

namespace fs = std::filesystem;

fs::path SourceDir() {
  const char* s = std::getenv("MOAT_SOURCE_DIR");
  return s ? fs::path(s) : fs::current_path();
}

TEST(TrafficSmokeTest, SmokeScenarioOnSharedDatasets) {
  const char* env = std::getenv("MOAT_DATASETS");
  fs::path data = env ? fs::path(env) : SourceDir() / ".." / "shared" / "datasets";
  if (!fs::exists(data / "MANIFEST.json")) {
    GTEST_SKIP() << "no datasets at " << data
                 << " (expected ../shared/datasets beside the clone; set MOAT_DATASETS)";
  }
  auto t0 = std::chrono::steady_clock::now();
  auto scenario = LoadScenario("smoke", SourceDir() / "scenarios");
  ASSERT_TRUE(scenario.ok()) << scenario.status().ToString();
  auto corpus = PromptCorpus::Load(data);
  ASSERT_TRUE(corpus.ok()) << corpus.status().ToString();
  PerAccountRateEngine engine;  // 100 requests per account per hour
  auto report = RunInProcess(*corpus, *scenario, 1, engine, "baseline");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << FormatTable(*report);

  EXPECT_EQ(report->unlabelled_events, 0);
  EXPECT_GT(report->events, 5000);
  EXPECT_GT(report->organic.subjects, 100);
  ASSERT_EQ(report->variants.size(), 7u);  // one row per variant of the brief
  for (const auto& v : report->variants) {
    EXPECT_GT(v.requests, 0) << v.variant;
    if (v.variant == "bulk") {
      EXPECT_DOUBLE_EQ(v.recall, 1.0);  // few loud accounts
    } else if (v.variant == "sybil-spread") {
      EXPECT_DOUBLE_EQ(v.recall, 0.0);  // built to evade a per-account limit
    } else if (v.variant == "mimic") {
      EXPECT_DOUBLE_EQ(v.leakage, 1.0);
    }
  }
  fs::path out = fs::temp_directory_path() / ("moat_smoke_" + std::to_string(::getpid()));
  ASSERT_TRUE(WriteReportFiles(*report, out.string()).ok());
  std::ifstream html(out / "report.html");
  std::stringstream ss;
  ss << html.rdbuf();
  EXPECT_NE(ss.str().find("<svg"), std::string::npos);
  EXPECT_EQ(ss.str().find("<script"), std::string::npos);  // self-contained, no JS
  fs::remove_all(out);
  EXPECT_LT(wall, 60.0) << "smoke must stay a CI-sized run";
}

// Every scenario the repository ships parses, and names itself as its file does (the docs and
// `moat-bench --scenario NAME` refer to them by file name).
TEST(TrafficSmokeTest, EveryShippedScenarioLoads) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(SourceDir() / "scenarios")) {
    if (entry.path().extension() != ".toml") continue;
    auto scenario = LoadScenarioFile(entry.path());
    ASSERT_TRUE(scenario.ok()) << entry.path() << ": " << scenario.status().ToString();
    EXPECT_EQ(scenario->name, entry.path().stem().string());
    ++count;
  }
  EXPECT_GE(count, 9);
}

}  // namespace
}  // namespace moat::traffic

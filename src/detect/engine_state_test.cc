// DetectionEngine::SaveState / LoadState: a restarted engine goes on where the old one stopped,
// and a damaged or foreign state file loads nothing.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "common/file_contents.h"
#include "detect/binary_fields.h"
#include "detect/detection_settings.h"
#include "detect/engine.h"
#include "detect/sketches.h"
#include "detect/test_corpus.h"

namespace moat::detect {
namespace {

constexpr int64_t kSec = 1'000'000'000LL;
constexpr int64_t kHour = 3600 * kSec;
constexpr int64_t kT0 = 1'717'372'800LL * kSec;

RequestEvent Event(const std::string& account, int64_t t, const std::string& prompt) {
  RequestEvent e;
  e.time_ns = t;
  e.account_id = account;
  e.tier = "unverified";
  e.client_ip = "70.1." + std::to_string(std::hash<std::string>{}(account) % 250) + ".7";
  e.user_agent = "OpenAI/Python 1.35.3";
  e.endpoint = "/v1/chat/completions";
  std::string escaped;
  for (char c : prompt) {
    if (c == '"' || c == '\\') escaped.push_back('\\');
    escaped.push_back(c == '\n' ? ' ' : c);
  }
  e.body_json = R"({"model":"gpt-4o","messages":[{"role":"user","content":")" + escaped + "\"}]}";
  return e;
}

DetectionConfig Config() {
  DetectionConfig c;
  c.model = testing::SyntheticModel();
  EXPECT_TRUE(ApplySetting(c, "cohort.min_members", 10).ok());
  EXPECT_TRUE(ApplySetting(c, "baseline.min_feature_requests", 300).ok());
  EXPECT_TRUE(ApplySetting(c, "cohort.min_cohort_features", 3000).ok());
  return c;
}

// `file` (a state file this build wrote) as a build before the harness votes of SubjectState
// wrote it: every subject cut to its first kSubjectBytesBeforeHarness bytes, the layout
// fingerprint `layout`, the checksum recomputed.
std::string AsOlderBuildWroteIt(const std::string& file, uint64_t layout) {
  std::string_view in(file);
  in.remove_suffix(8);                   // the checksum
  std::string out(in.substr(0, 8 + 4));  // magic, version
  in.remove_prefix(8 + 4 + 8);
  PutU64(&out, layout);
  out.append(in.substr(0, 8));  // saved_at
  in.remove_prefix(8);
  for (int section = 0; section < 3; ++section) {
    std::string_view peek = in;
    uint32_t n = 0;
    EXPECT_TRUE(GetU32(&peek, &n));
    out.append(in.substr(0, 4 + n));
    in.remove_prefix(4 + n);
  }
  for (int list = 0; list < 2; ++list) {
    uint64_t n = 0;
    EXPECT_TRUE(GetU64(&in, &n));
    PutU64(&out, n);
    for (uint64_t k = 0; k < n; ++k) {
      out.append(in.substr(0, DetectionEngine::kSubjectBytesBeforeHarness));
      in.remove_prefix(sizeof(SubjectState));
    }
  }
  EXPECT_TRUE(in.empty());
  PutU64(&out, Hash64(out));
  return out;
}

// 14 hours of 60 organic accounts (the baseline), then from hour 14 150 newcomers, 120 of them a
// campaign, sending `rounds` requests each starting with round `first_round`. Returns the ids
// restricted in those rounds.
std::map<std::string, bool> Traffic(DetectionEngine& engine, bool organic_history, int first_round, int rounds) {
  if (organic_history) {
    const auto texts = testing::SyntheticTexts(LabeledText::kOrganic, 500, 3);
    int k = 0;
    for (int64_t m = 0; m < 14 * 60; m += 20) {
      for (int a = 0; a < 60; ++a) {
        (void)engine.Observe(Event("org" + std::to_string(a), kT0 + (m * 60 + a) * kSec, texts[k++ % 500]));
      }
    }
  }
  const auto campaign = testing::SyntheticTexts(kHeadInstruction, 1000, 6);
  const auto organic = testing::SyntheticTexts(LabeledText::kOrganic, 1000, 7);
  std::map<std::string, bool> restricted;
  for (int round = first_round; round < first_round + rounds; ++round) {
    for (int a = 0; a < 150; ++a) {
      const bool bad = a < 120;
      const int k = round * 150 + a;
      const std::string id = (bad ? "sybil" : "newbie") + std::to_string(a);
      const Verdict v = engine.Observe(Event(id, kT0 + 14 * kHour + k * 40 * kSec, bad ? campaign[k % 1000] : organic[k % 1000]));
      if (v.action != Action::kAllow) restricted[id] = true;
    }
  }
  return restricted;
}

int Count(const std::map<std::string, bool>& restricted, std::string_view prefix) {
  int n = 0;
  for (const auto& [id, r] : restricted) n += id.rfind(prefix, 0) == 0 && r;
  return n;
}

std::string StatePath(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("moat_engine_state_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

TEST(EngineStateTest, ARestartedEngineGoesOnWhereTheOldOneStopped) {
  const std::string path = StatePath("restart.bin");
  DetectionEngine before(Config());
  const auto first = Traffic(before, /*organic_history=*/true, 0, 3);
  ASSERT_GE(Count(first, "sybil"), 100);
  ASSERT_EQ(Count(first, "newbie"), 0);
  const int64_t stop = kT0 + 14 * kHour + 450 * 40 * kSec;
  auto saved = before.SaveState(path, stop);
  ASSERT_TRUE(saved.ok()) << saved.status().ToString();
  EXPECT_GE(saved->live_subjects, 210u);  // 60 organic + 150 newcomers
  EXPECT_GE(saved->cohorts, 1u);

  DetectionEngine after(Config());
  auto loaded = after.LoadState(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->live_subjects, saved->live_subjects);
  EXPECT_EQ(loaded->saved_at_ns, stop);
  EXPECT_EQ(after.live_subjects(), before.live_subjects());
  // Each subject as it was: first sighting, evidence, value, restriction.
  for (const std::string id : {"sybil3", "sybil77", "newbie130", "org5"}) {
    const auto a = before.Account(id), b = after.Account(id);
    ASSERT_TRUE(a && b) << id;
    EXPECT_EQ(a->first_seen_ns, b->first_seen_ns) << id;
    EXPECT_EQ(a->restricted, b->restricted) << id;
    EXPECT_DOUBLE_EQ(a->evidence, b->evidence) << id;
    EXPECT_DOUBLE_EQ(a->value, b->value) << id;
  }
  // The cohorts, shifted as they were.
  const auto ca = before.Cohorts(), cb = after.Cohorts();
  ASSERT_EQ(ca.size(), cb.size());
  for (size_t i = 0; i < ca.size(); ++i) {
    EXPECT_EQ(ca[i].id, cb[i].id);
    EXPECT_EQ(ca[i].shifted, cb[i].shifted);
    EXPECT_DOUBLE_EQ(ca[i].members, cb[i].members);
    EXPECT_DOUBLE_EQ(ca[i].campaign_share, cb[i].campaign_share);
    EXPECT_DOUBLE_EQ(ca[i].feature_shift, cb[i].feature_shift);
  }
  // The next round: the restarted engine restricts the campaign as the old one does, and the
  // organic newcomers as little; an engine that starts from nothing knows none of them.
  DetectionEngine fresh(Config());
  const auto next_before = Traffic(before, false, 3, 1);
  const auto next_after = Traffic(after, false, 3, 1);
  const auto next_fresh = Traffic(fresh, false, 3, 1);
  EXPECT_EQ(Count(next_after, "sybil"), Count(next_before, "sybil"));
  EXPECT_EQ(Count(next_after, "newbie"), 0);
  EXPECT_LT(Count(next_fresh, "sybil"), Count(next_after, "sybil") / 2);
}

// An enterprise account held by the churn budget (a fresh `user` on every request) is still
// held after a restart, by the same rule: its end-user count, returning users, evidence and
// value travel in the file. An engine that starts from nothing lets the same request through.
TEST(EngineStateTest, AnAccountHeldByTheChurnBudgetStaysHeldAcrossARestart) {
  const std::string path = StatePath("churn.bin");
  const auto campaign = testing::SyntheticTexts(kHeadReasoning, 60, 8);
  auto request = [&](int i) {
    RequestEvent e = Event("rotator", kT0 + i * 300 * kSec, campaign[i]);
    e.tier = "enterprise";
    e.end_user = "u" + std::to_string(i);
    return e;
  };
  DetectionEngine before(Config());
  int held = -1;
  for (int i = 0; i < 50 && held < 0; ++i) {
    if (before.Observe(request(i)).action != Action::kAllow) held = i;
  }
  ASSERT_GE(held, 0);
  ASSERT_EQ(before.Account("rotator")->restricted_by, "churn_budget");
  ASSERT_TRUE(before.SaveState(path, kT0 + held * 300 * kSec).ok());

  DetectionEngine after(Config());
  ASSERT_TRUE(after.LoadState(path).ok());
  const Verdict next = after.Observe(request(held + 1));
  EXPECT_EQ(next.action, Action::kDegrade);
  EXPECT_EQ(after.Account("rotator")->restricted_by, "churn_budget");
  DetectionEngine fresh(Config());
  EXPECT_EQ(fresh.Observe(request(held + 1)).action, Action::kAllow);
}

// SubjectState::graduated took a byte that was padding, so a file written before it loads; its
// byte, padding then, is cleared: nobody is graduated by what a padding byte held.
TEST(EngineStateTest, AFileFromBeforeGraduationLoadsWithNobodyGraduated) {
  const std::string path = StatePath("graduation.bin");
  DetectionConfig c = Config();
  ASSERT_TRUE(ApplySetting(c, "cohort.graduate_hours", 6).ok());
  DetectionEngine source(c);
  (void)Traffic(source, true, 0, 1);
  ASSERT_TRUE(source.Account("org3").has_value());
  ASSERT_TRUE(source.Account("org3")->cohort_graduated);  // 14 hours of unsuspicious requests
  ASSERT_TRUE(source.SaveState(path, kT0 + 15 * kHour).ok());
  auto bytes = ReadFileContents(path);
  ASSERT_TRUE(bytes.ok());

  auto load = [&](const std::string& contents) {
    EXPECT_TRUE(ReplaceFileContents(path, contents).ok());
    auto e = std::make_unique<DetectionEngine>(c);
    auto r = e->LoadState(path);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return e;
  };
  EXPECT_TRUE(load(*bytes)->Account("org3")->cohort_graduated);
  // The same file as older builds wrote it (their subjects shorter: AsOlderBuildWroteIt).
  auto with_layout = [&](uint64_t layout) { return AsOlderBuildWroteIt(*bytes, layout); };
  // Before `graduated`.
  ASSERT_NE(DetectionEngine::StateSubjectLayout(false, false, false),
            DetectionEngine::StateSubjectLayout(true, false, false));
  auto loaded = load(with_layout(DetectionEngine::StateSubjectLayout(/*with_graduated=*/false,
                                                                     /*with_system_tag=*/false,
                                                                     /*with_harness=*/false)));
  ASSERT_TRUE(loaded->Account("org3").has_value());
  EXPECT_FALSE(loaded->Account("org3")->cohort_graduated);
  EXPECT_EQ(loaded->Account("org3")->requests, source.Account("org3")->requests);
  // After `graduated` but before SubjectState::system_tag (which took another padding byte):
  // loads with its graduations.
  ASSERT_NE(DetectionEngine::StateSubjectLayout(true, false, false),
            DetectionEngine::StateSubjectLayout(true, true, false));
  EXPECT_TRUE(load(with_layout(DetectionEngine::StateSubjectLayout(true, false, false)))
                  ->Account("org3")
                  ->cohort_graduated);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// The harness votes were appended to SubjectState, so a file whose subjects end before them
// loads, every field it has intact and the votes starting from nothing; a file that claims the
// new layout with the old subjects' length is damaged.
TEST(EngineStateTest, AFileFromBeforeTheHarnessVotesLoads) {
  const std::string path = StatePath("harness.bin");
  DetectionEngine source(Config());
  (void)Traffic(source, true, 0, 2);
  ASSERT_TRUE(source.SaveState(path, kT0 + 15 * kHour).ok());
  auto bytes = ReadFileContents(path);
  ASSERT_TRUE(bytes.ok());
  const uint64_t before = DetectionEngine::StateSubjectLayout(true, true, /*with_harness=*/false);
  ASSERT_NE(before, DetectionEngine::StateSubjectLayout());

  ASSERT_TRUE(ReplaceFileContents(path, AsOlderBuildWroteIt(*bytes, before)).ok());
  DetectionEngine after(Config());
  auto loaded = after.LoadState(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->live_subjects, source.live_subjects());
  for (const char* id : {"org3", "org59"}) {
    ASSERT_TRUE(after.Account(id).has_value()) << id;
    EXPECT_EQ(after.Account(id)->requests, source.Account(id)->requests) << id;
    EXPECT_EQ(after.Account(id)->value, source.Account(id)->value) << id;
    EXPECT_EQ(after.Account(id)->first_seen_ns, source.Account(id)->first_seen_ns) << id;
  }

  ASSERT_TRUE(
      ReplaceFileContents(path, AsOlderBuildWroteIt(*bytes, DetectionEngine::StateSubjectLayout()))
          .ok());
  DetectionEngine confused(Config());
  EXPECT_FALSE(confused.LoadState(path).ok());
  EXPECT_EQ(confused.live_subjects(), 0u);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

// Subjects in mid-run when the gateway is upgraded: the file holds no harness votes, so the
// harness test does not judge them until policy.harness_min_requests of their requests have
// voted again, as for a new subject. A verified evaluation harness is never degraded for the
// upgrade; a verified client sending raw campaign-like items, past its evidence budget, is held
// again once it has voted enough (not on the second request, when one vote against the first
// would make a template share of one half).
TEST(EngineStateTest, SubjectsLoadedWithoutHarnessVotesAreJudgedOnceTheyHaveVotedEnough) {
  const std::string path = StatePath("harness-run.bin");
  // The synthetic model without its corpus index: the items are no known set's, only the
  // template says harness.
  auto copy = DetectionModel::Parse(testing::SyntheticModel()->Serialize());
  ASSERT_TRUE(copy.ok());
  auto unindexed = std::make_shared<DetectionModel>(std::move(*copy));
  unindexed->corpus = CorpusIndex();
  DetectionConfig c = Config();
  c.model = unindexed;
  // An evidence budget the raw client passes within the harness test's first requests.
  ASSERT_TRUE(ApplySetting(c, "tier.verified.evidence_budget", 1000).ok());
  const auto items = testing::SyntheticTexts(kHeadReasoning, 60, 6);
  auto request = [&](const std::string& account, int i) {
    const bool framed = account == "harness";
    RequestEvent e =
        Event(account, kT0 + static_cast<int64_t>(i) * 3 * kSec,
              framed ? "Solve the following problem carefully and show your work. " + items[i] +
                           " Give the final answer on the last line as Answer: X"
                     : items[i]);
    e.tier = "verified";
    return e;
  };
  DetectionEngine source(c);
  int i = 0;
  for (; i < 30; ++i) ASSERT_EQ(source.Observe(request("harness", i)).action, Action::kAllow) << i;
  const auto before = source.Account("harness");
  ASSERT_TRUE(before.has_value());
  ASSERT_GT(before->score, c.policy.restrict_posterior);  // clearly campaign-like content ...
  ASSERT_GT(before->value,
            c.policy.tiers[static_cast<size_t>(Tier::kVerified)].evidence_budget);  // ... past it
  // The raw client's first requests: past its evidence budget, but too few for the harness test.
  const int raw_before = static_cast<int>(c.policy.harness_min_requests) - 1;
  for (int k = 0; k < raw_before; ++k)
    ASSERT_EQ(source.Observe(request("raw", k)).action, Action::kAllow) << k;
  ASSERT_GT(source.Account("raw")->value, 1000);
  ASSERT_TRUE(source.SaveState(path, kT0 + 30 * 3 * kSec).ok());
  auto bytes = ReadFileContents(path);
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(
      ReplaceFileContents(
          path, AsOlderBuildWroteIt(*bytes, DetectionEngine::StateSubjectLayout(true, true, false)))
          .ok());

  DetectionEngine upgraded(c);
  ASSERT_TRUE(upgraded.LoadState(path).ok());
  for (; i < 60; ++i)
    EXPECT_EQ(upgraded.Observe(request("harness", i)).action, Action::kAllow) << i;
  EXPECT_FALSE(upgraded.Account("harness")->restricted);
  int raw_restricted_at = -1;
  for (int k = raw_before; k < 40 && raw_restricted_at < 0; ++k) {
    if (upgraded.Observe(request("raw", k)).action != Action::kAllow)
      raw_restricted_at = k - raw_before;
  }
  // Counted from the load: the first request after it is the first to vote.
  EXPECT_GE(raw_restricted_at, c.policy.harness_min_requests - 1);
  EXPECT_LE(raw_restricted_at, c.policy.harness_min_requests + 8);
  EXPECT_EQ(upgraded.Account("raw")->restricted_by, "evidence_budget");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST(EngineStateTest, ADamagedOrForeignFileLoadsNothing) {
  const std::string path = StatePath("damaged.bin");
  DetectionEngine source(Config());
  (void)Traffic(source, true, 0, 2);
  ASSERT_TRUE(source.SaveState(path, kT0 + 15 * kHour).ok());
  auto bytes = ReadFileContents(path);
  ASSERT_TRUE(bytes.ok());
  const std::string good = *bytes;

  auto load = [&](const std::string& contents) {
    EXPECT_TRUE(ReplaceFileContents(path, contents).ok());
    DetectionEngine e(Config());
    auto r = e.LoadState(path);
    EXPECT_EQ(e.live_subjects(), 0u);
    EXPECT_TRUE(e.Cohorts().empty());
    return r.status();
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x01;
  EXPECT_EQ(load(flipped).code(), StatusCode::kDataLoss);
  EXPECT_EQ(load(good.substr(0, good.size() - 100)).code(), StatusCode::kDataLoss);
  EXPECT_EQ(load("not a state file").code(), StatusCode::kDataLoss);
  // Another format version, with a valid checksum: refused, not misread.
  std::string other = good.substr(0, good.size() - 8);
  other[8] = 2;
  PutU64(&other, Hash64(other));
  EXPECT_EQ(load(other).code(), StatusCode::kFailedPrecondition);
  // A missing file is NotFound (a first start).
  DetectionEngine e(Config());
  EXPECT_EQ(e.LoadState(path + ".missing").status().code(), StatusCode::kNotFound);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

}  // namespace
}  // namespace moat::detect

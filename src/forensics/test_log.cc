#include "forensics/test_log.h"

#include <algorithm>

#include "detect/test_corpus.h"

namespace moat::forensics::testing {
namespace {
constexpr int64_t kSec = 1'000'000'000LL;
constexpr int64_t kT0 = 1'717'372'800LL * kSec;  // 2024-06-03T00:00:00Z

const char* kOrganic[] = {
    "hey can you help me plan a birthday party for my daughter, she likes dinosaurs",
    "what's a good recipe for dinner tonight with chicken and rice?",
    "I'm trying to fix my bike chain, it keeps slipping. any ideas?",
    "how do I kill a python process that hangs on linux",
    "rewrite my cover letter so it sounds more confident, here it is: Dear hiring manager",
    "what should I see in Lisbon over a long weekend?"};

}  // namespace

std::vector<TestRequest> MakeTestLog(int organic, int sybils) {
  std::vector<TestRequest> log;
  for (int a = 0; a < organic; ++a) {
    for (int i = 0; i < 30; ++i) {
      log.push_back(TestRequest{kT0 + (i * 600 + a) * kSec, "org" + std::to_string(a),
                                "70.1." + std::to_string(a) + ".5", "ui/1", kOrganic[(a + i) % 6],
                                "", false});
    }
  }
  // The campaign's work queue: reasoning items the synthetic detection model knows
  // (detect/test_corpus.h), each asked once.
  const auto tasks = detect::testing::SyntheticTexts(detect::kHeadReasoning, sybils * 12, 77);
  int64_t t = kT0;
  for (int a = 0; a < sybils; ++a) {
    for (int i = 0; i < 12; ++i) {
      t += 7 * kSec;
      log.push_back(
          TestRequest{t, "sybil" + std::to_string(a),
                      "52.9." + std::to_string((a + i) % 4) + "." + std::to_string(10 + i),
                      "python-requests/2.31.0", tasks[a * 12 + i],
                      R"({"temperature":0.7,"max_tokens":2048})", true});
    }
  }
  std::stable_sort(log.begin(), log.end(), [](const TestRequest& x, const TestRequest& y) {
    return x.time_ns < y.time_ns;
  });
  return log;
}

}  // namespace moat::forensics::testing

// Upstream-mode detection against the real moat-test-upstream binary: token ids come from its
// POST /tokenize endpoint (one id per whitespace-separated word). A text built only from words
// whose upstream id is green under account A's Unigram list must be traced to A and nobody else.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "test/upstream/test_process.h"
#include "watermark/detector.h"
#include "watermark/radioactivity.h"
#include "watermark/tracer.h"

namespace moat::watermark {
namespace {

MasterSecret TestSecret() {
  std::array<uint8_t, kMasterSecretBytes> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(5 * i + 1);
  return MasterSecret(b);
}

class UpstreamTokenizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(upstream_.Start().ok());
    url_ = "http://127.0.0.1:" + std::to_string(upstream_.port()) + "/tokenize";
  }
  testing::TestUpstream upstream_;
  std::string url_;
};

TEST_F(UpstreamTokenizeTest, TokenizeReturnsOneStableIdPerWord) {
  auto c = SuspectClient::Create(url_);
  ASSERT_TRUE(c.ok());
  auto a = c->Tokenize("test-model", "alpha beta alpha gamma");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_EQ(a->size(), 4u);
  EXPECT_EQ((*a)[0], (*a)[2]);
  EXPECT_NE((*a)[0], (*a)[1]);
  for (int32_t id : *a) EXPECT_LT(id, 50000);
  // The base URL without a path defaults to /tokenize.
  auto root = SuspectClient::Create("http://127.0.0.1:" + std::to_string(upstream_.port()));
  ASSERT_TRUE(root.ok());
  auto b = root->Tokenize("test-model", "alpha");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)[0], (*a)[0]);
}

TEST_F(UpstreamTokenizeTest, GreenWordTextIsTracedToItsAccountOnly) {
  WatermarkConfig cfg;
  cfg.scheme = Scheme::kUnigram;
  std::vector<std::string> accounts;
  for (int i = 0; i < 1000; ++i) accounts.push_back("acct_u" + std::to_string(i));
  const auto keys = DeriveKeys(TestSecret(), accounts, 0, 0);
  const WatermarkKey& guilty = keys[421];

  auto c = SuspectClient::Create(url_);
  ASSERT_TRUE(c.ok());
  std::string candidates;
  for (int i = 0; i < 3000; ++i) candidates += (i ? " w" : "w") + std::to_string(i);
  auto ids = c->Tokenize("test-model", candidates);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_EQ(ids->size(), 3000u);
  // Keep words whose upstream id is green for the guilty key: what a Unigram logit_bias map
  // with a large delta makes the upstream emit.
  const GreenList green(guilty, cfg);
  std::string text;
  std::set<int32_t> chosen;
  for (int i = 0; i < 3000 && chosen.size() < 200; ++i) {
    if (!green.IsGreen(green.ContextSeed({}), (*ids)[i]) || !chosen.insert((*ids)[i]).second) continue;
    text += (text.empty() ? "w" : " w") + std::to_string(i);
  }
  ASSERT_EQ(chosen.size(), 200u);

  auto units = UpstreamUnitsOfTexts({text}, *c, "test-model", 0, cfg.h());
  ASSERT_TRUE(units.ok()) << units.status().ToString();
  EXPECT_EQ(units->size(), 200);
  const auto report = Trace(*units, keys, cfg, TraceOptions{});
  EXPECT_EQ(report.significant, 1);
  ASSERT_FALSE(report.ranked.empty());
  EXPECT_EQ(report.ranked[0].account, "acct_u421");
  EXPECT_LT(report.ranked[0].result.log_p, std::log(1e-20));

  // A vocabulary bound drops the ids the logit_bias map never covered.
  int64_t below = 0;
  for (int32_t id : chosen) below += id < 25000 ? 1 : 0;
  auto bounded = UpstreamUnitsOfTexts({text}, *c, "test-model", 25000, cfg.h());
  ASSERT_TRUE(bounded.ok());
  EXPECT_EQ(bounded->size(), below);

  // Plain words (not chosen by any key) implicate nobody.
  std::string plain;
  for (int i = 0; i < 200; ++i) plain += (i ? " w" : "w") + std::to_string(i);
  auto null_units = UpstreamUnitsOfTexts({plain}, *c, "test-model", 0, cfg.h());
  ASSERT_TRUE(null_units.ok());
  EXPECT_EQ(Trace(*null_units, keys, cfg, TraceOptions{}).significant, 0);
}

TEST(UpstreamTokenizeErrorTest, DisabledEndpointIsAnError) {
  testing::TestUpstream upstream;
  ASSERT_TRUE(upstream.Start({"--no-tokenize"}).ok());
  auto c = SuspectClient::Create("http://127.0.0.1:" + std::to_string(upstream.port()) + "/tokenize");
  ASSERT_TRUE(c.ok());
  auto r = UpstreamUnitsOfTexts({"a b"}, *c, "m", 0, 0);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace moat::watermark

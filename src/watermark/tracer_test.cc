#include "watermark/tracer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "watermark/watermark_sampler.h"

namespace moat::watermark {
namespace {

// Samples `n` tokens from a fixed high-entropy distribution through a real sampler chain with
// the watermark stage of `key` (no model needed: tracing only sees tokens).
std::vector<int32_t> WatermarkedTokens(const WatermarkKey& key, const WatermarkConfig& cfg, int n,
                                       uint64_t seed) {
  const int kVocab = 4000;
  std::mt19937_64 rng(99);
  std::normal_distribution<float> normal(0, 1.5f);
  std::vector<float> logits(kVocab);
  for (auto& l : logits) l = normal(rng);
  model::SamplerChain chain;
  chain.Add(std::make_unique<WatermarkSampler>(key, cfg));
  chain.Add(std::make_unique<model::DistSampler>(seed));
  chain.Accept(0);
  std::vector<int32_t> out;
  model::CandidateArray c;
  for (int i = 0; i < n; ++i) {
    c.Assign(logits);
    chain.Apply(&c);
    out.push_back(c.selected_token());
    chain.Accept(out.back());
  }
  return out;
}

std::vector<WatermarkKey> ManyKeys(int n) {
  std::array<uint8_t, kMasterSecretBytes> b{};
  b.fill(42);
  std::vector<std::string> accounts;
  for (int i = 0; i < n; ++i) accounts.push_back("acct-" + std::to_string(i));
  return DeriveKeys(MasterSecret(b), accounts, 0, 0);
}

TEST(AdjustTest, HolmAndBonferroniMatchHandComputation) {
  std::vector<double> p = {0.01, 0.04, 0.03, 0.005};
  std::vector<double> lp;
  for (double v : p) lp.push_back(std::log(v));
  auto bon = AdjustLogPValues(lp, Correction::kBonferroni);
  auto holm = AdjustLogPValues(lp, Correction::kHolm);
  // Bonferroni: 4p capped at 1.  Holm (sorted .005 .01 .03 .04): .02 .03 .06 .06 (monotone).
  const std::vector<double> want_bon = {0.04, 0.16, 0.12, 0.02};
  const std::vector<double> want_holm = {0.03, 0.06, 0.06, 0.02};
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_NEAR(std::exp(bon[i]), want_bon[i], 1e-12);
    EXPECT_NEAR(std::exp(holm[i]), want_holm[i], 1e-12);
  }
}

TEST(TracerTest, FindsOneGuiltyAccountAmong10000Keys) {
  const auto keys = ManyKeys(10000);
  const WatermarkConfig cfg;  // KGW h=1, gamma .25, delta 2
  ScoringUnits units(cfg.h());
  units.AddSequence(WatermarkedTokens(keys[4321], cfg, 400, 1));
  TraceReport r = Trace(units, keys, cfg, TraceOptions{});
  EXPECT_EQ(r.keys, 10000);
  ASSERT_FALSE(r.ranked.empty());
  EXPECT_EQ(r.ranked[0].account, "acct-4321");
  EXPECT_TRUE(r.ranked[0].significant);
  EXPECT_EQ(r.significant, 1);
  EXPECT_LT(r.ranked[0].log_adjusted_p, std::log(1e-6));
}

TEST(TracerTest, FindsThreeGuiltyAccountsInAMixedLeak) {
  const auto keys = ManyKeys(10000);
  for (Scheme scheme : {Scheme::kKgw, Scheme::kUnigram}) {
    WatermarkConfig cfg;
    cfg.scheme = scheme;
    ScoringUnits units(cfg.h());
    for (int guilty : {17, 5000, 9999}) {
      units.AddSequence(WatermarkedTokens(keys[guilty], cfg, 500, guilty));
    }
    TraceOptions opt;
    opt.alpha = 0.01;
    TraceReport r = Trace(units, keys, cfg, opt);
    EXPECT_EQ(r.significant, 3) << SchemeName(scheme);
    std::set<std::string> found;
    for (const auto& e : r.ranked) {
      if (e.significant) found.insert(e.account);
    }
    EXPECT_EQ(found, (std::set<std::string>{"acct-17", "acct-5000", "acct-9999"}));
  }
}

TEST(TracerTest, CleanTextImplicatesNobody) {
  const auto keys = ManyKeys(10000);
  WatermarkKey outsider;
  outsider.seed = 0xdeadbeef;
  outsider.key_id = "wm:outsider:0";
  const WatermarkConfig cfg;
  ScoringUnits units(cfg.h());
  units.AddSequence(WatermarkedTokens(outsider, cfg, 600, 5));
  TraceReport r = Trace(units, keys, cfg, TraceOptions{});
  EXPECT_EQ(r.significant, 0);
  EXPECT_EQ(r.ranked.size(), 10u);
}

}  // namespace
}  // namespace moat::watermark

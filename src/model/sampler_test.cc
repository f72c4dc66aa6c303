#include "model/sampler.h"

#include <gtest/gtest.h>

#include <cmath>

namespace moat::model {
namespace {

CandidateArray FromProbs(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  CandidateArray c;
  c.Assign(logits);
  return c;
}

TEST(SamplerTest, TemperatureScalesLogits) {
  CandidateArray c;
  c.Assign({1.0f, -2.0f, 4.0f});
  TemperatureSampler(0.5).Apply(&c);
  EXPECT_FLOAT_EQ(c.data[0].logit, 2.0f);
  EXPECT_FLOAT_EQ(c.data[1].logit, -4.0f);
  EXPECT_FLOAT_EQ(c.data[2].logit, 8.0f);
}

TEST(SamplerTest, TopKKeepsHighestSorted) {
  CandidateArray c;
  c.Assign({0.1f, 3.0f, -1.0f, 2.0f, 5.0f});
  TopKSampler(2).Apply(&c);
  ASSERT_EQ(c.data.size(), 2u);
  EXPECT_EQ(c.data[0].id, 4);
  EXPECT_EQ(c.data[1].id, 1);
  EXPECT_TRUE(c.sorted);
  TopKSampler(0).Apply(&c);  // no-op
  EXPECT_EQ(c.data.size(), 2u);
}

TEST(SamplerTest, TopPKeepsSmallestNucleus) {
  for (auto [p, want] : std::vector<std::pair<double, size_t>>{{0.4, 1}, {0.65, 2}, {0.85, 3}, {1.0, 4}}) {
    CandidateArray c = FromProbs({0.2, 0.5, 0.1, 0.2});
    TopPSampler(p).Apply(&c);
    EXPECT_EQ(c.data.size(), want) << p;
    if (p < 1) {
      EXPECT_EQ(c.data[0].id, 1);
    }
  }
}

TEST(SamplerTest, LogitBiasAddsToListedTokens) {
  CandidateArray c;
  c.Assign({0, 0, 0});
  LogitBiasSampler({{2, 5.0f}, {0, -1.0f}}).Apply(&c);
  EXPECT_FLOAT_EQ(c.data[0].logit, -1.0f);
  EXPECT_FLOAT_EQ(c.data[1].logit, 0.0f);
  EXPECT_FLOAT_EQ(c.data[2].logit, 5.0f);
  c.SortDescending();  // sparse path after sorting
  LogitBiasSampler({{1, 2.0f}}).Apply(&c);
  for (const auto& t : c.data) {
    if (t.id == 1) {
      EXPECT_FLOAT_EQ(t.logit, 2.0f);
    }
  }
}

TEST(SamplerTest, GreedyPicksMax) {
  CandidateArray c;
  c.Assign({0.1f, 3.0f, -1.0f});
  GreedySampler().Apply(&c);
  EXPECT_EQ(c.selected_token(), 1);
}

TEST(SamplerTest, DistIsSeededAndMatchesSoftmax) {
  const std::vector<double> probs = {0.1, 0.6, 0.3};
  DistSampler a(42), b(42);
  std::vector<int> counts(3);
  const int kDraws = 30000;
  for (int i = 0; i < kDraws; ++i) {
    CandidateArray ca = FromProbs(probs), cb = FromProbs(probs);
    a.Apply(&ca);
    b.Apply(&cb);
    ASSERT_EQ(ca.selected_token(), cb.selected_token());
    ++counts[ca.selected_token()];
  }
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(counts[t] / double(kDraws), probs[t], 0.015);
}

TEST(SamplerTest, DistNeverPicksImpossibleToken) {
  CandidateArray c;
  DistSampler d(1);
  for (int i = 0; i < 1000; ++i) {
    c.Assign({-INFINITY, 0.0f, -INFINITY});
    d.Apply(&c);
    ASSERT_EQ(c.selected_token(), 1);
  }
}

// A stage that records what it sees, to check the chain's forwarding.
class RecordingSampler final : public Sampler {
 public:
  std::string_view name() const override { return "recording"; }
  void Apply(CandidateArray* c) override { sizes.push_back(c->data.size()); }
  void Accept(TokenId t) override { accepted.push_back(t); }
  std::vector<size_t> sizes;
  std::vector<TokenId> accepted;
};

TEST(SamplerTest, ChainRunsStagesInOrderAndForwardsAccept) {
  SamplerChain chain;
  auto rec1 = std::make_unique<RecordingSampler>();
  auto rec2 = std::make_unique<RecordingSampler>();
  RecordingSampler* r1 = rec1.get();
  RecordingSampler* r2 = rec2.get();
  chain.Add(std::move(rec1));
  chain.Add(std::make_unique<TopKSampler>(2));
  chain.Add(std::move(rec2));
  chain.Add(std::make_unique<GreedySampler>());
  CandidateArray c;
  c.Assign({1, 2, 3, 4});
  chain.Apply(&c);
  EXPECT_EQ(c.selected_token(), 3);
  chain.Accept(3);
  EXPECT_EQ(r1->sizes, std::vector<size_t>{4});
  EXPECT_EQ(r2->sizes, std::vector<size_t>{2});
  EXPECT_EQ(r1->accepted, std::vector<TokenId>{3});
  EXPECT_EQ(r2->accepted, std::vector<TokenId>{3});
}

TEST(SamplerTest, LogprobCaptureReportsNormalisedLogprobs) {
  CandidateArray c = FromProbs({0.25, 0.5, 0.25});
  LogprobCapture cap;
  cap.Apply(&c);
  EXPECT_NEAR(cap.LogprobOf(1), std::log(0.5), 1e-6);
  auto top = cap.Top(2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].first, 1);
  EXPECT_NEAR(top[1].second, std::log(0.25), 1e-6);
}

}  // namespace
}  // namespace moat::model

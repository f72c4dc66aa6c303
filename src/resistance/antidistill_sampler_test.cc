#include "resistance/antidistill_sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/ngram_model.h"
#include "watermark/detector.h"
#include "watermark/watermark_key.h"
#include "watermark/watermark_sampler.h"

namespace moat::resistance {
namespace {

// A proxy student with a fixed next-token distribution that records the context it was shown.
class FixedProxy final : public model::LanguageModel {
 public:
  explicit FixedProxy(std::vector<double> probs) : tok_(std::vector<std::string>{}) {
    for (double p : probs) logits_.push_back(static_cast<float>(std::log(p)));
  }
  const model::Tokenizer& tokenizer() const override { return tok_; }
  void NextTokenLogits(std::span<const model::TokenId> c, std::vector<float>* l) const override {
    last_context.assign(c.begin(), c.end());
    *l = logits_;
  }
  mutable std::vector<model::TokenId> last_context;

 private:
  model::WordTokenizer tok_;
  std::vector<float> logits_;
};

model::CandidateArray FromProbs(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  model::CandidateArray c;
  c.Assign(logits);
  return c;
}

std::vector<double> Softmax(const model::CandidateArray& c) {
  const double lse = model::LogSumExp(c);
  std::vector<double> p(c.data.size());
  for (const auto& t : c.data) p[static_cast<size_t>(t.id)] = std::exp(t.logit - lse);
  return p;
}

double Kl(const std::vector<double>& q, const std::vector<double>& p) {
  double kl = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    if (q[i] > 0) kl += q[i] * std::log(q[i] / p[i]);
  }
  return kl;
}

TEST(AntidistillSamplerTest, ProxyDirectionExactLogitsWithinTheNucleus) {
  const std::vector<double> p = {0.5, 0.3, 0.15, 0.05};
  FixedProxy proxy({0.2, 0.5, 0.2, 0.1});
  AntidistillOptions o;
  o.kl_budget = 10;  // loose: the full tilt t = 1 applies
  o.strength = 1;
  o.nucleus = 0.9;   // tokens 0, 1, 2 (0.5 + 0.3 < 0.9 <= 0.95)
  o.proxy_context = 2;
  AntidistillSampler s(o, &proxy);
  for (model::TokenId t : {7, 8, 9}) s.Accept(t);
  auto c = FromProbs(p);
  s.Apply(&c);
  // d = r - p on the nucleus = (-0.3, 0.2, 0.05), divided by max |d| = 0.3.
  EXPECT_FLOAT_EQ(c.data[0].logit, static_cast<float>(std::log(0.5)) - 1.0f);
  EXPECT_FLOAT_EQ(c.data[1].logit, static_cast<float>(std::log(0.3)) + static_cast<float>(0.2 / 0.3));
  EXPECT_FLOAT_EQ(c.data[2].logit, static_cast<float>(std::log(0.15)) + static_cast<float>(0.05 / 0.3));
  EXPECT_FLOAT_EQ(c.data[3].logit, static_cast<float>(std::log(0.05)));  // outside the nucleus
  EXPECT_EQ(proxy.last_context, (std::vector<model::TokenId>{8, 9}));     // the last 2 tokens
  EXPECT_EQ(s.stats().steps, 1);
  EXPECT_EQ(s.stats().perturbed, 1);
  // The greedy choice moves from token 0 to the token the proxy over-predicts.
  model::GreedySampler greedy;
  greedy.Apply(&c);
  EXPECT_EQ(c.selected_token(), 1);
}

TEST(AntidistillSamplerTest, KlBoundHoldsAndIsSpentOnRandomDistributions) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> gauss(0, 2);
  for (const auto dir : {AntidistillOptions::Direction::kProxy, AntidistillOptions::Direction::kKeyed}) {
    for (double budget : {0.01, 0.1, 0.5}) {
      for (int trial = 0; trial < 50; ++trial) {
        std::vector<double> logits(40), r(40);
        double zp = 0, zr = 0;
        for (size_t i = 0; i < 40; ++i) {
          logits[i] = std::exp(gauss(rng));
          r[i] = std::exp(gauss(rng));
          zp += logits[i];
          zr += r[i];
        }
        for (size_t i = 0; i < 40; ++i) {
          logits[i] /= zp;
          r[i] /= zr;
        }
        FixedProxy proxy(r);
        AntidistillOptions o;
        o.kl_budget = budget;
        o.direction = dir;
        o.key = 99 + static_cast<uint64_t>(trial);
        AntidistillSampler s(o, &proxy);
        auto c = FromProbs(logits);
        const auto before = c;
        s.Apply(&c);
        const double kl = Kl(Softmax(c), Softmax(before));
        EXPECT_LE(kl, budget + 1e-5) << "trial " << trial;
        EXPECT_NEAR(kl, s.stats().kl_sum, 1e-4);
        if (s.stats().perturbed == 0) {
          EXPECT_EQ(kl, 0);  // a one-token nucleus: nothing to shift
        } else if (s.stats().kl_max < budget - 1e-6) {
          EXPECT_GT(kl, 0);  // unbounded tilt (t = 1) stayed under the budget
        } else {
          EXPECT_NEAR(kl, budget, 1e-3);  // the budget is spent, not wasted
        }
        // Tokens outside the teacher's 0.95 nucleus keep their logits.
        std::vector<size_t> order(40);
        for (size_t i = 0; i < 40; ++i) order[i] = i;
        std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] > logits[b]; });
        double mass = 0;
        size_t j = 0;
        while (mass < 0.95) mass += logits[order[j++]];
        for (; j < 40; ++j) EXPECT_EQ(c.data[order[j]].logit, before.data[order[j]].logit);
      }
    }
  }
}

TEST(AntidistillSamplerTest, LeavesPeakedDistributionsAndZeroBudgetAlone) {
  FixedProxy proxy({0.25, 0.25, 0.25, 0.25});
  AntidistillOptions o;
  AntidistillSampler s(o, &proxy);
  auto c = FromProbs({0.97, 0.01, 0.01, 0.01});  // the nucleus is one token
  const auto before = c;
  s.Apply(&c);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(c.data[i].logit, before.data[i].logit);
  o.kl_budget = 0;
  AntidistillSampler off(o, &proxy);
  auto d = FromProbs({0.4, 0.3, 0.2, 0.1});
  const auto d0 = d;
  off.Apply(&d);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(d.data[i].logit, d0.data[i].logit);
  EXPECT_EQ(s.stats().perturbed + off.stats().perturbed, 0);
}

TEST(AntidistillSamplerTest, KeyedDirectionDependsOnKeyAndContextOnly) {
  const std::vector<double> p = {0.3, 0.3, 0.2, 0.2};
  auto run = [&](uint64_t key, std::vector<model::TokenId> history) {
    AntidistillOptions o;
    o.direction = AntidistillOptions::Direction::kKeyed;
    o.key = key;
    o.kl_budget = 10;
    o.strength = 1;
    AntidistillSampler s(o, nullptr);
    for (auto t : history) s.Accept(t);
    auto c = FromProbs(p);
    s.Apply(&c);
    std::vector<float> out;
    for (const auto& t : c.data) out.push_back(t.logit);
    return out;
  };
  EXPECT_EQ(run(1, {5, 6}), run(1, {4, 5, 6}));  // only the last proxy_context = 2 tokens count
  EXPECT_NE(run(1, {5, 6}), run(2, {5, 6}));
  EXPECT_NE(run(1, {5, 6}), run(1, {6, 5}));
}

// The watermark stage after the anti-distillation stage still marks the output.
TEST(AntidistillSamplerTest, WatermarkStaysDetectableOnHardenedOutput) {
  std::mt19937_64 rng(3);
  std::vector<std::string> words;
  for (int i = 0; i < 300; ++i) words.push_back("w" + std::to_string(i));
  std::vector<std::string> docs;
  for (int d = 0; d < 400; ++d) {
    std::string doc;
    for (int i = 0; i < 30; ++i) doc += (i ? " " : "") + words[rng() % words.size()];
    docs.push_back(doc);
  }
  model::NGramTrainOptions bigram;
  bigram.order = 2;  // a high-entropy teacher: most steps have a nucleus to shift
  auto m = model::NGramModel::Train(docs, bigram);
  ASSERT_TRUE(m.ok());
  const model::NGramModel& model = **m;
  std::array<uint8_t, watermark::kMasterSecretBytes> secret{};
  secret[0] = 1;
  const auto key = watermark::DeriveKey(watermark::MasterSecret(secret), "acct", 0);
  const auto other = watermark::DeriveKey(watermark::MasterSecret(secret), "other", 0);
  watermark::WatermarkConfig cfg;

  model::SamplerChain chain;
  AntidistillOptions o;
  o.kl_budget = 0.5;
  o.proxy_context = 0;  // the proxy student is the teacher's unigram view
  auto stage = std::make_unique<AntidistillSampler>(o, &model);
  const AntidistillSampler* hardening = stage.get();
  chain.Add(std::move(stage));
  chain.Add(std::make_unique<watermark::WatermarkSampler>(key, cfg));
  chain.Add(std::make_unique<model::DistSampler>(11));
  std::vector<model::TokenId> context{model.tokenizer().bos()};
  chain.Accept(context[0]);
  std::vector<float> logits;
  model::CandidateArray cands;
  std::vector<int32_t> out;
  while (out.size() < 400) {
    model.NextTokenLogits(context, &logits);
    cands.Assign(logits);
    chain.Apply(&cands);
    const auto t = cands.selected_token();
    if (t == model.tokenizer().eos()) {
      context.assign(1, model.tokenizer().bos());
      continue;
    }
    chain.Accept(t);
    context.push_back(t);
    out.push_back(t);
  }
  EXPECT_GT(hardening->stats().perturbed, 200);
  EXPECT_GT(hardening->stats().kl_sum / static_cast<double>(hardening->stats().perturbed), 0.1);
  watermark::ScoringUnits units(cfg.h());
  units.AddSequence(out);
  EXPECT_LT(watermark::Detect(units, key, cfg).p_value, 1e-8);
  EXPECT_GT(watermark::Detect(units, other, cfg).p_value, 1e-3);
}

}  // namespace
}  // namespace moat::resistance

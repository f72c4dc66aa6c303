// End-to-end: the real built-in model generates with an account's watermark; the detector
// finds it, also after random token substitutions, and other keys / unwatermarked text do not.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "model/builtin_engine.h"
#include "model/corpus.h"
#include "model/ngram_model.h"
#include "watermark/detector.h"
#include "watermark/logit_bias.h"
#include "watermark/watermark_sampler.h"

namespace moat::watermark {
namespace {

using model::BuiltinEngine;
using model::GenerationRequest;

class RoundTripTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(model::kDefaultCorpusDir)) return;
    auto docs = model::ReadCorpus(model::kDefaultCorpusDir, 600000);
    if (!docs.ok()) return;
    auto m = model::NGramModel::Train(*docs, model::NGramTrainOptions{});
    if (!m.ok()) return;
    model_ = m->release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (model_ == nullptr) GTEST_SKIP() << "fortunes package not installed: no training corpus";
  }

  // A fresh engine over the shared model (the engine takes ownership of a copy of nothing: we
  // load it once and wrap it in a non-owning adapter).
  class Borrowed final : public model::LanguageModel {
   public:
    explicit Borrowed(const model::LanguageModel& m) : m_(m) {}
    const model::Tokenizer& tokenizer() const override { return m_.tokenizer(); }
    void NextTokenLogits(std::span<const model::TokenId> c, std::vector<float>* l) const override {
      m_.NextTokenLogits(c, l);
    }

   private:
    const model::LanguageModel& m_;
  };

  static std::unique_ptr<BuiltinEngine> Engine(const WatermarkConfig& cfg) {
    auto e = BuiltinEngine::FromModel(std::make_unique<Borrowed>(*model_), cfg);
    EXPECT_TRUE(e.ok());
    return std::move(e).value();
  }

  // Generates about `tokens` tokens over several prompts (the toy model often ends a fortune).
  static std::vector<std::vector<int32_t>> Generate(const BuiltinEngine& e, const WatermarkKey* key,
                                                    int tokens, uint64_t seed) {
    std::vector<std::vector<int32_t>> out;
    int total = 0;
    const char* prompts[] = {"The", "A man", "Life is", "Never", "You will", "When"};
    for (int i = 0; total < tokens; ++i) {
      GenerationRequest r;
      r.prompt = prompts[i % 6];
      r.max_tokens = 120;
      r.seed = seed + i;
      r.key = key;
      auto res = e.Generate(r, [](const model::GeneratedPiece&) { return true; });
      EXPECT_TRUE(res.ok());
      auto ids = e.tokenizer().Encode(res->text);  // detection re-tokenises the text
      total += static_cast<int>(ids.size());
      out.push_back(std::move(ids));
      if (i > 500) break;
    }
    return out;
  }

  static DetectionResult Score(const std::vector<std::vector<int32_t>>& texts,
                               const WatermarkKey& key, const WatermarkConfig& cfg) {
    ScoringUnits units(cfg.h());
    for (const auto& t : texts) units.AddSequence(t);
    return Detect(units, key, cfg);
  }

  static MasterSecret Secret() {
    std::array<uint8_t, kMasterSecretBytes> b{};
    b.fill(7);
    return MasterSecret(b);
  }

  static model::NGramModel* model_;
};
model::NGramModel* RoundTripTest::model_ = nullptr;

TEST_F(RoundTripTest, KgwEmbedAndDetect) {
  WatermarkConfig cfg;  // KGW, gamma .25, delta 2, h 1
  auto engine = Engine(cfg);
  const WatermarkKey alice = DeriveKey(Secret(), "alice", 0);
  const WatermarkKey bob = DeriveKey(Secret(), "bob", 0);
  const WatermarkKey alice1 = DeriveKey(Secret(), "alice", 1);
  auto texts = Generate(*engine, &alice, 200, 1);
  DetectionResult r = Score(texts, alice, cfg);
  EXPECT_LT(r.p_value, 1e-6) << "scored " << r.scored << " green " << r.green_fraction;
  EXPECT_GT(r.z, 4);
  EXPECT_GT(Score(texts, bob, cfg).p_value, 1e-3);
  EXPECT_GT(Score(texts, alice1, cfg).p_value, 1e-3);  // rotation changes the key
  auto clean = Generate(*engine, nullptr, 200, 1);
  EXPECT_GT(Score(clean, alice, cfg).p_value, 1e-3);
}

TEST_F(RoundTripTest, SurvivesRandomSubstitutions) {
  WatermarkConfig cfg;
  auto engine = Engine(cfg);
  const WatermarkKey key = DeriveKey(Secret(), "carol", 0);
  auto texts = Generate(*engine, &key, 400, 100);
  const int vocab = engine->tokenizer().vocab_size();
  for (double rate : {0.1, 0.2, 0.3}) {
    std::mt19937_64 rng(static_cast<uint64_t>(rate * 1000));
    auto attacked = texts;
    for (auto& t : attacked) {
      for (auto& tok : t) {
        if (std::uniform_real_distribution<double>(0, 1)(rng) < rate) {
          tok = 2 + static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab - 2));
        }
      }
    }
    DetectionResult r = Score(attacked, key, cfg);
    EXPECT_LT(r.p_value, 1e-4) << "substitution rate " << rate << " z " << r.z;
    std::printf("substitution %.0f%%: scored %lld green %.3f z %.2f p %.3g\n", rate * 100,
                static_cast<long long>(r.scored), r.green_fraction, r.z, r.p_value);
  }
}

TEST_F(RoundTripTest, UnigramAndUpstreamLogitBias) {
  WatermarkConfig cfg;
  cfg.scheme = Scheme::kUnigram;
  const WatermarkKey key = DeriveKey(Secret(), "dave", 3);
  const int vocab = model_->tokenizer().vocab_size();
  auto bias = UnigramLogitBias(key, cfg, vocab);
  ASSERT_TRUE(bias.ok());
  EXPECT_NEAR(bias->size() / double(vocab), cfg.gamma, 0.03);
  EXPECT_EQ(UnigramLogitBias(key, cfg, vocab, 100).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(UnigramLogitBias(key, WatermarkConfig{}, vocab).status().code(),
            StatusCode::kInvalidArgument);
  // Upstream mode: no watermark stage, just the logit_bias map the gateway would inject.
  WatermarkConfig off;
  off.enabled = false;
  auto engine = Engine(off);
  std::vector<std::vector<int32_t>> texts;
  int total = 0;
  for (int i = 0; total < 300; ++i) {
    GenerationRequest r;
    r.prompt = "The";
    r.seed = 500 + i;
    r.max_tokens = 100;
    r.logit_bias = *bias;
    auto res = engine->Generate(r, [](const model::GeneratedPiece&) { return true; });
    ASSERT_TRUE(res.ok());
    texts.push_back(engine->tokenizer().Encode(res->text));
    total += static_cast<int>(texts.back().size());
  }
  DetectionResult r = Score(texts, key, cfg);
  EXPECT_LT(r.p_value, 1e-6) << "scored " << r.scored << " green " << r.green_fraction;
  EXPECT_GT(Score(texts, DeriveKey(Secret(), "erin", 3), cfg).p_value, 1e-3);
}

}  // namespace
}  // namespace moat::watermark

#include "model/ngram_model.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "model/corpus.h"

namespace moat::model {
namespace {

std::vector<std::string> ToyCorpus() {
  std::vector<std::string> docs;
  const char* subjects[] = {"the cat", "the dog", "a bird", "my friend", "the old man"};
  const char* verbs[] = {"sat on", "looked at", "ran to", "jumped over"};
  const char* objects[] = {"the mat.", "the fence.", "a tree.", "the house."};
  for (int i = 0; i < 400; ++i) {
    docs.push_back(std::string(subjects[i % 5]) + " " + verbs[(i / 5) % 4] + " " +
                   objects[(i / 20) % 4]);
  }
  return docs;
}

double SumProbs(const std::vector<float>& logits) {
  double s = 0;
  for (float l : logits) s += std::exp(static_cast<double>(l));
  return s;
}

TEST(NGramModelTest, DistributionsAreNormalisedAndMatchLogProb) {
  NGramTrainOptions opt;
  opt.order = 4;
  opt.min_count_high = 2;
  auto model = NGramModel::Train(ToyCorpus(), opt);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const Tokenizer& tok = (*model)->tokenizer();
  std::vector<float> logits;
  for (const char* prefix : {"", "the", "the cat", "the cat sat on", "zzz unknown words"}) {
    std::vector<TokenId> ctx{tok.bos()};
    auto p = tok.Encode(prefix);
    ctx.insert(ctx.end(), p.begin(), p.end());
    (*model)->NextTokenLogits(ctx, &logits);
    ASSERT_EQ(logits.size(), static_cast<size_t>(tok.vocab_size()));
    EXPECT_NEAR(SumProbs(logits), 1.0, 1e-4) << prefix;
    EXPECT_TRUE(std::isinf(logits[tok.bos()]));
    for (TokenId t : {tok.eos(), TokenId{5}, TokenId{tok.vocab_size() - 1}}) {
      EXPECT_NEAR((*model)->LogProb(ctx, t), logits[t], 1e-4);
    }
  }
}

TEST(NGramModelTest, LearnsContinuations) {
  auto model = NGramModel::Train(ToyCorpus(), NGramTrainOptions{});
  ASSERT_TRUE(model.ok());
  const Tokenizer& tok = (*model)->tokenizer();
  std::vector<TokenId> ctx{tok.bos()};
  auto p = tok.Encode("the cat sat");
  ctx.insert(ctx.end(), p.begin(), p.end());
  const TokenId on = tok.Encode(" on")[0];
  const TokenId fence = tok.Encode(" fence")[0];
  EXPECT_GT((*model)->LogProb(ctx, on), std::log(0.9));
  EXPECT_LT((*model)->LogProb(ctx, fence), std::log(0.05));
}

TEST(NGramModelTest, SaveLoadRoundTripAndCorruption) {
  auto model = NGramModel::Train(ToyCorpus(), NGramTrainOptions{});
  ASSERT_TRUE(model.ok());
  const std::string path =
      (std::filesystem::temp_directory_path() / ("moat_ngram_test_" + std::to_string(::getpid()))).string();
  ASSERT_TRUE((*model)->Save(path).ok());
  auto loaded = NGramModel::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->tokenizer().vocab_size(), (*model)->tokenizer().vocab_size());
  std::vector<float> a, b;
  std::vector<TokenId> ctx = (*model)->tokenizer().Encode("the dog looked");
  (*model)->NextTokenLogits(ctx, &a);
  (*loaded)->NextTokenLogits(ctx, &b);
  EXPECT_EQ(a, b);

  // Truncated and mislabelled files are rejected, not crashed on.
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 3);
  EXPECT_EQ(NGramModel::Load(path).status().code(), StatusCode::kDataLoss);
  {
    std::ofstream out(path, std::ios::trunc);
    out << "NOTAMODEL-------";
  }
  EXPECT_EQ(NGramModel::Load(path).status().code(), StatusCode::kDataLoss);
  std::filesystem::remove(path);
  EXPECT_EQ(NGramModel::Load(path).status().code(), StatusCode::kNotFound);
}

TEST(NGramModelTest, RejectsBadOptions) {
  NGramTrainOptions opt;
  opt.order = 5;
  EXPECT_EQ(NGramModel::Train(ToyCorpus(), opt).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(NGramModel::Train({}, NGramTrainOptions{}).status().code(), StatusCode::kInvalidArgument);
}

TEST(NGramModelTest, TrainsOnFortunesSubsetQuickly) {
  if (!std::filesystem::exists(kDefaultCorpusDir)) {
    GTEST_SKIP() << "fortunes package not installed (" << kDefaultCorpusDir << ")";
  }
  auto docs = ReadCorpus(kDefaultCorpusDir, 400000);
  ASSERT_TRUE(docs.ok()) << docs.status().ToString();
  EXPECT_GT(docs->size(), 500u);
  const auto t0 = std::chrono::steady_clock::now();
  auto model = NGramModel::Train(*docs, NGramTrainOptions{});
  ASSERT_TRUE(model.ok());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
  // Held-in text is far more likely than shuffled text.
  const Tokenizer& tok = (*model)->tokenizer();
  auto ids = tok.Encode((*docs)[10]);
  std::vector<TokenId> ctx{tok.bos()};
  double lp = 0, lp_rev = 0;
  for (TokenId t : ids) {
    lp += (*model)->LogProb(ctx, t);
    ctx.push_back(t);
  }
  ctx.assign(1, tok.bos());
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    lp_rev += (*model)->LogProb(ctx, *it);
    ctx.push_back(*it);
  }
  EXPECT_GT(lp, lp_rev + 5);
}

TEST(CorpusTest, SplitsFortuneFiles) {
  auto docs = SplitFortunes("first\nline\n%\nsecond\n%\n%\n\nthird\n");
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0], "first\nline");
  EXPECT_EQ(docs[1], "second");
  EXPECT_EQ(docs[2], "\nthird");
}

}  // namespace
}  // namespace moat::model

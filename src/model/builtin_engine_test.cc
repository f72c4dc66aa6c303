#include "model/builtin_engine.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/utf8.h"
#include "model/ngram_model.h"

namespace moat::model {
namespace {

std::unique_ptr<BuiltinEngine> ToyEngine() {
  std::vector<std::string> docs;
  const char* lines[] = {"the cat sat on the mat. then the cat slept.",
                         "a dog ran to the park and the dog barked.",
                         "my friend said hello. the end.", "the sun rose over the hills."};
  for (int i = 0; i < 200; ++i) docs.push_back(lines[i % 4]);
  auto model = NGramModel::Train(docs, NGramTrainOptions{});
  EXPECT_TRUE(model.ok());
  auto engine = BuiltinEngine::FromModel(std::move(model).value(), WatermarkConfig{});
  EXPECT_TRUE(engine.ok());
  return std::move(engine).value();
}

std::string Collect(const BuiltinEngine& e, const GenerationRequest& r, GenerationResult* out) {
  std::string streamed;
  auto res = e.Generate(r, [&](const GeneratedPiece& p) {
    streamed += p.text;
    return true;
  });
  EXPECT_TRUE(res.ok()) << res.status().ToString();
  if (res.ok()) *out = *res;
  return streamed;
}

TEST(BuiltinEngineTest, SeededGenerationIsDeterministicAndStreamMatchesText) {
  auto e = ToyEngine();
  GenerationRequest r;
  r.prompt = "the";
  r.seed = 7;
  r.max_tokens = 30;
  GenerationResult a, b;
  std::string sa = Collect(*e, r, &a);
  Collect(*e, r, &b);
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(sa, a.text);
  EXPECT_FALSE(a.text.empty());
  EXPECT_EQ(a.prompt_tokens, 1);
  EXPECT_LE(a.completion_tokens, 30);
  EXPECT_TRUE(a.finish_reason == "stop" || a.finish_reason == "length");
}

// Byte tokens can cut a character in two: no piece ends inside a UTF-8 sequence that the next
// piece completes, so a stream whose events are each made valid text (invalid bytes as U+FFFD,
// as the gateway serves them) reads as the whole text made valid, "é" never as two U+FFFD.
TEST(BuiltinEngineTest, PiecesNeverSplitACharacter) {
  auto e = ToyEngine();
  const Tokenizer& tok = e->tokenizer();
  TokenId lead = -1, cont = -1;
  for (TokenId id = 0; id < tok.vocab_size(); ++id) {
    if (tok.Piece(id) == "\xC3") lead = id;
    if (tok.Piece(id) == "\xA9") cont = id;
  }
  ASSERT_GE(lead, 0);
  ASSERT_GE(cont, 0);
  GenerationRequest r;
  r.prompt = "the";
  r.max_tokens = 40;
  r.logit_bias = {{lead, 30.0f}, {cont, 30.0f}};  // mostly the two bytes of "é", in any order
  int characters = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    r.seed = seed;
    std::string streamed, served;
    auto res = e->Generate(r, [&](const GeneratedPiece& p) {
      streamed += p.text;
      served += ReplaceInvalidUtf8(p.text);
      return true;
    });
    ASSERT_TRUE(res.ok());
    EXPECT_EQ(streamed, res->text);
    EXPECT_EQ(served, ReplaceInvalidUtf8(res->text)) << "seed " << seed;
    for (size_t at = res->text.find("\xC3\xA9"); at != std::string::npos; at = res->text.find("\xC3\xA9", at + 2)) {
      ++characters;
    }
  }
  EXPECT_GT(characters, 20);  // the biases do produce the character, many times
}

TEST(BuiltinEngineTest, MaxTokensGivesLength) {
  auto e = ToyEngine();
  GenerationRequest r;
  r.prompt = "the cat";
  r.max_tokens = 2;
  r.seed = 1;
  r.temperature = 0;  // greedy: "sat on"
  GenerationResult res;
  Collect(*e, r, &res);
  EXPECT_EQ(res.completion_tokens, 2);
  EXPECT_EQ(res.finish_reason, "length");
  EXPECT_EQ(res.text, " sat on");
}

TEST(BuiltinEngineTest, StopSequenceEndsAndIsNotEmitted) {
  auto e = ToyEngine();
  GenerationRequest r;
  r.prompt = "the cat";
  r.temperature = 0;
  r.max_tokens = 50;
  r.stop = {"the m"};  // spans two tokens: " the" " mat"
  GenerationResult res;
  std::string streamed = Collect(*e, r, &res);
  EXPECT_EQ(res.finish_reason, "stop");
  EXPECT_EQ(res.text, " sat on ");
  EXPECT_EQ(streamed, res.text);
}

TEST(BuiltinEngineTest, CancelAndLogprobs) {
  auto e = ToyEngine();
  GenerationRequest r;
  r.prompt = "the";
  r.seed = 3;
  r.max_tokens = 40;
  r.top_logprobs = 3;
  int pieces = 0;
  auto res = e->Generate(r, [&](const GeneratedPiece& p) {
    EXPECT_LE(p.logprob, 0.0f);
    EXPECT_EQ(p.top.size(), 3u);
    EXPECT_GE(p.top[0].second, p.top[1].second);
    return ++pieces < 3;
  });
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->finish_reason, "cancelled");
  EXPECT_EQ(pieces, 3);
}

TEST(BuiltinEngineTest, RejectsBadRequests) {
  auto e = ToyEngine();
  auto noop = [](const GeneratedPiece&) { return true; };
  GenerationRequest r;
  r.top_p = 0;
  EXPECT_EQ(e->Generate(r, noop).status().code(), StatusCode::kInvalidArgument);
  r = {};
  r.max_tokens = -1;
  EXPECT_EQ(e->Generate(r, noop).status().code(), StatusCode::kInvalidArgument);
  r = {};
  r.stop = {""};
  EXPECT_EQ(e->Generate(r, noop).status().code(), StatusCode::kInvalidArgument);
}

TEST(BuiltinEngineTest, ConcurrentGenerateCallsAgree) {
  auto e = ToyEngine();
  GenerationRequest r;
  r.prompt = "a dog";
  r.seed = 11;
  r.max_tokens = 40;
  GenerationResult want;
  Collect(*e, r, &want);
  std::vector<std::string> got(4);
  std::vector<std::thread> th;
  for (int i = 0; i < 4; ++i) {
    th.emplace_back([&, i] {
      for (int j = 0; j < 20; ++j) {
        auto res = e->Generate(r, [](const GeneratedPiece&) { return true; });
        if (res.ok()) got[i] = res->text;
      }
    });
  }
  for (auto& t : th) t.join();
  for (const auto& g : got) EXPECT_EQ(g, want.text);
}

}  // namespace
}  // namespace moat::model

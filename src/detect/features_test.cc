#include "detect/features.h"

#include <gtest/gtest.h>

#include "detect/detection_model.h"
#include "detect/test_corpus.h"

namespace moat::detect {
namespace {

RequestEvent Chat(const std::string& body) {
  RequestEvent e;
  e.account_id = "acct";
  e.client_ip = "10.1.2.3";
  e.body_json = body;
  return e;
}

TEST(SkeletonTest, MasksContentWordsAndNumbers) {
  EXPECT_EQ(Skeleton("Question: How many apples does Tom have?"),
            "question : how many w does w have ?");
  EXPECT_EQ(Skeleton("I bought 12 red apples"), "i w # w");
  // Two prompts from one template share a skeleton; unrelated prompts do not.
  EXPECT_EQ(Skeleton("Translate the sentence to French"), Skeleton("Summarise the article to Spanish"));
  EXPECT_NE(Skeleton("Translate the sentence to French"), Skeleton("Why is the sky blue?"));
}

TEST(ExtractTest, ContentScoresFromTheModel) {
  auto model = testing::SyntheticModel();
  const std::string question = testing::SyntheticTexts(kHeadReasoning, 1, 21)[0];
  RequestFeatures f = Extract(Chat(R"({"messages":[{"role":"user","content":")" + question + R"("}]})"),
                              model.get());
  EXPECT_GT(f.content.combined, 1.0f);
  EXPECT_EQ(f.content.top_head, kHeadReasoning);
  EXPECT_EQ(f.signal[kContentReasoning], f.content.llr[kHeadReasoning] >= kStrongContentLlr ? 1.0f : 0.0f);
  EXPECT_TRUE(f.item.valid);
  EXPECT_GT(f.cohort_feature_count, 20);
  // No model: no content evidence, but the sketch and features are still there.
  RequestFeatures g = Extract(Chat(R"({"messages":[{"role":"user","content":")" + question + R"("}]})"));
  EXPECT_EQ(g.content.combined, 0.0f);
  EXPECT_TRUE(g.item.valid);
}

TEST(ExtractTest, AShortFollowUpIsJudgedByTheQuestionBeforeIt) {
  auto model = testing::SyntheticModel();
  const std::string question = testing::SyntheticTexts(kHeadReasoning, 1, 22)[0];
  const std::string body = R"({"messages":[{"role":"user","content":")" + question +
                           R"("},{"role":"assistant","content":"The answer is 12."},)"
                           R"({"role":"user","content":"how did you get that?"}]})";
  RequestFeatures f = Extract(Chat(body), model.get());
  const ContentScores q = model->content.Score(question);
  EXPECT_NEAR(f.content.combined, q.combined * kFollowUpDiscount, 1e-4);
}

TEST(ExtractTest, ExpectedAnswerTokens) {
  EXPECT_EQ(Extract(Chat(R"({"messages":[{"role":"user","content":"hi"}]})")).expected_answer_tokens, 300);
  EXPECT_EQ(Extract(Chat(R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":50,"n":5})"))
                .expected_answer_tokens,
            250);
}

TEST(ExtractTest, ParsesBodyAndSampling) {
  RequestFeatures f = Extract(Chat(
      R"({"model":"gpt-4o","messages":[{"role":"system","content":"You are helpful."},)"
      R"({"role":"user","content":"hi"},{"role":"assistant","content":"hello"},)"
      R"({"role":"user","content":"Solve step by step: 2+2"}],"temperature":0,"max_tokens":4096,)"
      R"("logprobs":true,"top_logprobs":5,"n":3,"reasoning_effort":"high"})"));
  EXPECT_TRUE(f.parsed);
  EXPECT_EQ(f.messages, 4);
  EXPECT_EQ(f.assistant_turns, 1);
  EXPECT_TRUE(f.has_system);
  EXPECT_NE(f.system_hash, 0u);
  EXPECT_EQ(f.temperature, 0.0);
  EXPECT_EQ(f.max_tokens, 4096);
  EXPECT_EQ(f.n, 3);
  EXPECT_TRUE(f.logprobs);
  EXPECT_TRUE(f.reasoning);
  EXPECT_EQ(f.signal[kLogprobs], 1.0f);
  EXPECT_EQ(f.signal[kLongOutput], 1.0f);
  EXPECT_EQ(f.signal[kMultiSample], 1.0f);
  EXPECT_EQ(f.signal[kGreedy], 1.0f);
  EXPECT_EQ(f.signal[kSingleTurn], 0.0f);  // a real follow-up
}

TEST(ExtractTest, GarbageBodyIsSafe) {
  RequestFeatures f = Extract(Chat("{not json"));
  EXPECT_FALSE(f.parsed);
  EXPECT_EQ(f.signal[kSingleTurn], 0.0f);
  f = Extract(Chat(R"({"messages":"nope"})"));
  EXPECT_FALSE(f.parsed);
  f = Extract(Chat(R"({"messages":[{"role":"user","content":[{"type":"text"}]}]})"));
  EXPECT_TRUE(f.parsed);
}

TEST(ExtractTest, TemplatePrefixAndSuffixAreShared) {
  auto body = [](const std::string& q) {
    return R"({"messages":[{"role":"user","content":"Answer the following question carefully now. )" +
           q + R"( Give the final answer after Answer please."}]})";
  };
  RequestFeatures a = Extract(Chat(body("What is the boiling point of water at sea level?")));
  RequestFeatures b = Extract(Chat(body("Who wrote the novel Moby Dick in the nineteenth century?")));
  RequestFeatures c = Extract(Chat(R"({"messages":[{"role":"user","content":"Tell me a long story about dragons and knights and castles"}]})"));
  EXPECT_EQ(a.prefix_hash, b.prefix_hash);
  EXPECT_EQ(a.suffix_hash, b.suffix_hash);
  EXPECT_NE(a.prefix_hash, c.prefix_hash);
  EXPECT_GT(a.minhash.Similarity(b.minhash), a.minhash.Similarity(c.minhash));
}

TEST(NetworkPrefixTest, V4AndV6) {
  EXPECT_EQ(NetworkPrefix("203.0.113.7"), "203.0.113");
  EXPECT_EQ(NetworkPrefix("2001:db8:abcd:12::1"), "2001:db8:abcd");
  EXPECT_EQ(NetworkPrefix("local"), "local");
}

}  // namespace
}  // namespace moat::detect

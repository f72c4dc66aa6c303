#include "resistance/hardening.h"

#include <gtest/gtest.h>

namespace moat::resistance {
namespace {

TEST(HardeningProfileTest, DefaultIsTheHistoricalDegrade) {
  const HardeningProfile p;
  EXPECT_EQ(p.trace, TraceMode::kRemove);
  EXPECT_EQ(p.answer_only, AnswerOnlyMode::kOff);
  EXPECT_TRUE(p.refuse_logprobs);
  EXPECT_EQ(p.antidistill_kl, 0);
  EXPECT_EQ(Describe(p), "trace=remove answer_only=off logprobs=refuse max_tokens=default antidistill_kl=0");
}

TEST(HardeningProfileTest, SetsEveryField) {
  HardeningProfile p;
  ASSERT_TRUE(SetHardeningField("h", "trace", "summary", &p).ok());
  ASSERT_TRUE(SetHardeningField("h", "summary_words", "12", &p).ok());
  ASSERT_TRUE(SetHardeningField("h", "answer_only", "when_asked", &p).ok());
  ASSERT_TRUE(SetHardeningField("h", "logprobs", "allow", &p).ok());
  ASSERT_TRUE(SetHardeningField("h", "max_tokens", "128", &p).ok());
  ASSERT_TRUE(SetHardeningField("h", "antidistill_kl", "0.25", &p).ok());
  EXPECT_EQ(Describe(p),
            "trace=summary(12 words) answer_only=when_asked logprobs=allow max_tokens=128 antidistill_kl=0.25");
}

TEST(HardeningProfileTest, RejectsBadKeysAndValuesAndLeavesTheProfile) {
  HardeningProfile p;
  const std::string before = Describe(p);
  for (auto [k, v] : std::vector<std::pair<const char*, const char*>>{
           {"trace", "scramble"}, {"answer_only", "yes"}, {"logprobs", "true"}, {"max_tokens", "-1"},
           {"max_tokens", "12x"}, {"summary_words", "0"}, {"antidistill_kl", "6"}, {"antidistill_kl", "nan"},
           {"colour", "red"}}) {
    const Status s = SetHardeningField("detection.hardening", k, v, &p);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << k << "=" << v;
    EXPECT_NE(s.message().find("detection.hardening"), std::string::npos) << s.message();
  }
  EXPECT_EQ(Describe(p), before);
}

TEST(SummarizeTraceTest, KeepsFirstAndLastSentenceWithinTheWordBudget) {
  const std::string trace =
      "First we add the tens. Then 40 plus 30 is 70.\nCarry the one.\nSo the total is 82.";
  EXPECT_EQ(SummarizeTrace(trace, 24), "Summary: First we add the tens. ... So the total is 82.");
  EXPECT_EQ(SummarizeTrace(trace, 4), "Summary: First we ... is 82.");
  EXPECT_EQ(SummarizeTrace("Only one sentence here with many words", 3), "Summary: Only one sentence ...");
  EXPECT_EQ(SummarizeTrace("  \n ", 10), "");
}

TEST(FinalAnswerTest, Heuristics) {
  EXPECT_EQ(FinalAnswer("Step 1: 2+2=4\nStep 2: 4*3=12\nSo \\boxed{12} is it\nThanks"), "12");
  EXPECT_EQ(FinalAnswer("x\n\\boxed{\\frac{1}{2}}"), "\\frac{1}{2}");
  // A box spanning lines is not one answer line: the next rule applies (here the last line).
  EXPECT_EQ(FinalAnswer("work\n\\boxed{a\nb}\nso b"), "so b");
  EXPECT_EQ(FinalAnswer("We compute 3*4.\nThe answer is 12.\nHope this helps"), "12");
  EXPECT_EQ(FinalAnswer("Work:\n6*7 = 42\nAnswer: 42"), "42");
  EXPECT_EQ(FinalAnswer("4 97\n3 82\nanswer 19"), "19");
  EXPECT_EQ(FinalAnswer("Natalia sold 48/2 = 24 clips.\n48+24 = 72\n#### 72"), "72");
  EXPECT_EQ(FinalAnswer("first line\nsecond line\n  the end  \n\n"), "the end");
  EXPECT_EQ(FinalAnswer("just one line, answer: kept whole"), "just one line, answer: kept whole");
  // One line after blank lines (a sampled answer can start with them) is that line alone.
  EXPECT_EQ(FinalAnswer("\n\nSH things.\""), "SH things.\"");
}

TEST(RequestAsksForStepsTest, Cues) {
  EXPECT_TRUE(RequestAsksForSteps("Solve this. Think step by step."));
  EXPECT_TRUE(RequestAsksForSteps("What is 17*23? Show your work"));
  EXPECT_TRUE(RequestAsksForSteps("It is 391. How did you get that?"));
  EXPECT_FALSE(RequestAsksForSteps("What is 17*23?"));
}

TEST(HardenAnswerTest, AppliesTraceAndAnswerOnlyModes) {
  HardeningProfile p;  // trace removed, answer kept
  std::string content = "Step: 6*7 = 42\nAnswer: 42", reasoning = "I multiply. It is 42.";
  HardenAnswer(p, true, &content, &reasoning);
  EXPECT_EQ(reasoning, "");
  EXPECT_EQ(content, "Step: 6*7 = 42\nAnswer: 42");

  p.trace = TraceMode::kSummary;
  p.answer_only = AnswerOnlyMode::kWhenAsked;
  reasoning = "I multiply six by seven. That is 42.";
  std::string asked = content, not_asked = content;
  HardenAnswer(p, true, &asked, &reasoning);
  EXPECT_EQ(reasoning, "Summary: I multiply six by seven. ... That is 42.");
  EXPECT_EQ(asked, "42");
  HardenAnswer(p, false, &not_asked, nullptr);
  EXPECT_EQ(not_asked, content);

  p.trace = TraceMode::kKeep;
  p.answer_only = AnswerOnlyMode::kAlways;
  reasoning = "kept";
  HardenAnswer(p, false, &not_asked, &reasoning);
  EXPECT_EQ(reasoning, "kept");
  EXPECT_EQ(not_asked, "42");
}

}  // namespace
}  // namespace moat::resistance

#include "resistance/hardened_response.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace moat::resistance {
namespace {
namespace json = boost::json;

json::object Chat() {
  return json::parse(R"({"choices":[{"index":0,"message":{"role":"assistant",
      "content":"6*7 = 42\nAnswer: 42","reasoning_content":"I multiply six by seven. That is 42."}}]})")
      .as_object();
}

std::string Field(const json::object& o, const char* part, const char* field) {
  const auto& m = o.at("choices").as_array()[0].as_object().at(part).as_object();
  const auto* v = m.if_contains(field);
  return v == nullptr ? "<absent>" : std::string(v->as_string());
}

TEST(HardenResponseTest, DefaultProfileRemovesTheTraceOnly) {
  auto o = Chat();
  EXPECT_TRUE(HardenResponse(HardeningProfile{}, R"({"messages":[]})", o));
  EXPECT_EQ(Field(o, "message", "reasoning_content"), "<absent>");
  EXPECT_EQ(Field(o, "message", "content"), "6*7 = 42\nAnswer: 42");
}

TEST(HardenResponseTest, SummaryAndAnswerOnlyWhenAsked) {
  HardeningProfile p;
  p.trace = TraceMode::kSummary;
  p.answer_only = AnswerOnlyMode::kWhenAsked;
  auto asked = Chat(), plain = Chat();
  EXPECT_TRUE(HardenResponse(p, R"({"messages":[{"content":"6*7? show your work"}]})", asked));
  EXPECT_EQ(Field(asked, "message", "reasoning_content"), "Summary: I multiply six by seven. ... That is 42.");
  EXPECT_EQ(Field(asked, "message", "content"), "42");
  EXPECT_TRUE(HardenResponse(p, R"({"messages":[{"content":"6*7?"}]})", plain));
  EXPECT_EQ(Field(plain, "message", "content"), "6*7 = 42\nAnswer: 42");
}

TEST(HardenResponseTest, KeepAndOffChangeNothing) {
  HardeningProfile p;
  p.trace = TraceMode::kKeep;
  auto o = Chat();
  EXPECT_FALSE(HardenResponse(p, "step by step", o));
  EXPECT_EQ(json::serialize(o), json::serialize(Chat()));
}

TEST(HardenResponseTest, TextCompletionsAnswerOnly) {
  HardeningProfile p;
  p.answer_only = AnswerOnlyMode::kAlways;
  auto o = json::parse(R"({"choices":[{"index":0,"text":"a\nb\n#### 7"}]})").as_object();
  EXPECT_TRUE(HardenResponse(p, "", o));
  EXPECT_EQ(o.at("choices").as_array()[0].as_object().at("text").as_string(), "7");
}

}  // namespace
}  // namespace moat::resistance

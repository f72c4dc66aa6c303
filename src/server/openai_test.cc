#include "server/openai.h"
#include "server/response.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace moat::server {
namespace {

namespace json = boost::json;

json::object Obj(std::string_view text) { return json::parse(text).as_object(); }

TEST(OpenAiTest, ErrorBodyHasTheOpenAiShape) {
  auto v = json::parse(ErrorBody("bad thing", "invalid_request_error", "bad_code", "messages"));
  const auto& e = v.at("error").as_object();
  EXPECT_EQ(e.at("message").as_string(), "bad thing");
  EXPECT_EQ(e.at("type").as_string(), "invalid_request_error");
  EXPECT_EQ(e.at("code").as_string(), "bad_code");
  EXPECT_EQ(e.at("param").as_string(), "messages");
  auto v2 = json::parse(ErrorBody("x", "server_error", ""));
  EXPECT_TRUE(v2.at("error").at("code").is_null());
}

TEST(OpenAiTest, ValidatesChatRequests) {
  RequestContext ctx;
  std::string param;
  auto ok = ValidateCompletionRequest(
      "/v1/chat/completions",
      Obj(R"({"model":"m","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hello there"}]})"),
      1024, 4096, &ctx, &param);
  ASSERT_TRUE(ok.ok()) << ok.ToString();
  EXPECT_EQ(ctx.model, "m");
  EXPECT_TRUE(ctx.stream);
  EXPECT_EQ(ctx.max_tokens, 50);
  EXPECT_EQ(ctx.prompt_tokens_estimate, 3 + 4);

  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {R"({"messages":[{"role":"user","content":"x"}]})", "model"},
      {R"({"model":5,"messages":[]})", "model"},
      {R"({"model":"m"})", "messages"},
      {R"({"model":"m","messages":"hi"})", "messages"},
      {R"({"model":"m","messages":[]})", "messages"},
      {R"({"model":"m","messages":[7]})", "messages[0]"},
      {R"({"model":"m","messages":[{"content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"User","content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"},{"role":"narrator","content":"y"}]})", "messages[1].role"},
      {R"({"model":"m","messages":[{"role":"user","content":5}]})", "messages[0].content"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-1})", "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":100000})", "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3})", "temperature"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})", "n"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"user":7})", "user"},
  };
  for (const auto& c : cases) {
    RequestContext cx;
    std::string p;
    auto s = ValidateCompletionRequest("/v1/chat/completions", Obj(c.body), 1024, 4096, &cx, &p);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.body;
    EXPECT_EQ(p, c.param) << c.body;
  }
}

TEST(OpenAiTest, ValidatesCompletionsAndAppliesDefaultMaxTokens) {
  RequestContext ctx;
  std::string param;
  ASSERT_TRUE(ValidateCompletionRequest("/v1/completions", Obj(R"({"model":"m","prompt":["ab","cd"],"n":2})"),
                                        100, 4096, &ctx, &param).ok());
  EXPECT_EQ(ctx.max_tokens, 400);  // each of the two prompts answered twice, 100 tokens each
  ASSERT_TRUE(ValidateCompletionRequest("/v1/completions", Obj(R"({"model":"m","prompt":"ab","n":2,"best_of":5})"),
                                        100, 4096, &ctx, &param).ok());
  EXPECT_EQ(ctx.max_tokens, 500);  // best_of completions are generated, n returned
  EXPECT_FALSE(ValidateCompletionRequest("/v1/completions", Obj(R"({"model":"m","prompt":"ab","n":3,"best_of":2})"),
                                         100, 4096, &ctx, &param).ok());
  EXPECT_EQ(param, "best_of");
  EXPECT_FALSE(ValidateCompletionRequest("/v1/completions", Obj(R"({"model":"m","prompt":[1]})"), 100,
                                         4096, &ctx, &param).ok());
  EXPECT_FALSE(ValidateCompletionRequest("/v1/completions", Obj(R"({"model":"m","prompt":[]})"), 100,
                                         4096, &ctx, &param).ok());
  boost::json::array many;
  for (size_t i = 0; i <= kMaxPromptsPerRequest; ++i) many.emplace_back("x");
  boost::json::object too_many{{"model", "m"}, {"prompt", many}};
  EXPECT_FALSE(ValidateCompletionRequest("/v1/completions", too_many, 100, 4096, &ctx, &param).ok());
  EXPECT_EQ(param, "prompt");
}

TEST(OpenAiTest, PromptTextAndParams) {
  auto body = Obj(R"({"model":"m","temperature":0.5,"logprobs":true,"messages":[{"role":"system","content":"be brief"},
    {"role":"user","content":[{"type":"text","text":"part one"},{"type":"image_url","image_url":{"url":"x"}}]}]})");
  EXPECT_EQ(PromptText("/v1/chat/completions", body), "system: be brief\nuser: part one");
  auto params = json::parse(SamplingParamsJson(body)).as_object();
  EXPECT_EQ(params.at("temperature").as_double(), 0.5);
  EXPECT_TRUE(params.at("logprobs").as_bool());
  EXPECT_FALSE(params.contains("messages"));
}

}  // namespace
}  // namespace moat::server

#include "filters/validate/validate_filter.h"

#include <iterator>
#include <string>
#include <utility>

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace moat::filters {
namespace {

namespace json = boost::json;

// Serves "test-model" (an upstream) and "builtin-model" (the built-in engine).
RequestValidationFilterFactory MakeFactory(MetricsRegistry* metrics) {
  ValidationSettings settings;
  settings.models = {"test-model", "builtin-model"};
  settings.builtin_models = {"builtin-model"};
  settings.default_max_tokens = 256;
  settings.max_tokens_limit = 4096;
  settings.end_user_header = "x-end-user";
  return RequestValidationFilterFactory(std::move(settings), metrics);
}

// A context as the server hands it to OnRequest: the body parsed, or body_error set.
RequestContext Request(const std::string& body, HeaderList headers = {}) {
  RequestContext ctx;
  ctx.request_id = "req_test";
  ctx.endpoint = "/v1/chat/completions";
  ctx.headers = std::move(headers);
  ctx.raw_body = body;
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    ctx.body_error = "not a JSON object";
  } else {
    ctx.body = v.as_object();
  }
  return ctx;
}

TEST(RequestValidationFilterTest, AValidRequestFillsModelStreamAndTokens) {
  MetricsRegistry metrics;
  auto factory = MakeFactory(&metrics);
  RequestContext ctx = Request(
      R"({"model":"test-model","stream":true,"n":2,"messages":[{"role":"user","content":"hello world"}]})",
      {{"x-end-user", "user-7"}});
  ASSERT_TRUE(factory.Create()->OnRequest(ctx).is_continue());
  EXPECT_EQ(ctx.model, "test-model");
  EXPECT_TRUE(ctx.stream);
  EXPECT_EQ(ctx.max_tokens, 2 * 256);  // the default max_tokens, for each of n choices
  EXPECT_GT(ctx.prompt_tokens_estimate, 0);
  EXPECT_EQ(ctx.end_user, "user-7");
}

TEST(RequestValidationFilterTest, TheUserFieldWinsOverTheEndUserHeader) {
  MetricsRegistry metrics;
  auto factory = MakeFactory(&metrics);
  RequestContext ctx = Request(
      R"({"model":"test-model","user":"body-user","messages":[{"role":"user","content":"hi"}]})",
      {{"x-end-user", "header-user"}});
  ASSERT_TRUE(factory.Create()->OnRequest(ctx).is_continue());
  EXPECT_EQ(ctx.end_user, "body-user");
}

TEST(RequestValidationFilterTest, ABodyThatIsNotJsonIs400InvalidJson) {
  MetricsRegistry metrics;
  auto factory = MakeFactory(&metrics);
  RequestContext ctx = Request("{not json");
  const FilterStatus ctx_status = factory.Create()->OnRequest(ctx);
  ASSERT_TRUE(ctx_status.is_local_reply());
  EXPECT_EQ(ctx_status.reply().http_status, 400);
  EXPECT_EQ(ctx_status.reply().code, "invalid_json");
}

TEST(RequestValidationFilterTest, ABadFieldIs400NamingTheParameter) {
  MetricsRegistry metrics;
  auto factory = MakeFactory(&metrics);
  RequestContext missing = Request(R"({"model":"test-model"})");
  const FilterStatus missing_status = factory.Create()->OnRequest(missing);
  ASSERT_TRUE(missing_status.is_local_reply());
  EXPECT_EQ(missing_status.reply().http_status, 400);
  EXPECT_EQ(missing_status.reply().code, "invalid_value");
  EXPECT_EQ(missing_status.reply().param, "messages");

  RequestContext too_many = Request(
      R"({"model":"test-model","max_tokens":5000,"messages":[{"role":"user","content":"hi"}]})");
  const FilterStatus too_many_status = factory.Create()->OnRequest(too_many);
  ASSERT_TRUE(too_many_status.is_local_reply());
  EXPECT_EQ(too_many_status.reply().http_status, 400);
  EXPECT_EQ(too_many_status.reply().param, "max_tokens");
}

TEST(RequestValidationFilterTest, AnUnknownModelIs404) {
  MetricsRegistry metrics;
  auto factory = MakeFactory(&metrics);
  RequestContext ctx =
      Request(R"({"model":"other-model","messages":[{"role":"user","content":"hi"}]})");
  const FilterStatus ctx_status = factory.Create()->OnRequest(ctx);
  ASSERT_TRUE(ctx_status.is_local_reply());
  EXPECT_EQ(ctx_status.reply().http_status, 404);
  EXPECT_EQ(ctx_status.reply().code, "model_not_found");
}

TEST(RequestValidationFilterTest, RefusalsAreCountedByCode) {
  MetricsRegistry metrics;
  auto factory = MakeFactory(&metrics);
  RequestContext bad_json = Request("{not json");
  EXPECT_TRUE(factory.Create()->OnRequest(bad_json).is_local_reply());
  RequestContext unknown_model = Request(R"({"model":"other-model","messages":[{"role":"user","content":"hi"}]})");
  EXPECT_TRUE(factory.Create()->OnRequest(unknown_model).is_local_reply());
  RequestContext fine = Request(R"({"model":"test-model","messages":[{"role":"user","content":"hi"}]})");
  EXPECT_TRUE(factory.Create()->OnRequest(fine).is_continue());
  EXPECT_EQ(factory.rejections().With({"invalid_json"}).value(), 1u);
  EXPECT_EQ(factory.rejections().With({"model_not_found"}).value(), 1u);
  EXPECT_EQ(factory.rejections().With({"invalid_value"}).value(), 0u);
}

// The built-in engine's own limits (top_k, seed, stop, logprobs, logit_bias, n) apply to the
// models it serves only; an upstream model gets the body as the client sent it.
TEST(RequestValidationFilterTest, BuiltinModelsGetTheEnginesParameterChecks) {
  MetricsRegistry metrics;
  auto factory = MakeFactory(&metrics);
  const std::string messages = R"("messages":[{"role":"user","content":"hi"}])";
  const std::pair<std::string, std::string> refused[] = {
      {R"("top_k":-1)", "top_k"},
      {R"("seed":"abc")", "seed"},
      {R"("stop":["a","b","c","d","e"])", "stop"},
      {R"("logprobs":true,"top_logprobs":21)", "top_logprobs"},
      {R"("logit_bias":{"x":1})", "logit_bias"},
      {R"("logit_bias":{"5":101})", "logit_bias"},
      {R"("logit_bias":{"4294967596":1})", "logit_bias"},  // 2^32 + 300: would wrap to token 300
      {R"("logit_bias":{"":1})", "logit_bias"},
      {R"("n":2)", "n"},
  };
  for (const auto& [field, param] : refused) {
    RequestContext builtin = Request(R"({"model":"builtin-model",)" + field + "," + messages + "}");
    const FilterStatus status = factory.Create()->OnRequest(builtin);
    ASSERT_TRUE(status.is_local_reply()) << field;
    EXPECT_EQ(status.reply().http_status, 400) << field;
    EXPECT_EQ(status.reply().code, "invalid_value") << field;
    EXPECT_EQ(status.reply().param, param) << field;

    RequestContext upstream = Request(R"({"model":"test-model",)" + field + "," + messages + "}");
    EXPECT_TRUE(factory.Create()->OnRequest(upstream).is_continue()) << field;
  }
  EXPECT_EQ(factory.rejections().With({"invalid_value"}).value(), std::size(refused));

  RequestContext fine = Request(R"({"model":"builtin-model","top_k":5,"seed":7,"stop":["x"],)"
                                R"("logit_bias":{"5":-100},)" + messages + "}");
  EXPECT_TRUE(factory.Create()->OnRequest(fine).is_continue());
}

}  // namespace
}  // namespace moat::filters

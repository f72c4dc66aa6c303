#include "server/validate_filter.h"

#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace moat::server {
namespace {

namespace json = boost::json;

RequestValidationFilterFactory MakeFactory() {
  return RequestValidationFilterFactory({"test-model"}, /*default_max_tokens=*/256,
                                        /*max_tokens_limit=*/4096, "x-end-user");
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
  auto factory = MakeFactory();
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
  auto factory = MakeFactory();
  RequestContext ctx = Request(
      R"({"model":"test-model","user":"body-user","messages":[{"role":"user","content":"hi"}]})",
      {{"x-end-user", "header-user"}});
  ASSERT_TRUE(factory.Create()->OnRequest(ctx).is_continue());
  EXPECT_EQ(ctx.end_user, "body-user");
}

TEST(RequestValidationFilterTest, ABodyThatIsNotJsonIs400InvalidJson) {
  auto factory = MakeFactory();
  RequestContext ctx = Request("{not json");
  const FilterStatus ctx_status = factory.Create()->OnRequest(ctx);
  ASSERT_TRUE(ctx_status.is_local_reply());
  EXPECT_EQ(ctx_status.reply().http_status, 400);
  EXPECT_EQ(ctx_status.reply().code, "invalid_json");
}

TEST(RequestValidationFilterTest, ABadFieldIs400NamingTheParameter) {
  auto factory = MakeFactory();
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
  auto factory = MakeFactory();
  RequestContext ctx =
      Request(R"({"model":"other-model","messages":[{"role":"user","content":"hi"}]})");
  const FilterStatus ctx_status = factory.Create()->OnRequest(ctx);
  ASSERT_TRUE(ctx_status.is_local_reply());
  EXPECT_EQ(ctx_status.reply().http_status, 404);
  EXPECT_EQ(ctx_status.reply().code, "model_not_found");
}

}  // namespace
}  // namespace moat::server

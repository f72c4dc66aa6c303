// Tests of moat-test-upstream through the real binary, started on port 0 with the moat_testing
// helpers (ChildProcess, HttpClient), so the helpers are exercised too.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "test/upstream/test_process.h"

namespace moat::testing {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

constexpr char kChatBody[] = R"({"model":"m1","messages":[{"role":"system","content":"be brief"},)"
                             R"({"role":"user","content":"hello   big world"}],"max_tokens":50})";

json::object ParseObject(const std::string& text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

class UpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(upstream_.Start().ok());
    client_ = std::make_unique<HttpClient>("127.0.0.1", upstream_.port(), milliseconds(5000));
  }
  void TearDown() override {
    client_.reset();
    StatusOr<int> exit_code = upstream_.Stop();
    ASSERT_TRUE(exit_code.ok());
    EXPECT_EQ(*exit_code, 0);  // SIGTERM is a clean shutdown
  }

  HttpResponse MustRequest(std::string_view method, std::string_view target,
                           std::string_view body = {}, const HttpHeaders& headers = {}) {
    StatusOr<HttpResponse> res = client_->Request(method, target, body, headers);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : HttpResponse{};
  }

  TestUpstream upstream_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(UpstreamTest, ServesModelsHealthAndNotFound) {
  HttpResponse models = MustRequest("GET", "/v1/models");
  EXPECT_EQ(models.status, 200);
  json::object m = ParseObject(models.body);
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"].as_array().at(0).as_object().at("id"), "test-model");
  EXPECT_EQ(MustRequest("GET", "/health").status, 200);
  HttpResponse missing = MustRequest("GET", "/v1/nothing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_TRUE(ParseObject(missing.body).contains("error"));
}

TEST_F(UpstreamTest, ChatCompletionIsDeterministicWithUsage) {
  HttpResponse res = MustRequest("POST", "/v1/chat/completions", kChatBody,
                                 {{"Authorization", "Bearer client-key"}, {"x-test-tokens", "6"}});
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(res.Header("x-upstream-received-auth"), "Bearer client-key");
  json::object body = ParseObject(res.body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "m1");
  const json::object& choice = body["choices"].as_array().at(0).as_object();
  EXPECT_EQ(choice.at("message").at("content"), "echo: hello big world w1 w2");
  EXPECT_EQ(choice.at("message").at("role"), "assistant");
  EXPECT_EQ(choice.at("finish_reason"), "stop");
  const json::object& usage = body["usage"].as_object();
  EXPECT_EQ(usage.at("prompt_tokens").to_number<int>(), 5);
  EXPECT_EQ(usage.at("completion_tokens").to_number<int>(), 6);
  EXPECT_EQ(usage.at("total_tokens").to_number<int>(), 11);

  // max_tokens caps x-test-tokens and the finish reason says so.
  HttpResponse capped =
      MustRequest("POST", "/v1/chat/completions",
                  R"({"messages":[{"role":"user","content":"a b c d e"}],"max_tokens":3})",
                  {{"x-test-tokens", "10"}});
  json::object cb = ParseObject(capped.body);
  EXPECT_EQ(cb["choices"].as_array().at(0).at("message").at("content"), "echo: a b");
  EXPECT_EQ(cb["choices"].as_array().at(0).at("finish_reason"), "length");
  EXPECT_EQ(cb["model"], "test-model");

  HttpResponse bad = MustRequest("POST", "/v1/chat/completions", "{not json");
  EXPECT_EQ(bad.status, 400);
}

TEST_F(UpstreamTest, LegacyCompletionsAndTokenize) {
  HttpResponse res =
      MustRequest("POST", "/v1/completions", R"({"prompt":"one two","max_tokens":4})");
  ASSERT_EQ(res.status, 200);
  json::object body = ParseObject(res.body);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["choices"].as_array().at(0).at("text"), "echo: one two w1");
  EXPECT_EQ(body["usage"].at("prompt_tokens").to_number<int>(), 2);

  HttpResponse tok = MustRequest("POST", "/tokenize", R"({"model":"x","prompt":"a b a"})");
  ASSERT_EQ(tok.status, 200);
  json::object t = ParseObject(tok.body);
  EXPECT_EQ(t["count"].to_number<int>(), 3);
  const json::array& ids = t["tokens"].as_array();
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], ids[2]);
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_LT(ids[1].to_number<int>(), 50000);
}

TEST_F(UpstreamTest, StreamsOneEventPerTokenWithUsage) {
  constexpr int kChunkDelayMs = 40;
  std::vector<StreamChunk> chunks;
  StatusOr<HttpResponse> res = client_->StreamRequest(
      "POST", "/v1/chat/completions",
      R"({"messages":[{"role":"user","content":"hi"}],"stream":true,)"
      R"("stream_options":{"include_usage":true}})",
      {{"x-test-tokens", "3"}, {"x-test-chunk-delay-ms", std::to_string(kChunkDelayMs)}},
      [&](const StreamChunk& c) { chunks.push_back(c); });
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->Header("content-type"), "text/event-stream");
  EXPECT_EQ(res->Header("transfer-encoding"), "chunked");

  std::vector<std::string> events = SseDataPayloads(res->body);
  ASSERT_EQ(events.size(), 6u);  // 3 tokens, finish, usage, [DONE]
  // Each event arrived in its own HTTP chunk, spread out by the chunk delay.
  ASSERT_EQ(chunks.size(), 6u);
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(SseDataPayloads(chunks[i].data), std::vector<std::string>{events[i]});
  }
  EXPECT_GE(chunks.back().arrival - chunks.front().arrival,
            milliseconds(5 * kChunkDelayMs * 8 / 10));

  std::string text;
  for (int i = 0; i < 3; ++i) {
    json::object chunk = ParseObject(events[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    const json::object& delta = chunk["choices"].as_array().at(0).at("delta").as_object();
    EXPECT_EQ(delta.contains("role"), i == 0);
    text += delta.at("content").as_string();
  }
  EXPECT_EQ(text, "echo: hi w1");
  json::object finish = ParseObject(events[3]);
  EXPECT_EQ(finish["choices"].as_array().at(0).at("finish_reason"), "stop");
  json::object usage = ParseObject(events[4]);
  EXPECT_TRUE(usage["choices"].as_array().empty());
  EXPECT_EQ(usage["usage"].at("completion_tokens").to_number<int>(), 3);
  EXPECT_EQ(usage["usage"].at("prompt_tokens").to_number<int>(), 1);
  EXPECT_EQ(events[5], "[DONE]");

  // no-usage drops the usage chunk even though it was requested.
  StatusOr<HttpResponse> nu =
      client_->Request("POST", "/v1/chat/completions",
                       R"({"messages":[],"stream":true,"stream_options":{"include_usage":true}})",
                       {{"x-test-tokens", "2"}, {"x-test-fault", "no-usage"}});
  ASSERT_TRUE(nu.ok());
  EXPECT_EQ(SseDataPayloads(nu->body).size(), 4u);  // 2 tokens, finish, [DONE]
}

TEST_F(UpstreamTest, EchoReturnsTheExactRequestBody) {
  const std::string body =
      "{\"messages\":[{\"role\":\"user\",\"content\":\"x  y\"}],\n \"logit_bias\":{\"5\":-100}}  ";
  HttpResponse res = MustRequest("POST", "/v1/chat/completions", body, {{"x-test-echo", "1"}});
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(std::string(ParseObject(res.body)["choices"]
                            .as_array()
                            .at(0)
                            .at("message")
                            .at("content")
                            .as_string()),
            body);

  std::string streamed_body = R"({"stream":true,"messages":[{"role":"user","content":"a b"}]})";
  StatusOr<HttpResponse> s =
      client_->Request("POST", "/v1/chat/completions", streamed_body, {{"x-test-echo", "1"}});
  ASSERT_TRUE(s.ok());
  std::string text;
  for (const std::string& e : SseDataPayloads(s->body)) {
    if (e == "[DONE]") continue;
    json::object chunk = ParseObject(e);
    const json::object& delta = chunk["choices"].as_array().at(0).at("delta").as_object();
    if (delta.contains("content")) text += delta.at("content").as_string();
  }
  EXPECT_EQ(text, streamed_body);
}

TEST_F(UpstreamTest, InjectsStatusFaultsAndResets) {
  HttpResponse limited =
      MustRequest("POST", "/v1/chat/completions", kChatBody, {{"x-test-fault", "status-429"}});
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.Header("retry-after"), "7");
  EXPECT_EQ(ParseObject(limited.body)["error"].at("code"), "rate_limit_exceeded");

  StatusOr<HttpResponse> reset = client_->Request("POST", "/v1/chat/completions", kChatBody,
                                                  {{"x-test-fault", "reset-before-headers"}});
  EXPECT_FALSE(reset.ok());
  EXPECT_EQ(reset.status().code(), StatusCode::kUnavailable);

  std::vector<StreamChunk> chunks;
  StatusOr<HttpResponse> mid = client_->StreamRequest(
      "POST", "/v1/chat/completions", R"({"messages":[],"stream":true})",
      {{"x-test-fault", "reset-mid-stream"}}, [&](const StreamChunk& c) { chunks.push_back(c); });
  EXPECT_FALSE(mid.ok());
  EXPECT_EQ(chunks.size(), 2u);

  HttpResponse garbage =
      MustRequest("POST", "/v1/chat/completions", kChatBody, {{"x-test-fault", "garbage"}});
  EXPECT_EQ(garbage.status, 200);
  json::error_code ec;
  (void)json::parse(garbage.body, ec);
  EXPECT_TRUE(ec);

  // The client recovered from the resets by reconnecting.
  EXPECT_EQ(MustRequest("GET", "/health").status, 200);
}

TEST_F(UpstreamTest, DelayAndHangControlTiming) {
  auto start = std::chrono::steady_clock::now();
  HttpResponse res = MustRequest("GET", "/v1/models", {}, {{"x-test-delay-ms", "120"}});
  EXPECT_EQ(res.status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(120));

  client_->set_timeout(milliseconds(200));
  StatusOr<HttpResponse> hung =
      client_->Request("POST", "/v1/chat/completions", kChatBody, {{"x-test-fault", "hang"}});
  EXPECT_EQ(hung.status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(UpstreamTest, KeepAliveReusesOneConnectionAndStatsCountIt) {
  for (int i = 0; i < 20; ++i) EXPECT_EQ(MustRequest("GET", "/health").status, 200);
  json::object stats = ParseObject(MustRequest("GET", "/stats").body);
  EXPECT_EQ(stats["requests"].to_number<int>(), 20);
  EXPECT_EQ(stats["connections_accepted"].to_number<int>(), 1);
  EXPECT_EQ(client_->connections_opened(), 1);
}

TEST(UpstreamOptionsTest, ApiKeyIsEnforcedAndThreadsWork) {
  TestUpstream upstream;
  ASSERT_TRUE(upstream.Start({"--api-key", "sekret", "--threads", "2", "--no-tokenize"}).ok());
  HttpClient client("127.0.0.1", upstream.port());
  StatusOr<HttpResponse> denied = client.Request("GET", "/v1/models");
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->status, 401);
  EXPECT_EQ(ParseObject(denied->body)["error"].at("code"), "invalid_api_key");
  StatusOr<HttpResponse> wrong =
      client.Request("GET", "/v1/models", {}, {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong->status, 401);
  for (int i = 0; i < 4; ++i) {  // fresh connections land on both threads
    HttpClient c("127.0.0.1", upstream.port());
    StatusOr<HttpResponse> ok =
        c.Request("POST", "/v1/chat/completions", kChatBody, {{"Authorization", "Bearer sekret"}});
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->status, 200);
  }
  StatusOr<HttpResponse> tok = client.Request("POST", "/tokenize", R"({"prompt":"a"})",
                                              {{"Authorization", "Bearer sekret"}});
  EXPECT_EQ(tok->status, 404);
  EXPECT_EQ(upstream.Stop().value(), 0);
}

TEST(ChildProcessTest, ReportsEarlyExitAndExitCodes) {
  TempDir dir;
  ChildProcess failing;
  ASSERT_TRUE(failing.Start({TestUpstreamBinary(), "--no-such-flag"}).ok());
  StatusOr<std::uint16_t> port = failing.WaitForPortFile(dir.File("port"), milliseconds(5000));
  EXPECT_EQ(port.status().code(), StatusCode::kUnavailable);

  ChildProcess missing;
  Status missing_status = missing.Start({"/nonexistent/binary"});
  EXPECT_EQ(missing_status.code(), StatusCode::kInternal);
  EXPECT_FALSE(missing.running());

  ChildProcess env_child;
  ASSERT_TRUE(
      env_child.Start({"/bin/sh", "-c", "exit $MOAT_CHILD_CODE"}, {"MOAT_CHILD_CODE=7"}).ok());
  auto deadline = std::chrono::steady_clock::now() + milliseconds(5000);
  while (env_child.running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_EQ(env_child.Stop().value(), 7);
}

TEST(SseTest, SplitsDataPayloads) {
  EXPECT_EQ(SseDataPayloads("data: a\n\ndata:b\r\n\r\n: comment\n\ndata: c\ndata: d\n\n"),
            (std::vector<std::string>{"a", "b", "c\nd"}));
}

}  // namespace
}  // namespace moat::testing

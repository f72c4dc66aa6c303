// End-to-end tests of the gateway: the real `moat serve` binary in front of the real
// moat-test-upstream, driven over HTTP. One upstream and one gateway are shared by the suite;
// scenarios needing their own settings (slow clients, crashes) live in audit_durability_test.cc.
//
// Upstream faults are triggered per request: the gateway's models list the upstream's x-test-*
// control headers in `forward_headers`, so a client header reaches the upstream.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test/integration/moat_harness.h"
#include "test/upstream/test_process.h"

namespace moat::integration {
namespace {

namespace json = boost::json;
using moat::testing::HttpClient;
using moat::testing::HttpHeaders;
using moat::testing::HttpResponse;
using moat::testing::SseDataPayloads;
using moat::testing::StreamChunk;
using moat::testing::TestUpstream;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr char kAdminToken[] = "test-admin";
constexpr std::int64_t kDefaultMaxTokens = 1024;  // the gateway's server.default_max_tokens

// The shared gateway: generous timeouts, three tiers with different limits, and four models:
// test-model (normal), alias-model (renamed upstream), timeout-model (500 ms read timeout) and
// down-model (nothing listens).
std::string SharedConfig(std::uint16_t upstream_port, std::uint16_t closed_port) {
  std::string toml = R"toml(
[server]
listen = "127.0.0.1:0"
threads = 2
admin_token = "test-admin"
header_timeout_ms = 10000
body_timeout_ms = 10000
max_body_bytes = 65536
trusted_proxies = ["127.0.0.1"]

[storage]
data_dir = "{data_dir}"

[limits.unverified]
key_rpm = 0
[limits.verified]
key_rpm = 3
[limits.enterprise]
key_tpm = 100

[[models]]
name = "test-model"
backend = "upstream"
base_url = "http://127.0.0.1:{upstream_port}"
read_timeout_ms = 10000
forward_headers = {forward}

[[models]]
name = "alias-model"
upstream_model = "upstream-name"
base_url = "http://127.0.0.1:{upstream_port}"
forward_headers = {forward}

[[models]]
name = "timeout-model"
upstream_model = "test-model"
base_url = "http://127.0.0.1:{upstream_port}"
read_timeout_ms = 500
forward_headers = {forward}

[[models]]
name = "down-model"
base_url = "http://127.0.0.1:{closed_port}"
connect_timeout_ms = 1000
)toml";
  ReplaceAll(toml, "{forward}",
             R"(["x-test-fault", "x-test-tokens", "x-test-chunk-delay-ms", "x-test-delay-ms", )"
             R"("x-test-echo"])");
  ReplaceAll(toml, "{upstream_port}", std::to_string(upstream_port));
  ReplaceAll(toml, "{closed_port}", std::to_string(closed_port));
  return toml;
}

std::string ChatBody(const std::string& model, const std::string& extra = "") {
  std::string body =
      R"({"model":")" + model + R"(","messages":[{"role":"user","content":"hello world"}])";
  if (!extra.empty()) body += "," + extra;
  return body + "}";
}

// The "content" / "text" of every chunk of a streamed completion, concatenated.
std::string StreamedText(const std::vector<std::string>& payloads) {
  std::string text;
  for (const auto& p : payloads) {
    json::object o = ParseObject(p);
    const json::value* choices = o.if_contains("choices");
    if (choices == nullptr || !choices->is_array()) continue;
    for (const auto& c : choices->as_array()) {
      const json::object& co = c.as_object();
      if (const json::value* d = co.if_contains("delta"); d && d->is_object()) {
        if (const json::value* t = d->as_object().if_contains("content"); t && t->is_string()) {
          text += t->as_string();
        }
      }
      if (const json::value* t = co.if_contains("text"); t && t->is_string())
        text += t->as_string();
    }
  }
  return text;
}

bool IsUsageChunk(const std::string& payload) {
  json::object o = ParseObject(payload);
  const json::value* usage = o.if_contains("usage");
  return usage != nullptr && usage->is_object();
}

// Checks the OpenAI error shape {"error":{"message","type","code"}} and its values.
void ExpectError(const HttpResponse& res, int status, const std::string& type,
                 const std::string& code) {
  EXPECT_EQ(res.status, status) << res.body;
  json::object root = ParseObject(res.body);
  ASSERT_TRUE(root.contains("error")) << "not an OpenAI error body: " << res.body;
  ASSERT_TRUE(root["error"].is_object()) << res.body;
  const json::object& e = root["error"].as_object();
  ASSERT_TRUE(e.contains("message") && e.at("message").is_string()) << res.body;
  EXPECT_FALSE(e.at("message").as_string().empty()) << res.body;
  ASSERT_TRUE(e.contains("type") && e.at("type").is_string()) << res.body;
  ASSERT_TRUE(e.contains("code")) << res.body;
  EXPECT_EQ(e.at("type").as_string(), type) << res.body;
  if (!code.empty()) {
    ASSERT_TRUE(e.at("code").is_string()) << res.body;
    EXPECT_EQ(e.at("code").as_string(), code) << res.body;
  }
}

std::string Str(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::int64_t Int(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return -1;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  return -1;
}

// The value of the first Prometheus sample line whose name starts with `name` and that contains
// every string in `label_parts`; -1 when there is none.
double MetricValue(const std::string& text, const std::string& name,
                   const std::vector<std::string>& label_parts = {}) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#' || line.rfind(name, 0) != 0) continue;
    char after = line.size() > name.size() ? line[name.size()] : ' ';
    if (after != '{' && after != ' ') continue;
    bool all = true;
    for (const auto& part : label_parts) all = all && line.find(part) != std::string::npos;
    if (!all) continue;
    return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

class GatewayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    upstream_ = new TestUpstream();
    moat_ = new MoatInstance();
    Status s = upstream_->Start({"--threads", "2", "--hang-ms", "3000"});
    if (!s.ok()) {
      setup_error_ = "upstream: " + s.ToString();
      return;
    }
    s = moat_->WriteConfig(SharedConfig(upstream_->port(), ClosedLoopbackPort()));
    if (!s.ok()) {
      setup_error_ = s.ToString();
      return;
    }
    // The main key comes from the CLI before the server starts (the documented first run).
    StatusOr<std::string> key = moat_->CreateAccountAndKeyWithCli("main", "unverified");
    if (!key.ok()) {
      setup_error_ = key.status().ToString();
      return;
    }
    key_ = *key;
    s = moat_->Start();
    if (!s.ok()) setup_error_ = "moat: " + s.ToString();
  }

  static void TearDownTestSuite() {
    delete moat_;
    delete upstream_;
    moat_ = nullptr;
    upstream_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    client_ = std::make_unique<HttpClient>("127.0.0.1", moat_->port(), milliseconds(10000));
  }

  static HttpHeaders Auth(const std::string& key, HttpHeaders extra = {}) {
    extra["authorization"] = "Bearer " + key;
    return extra;
  }

  HttpResponse Post(const std::string& target, const std::string& body,
                    const HttpHeaders& headers) {
    StatusOr<HttpResponse> res = client_->Request("POST", target, body, headers);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : HttpResponse{};
  }

  HttpResponse Get(const std::string& target, const HttpHeaders& headers = {}) {
    StatusOr<HttpResponse> res = client_->Request("GET", target, "", headers);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : HttpResponse{};
  }

  HttpResponse Chat(const std::string& body, HttpHeaders extra = {}) {
    return Post("/v1/chat/completions", body, Auth(key_, std::move(extra)));
  }

  // A streamed chat request; `chunks` receives every HTTP chunk with its arrival time.
  HttpResponse StreamChat(const std::string& body, HttpHeaders extra,
                          std::vector<StreamChunk>* chunks = nullptr) {
    StatusOr<HttpResponse> res =
        client_->StreamRequest("POST", "/v1/chat/completions", body, Auth(key_, std::move(extra)),
                               [chunks](const StreamChunk& c) {
                                 if (chunks != nullptr) chunks->push_back(c);
                               });
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : HttpResponse{};
  }

  // An admin API call; checks the status and returns the parsed body.
  json::object Admin(const std::string& method, const std::string& path, const std::string& body,
                     int expected_status) {
    StatusOr<HttpResponse> res = client_->Request(
        method, path, body, {{"authorization", std::string("Bearer ") + kAdminToken}});
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    if (!res.ok()) return {};
    EXPECT_EQ(res->status, expected_status) << method << " " << path << ": " << res->body;
    return ParseObject(res->body);
  }

  // A new account in `tier` with one key (admin API; effective immediately). Returns the secret.
  std::string NewKey(const std::string& account, const std::string& tier) {
    Admin("POST", "/admin/accounts", R"({"name":")" + account + R"(","tier":")" + tier + R"("})",
          201);
    json::object key = Admin("POST", "/admin/keys", R"({"account":")" + account + R"("})", 201);
    return Str(key, "key");
  }

  // Checks that the audit log holds `request_id` with this status and error code.
  json::object ExpectAudited(const std::string& request_id, int http_status,
                             const std::string& error_code) {
    EXPECT_FALSE(request_id.empty()) << "the response had no x-request-id";
    StatusOr<json::object> record = moat_->AuditRecord(request_id);
    EXPECT_TRUE(record.ok()) << record.status().ToString();
    if (!record.ok()) return {};
    EXPECT_EQ(Int(*record, "http_status"), http_status) << json::serialize(*record);
    EXPECT_EQ(Str(*record, "error_code"), error_code) << json::serialize(*record);
    return *record;
  }

  HttpResponse UpstreamStats() {
    HttpClient c("127.0.0.1", upstream_->port(), milliseconds(5000));
    StatusOr<HttpResponse> res = c.Request("GET", "/stats");
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : HttpResponse{};
  }

  static TestUpstream* upstream_;
  static MoatInstance* moat_;
  static std::string key_;
  static std::string setup_error_;
  std::unique_ptr<HttpClient> client_;
};

TestUpstream* GatewayTest::upstream_ = nullptr;
MoatInstance* GatewayTest::moat_ = nullptr;
std::string GatewayTest::key_;
std::string GatewayTest::setup_error_;

// ---------------------------------------------------------------------------------------------
// Happy paths.

TEST_F(GatewayTest, ChatCompletionPassesUsageThroughAndIsAudited) {
  HttpResponse res = Chat(ChatBody("test-model", R"("max_tokens":50)"), {{"x-test-tokens", "4"}});
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.Header("x-moat-action"), "allow");
  const std::string id = res.Header("x-request-id");
  EXPECT_EQ(id.rfind("req_", 0), 0u) << id;
  json::object body = ParseObject(res.body);
  EXPECT_EQ(Str(body, "object"), "chat.completion");
  ASSERT_TRUE(body["usage"].is_object()) << res.body;
  EXPECT_EQ(Int(body["usage"].as_object(), "completion_tokens"), 4);
  EXPECT_EQ(Int(body["usage"].as_object(), "prompt_tokens"), 2);  // "hello world"
  std::string text(
      body["choices"].as_array().at(0).as_object()["message"].as_object()["content"].as_string());
  EXPECT_EQ(text.rfind("echo: hello world", 0), 0u) << text;

  json::object rec = ExpectAudited(id, 200, "");
  EXPECT_EQ(Int(rec, "completion_tokens"), 4);
  EXPECT_EQ(Int(rec, "prompt_tokens"), 2);
  EXPECT_EQ(Str(rec, "endpoint"), "/v1/chat/completions");
  EXPECT_EQ(Str(rec, "model"), "test-model");
  EXPECT_EQ(Str(rec, "action"), "allow");
  EXPECT_EQ(Str(rec, "completion_text"), text);
  EXPECT_FALSE(Str(rec, "key_id").empty());
  EXPECT_FALSE(Str(rec, "account_id").empty());
}

TEST_F(GatewayTest, LegacyCompletion) {
  HttpResponse res =
      Post("/v1/completions", R"({"model":"test-model","prompt":"one two three","max_tokens":5})",
           Auth(key_));
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.Header("x-moat-action"), "allow");
  json::object body = ParseObject(res.body);
  EXPECT_EQ(Str(body, "object"), "text_completion");
  EXPECT_EQ(Int(body["usage"].as_object(), "prompt_tokens"), 3);
  EXPECT_EQ(Int(body["usage"].as_object(), "completion_tokens"), 5);
  json::object rec = ExpectAudited(res.Header("x-request-id"), 200, "");
  EXPECT_EQ(Str(rec, "endpoint"), "/v1/completions");
  EXPECT_EQ(Str(rec, "prompt_text"), "one two three");
}

TEST_F(GatewayTest, ModelsAndHealthz) {
  HttpResponse models = Get("/v1/models");
  ASSERT_EQ(models.status, 200) << models.body;
  json::object m = ParseObject(models.body);
  EXPECT_EQ(Str(m, "object"), "list");
  std::vector<std::string> ids;
  for (const auto& d : m["data"].as_array()) ids.push_back(Str(d.as_object(), "id"));
  EXPECT_EQ(ids,
            (std::vector<std::string>{"test-model", "alias-model", "timeout-model", "down-model"}));
  HttpResponse health = Get("/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(Str(ParseObject(health.body), "status"), "ok");
}

TEST_F(GatewayTest, MetricsExposePrometheusFamilies) {
  // Cause one upstream failure and one rate-limit rejection first.
  HttpResponse down = Chat(ChatBody("down-model"));
  EXPECT_EQ(down.status, 502);
  std::string limited = NewKey("metrics-rl", "verified");
  for (int i = 0; i < 4; ++i) Post("/v1/chat/completions", ChatBody("test-model"), Auth(limited));

  HttpResponse res = Get("/metrics");
  ASSERT_EQ(res.status, 200);
  EXPECT_NE(res.Header("content-type").find("text/plain"), std::string::npos);
  const std::string& t = res.body;
  EXPECT_NE(t.find("# TYPE moat_requests_total counter"), std::string::npos) << t;
  EXPECT_GE(MetricValue(t, "moat_requests_total", {"/v1/chat/completions", "\"200\""}), 1) << t;
  EXPECT_NE(t.find("# TYPE moat_request_duration_seconds histogram"), std::string::npos) << t;
  EXPECT_GE(MetricValue(t, "moat_request_duration_seconds_bucket", {"le=\"+Inf\""}), 1) << t;
  EXPECT_GE(MetricValue(t, "moat_request_duration_seconds_count"), 1) << t;
  EXPECT_GT(MetricValue(t, "moat_request_duration_seconds_sum"), 0) << t;
  EXPECT_GE(MetricValue(t, "moat_upstream_errors_total", {"down-model"}), 1) << t;
  EXPECT_GE(MetricValue(t, "moat_ratelimit_rejections_total"), 1) << t;
  // A gauge: present, and never negative (MetricValue is -1 for a missing sample).
  EXPECT_NE(t.find("# TYPE moat_audit_queue_depth gauge"), std::string::npos) << t;
  EXPECT_GE(MetricValue(t, "moat_audit_queue_depth"), 0) << t;
}

// How much a counter sample grew between two scrapes (a sample absent before counts as 0).
double CounterGrowth(const std::string& before, const std::string& after, const std::string& name,
                     const std::vector<std::string>& label_parts) {
  const double b = MetricValue(before, name, label_parts);
  const double a = MetricValue(after, name, label_parts);
  return (a < 0 ? 0 : a) - (b < 0 ? 0 : b);
}

TEST_F(GatewayTest, RefusalsAndPolicyActionsAreCountedByKind) {
  std::string key = NewKey("metrics-kinds", "verified");  // key_rpm = 3
  const std::string before = Get("/metrics").body;

  // Authentication failures, by reason.
  ExpectError(Post("/v1/chat/completions", ChatBody("test-model"), {}), 401,
              "invalid_request_error", "missing_api_key");
  ExpectError(Post("/v1/chat/completions", ChatBody("test-model"), Auth("sk-moat-not-a-key")), 401,
              "invalid_request_error", "invalid_api_key");
  ExpectError(Post("/v1/chat/completions", ChatBody("test-model"), Auth("sk-moat-not-a-key")), 401,
              "invalid_request_error", "invalid_api_key");

  // A protocol error: a body announced beyond max_body_bytes.
  RawConnection raw;
  ASSERT_TRUE(raw.Connect(moat_->port()).ok());
  ASSERT_TRUE(raw.Send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                       key + "\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n")
                  .ok());
  EXPECT_EQ(RawStatus(raw.ReadUntilClose(milliseconds(5000)).data), 413);

  // Policy actions: three requests allowed, then one throttled by the per-key limit.
  for (int i = 0; i < 3; ++i) {
    HttpResponse ok = Post("/v1/chat/completions", ChatBody("test-model"), Auth(key));
    EXPECT_EQ(ok.status, 200) << "request " << i << ": " << ok.body;
    EXPECT_EQ(ok.Header("x-moat-action"), "allow");
  }
  HttpResponse throttled = Post("/v1/chat/completions", ChatBody("test-model"), Auth(key));
  EXPECT_EQ(throttled.status, 429) << throttled.body;
  EXPECT_EQ(throttled.Header("x-moat-action"), "throttle");

  const std::string after = Get("/metrics").body;
  EXPECT_NE(after.find("# TYPE moat_auth_failures_total counter"), std::string::npos) << after;
  EXPECT_NE(after.find("# TYPE moat_protocol_errors_total counter"), std::string::npos) << after;
  EXPECT_NE(after.find("# TYPE moat_policy_actions_total counter"), std::string::npos) << after;
  EXPECT_EQ(CounterGrowth(before, after, "moat_auth_failures_total", {"\"missing_key\""}), 1) << after;
  EXPECT_EQ(CounterGrowth(before, after, "moat_auth_failures_total", {"\"invalid_key\""}), 2) << after;
  EXPECT_EQ(CounterGrowth(before, after, "moat_protocol_errors_total", {"\"body_too_large\""}), 1)
      << after;
  EXPECT_EQ(CounterGrowth(before, after, "moat_policy_actions_total", {"\"throttle\""}), 1) << after;
  // The three allowed completions, the two /metrics scrapes do not count; refused
  // authentications and the oversized body (refused after authentication) keep the default
  // action "allow", so they count too.
  EXPECT_EQ(CounterGrowth(before, after, "moat_policy_actions_total", {"\"allow\""}), 3 + 3 + 1)
      << after;
}

// ---------------------------------------------------------------------------------------------
// Streaming.

TEST_F(GatewayTest, StreamFramesArriveOneByOneAndEndWithDone) {
  std::vector<StreamChunk> chunks;
  const auto sent = steady_clock::now();
  HttpResponse res =
      StreamChat(ChatBody("test-model", R"("stream":true,"max_tokens":50)"),
                 {{"x-test-tokens", "5"}, {"x-test-chunk-delay-ms", "100"}}, &chunks);
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_NE(res.Header("content-type").find("text/event-stream"), std::string::npos);
  EXPECT_EQ(res.Header("x-moat-action"), "allow");
  EXPECT_FALSE(res.Header("x-request-id").empty());
  std::vector<std::string> payloads = SseDataPayloads(res.body);
  ASSERT_FALSE(payloads.empty());
  EXPECT_EQ(payloads.back(), "[DONE]");
  EXPECT_EQ(std::count(payloads.begin(), payloads.end(), "[DONE]"), 1);
  std::string text = StreamedText(payloads);
  EXPECT_EQ(text.rfind("echo: hello world", 0), 0u) << text;

  // Each token event came in its own HTTP chunk, about 100 ms after the previous one (the bound
  // is loose so a busy CI machine does not make it flaky; batching would give ~0 ms).
  std::vector<steady_clock::time_point> token_arrivals;
  for (const auto& c : chunks) {
    if (c.data.find("\"content\"") == std::string::npos) continue;
    EXPECT_EQ(SseDataPayloads(c.data).size(), 1u) << "events were batched: " << c.data;
    token_arrivals.push_back(c.arrival);
  }
  ASSERT_EQ(token_arrivals.size(), 5u);
  for (std::size_t i = 1; i < token_arrivals.size(); ++i) {
    auto gap = std::chrono::duration_cast<milliseconds>(token_arrivals[i] - token_arrivals[i - 1]);
    EXPECT_GE(gap.count(), 30) << "token " << i << " arrived together with the previous one";
  }
  // The first token was not held back until the end of the stream.
  auto first = std::chrono::duration_cast<milliseconds>(token_arrivals.front() - sent);
  auto last = std::chrono::duration_cast<milliseconds>(token_arrivals.back() - sent);
  EXPECT_GE(last.count() - first.count(), 300);
}

TEST_F(GatewayTest, StreamHidesInjectedUsageChunkButAuditsUsage) {
  HttpResponse res = StreamChat(ChatBody("test-model", R"("stream":true,"max_tokens":20)"),
                                {{"x-test-tokens", "3"}});
  ASSERT_EQ(res.status, 200) << res.body;
  std::vector<std::string> payloads = SseDataPayloads(res.body);
  ASSERT_FALSE(payloads.empty());
  EXPECT_EQ(payloads.back(), "[DONE]");
  for (const auto& p : payloads) EXPECT_FALSE(IsUsageChunk(p)) << "usage leaked: " << p;
  // The usage the gateway asked for still reached the audit record.
  json::object rec = ExpectAudited(res.Header("x-request-id"), 200, "");
  EXPECT_EQ(Int(rec, "completion_tokens"), 3);
  EXPECT_EQ(Int(rec, "prompt_tokens"), 2);
  EXPECT_TRUE(rec["stream"].is_bool() && rec["stream"].as_bool());
}

TEST_F(GatewayTest, StreamShowsUsageChunkWhenClientAsked) {
  HttpResponse res = StreamChat(
      ChatBody("test-model",
               R"("stream":true,"max_tokens":20,"stream_options":{"include_usage":true})"),
      {{"x-test-tokens", "3"}});
  ASSERT_EQ(res.status, 200) << res.body;
  std::vector<std::string> payloads = SseDataPayloads(res.body);
  ASSERT_GE(payloads.size(), 2u);
  EXPECT_EQ(payloads.back(), "[DONE]");
  const std::string& usage_chunk = payloads[payloads.size() - 2];
  ASSERT_TRUE(IsUsageChunk(usage_chunk)) << res.body;
  json::object u = ParseObject(usage_chunk);
  EXPECT_EQ(Int(u["usage"].as_object(), "completion_tokens"), 3);
  EXPECT_TRUE(u["choices"].as_array().empty());
}

TEST_F(GatewayTest, EchoShowsTheBodyForwardedUpstream) {
  // Streaming: the gateway adds stream_options.include_usage, max_tokens and the upstream name.
  HttpResponse res =
      StreamChat(ChatBody("alias-model", R"("stream":true)"), {{"x-test-echo", "1"}});
  ASSERT_EQ(res.status, 200) << res.body;
  std::vector<std::string> payloads = SseDataPayloads(res.body);
  ASSERT_FALSE(payloads.empty());
  EXPECT_EQ(payloads.back(), "[DONE]");
  json::object forwarded = ParseObject(StreamedText(payloads));
  ASSERT_FALSE(forwarded.empty()) << "echo is not JSON: " << StreamedText(payloads);
  EXPECT_EQ(Str(forwarded, "model"), "upstream-name");
  EXPECT_EQ(Int(forwarded, "max_tokens"), kDefaultMaxTokens);
  ASSERT_TRUE(forwarded["stream_options"].is_object()) << json::serialize(forwarded);
  EXPECT_EQ(forwarded["stream_options"].as_object()["include_usage"], json::value(true));
  EXPECT_EQ(forwarded["messages"].as_array().size(), 1u);

  // Non-streaming: a client's own max_tokens is kept, no stream_options are added.
  HttpResponse plain =
      Chat(ChatBody("alias-model", R"("max_tokens":77,"user":"u-9")"), {{"x-test-echo", "1"}});
  ASSERT_EQ(plain.status, 200) << plain.body;
  json::object body = ParseObject(plain.body);
  json::object echoed = ParseObject(
      body["choices"].as_array().at(0).as_object()["message"].as_object()["content"].as_string());
  EXPECT_EQ(Str(echoed, "model"), "upstream-name");
  EXPECT_EQ(Int(echoed, "max_tokens"), 77);
  EXPECT_FALSE(echoed.contains("stream_options"));
  EXPECT_EQ(Str(echoed, "user"), "u-9");
}

// ---------------------------------------------------------------------------------------------
// Authentication.

TEST_F(GatewayTest, MissingKeyIs401) {
  HttpResponse res = Post("/v1/chat/completions", ChatBody("test-model"), {});
  ExpectError(res, 401, "invalid_request_error", "missing_api_key");
  ExpectAudited(res.Header("x-request-id"), 401, "missing_api_key");
}

TEST_F(GatewayTest, BadKeyIs401) {
  HttpResponse res =
      Post("/v1/chat/completions", ChatBody("test-model"), Auth("sk-moat-this-is-not-a-real-key"));
  ExpectError(res, 401, "invalid_request_error", "invalid_api_key");
  ExpectAudited(res.Header("x-request-id"), 401, "invalid_api_key");
}

TEST_F(GatewayTest, KeyRevokedWithAdminApiIsRefusedImmediately) {
  Admin("POST", "/admin/accounts", R"({"name":"revoke-admin"})", 201);
  json::object key = Admin("POST", "/admin/keys", R"({"account":"revoke-admin"})", 201);
  const std::string secret = Str(key, "key");
  const std::string key_id = Str(key, "key_id");
  ASSERT_FALSE(secret.empty());
  EXPECT_EQ(Post("/v1/chat/completions", ChatBody("test-model"), Auth(secret)).status, 200);
  json::object revoked = Admin("POST", "/admin/keys/" + key_id + "/revoke", "", 200);
  EXPECT_EQ(revoked["revoked"], json::value(true));
  HttpResponse res = Post("/v1/chat/completions", ChatBody("test-model"), Auth(secret));
  ExpectError(res, 401, "invalid_request_error", "invalid_api_key");
}

TEST_F(GatewayTest, KeyCreatedAndRevokedWithCliIsPickedUpWithinSeconds) {
  ASSERT_EQ(moat_->Cli({"account", "create", "cli-acct"}).exit_code, 0);
  CommandResult created = moat_->Cli({"key", "create", "--account", "cli-acct"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string secret = created.out.substr(0, created.out.find('\n'));
  const std::string marker = "key id: ";
  std::size_t at = created.err.find(marker);
  ASSERT_NE(at, std::string::npos) << created.err;
  std::string key_id = created.err.substr(at + marker.size());
  key_id = key_id.substr(0, key_id.find_first_of(" \n"));

  auto status_within = [&](int want, milliseconds limit) {
    auto deadline = steady_clock::now() + limit;
    int got = 0;
    do {
      got = Post("/v1/chat/completions", ChatBody("test-model"), Auth(secret)).status;
      if (got == want) return got;
      std::this_thread::sleep_for(milliseconds(100));
    } while (steady_clock::now() < deadline);
    return got;
  };
  EXPECT_EQ(status_within(200, milliseconds(3000)), 200) << "CLI-created key never accepted";
  CommandResult revoke = moat_->Cli({"key", "revoke", key_id});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.err;
  EXPECT_EQ(status_within(401, milliseconds(3000)), 401) << "CLI-revoked key still accepted";
}

// ---------------------------------------------------------------------------------------------
// Validation.

TEST_F(GatewayTest, MalformedJsonIs400InvalidJson) {
  HttpResponse res = Chat(R"({"model":"test-model","messages":[)");
  ExpectError(res, 400, "invalid_request_error", "invalid_json");
  ExpectAudited(res.Header("x-request-id"), 400, "invalid_json");
}

struct BadRequestCase {
  std::string endpoint;
  std::string body;
  std::string param;
};

TEST_F(GatewayTest, WrongTypesAndMissingFieldsAre400WithTheParam) {
  const std::string msgs = R"("messages":[{"role":"user","content":"hi"}])";
  const std::vector<BadRequestCase> cases = {
      {"/v1/chat/completions", R"({"model":"test-model","messages":"hi"})", "messages"},
      {"/v1/chat/completions", R"({"model":"test-model",)" + msgs + R"(,"max_tokens":-5})",
       "max_tokens"},
      {"/v1/chat/completions", R"({"model":"test-model",)" + msgs + R"(,"temperature":5})",
       "temperature"},
      {"/v1/chat/completions", R"({"model":"test-model",)" + msgs + R"(,"stream":"yes"})",
       "stream"},
      {"/v1/chat/completions", "{" + msgs + "}", "model"},
      {"/v1/chat/completions", R"({"model":"test-model"})", "messages"},
      {"/v1/completions", R"({"model":"test-model"})", "prompt"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    HttpResponse res = Post(c.endpoint, c.body, Auth(key_));
    ExpectError(res, 400, "invalid_request_error", "");
    json::object e = ParseObject(res.body)["error"].as_object();
    EXPECT_NE(std::string(e["message"].as_string()).find(c.param), std::string::npos) << res.body;
    // OpenAI clients read the offending field from error.param.
    EXPECT_EQ(e["param"], json::value(c.param)) << res.body;
    // The audit record carries the same error code the client was given.
    ExpectAudited(res.Header("x-request-id"), 400, Str(e, "code"));
  }
}

TEST_F(GatewayTest, UnknownModelIs404) {
  HttpResponse res = Chat(ChatBody("no-such-model"));
  ExpectError(res, 404, "invalid_request_error", "model_not_found");
  ExpectAudited(res.Header("x-request-id"), 404, "model_not_found");
}

TEST_F(GatewayTest, OversizedBodyIs413) {
  // Announced length beyond max_body_bytes: refused before the body is read, and audited.
  RawConnection raw;
  ASSERT_TRUE(raw.Connect(moat_->port()).ok());
  ASSERT_TRUE(raw.Send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                       key_ + "\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n")
                  .ok());
  RawConnection::ReadResult r = raw.ReadUntilClose(milliseconds(5000));
  EXPECT_EQ(RawStatus(r.data), 413) << r.data;
  EXPECT_NE(r.data.find("request_too_large"), std::string::npos) << r.data;
  EXPECT_LT(r.elapsed.count(), 3000) << "the gateway waited for a body it refuses";

  // A real oversized body sent by an ordinary client.
  std::string big = ChatBody("test-model", R"("pad":")" + std::string(70000, 'a') + "\"");
  StatusOr<HttpResponse> res = client_->Request("POST", "/v1/chat/completions", big, Auth(key_));
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  ExpectError(*res, 413, "invalid_request_error", "request_too_large");
}

TEST_F(GatewayTest, WrongMethodIs405AndUnknownUrlIs404) {
  HttpResponse res = Get("/v1/chat/completions", Auth(key_));
  ExpectError(res, 405, "invalid_request_error", "method_not_allowed");
  EXPECT_EQ(res.Header("allow"), "POST");
  HttpResponse unknown = Get("/v1/nothing-here");
  ExpectError(unknown, 404, "invalid_request_error", "unknown_url");
  HttpResponse unknown_post = Post("/v2/chat/completions", ChatBody("test-model"), Auth(key_));
  ExpectError(unknown_post, 404, "invalid_request_error", "unknown_url");
}

// ---------------------------------------------------------------------------------------------
// Rate limits.

TEST_F(GatewayTest, RequestsPerMinuteLimitAnswers429WithRetryAfter) {
  std::string key = NewKey("rl-rpm", "verified");  // key_rpm = 3
  for (int i = 0; i < 3; ++i) {
    HttpResponse ok = Post("/v1/chat/completions", ChatBody("test-model"), Auth(key));
    EXPECT_EQ(ok.status, 200) << "request " << i << ": " << ok.body;
  }
  HttpResponse res = Post("/v1/chat/completions", ChatBody("test-model"), Auth(key));
  ExpectError(res, 429, "rate_limit_error", "rate_limit_exceeded");
  ASSERT_FALSE(res.Header("retry-after").empty());
  EXPECT_GE(std::stoi(res.Header("retry-after")), 1);
  EXPECT_EQ(res.Header("x-moat-action"), "throttle");
  json::object rec = ExpectAudited(res.Header("x-request-id"), 429, "rate_limit_exceeded");
  EXPECT_EQ(Str(rec, "action"), "throttle");
}

TEST_F(GatewayTest, TokensPerMinuteReservesMaxTokensAndReturnsUnusedBudget) {
  std::string key = NewKey("rl-tpm", "enterprise");  // key_tpm = 100
  // More than the whole budget can never fit: waiting would not help, so it is a 400 without
  // Retry-After (it used to be a 429 with "Retry-After: -9223372036854775808").
  HttpResponse too_big =
      Post("/v1/chat/completions", ChatBody("test-model", R"("max_tokens":200)"), Auth(key));
  ExpectError(too_big, 400, "invalid_request_error", "request_exceeds_limit");
  EXPECT_EQ(too_big.Header("retry-after"), "");
  EXPECT_EQ(too_big.Header("x-moat-limit-scope"), "key_tokens");
  // Reserves ~66 tokens (prompt estimate + max_tokens 60) but uses 2 + 2: the rest comes back.
  HttpResponse small = Post("/v1/chat/completions", ChatBody("test-model", R"("max_tokens":60)"),
                            Auth(key, {{"x-test-tokens", "2"}}));
  ASSERT_EQ(small.status, 200) << small.body;
  // Fits only because the unused part of the first reservation was returned; uses 2 + 60.
  HttpResponse second = Post("/v1/chat/completions", ChatBody("test-model", R"("max_tokens":60)"),
                             Auth(key, {{"x-test-tokens", "60"}}));
  ASSERT_EQ(second.status, 200) << second.body;
  // About 34 tokens remain: max_tokens 40 does not fit, 10 does.
  HttpResponse refused =
      Post("/v1/chat/completions", ChatBody("test-model", R"("max_tokens":40)"), Auth(key));
  ExpectError(refused, 429, "rate_limit_error", "rate_limit_exceeded");
  EXPECT_FALSE(refused.Header("retry-after").empty());
  HttpResponse fits = Post("/v1/chat/completions", ChatBody("test-model", R"("max_tokens":10)"),
                           Auth(key, {{"x-test-tokens", "1"}}));
  EXPECT_EQ(fits.status, 200) << fits.body;
}

// ---------------------------------------------------------------------------------------------
// Upstream faults: each answer is an OpenAI error and leaves an audit record.

TEST_F(GatewayTest, UpstreamDownIs502Unreachable) {
  HttpResponse res = Chat(ChatBody("down-model"));
  ExpectError(res, 502, "upstream_error", "upstream_unreachable");
  ExpectAudited(res.Header("x-request-id"), 502, "upstream_unreachable");
}

TEST_F(GatewayTest, Upstream500IsPassedThrough) {
  HttpResponse res = Chat(ChatBody("test-model"), {{"x-test-fault", "status-500"}});
  ExpectError(res, 500, "server_error", "");
  json::object rec = ExpectAudited(res.Header("x-request-id"), 500, "upstream_status_500");
}

TEST_F(GatewayTest, Upstream429IsPassedThroughWithRetryAfter) {
  HttpResponse res = Chat(ChatBody("test-model"), {{"x-test-fault", "status-429"}});
  ExpectError(res, 429, "requests", "rate_limit_exceeded");
  EXPECT_EQ(res.Header("retry-after"), "7");
  ExpectAudited(res.Header("x-request-id"), 429, "rate_limit_exceeded");
}

TEST_F(GatewayTest, UpstreamResetMidStreamEndsWithErrorEventAndNoDone) {
  HttpResponse res = StreamChat(ChatBody("test-model", R"("stream":true,"max_tokens":20)"),
                                {{"x-test-fault", "reset-mid-stream"}, {"x-test-tokens", "10"}});
  ASSERT_EQ(res.status, 200) << res.body;  // the stream had begun
  std::vector<std::string> payloads = SseDataPayloads(res.body);
  ASSERT_FALSE(payloads.empty()) << res.body;
  for (const auto& p : payloads) EXPECT_NE(p, "[DONE]") << res.body;
  json::object last = ParseObject(payloads.back());
  ASSERT_TRUE(last.contains("error")) << "last event is not an error: " << payloads.back();
  EXPECT_EQ(Str(last["error"].as_object(), "code"), "upstream_stream_interrupted");
  EXPECT_FALSE(StreamedText(payloads).empty()) << "the tokens before the reset were relayed";
  ExpectAudited(res.Header("x-request-id"), 502, "upstream_stream_interrupted");
}

TEST_F(GatewayTest, UpstreamResetOnPlainRequestIs502) {
  HttpResponse mid = Chat(ChatBody("test-model"), {{"x-test-fault", "reset-mid-stream"}});
  ExpectError(mid, 502, "upstream_error", "upstream_connection_reset");
  ExpectAudited(mid.Header("x-request-id"), 502, "upstream_connection_reset");
  HttpResponse before = Chat(ChatBody("test-model"), {{"x-test-fault", "reset-before-headers"}});
  ExpectError(before, 502, "upstream_error", "upstream_connection_reset");
  ExpectAudited(before.Header("x-request-id"), 502, "upstream_connection_reset");
}

TEST_F(GatewayTest, UpstreamHangIs504AfterReadTimeout) {
  const auto start = steady_clock::now();
  HttpResponse res = Chat(ChatBody("timeout-model"), {{"x-test-fault", "hang"}});
  auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start).count();
  ExpectError(res, 504, "upstream_error", "upstream_timeout");
  EXPECT_GE(took, 450);   // read_timeout_ms = 500
  EXPECT_LT(took, 2500);  // not the upstream's 3 s hang
  ExpectAudited(res.Header("x-request-id"), 504, "upstream_timeout");
}

TEST_F(GatewayTest, UpstreamGarbageIs502InvalidResponse) {
  HttpResponse res = Chat(ChatBody("test-model"), {{"x-test-fault", "garbage"}});
  ExpectError(res, 502, "upstream_error", "upstream_invalid_response");
  ExpectAudited(res.Header("x-request-id"), 502, "upstream_invalid_response");

  HttpResponse stream =
      StreamChat(ChatBody("test-model", R"("stream":true)"), {{"x-test-fault", "garbage"}});
  std::vector<std::string> payloads = SseDataPayloads(stream.body);
  ASSERT_FALSE(payloads.empty()) << stream.body;
  EXPECT_TRUE(ParseObject(payloads.back()).contains("error")) << stream.body;
  for (const auto& p : payloads) EXPECT_NE(p, "[DONE]");
}

// ---------------------------------------------------------------------------------------------
// Who sent it: end user and client address.

TEST_F(GatewayTest, EndUserFromBodyAndHeaderIsAudited) {
  HttpResponse body_user = Chat(ChatBody("test-model", R"("user":"u-123")"));
  ASSERT_EQ(body_user.status, 200);
  EXPECT_EQ(Str(ExpectAudited(body_user.Header("x-request-id"), 200, ""), "end_user"), "u-123");
  HttpResponse header_user = Chat(ChatBody("test-model"), {{"x-moat-end-user", "u-456"}});
  ASSERT_EQ(header_user.status, 200);
  EXPECT_EQ(Str(ExpectAudited(header_user.Header("x-request-id"), 200, ""), "end_user"), "u-456");
}

TEST_F(GatewayTest, ForwardedForFromTrustedProxyIsTheClientIp) {
  HttpResponse proxied = Chat(ChatBody("test-model"), {{"x-forwarded-for", "203.0.113.7"}});
  ASSERT_EQ(proxied.status, 200);
  EXPECT_EQ(Str(ExpectAudited(proxied.Header("x-request-id"), 200, ""), "client_ip"),
            "203.0.113.7");
  HttpResponse direct = Chat(ChatBody("test-model"));
  EXPECT_EQ(Str(ExpectAudited(direct.Header("x-request-id"), 200, ""), "client_ip"), "127.0.0.1");
}

// ---------------------------------------------------------------------------------------------
// Connection pooling.

TEST_F(GatewayTest, UpstreamConnectionsAreReused) {
  json::object before = ParseObject(UpstreamStats().body);
  for (int i = 0; i < 50; ++i) {
    HttpResponse res = Chat(ChatBody("test-model", R"("max_tokens":3)"));
    ASSERT_EQ(res.status, 200) << "request " << i << ": " << res.body;
  }
  json::object after = ParseObject(UpstreamStats().body);
  EXPECT_EQ(Int(after, "requests") - Int(before, "requests"), 50);
  EXPECT_LE(Int(after, "connections_accepted") - Int(before, "connections_accepted"), 4);
}

// ---------------------------------------------------------------------------------------------
// Admin API.

// The CLI reads the gateway's live detection state through the admin API (apps/moat's
// AdminClient): the answer, the gateway's own refusal, and a gateway that is not there.
TEST_F(GatewayTest, CliReadsLiveStateThroughTheAdminApi) {
  const std::string url = "http://127.0.0.1:" + std::to_string(moat_->port());
  CommandResult listed = moat_->Cli({"campaigns", "--url", url, "--admin-token", kAdminToken});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("campaign\tmembers"), std::string::npos) << listed.out;

  CommandResult refused = moat_->Cli({"campaigns", "--url", url, "--admin-token", "wrong"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("gateway answered 401"), std::string::npos) << refused.err;

  const std::string nowhere = "http://127.0.0.1:" + std::to_string(ClosedLoopbackPort());
  CommandResult absent = moat_->Cli({"campaigns", "--url", nowhere, "--admin-token", kAdminToken});
  EXPECT_EQ(absent.exit_code, 1);
  EXPECT_NE(absent.err.find("cannot reach the gateway"), std::string::npos) << absent.err;
}

TEST_F(GatewayTest, AdminApiManagesOrgsAccountsAndKeys) {
  StatusOr<HttpResponse> no_token = client_->Request("GET", "/admin/accounts");
  ASSERT_TRUE(no_token.ok());
  ExpectError(*no_token, 401, "authentication_error", "invalid_admin_token");

  json::object org = Admin("POST", "/admin/orgs", R"({"name":"acme"})", 201);
  const std::string org_id = Str(org, "id");
  ASSERT_FALSE(org_id.empty());
  json::object acct =
      Admin("POST", "/admin/accounts", R"({"name":"acme-dev","org_id":")" + org_id + R"("})", 201);
  EXPECT_EQ(Str(acct, "tier"), "unverified");
  EXPECT_EQ(Str(acct, "org_id"), org_id);
  json::object key = Admin("POST", "/admin/keys", R"({"account":"acme-dev","label":"ci"})", 201);
  const std::string key_id = Str(key, "key_id");
  const std::string secret = Str(key, "key");
  ASSERT_FALSE(secret.empty());

  HttpResponse used = Post("/v1/chat/completions", ChatBody("test-model"), Auth(secret));
  ASSERT_EQ(used.status, 200);
  json::object rec = ExpectAudited(used.Header("x-request-id"), 200, "");
  EXPECT_EQ(Str(rec, "key_id"), key_id);
  EXPECT_EQ(Str(rec, "org_id"), org_id);
  EXPECT_EQ(Str(rec, "account_id"), Str(acct, "id"));

  json::object shown = Admin("GET", "/admin/accounts/acme-dev", "", 200);
  ASSERT_TRUE(shown["keys"].is_array());
  ASSERT_EQ(shown["keys"].as_array().size(), 1u);
  EXPECT_EQ(Str(shown["keys"].as_array()[0].as_object(), "key_id"), key_id);
  EXPECT_EQ(Int(shown["keys"].as_array()[0].as_object(), "revoked_ns"), 0);

  json::object patched =
      Admin("PATCH", "/admin/accounts/" + Str(acct, "id"), R"({"tier":"verified"})", 200);
  EXPECT_EQ(Str(patched, "tier"), "verified");
  EXPECT_EQ(Str(Admin("GET", "/admin/accounts/acme-dev", "", 200), "tier"), "verified");

  Admin("POST", "/admin/keys/" + key_id + "/revoke", "", 200);
  json::object after = Admin("GET", "/admin/accounts/acme-dev", "", 200);
  EXPECT_GT(Int(after["keys"].as_array()[0].as_object(), "revoked_ns"), 0);
  ExpectError(Post("/v1/chat/completions", ChatBody("test-model"), Auth(secret)), 401,
              "invalid_request_error", "invalid_api_key");
  Admin("GET", "/admin/accounts/no-such-account", "", 404);
}

}  // namespace
}  // namespace moat::integration

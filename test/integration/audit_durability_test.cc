// End-to-end tests that need a gateway of their own: slow clients against short timeouts, a
// graceful stop followed by `moat audit verify`, and kill -9 under load (every response a
// client fully received must be in the audit log afterwards, and the chain must verify).

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <set>
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
using moat::testing::TestUpstream;
using std::chrono::milliseconds;

std::string Config(std::uint16_t upstream_port, int header_timeout_ms, int body_timeout_ms) {
  std::string toml = R"toml(
[server]
listen = "127.0.0.1:0"
threads = 2
admin_token = "test-admin"
header_timeout_ms = {header_timeout_ms}
body_timeout_ms = {body_timeout_ms}
max_body_bytes = 65536

[storage]
data_dir = "{data_dir}"

[audit]
checkpoint_every = 50

[limits.unverified]
key_rpm = 0

[[models]]
name = "test-model"
base_url = "http://127.0.0.1:{upstream_port}"
read_timeout_ms = 10000
forward_headers = ["x-test-tokens", "x-test-chunk-delay-ms"]
)toml";
  ReplaceAll(toml, "{header_timeout_ms}", std::to_string(header_timeout_ms));
  ReplaceAll(toml, "{body_timeout_ms}", std::to_string(body_timeout_ms));
  ReplaceAll(toml, "{upstream_port}", std::to_string(upstream_port));
  return toml;
}

// ---------------------------------------------------------------------------------------------
// Slow clients (header_timeout_ms = body_timeout_ms = 300).

class SlowClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(moat_.WriteConfig(Config(ClosedLoopbackPort(), 300, 300)).ok());
    StatusOr<std::string> key = moat_.CreateAccountAndKeyWithCli("slow", "unverified");
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    key_ = *key;
    Status s = moat_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  MoatInstance moat_;
  std::string key_;
};

TEST_F(SlowClientTest, StalledHeadersAreTimedOut) {
  RawConnection raw;
  ASSERT_TRUE(raw.Connect(moat_.port()).ok());
  ASSERT_TRUE(raw.Send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty").ok());
  RawConnection::ReadResult r = raw.ReadUntilClose(milliseconds(5000));
  EXPECT_TRUE(r.closed) << "connection still open after " << r.elapsed.count() << " ms";
  EXPECT_GE(r.elapsed.count(), 200);
  EXPECT_LT(r.elapsed.count(), 2000);
  if (!r.data.empty()) {
    EXPECT_EQ(RawStatus(r.data), 408) << r.data;
    EXPECT_NE(r.data.find("request_timeout"), std::string::npos) << r.data;
  }
}

TEST_F(SlowClientTest, StalledBodyIs408) {
  RawConnection raw;
  ASSERT_TRUE(raw.Connect(moat_.port()).ok());
  // Authenticated: the body of an unauthenticated request is never waited for (401 at once).
  ASSERT_TRUE(raw.Send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                       key_ +
                       "\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                       "{\"model\":\"test-")
                  .ok());
  RawConnection::ReadResult r = raw.ReadUntilClose(milliseconds(5000));
  EXPECT_EQ(RawStatus(r.data), 408)
      << "got \"" << r.data << "\" closed=" << r.closed << " after " << r.elapsed.count() << " ms";
  EXPECT_NE(r.data.find("request_timeout"), std::string::npos) << r.data;
  EXPECT_TRUE(r.closed);
  EXPECT_GE(r.elapsed.count(), 200);
  EXPECT_LT(r.elapsed.count(), 2000);
}

TEST_F(SlowClientTest, IdleKeepAliveConnectionIsClosedSilently) {
  RawConnection raw;
  ASSERT_TRUE(raw.Connect(moat_.port()).ok());
  RawConnection::ReadResult r = raw.ReadUntilClose(milliseconds(5000));
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.data, "");
  EXPECT_LT(r.elapsed.count(), 2000);
}

// ---------------------------------------------------------------------------------------------
// Audit durability.

class AuditDurabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status s = upstream_.Start({"--threads", "2"});
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(moat_.WriteConfig(Config(upstream_.port(), 10000, 10000)).ok());
    StatusOr<std::string> key = moat_.CreateAccountAndKeyWithCli("load", "unverified");
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    key_ = *key;
  }

  void ExpectChainVerifies() {
    CommandResult verify = moat_.Cli({"audit", "verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    EXPECT_EQ(verify.out.rfind("OK", 0), 0u) << verify.out << verify.err;
  }

  // Every id in `acknowledged` must be in the exported audit log.
  void ExpectAllAudited(const std::set<std::string>& acknowledged) {
    StatusOr<std::vector<json::object>> records = moat_.ExportAudit();
    ASSERT_TRUE(records.ok()) << records.status().ToString();
    std::set<std::string> audited;
    for (const auto& r : *records) {
      if (const json::value* id = r.if_contains("request_id"); id && id->is_string()) {
        audited.insert(std::string(id->as_string()));
      }
    }
    std::size_t missing = 0;
    for (const auto& id : acknowledged) {
      if (audited.count(id) == 0) {
        if (++missing <= 10) ADD_FAILURE() << "acknowledged but not audited: " << id;
      }
    }
    EXPECT_EQ(missing, 0u) << "of " << acknowledged.size() << " acknowledged, " << records->size()
                           << " audited";
  }

  TestUpstream upstream_;
  MoatInstance moat_;
  std::string key_;
};

TEST_F(AuditDurabilityTest, GracefulStopThenVerifySucceeds) {
  Status s = moat_.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  HttpClient client("127.0.0.1", moat_.port(), milliseconds(10000));
  HttpHeaders auth = {{"authorization", "Bearer " + key_}};
  std::set<std::string> ids;
  for (int i = 0; i < 60; ++i) {  // more than checkpoint_every
    std::string body = R"({"model":"test-model","messages":[{"role":"user","content":"n)" +
                       std::to_string(i) + R"("}],"max_tokens":3)" +
                       (i % 3 == 0 ? R"(,"stream":true})" : "}");
    StatusOr<HttpResponse> res = client.Request("POST", "/v1/chat/completions", body, auth);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    ASSERT_EQ(res->status, 200) << res->body;
    ids.insert(res->Header("x-request-id"));
  }
  StatusOr<HttpResponse> refused = client.Request("POST", "/v1/chat/completions",
                                                  R"({"model":"test-model","messages":[]})", auth);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 400);
  ids.insert(refused->Header("x-request-id"));

  StatusOr<int> exit_code = moat_.Stop(SIGTERM);
  ASSERT_TRUE(exit_code.ok());
  EXPECT_EQ(*exit_code, 0) << moat_.Log();
  ExpectChainVerifies();
  ExpectAllAudited(ids);
}

// Load from several keep-alive clients (streaming and not) until the gateway dies. Returns the
// request ids whose response was fully received.
std::set<std::string> LoadUntilKilled(MoatInstance& moat, const std::string& key,
                                      milliseconds kill_after, int* errors_before_kill) {
  std::mutex mu;
  std::set<std::string> acknowledged;
  std::atomic<bool> killed{false};
  std::atomic<int> early_errors{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      HttpClient client("127.0.0.1", moat.port(), milliseconds(5000));
      HttpHeaders headers = {{"authorization", "Bearer " + key},
                             {"x-test-tokens", "6"},
                             {"x-test-chunk-delay-ms", "2"}};
      for (int i = 0; !killed.load(); ++i) {
        bool stream = (i + t) % 2 == 0;
        std::string body = R"({"model":"test-model","messages":[{"role":"user","content":"t)" +
                           std::to_string(t) + " i" + std::to_string(i) + R"("}],"max_tokens":8)" +
                           (stream ? R"(,"stream":true})" : "}");
        StatusOr<HttpResponse> res =
            client.StreamRequest("POST", "/v1/chat/completions", body, headers, nullptr);
        if (!res.ok()) {
          if (!killed.load() && early_errors.fetch_add(1) < 3) {
            ADD_FAILURE() << "request failed before the kill: " << res.status().ToString();
          }
          if (killed.load()) return;
          std::this_thread::sleep_for(milliseconds(10));
          continue;
        }
        bool complete = false;
        if (stream) {
          std::vector<std::string> payloads = SseDataPayloads(res->body);
          complete = !payloads.empty() && payloads.back() == "[DONE]";
        } else {
          complete = res->status == 200 && !ParseObject(res->body).empty();
        }
        if (!complete) {
          if (!killed.load() && early_errors.fetch_add(1) < 3) {
            ADD_FAILURE() << "incomplete response before the kill: " << res->status << " "
                          << res->body;
          }
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        acknowledged.insert(res->Header("x-request-id"));
      }
    });
  }
  std::this_thread::sleep_for(kill_after);
  // Any response completed before this point was acknowledged while the gateway was alive;
  // failures from here on are the crash itself.
  killed.store(true);
  StatusOr<int> stopped = moat.Stop(SIGKILL);
  for (auto& c : clients) c.join();
  EXPECT_TRUE(stopped.ok());
  if (stopped.ok()) {
    EXPECT_EQ(*stopped, -SIGKILL);
  }
  *errors_before_kill = early_errors.load();
  return acknowledged;
}

TEST_F(AuditDurabilityTest, KillMinus9UnderLoadLosesNoAcknowledgedRecord) {
  std::set<std::string> all;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Status s = moat_.Start();  // round 2 reopens the audit log the crash left behind
    ASSERT_TRUE(s.ok()) << s.ToString();
    int early_errors = 0;
    std::set<std::string> acked = LoadUntilKilled(moat_, key_, milliseconds(1200), &early_errors);
    EXPECT_EQ(early_errors, 0) << "requests failed before the kill";
    EXPECT_GE(acked.size(), 20u) << "too little load to mean anything";
    std::printf("round %d: %zu responses acknowledged before kill -9\n", round, acked.size());
    all.insert(acked.begin(), acked.end());
    ExpectAllAudited(all);
    ExpectChainVerifies();
  }
}

}  // namespace
}  // namespace moat::integration

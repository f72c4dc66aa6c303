// Upstream-mode watermark end to end: moat injects each account's Unigram green list as a
// logit_bias map into the request it forwards (seen through the test upstream's echo mode),
// merges the client's own logit_bias, and records the key id in the audit record.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <set>

#include "test/integration/moat_harness.h"
#include "test/upstream/test_process.h"

namespace moat::integration {
namespace {

namespace json = boost::json;
using moat::testing::HttpClient;
using moat::testing::TestUpstream;
using std::chrono::milliseconds;

constexpr int kVocab = 50000;

class UpstreamWatermarkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(upstream_.Start().ok());
    ASSERT_TRUE(moat_.WriteConfig(R"(
[server]
listen = "127.0.0.1:0"
threads = 1
[storage]
data_dir = "{data_dir}"
[watermark]
gamma = 0.25
delta = 2.0
[limits.verified]
key_rpm = 0
[[models]]
name = "wm-model"
backend = "upstream"
base_url = "http://127.0.0.1:)" + std::to_string(upstream_.port()) + R"("
forward_headers = ["x-test-echo"]
watermark_vocab_size = )" + std::to_string(kVocab) + "\n").ok());
    auto a = moat_.CreateAccountAndKeyWithCli("alice", "verified");
    auto b = moat_.CreateAccountAndKeyWithCli("bob", "verified");
    ASSERT_TRUE(a.ok() && b.ok());
    key_a_ = *a;
    key_b_ = *b;
    ASSERT_TRUE(moat_.Start().ok()) << moat_.Log();
  }

  // Sends a chat request in echo mode; returns the body the upstream received, and the request id.
  json::object Forwarded(const std::string& key, const std::string& extra, std::string* request_id) {
    HttpClient client("127.0.0.1", moat_.port(), milliseconds(10000));
    std::string body = R"({"model":"wm-model","messages":[{"role":"user","content":"hello"}])" + extra + "}";
    auto res = client.Request("POST", "/v1/chat/completions", body,
                              {{"Authorization", "Bearer " + key}, {"x-test-echo", "1"},
                               {"Content-Type", "application/json"}});
    EXPECT_TRUE(res.ok());
    if (!res.ok()) return {};
    EXPECT_EQ(res->status, 200) << res->body;
    *request_id = res->Header("x-request-id");
    json::object o = json::parse(res->body).as_object();
    auto content = o["choices"].as_array().at(0).as_object()["message"].as_object()["content"].as_string();
    return json::parse(content).as_object();
  }

  TestUpstream upstream_;
  MoatInstance moat_;
  std::string key_a_, key_b_;
};

std::set<std::string> Keys(const json::object& map) {
  std::set<std::string> out;
  for (const auto& [k, v] : map) out.insert(std::string(k));
  return out;
}

TEST_F(UpstreamWatermarkTest, EachAccountGetsItsOwnGreenListAsLogitBias) {
  std::string id_a, id_b;
  json::object fa = Forwarded(key_a_, "", &id_a);
  json::object fb = Forwarded(key_b_, "", &id_b);
  ASSERT_TRUE(fa["logit_bias"].is_object());
  ASSERT_TRUE(fb["logit_bias"].is_object());
  const auto& ma = fa["logit_bias"].as_object();
  const auto& mb = fb["logit_bias"].as_object();
  // About gamma * vocab green tokens, every one boosted by delta.
  EXPECT_NEAR(static_cast<double>(ma.size()), 0.25 * kVocab, 0.02 * kVocab);
  for (const auto& [k, v] : ma) {
    ASSERT_NEAR(v.to_number<double>(), 2.0, 1e-9);
    ASSERT_LT(std::stoi(std::string(k)), kVocab);
  }
  // Different accounts, different (nearly independent) green lists: overlap about gamma^2.
  std::set<std::string> ka = Keys(ma), kb = Keys(mb), both;
  for (const auto& k : ka)
    if (kb.count(k)) both.insert(k);
  EXPECT_NE(ka, kb);
  EXPECT_NEAR(static_cast<double>(both.size()) / ka.size(), 0.25, 0.05);
  // The same account always gets the same list.
  std::string id_a2;
  json::object fa2 = Forwarded(key_a_, "", &id_a2);
  EXPECT_EQ(Keys(fa2["logit_bias"].as_object()), ka);

  // The audit record names the key used.
  auto rec = moat_.AuditRecord(id_a);
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  std::string account = std::string((*rec)["account_id"].as_string());
  EXPECT_EQ(std::string((*rec)["watermark_key_id"].as_string()), "wm:" + account + ":0");
}

TEST_F(UpstreamWatermarkTest, ClientLogitBiasIsMergedNotReplaced) {
  std::string id;
  json::object plain = Forwarded(key_a_, "", &id);
  std::set<std::string> green = Keys(plain["logit_bias"].as_object());
  ASSERT_FALSE(green.empty());
  std::string g = *green.begin();
  std::string r;  // a token that is not green for alice
  for (int t = 0; t < kVocab && r.empty(); ++t)
    if (!green.count(std::to_string(t))) r = std::to_string(t);
  json::object merged = Forwarded(key_a_, R"(,"logit_bias":{")" + g + R"(":1.5,")" + r + R"(":-100})", &id);
  const auto& m = merged["logit_bias"].as_object();
  EXPECT_NEAR(m.at(g).to_number<double>(), 3.5, 1e-9);     // green 2.0 + client 1.5
  EXPECT_NEAR(m.at(r).to_number<double>(), -100.0, 1e-9);  // client's ban kept
  EXPECT_EQ(m.size(), green.size() + 1);
}

}  // namespace
}  // namespace moat::integration

// Step-up verification end to end: the real `moat serve` in front of the real
// moat-test-upstream, and a small identity service in this process (a TestHttpServer) that does
// what an operator's would: it receives the gateway's webhook, checks its HMAC-SHA256 signature
// with OpenSSL (not with moat's code), and marks the account verified for a few seconds through
// the gateway's admin API. The test drives an unverified account into step-up, follows the URL
// and the webhook round trip, sees the account served again, then sees the verification expire.
// A second account is verified with `moat account verify` while the gateway runs.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <csignal>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "test/integration/moat_harness.h"
#include "test/upstream/test_http_server.h"
#include "test/upstream/test_process.h"

namespace moat::integration {
namespace {

namespace json = boost::json;
using moat::testing::HttpClient;
using moat::testing::HttpResponse;
using moat::testing::TempDir;
using moat::testing::TestHttpServer;
using moat::testing::TestUpstream;
using namespace std::chrono_literals;

constexpr char kAdminToken[] = "test-admin";
constexpr char kSecret[] = "whsec_step_up_integration_0123456789";
constexpr int kValidForS = 4;

std::string Str(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// Hex HMAC-SHA256 with OpenSSL: an implementation independent of the gateway's (libsodium).
std::string HmacSha256Hex(const std::string& key, const std::string& text) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(text.data()),
       text.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[mac[i] >> 4]);
    hex.push_back(kHex[mac[i] & 0xF]);
  }
  return hex;
}

// The identity service: checks each webhook's signature (t=...,v1=... over "<t>.<body>", at most
// five minutes old) and verifies the account it names through the admin API, once per account.
class IdentityService {
 public:
  IdentityService() : server_([this](const TestHttpServer::Request& r) { return Handle(r); }) {}

  void set_gateway_port(std::uint16_t port) { gateway_port_ = port; }
  // The user finishes the identity check: until then a webhook is received but nobody is
  // verified, so the test can see the gateway keep refusing meanwhile.
  void CompleteCheck() {
    {
      std::lock_guard lock(mu_);
      check_completed_ = true;
    }
    cv_.notify_all();
  }
  std::uint16_t port() const { return server_.port(); }

  // Waits until an account was verified; returns its verify answer (empty on timeout).
  json::object WaitForVerified(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !verified_.empty(); });
    return verified_.empty() ? json::object() : verified_.front();
  }
  std::vector<json::object> events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  int bad_signatures() {
    std::lock_guard lock(mu_);
    return bad_signatures_;
  }

 private:
  TestHttpServer::Reply Handle(const TestHttpServer::Request& r) {
    if (r.method != "POST" || r.target != "/hooks/moat") return {404, R"({"error":"no such hook"})"};
    const std::string sig = r.Header("x-moat-signature");
    const size_t t_at = sig.find("t="), v_at = sig.find(",v1=");
    const std::string t = t_at == 0 && v_at != std::string::npos ? sig.substr(2, v_at - 2) : "";
    const std::string v1 = v_at != std::string::npos ? sig.substr(v_at + 4) : "";
    const long long now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    if (t.empty() || std::llabs(now - std::stoll(t)) > 300 || v1 != HmacSha256Hex(kSecret, t + "." + r.body)) {
      std::lock_guard lock(mu_);
      ++bad_signatures_;
      return {401, R"({"error":"bad signature"})"};
    }
    const json::object event = ParseObject(r.body);
    {
      std::unique_lock lock(mu_);
      events_.push_back(event);
      if (!verified_.empty()) return {204, ""};  // verify once: the expiry must be seen
      cv_.notify_all();
      cv_.wait_for(lock, std::chrono::seconds(20), [&] { return check_completed_; });
    }
    // "The user completed the identity check": mark the account verified for a while.
    HttpClient gateway("127.0.0.1", gateway_port_);
    json::object verify{{"tier", "verified"}, {"valid_for_s", kValidForS}, {"method", "test-idp"},
                        {"reference", Str(event, "reference")}};
    auto res = gateway.Request("POST", "/admin/accounts/" + Str(event, "account_id") + "/verify",
                               json::serialize(verify), {{"authorization", std::string("Bearer ") + kAdminToken}});
    if (!res.ok() || res->status != 200) return {500, R"({"error":"could not verify"})"};  // the gateway retries
    {
      std::lock_guard lock(mu_);
      verified_.push_back(ParseObject(res->body));
    }
    cv_.notify_all();
    return {204, ""};
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<json::object> events_;
  std::vector<json::object> verified_;
  int bad_signatures_ = 0;
  bool check_completed_ = false;
  std::atomic<std::uint16_t> gateway_port_{0};
  TestHttpServer server_;  // last: its thread stops before the state above goes
};

// A step-up prone policy: an unverified subject is restricted at once (a certain prior, no
// budget); a verified one has the same certain prior, so only its tier's budget lets it through.
constexpr char kConfig[] = R"toml(
[server]
listen = "127.0.0.1:0"
threads = 2
admin_token = "test-admin"

[storage]
data_dir = "{data_dir}"

[detection]
step_up_url = "http://127.0.0.1:{idp_port}/verify?account={account}&ref={reference}"

[detection.tiers.unverified]
prior_log_odds = 20.0
subject_budget = 0.0
action = "step_up"

[detection.tiers.verified]
prior_log_odds = 20.0

[step_up]
webhook_url = "http://127.0.0.1:{idp_port}/hooks/moat"
webhook_secret_file = "{secret_file}"
dedup_interval_s = 3600
retry_backoff_ms = 100

[[models]]
name = "test-model"
backend = "upstream"
base_url = "http://127.0.0.1:{upstream_port}"
)toml";

HttpResponse Chat(HttpClient& client, const std::string& key) {
  return PostChat(client, key, R"({"model":"test-model","max_tokens":16,"messages":[{"role":"user","content":"hello"}]})");
}

// The value of a metric line `name{labels}` in a /metrics text, -1 when absent.
double Metric(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

TEST(StepUpIntegrationTest, AStepUpIsAFlowFromTheErrorThroughTheWebhookToVerificationAndItsExpiry) {
  TestUpstream upstream;
  ASSERT_TRUE(upstream.Start().ok());
  IdentityService idp;
  TempDir dir("moat-step-up");
  const std::string secret_file = dir.File("webhook.key");
  std::ofstream(secret_file) << kSecret << "\n";
  ASSERT_EQ(::chmod(secret_file.c_str(), 0600), 0);

  std::string toml = kConfig;
  ReplaceAll(toml, "{idp_port}", std::to_string(idp.port()));
  ReplaceAll(toml, "{secret_file}", secret_file);
  ReplaceAll(toml, "{upstream_port}", std::to_string(upstream.port()));
  MoatInstance moat;
  ASSERT_TRUE(moat.WriteConfig(toml).ok());
  auto alice_key = moat.CreateAccountAndKeyWithCli("alice", "unverified");
  auto bob_key = moat.CreateAccountAndKeyWithCli("bob", "unverified");
  ASSERT_TRUE(alice_key.ok() && bob_key.ok());
  Status started = moat.Start();
  ASSERT_TRUE(started.ok()) << started.ToString() << moat.Log();
  idp.set_gateway_port(moat.port());
  HttpClient client("127.0.0.1", moat.port());
  auto admin = [&](const std::string& method, const std::string& path, const std::string& body = "") {
    auto res = client.Request(method, path, body, {{"authorization", std::string("Bearer ") + kAdminToken}});
    EXPECT_TRUE(res.ok());
    return res.ok() ? *res : HttpResponse{};
  };
  const std::string alice = Str(ParseObject(admin("GET", "/admin/accounts/alice").body), "id");
  ASSERT_FALSE(alice.empty());

  // 1. Step-up: the error names the account's verification URL, in the message and as a field.
  HttpResponse refused;
  for (int i = 0; i < 5 && refused.status != 403; ++i) refused = Chat(client, *alice_key);
  ASSERT_EQ(refused.status, 403) << refused.body;
  EXPECT_EQ(refused.Header("x-moat-action"), "step_up");
  const std::string reference = refused.Header("x-moat-reference");
  ASSERT_EQ(reference.rfind("ref_", 0), 0u);
  const json::object error = ParseObject(refused.body)["error"].as_object();
  const std::string url = "http://127.0.0.1:" + std::to_string(idp.port()) + "/verify?account=" + alice +
                          "&ref=" + reference;
  EXPECT_EQ(Str(error, "code"), "step_up_required");
  EXPECT_EQ(Str(error, "type"), "permission_error");
  EXPECT_EQ(Str(error, "verification_url"), url);
  EXPECT_NE(Str(error, "message").find("Verify at " + url + "."), std::string::npos) << Str(error, "message");
  // Asked again before the identity check is done: refused the same way, notified once.
  EXPECT_EQ(Chat(client, *alice_key).status, 403);
  idp.CompleteCheck();

  // 2. The signed webhook reached the identity service, which verified alice for a while.
  const json::object verified = idp.WaitForVerified(20s);
  ASSERT_FALSE(verified.empty()) << "no verification; events: " << idp.events().size() << "\n" << moat.Log();
  EXPECT_EQ(Str(verified, "tier"), "verified");
  EXPECT_EQ(Str(verified, "tier_after_expiry"), "unverified");
  const std::int64_t expires_ns = verified.at("tier_expires_ns").as_int64();
  std::vector<json::object> events = idp.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(idp.bad_signatures(), 0);
  EXPECT_EQ(Str(events[0], "type"), "step_up.required");
  EXPECT_EQ(Str(events[0], "account_id"), alice);
  EXPECT_EQ(Str(events[0], "reference"), reference);
  EXPECT_EQ(Str(events[0], "category"), refused.Header("x-moat-category"));
  EXPECT_EQ(Str(events[0], "verification_url"), url);
  EXPECT_TRUE(events[0].at("end_user").is_null());

  // 3. Verified: served again, and allowed outright (the verified tier's budget, not the hold
  // the certain prior would otherwise keep).
  HttpResponse served = Chat(client, *alice_key);
  ASSERT_LT(std::chrono::system_clock::now().time_since_epoch(), std::chrono::nanoseconds(expires_ns))
      << "the verification expired before the test could use it (a very slow machine)";
  EXPECT_EQ(served.status, 200) << served.body;
  EXPECT_EQ(served.Header("x-moat-action"), "allow");

  // 4. The verification expires: alice is back to unverified and asked to step up again.
  std::this_thread::sleep_until(std::chrono::system_clock::time_point(std::chrono::nanoseconds(expires_ns)) + 300ms);
  HttpResponse again = Chat(client, *alice_key);
  EXPECT_EQ(again.status, 403) << again.body;
  EXPECT_EQ(Str(ParseObject(again.body)["error"].as_object(), "code"), "step_up_required");
  EXPECT_EQ(Str(ParseObject(admin("GET", "/admin/accounts/" + alice).body), "tier"), "unverified");

  // Bad verifications are refused with OpenAI-format errors and change nothing.
  struct Bad {
    const char* method;
    std::string path;
    const char* body;
    int status;
    const char* code;
  } bad[] = {
      {"POST", "/admin/accounts/" + alice + "/verify", R"({"tier":"verified"})", 400, "invalid_value"},
      {"POST", "/admin/accounts/" + alice + "/verify", R"({"valid_for_s":0})", 400, "invalid_value"},
      {"POST", "/admin/accounts/" + alice + "/verify", R"({"valid_for_s":"60"})", 400, "invalid_value"},
      {"POST", "/admin/accounts/" + alice + "/verify", R"({"tier":"unverified","valid_for_s":60})", 400,
       "invalid_value"},
      {"POST", "/admin/accounts/" + alice + "/verify", R"({"tier":"gold","valid_for_s":60})", 400,
       "INVALID_ARGUMENT"},
      {"POST", "/admin/accounts/acct_nobody/verify", R"({"valid_for_s":60})", 404, "NOT_FOUND"},
      {"GET", "/admin/accounts/" + alice + "/verify", "", 405, "method_not_allowed"},
  };
  for (const Bad& b : bad) {
    HttpResponse res = admin(b.method, b.path, b.body);
    EXPECT_EQ(res.status, b.status) << b.path << " " << b.body << ": " << res.body;
    EXPECT_EQ(Str(ParseObject(res.body)["error"].as_object(), "code"), b.code) << res.body;
  }
  EXPECT_EQ(Chat(client, *alice_key).status, 403);

  // 5. The CLI verifies too (another process: the gateway picks the change up within a second).
  EXPECT_EQ(Chat(client, *bob_key).status, 403);
  CommandResult cli = moat.Cli({"account", "verify", "bob", "--valid-for-s", "3600", "--method", "manual-review"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("tier: verified until"), std::string::npos) << cli.out;
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i) {
    status = Chat(client, *bob_key).status;
    if (status != 200) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(status, 200);

  // Each subject was notified once: its later step-ups were deduplicated, none was dropped.
  std::string metrics;
  for (int i = 0; i < 100; ++i) {  // bob's event is delivered off the request path
    metrics = admin("GET", "/metrics").body;
    if (Metric(metrics, R"(moat_step_up_webhooks_total{outcome="delivered"})") >= 2) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(Metric(metrics, R"(moat_step_up_webhooks_total{outcome="queued"})"), 2) << metrics;
  EXPECT_EQ(Metric(metrics, R"(moat_step_up_webhooks_total{outcome="delivered"})"), 2);
  EXPECT_GE(Metric(metrics, R"(moat_step_up_webhooks_total{outcome="deduplicated"})"), 2);
  EXPECT_EQ(Metric(metrics, R"(moat_step_up_webhooks_total{outcome="dropped_undeliverable"})"), 0);
  ASSERT_TRUE(moat.Stop(SIGTERM).ok());

  // 6. The audit log holds both verifications: who, what, the tiers before and after, the expiry.
  auto records = moat.ExportAudit();
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  std::vector<json::object> verifications, refused_verifications;
  for (const auto& r : *records) {
    if (Str(r, "verdict") != "admin" || Str(r, "action") != "account.verify") continue;
    (r.at("http_status").as_int64() == 200 ? verifications : refused_verifications).push_back(r);
  }
  EXPECT_EQ(refused_verifications.size(), 6u);  // the bad attempts above (the GET is no change)
  ASSERT_EQ(verifications.size(), 2u);
  const json::object& api = verifications[0];
  EXPECT_EQ(Str(api, "account_id"), alice);
  EXPECT_EQ(Str(api, "end_user").rfind("admin-token:", 0), 0u);
  EXPECT_EQ(Str(api, "endpoint"), "/admin/accounts/" + alice + "/verify");
  const json::object details = ParseObject(Str(api, "params_json"));
  EXPECT_EQ(Str(details, "tier_before"), "unverified");
  EXPECT_EQ(Str(details, "tier_after"), "verified");
  EXPECT_EQ(Str(details, "tier_after_expiry"), "unverified");
  EXPECT_EQ(details.at("tier_expires_ns").as_int64(), expires_ns);
  EXPECT_EQ(details.at("valid_for_s").as_int64(), kValidForS);
  EXPECT_EQ(Str(details, "method"), "test-idp");
  EXPECT_EQ(Str(details, "reference"), reference);
  const json::object cli_details = ParseObject(Str(verifications[1], "params_json"));
  EXPECT_EQ(Str(verifications[1], "end_user").rfind("cli:", 0), 0u);
  EXPECT_EQ(Str(cli_details, "method"), "manual-review");
  EXPECT_EQ(Str(cli_details, "tier_after"), "verified");
}

TEST(StepUpIntegrationTest, ABadStepUpSetupIsRefusedAtStart) {
  TempDir dir("moat-step-up-bad");
  const std::string secret_file = dir.File("webhook.key");
  std::ofstream(secret_file) << kSecret << "\n";
  ASSERT_EQ(::chmod(secret_file.c_str(), 0644), 0);  // others can read it
  std::string toml = kConfig;
  ReplaceAll(toml, "{idp_port}", "9");
  ReplaceAll(toml, "{secret_file}", secret_file);
  ReplaceAll(toml, "{upstream_port}", "9");
  MoatInstance moat;
  ASSERT_TRUE(moat.WriteConfig(toml).ok());
  Status started = moat.Start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(moat.Log().find("chmod 600"), std::string::npos) << moat.Log();

  std::string unknown = kConfig;
  ReplaceAll(unknown, "{account}&ref={reference}", "{acount}");
  ReplaceAll(unknown, "{idp_port}", "9");
  ReplaceAll(unknown, "{secret_file}", secret_file);
  MoatInstance other;
  ASSERT_TRUE(other.WriteConfig(unknown).ok());
  CommandResult check = other.Cli({"account", "list"});
  EXPECT_NE(check.exit_code, 0);
  EXPECT_NE(check.err.find("unknown placeholder {acount}"), std::string::npos) << check.err;
}

}  // namespace
}  // namespace moat::integration

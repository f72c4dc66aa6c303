// Indicator sharing between two real gateways: provider A restricts a campaign (its operator
// deny-lists three harvesting accounts), exports the keys they used as a STIX 2.1 bundle with
// `moat indicators export`; provider B, already running, imports it with `moat indicators
// import`, and without a restart a fresh account on B that uses the same tooling, network and
// prompt template is matched, named by `moat account show`, while an unrelated account is not.

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "test/integration/moat_harness.h"
#include "test/upstream/test_process.h"

namespace moat::integration {
namespace {

namespace json = boost::json;
using moat::testing::HttpClient;
using moat::testing::TestUpstream;

constexpr char kAdminToken[] = "indicator-admin";

std::string Config(std::uint16_t upstream_port, const std::string& extra) {
  std::string toml = R"toml(
[server]
listen = "127.0.0.1:0"
threads = 2
admin_token = "indicator-admin"
trusted_proxies = ["127.0.0.1"]

[storage]
data_dir = "{data_dir}"

[[models]]
name = "gpt-4o-mini"
base_url = "http://127.0.0.1:UPSTREAM"
)toml";
  toml.replace(toml.find("UPSTREAM"), 8, std::to_string(upstream_port));
  return toml + extra;
}

std::string Harvest(int i) {
  return "You are a meticulous tutor. Solve the following exercise carefully and show every step: a cyclist rides " +
         std::to_string(12 + i) + " kilometres uphill at " + std::to_string(8 + i % 5) +
         " km/h and back down at twice that speed; what is the average speed? End with the final answer alone.";
}

// POSTs one chat completion as `secret` from `ip` with `ua`; returns the HTTP status.
int Ask(HttpClient& client, const std::string& secret, const std::string& ip, const std::string& ua,
        const std::string& prompt) {
  json::object body{{"model", "gpt-4o-mini"},
                    {"temperature", 0.7},
                    {"max_tokens", 32},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", prompt}}}}};
  auto r = client.Request("POST", "/v1/chat/completions", json::serialize(body),
                          {{"authorization", "Bearer " + secret}, {"x-forwarded-for", ip}, {"user-agent", ua}});
  return r.ok() ? r->status : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(IndicatorSharing, ExportFromOneGatewayMatchesOnAnother) {
  TestUpstream upstream;
  ASSERT_TRUE(upstream.Start({"--threads", "2"}).ok());

  // ---- Provider A: a campaign it restricts, and organic users.
  MoatInstance a;
  ASSERT_TRUE(a.WriteConfig(Config(upstream.port(), "")).ok());
  std::vector<std::string> harvest, organic;
  for (int i = 0; i < 3; ++i) {
    auto h = a.CreateAccountAndKeyWithCli("harvest-" + std::to_string(i), "unverified");
    auto o = a.CreateAccountAndKeyWithCli("organic-" + std::to_string(i), "verified");
    ASSERT_TRUE(h.ok() && o.ok());
    harvest.push_back(*h);
    organic.push_back(*o);
  }
  ASSERT_TRUE(a.Start().ok()) << a.Log();
  HttpClient ca("127.0.0.1", a.port());
  for (int i = 0; i < 3; ++i) {
    auto set = ca.Request("POST", "/admin/lists",
                          json::serialize(json::object{{"account", "harvest-" + std::to_string(i)}, {"entry", "deny"}}),
                          {{"authorization", "Bearer " + std::string(kAdminToken)}});
    ASSERT_TRUE(set.ok() && set->status == 200) << (set.ok() ? set->body : set.status().ToString());
  }
  for (int q = 0; q < 4; ++q) {
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(Ask(ca, harvest[i], "198.51.100." + std::to_string(20 + i), "harvester/3.1", Harvest(q * 3 + i)), 403);
      EXPECT_EQ(Ask(ca, organic[i], "203.0.113." + std::to_string(i + 1), "OpenAI/Python 1.54.3",
                    "my sourdough starter smells like acetone after " + std::to_string(q + 2) + " days, is it dead"),
                200);
    }
  }
  ASSERT_TRUE(a.Stop(SIGTERM).ok());

  moat::testing::TempDir dir{"moat-indicators"};
  const std::string salt = dir.File("shared.salt"), bundle = dir.File("bundle.json");
  auto made = RunCommand({MoatBinary(), "indicators", "salt", "--out", salt});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  auto exported = a.Cli({"indicators", "export", "--since", "1h", "--salt-file", salt, "--out", bundle, "--provider",
                         "provider A"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const json::value b = json::parse(ReadFile(bundle));
  std::map<std::string, int> kinds;
  for (const auto& o : b.at("objects").as_array()) {
    if (o.at("type").as_string() == "indicator") ++kinds[std::string(o.at("x_moat_kind").as_string())];
  }
  EXPECT_EQ(kinds["network-prefix"], 1);
  EXPECT_EQ(kinds["client-fingerprint"], 1);
  EXPECT_EQ(kinds["prompt-template-prefix"], 1);
  EXPECT_GE(kinds["work-queue-item"], 1);
  EXPECT_NE(ReadFile(bundle).find("198.51.100.0/24"), std::string::npos);
  EXPECT_EQ(ReadFile(bundle).find("203.0.113"), std::string::npos) << "an organic network was exported";
  EXPECT_EQ(ReadFile(bundle).find("harvester"), std::string::npos) << "a raw user agent was exported";

  // ---- Provider B: already running when the bundle arrives. It imports it (a broken one is
  // refused) and, without a restart, sees a newcomer that matches it.
  MoatInstance b_gw;
  ASSERT_TRUE(b_gw.WriteConfig(Config(upstream.port(), "\n[detection]\nindicator_salt_file = \"" + salt + "\"\n")).ok());
  auto newcomer = b_gw.CreateAccountAndKeyWithCli("newcomer", "verified");
  auto bystander = b_gw.CreateAccountAndKeyWithCli("bystander", "verified");
  ASSERT_TRUE(newcomer.ok() && bystander.ok());
  ASSERT_TRUE(b_gw.Start().ok()) << b_gw.Log();
  HttpClient cb("127.0.0.1", b_gw.port());
  const std::string url = "http://127.0.0.1:" + std::to_string(b_gw.port());
  Ask(cb, *newcomer, "198.51.100.77", "harvester/3.1", Harvest(39));
  auto before = b_gw.Cli({"account", "show", "newcomer", "--url", url, "--admin-token", kAdminToken});
  ASSERT_EQ(before.exit_code, 0) << before.err;
  EXPECT_EQ(before.out.find("shared indicator"), std::string::npos) << before.out;

  std::ofstream(dir.File("broken.json")) << R"({"type":"bundle","id":"bundle--1","objects":[]})";
  auto refused = b_gw.Cli({"indicators", "import", dir.File("broken.json")});
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  auto imported = b_gw.Cli({"indicators", "import", bundle, "--weight", "4"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_NE(imported.out.find("0 hashed under another salt"), std::string::npos) << imported.out;
  auto listed = b_gw.Cli({"indicators", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("client-fingerprint"), std::string::npos) << listed.out;
  // The running gateway reads its indicator folder again within about a second of a change.
  for (int i = 0; i < 50 && b_gw.Log().find("shared indicators") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(b_gw.Log().find("shared indicators from"), std::string::npos) << b_gw.Log();

  // Another address in the same /24, the same tooling, a new item in the same template.
  Ask(cb, *newcomer, "198.51.100.77", "harvester/3.1", Harvest(40));
  Ask(cb, *bystander, "192.0.2.9", "OpenAI/Python 1.54.3", "what is a good first synth for lo-fi hip hop");
  auto shown = b_gw.Cli({"account", "show", "newcomer", "--url", url, "--admin-token", kAdminToken});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("shared indicator matched: indicator--"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("evidence stage: indicators"), std::string::npos) << shown.out;
  auto other = b_gw.Cli({"account", "show", "bystander", "--url", url, "--admin-token", kAdminToken});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_EQ(other.out.find("shared indicator"), std::string::npos) << other.out;
  ASSERT_TRUE(b_gw.Stop(SIGTERM).ok());
}

}  // namespace
}  // namespace moat::integration

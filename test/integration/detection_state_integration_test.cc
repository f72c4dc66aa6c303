// Detection state across a restart, end to end: the real `moat serve` in front of the real
// moat-test-upstream. A subject's suspected value builds up to its budget and it is restricted;
// the gateway is stopped (SIGTERM, which saves the state file) and started again, and the
// subject is still restricted and still known from when it was first seen. A damaged state file
// is refused with a warning and detection starts afresh (the subject is served again).
#include <sys/stat.h>

#include <boost/json.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "test/integration/moat_harness.h"
#include "test/upstream/test_process.h"

namespace moat::integration {
namespace {

namespace json = boost::json;
using moat::testing::HttpClient;
using moat::testing::HttpResponse;
using moat::testing::TestUpstream;

constexpr char kAdminToken[] = "test-admin";

// A certain prior, so that only the accumulated value (what the state file keeps) decides: each
// answer of at most 100 tokens adds about 100 to the value (whatever the content model thinks of
// the prompt: a probe's weight is 1 here), and 600 is the budget.
constexpr char kConfig[] = R"toml(
[server]
listen = "127.0.0.1:0"
threads = 2
admin_token = "test-admin"

[storage]
data_dir = "{data_dir}"

[detection]
state_save_interval_s = 3600

[detection.settings]
"policy.jailbreak_value_weight" = 1.0

[detection.tiers.unverified]
prior_log_odds = 20.0
subject_budget = 600.0
action = "block"

[[models]]
name = "test-model"
backend = "upstream"
base_url = "http://127.0.0.1:{upstream_port}"
)toml";

HttpResponse Chat(HttpClient& client, const std::string& key) {
  return PostChat(client, key, R"({"model":"test-model","max_tokens":100,"messages":[{"role":"user","content":"hello"}]})");
}

json::object Risk(std::uint16_t port, const std::string& account) {
  HttpClient client("127.0.0.1", port);
  auto res = client.Request("GET", "/admin/accounts/" + account + "/risk", "",
                            {{"authorization", std::string("Bearer ") + kAdminToken}});
  EXPECT_TRUE(res.ok() && res->status == 200) << (res.ok() ? res->body : res.status().ToString());
  return res.ok() && res->status == 200 ? ParseObject(res->body) : json::object{};
}

int64_t Int(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v && v->is_number() ? v->to_number<int64_t>() : -1;
}

TEST(DetectionStateIntegrationTest, ARestrictionAndWhatDetectionLearnedSurviveARestart) {
  TestUpstream upstream;
  ASSERT_TRUE(upstream.Start().ok());
  std::string toml = kConfig;
  ReplaceAll(toml, "{upstream_port}", std::to_string(upstream.port()));
  MoatInstance moat;
  ASSERT_TRUE(moat.WriteConfig(toml).ok());
  auto alice_key = moat.CreateAccountAndKeyWithCli("alice", "unverified");
  auto bob_key = moat.CreateAccountAndKeyWithCli("bob", "unverified");
  ASSERT_TRUE(alice_key.ok() && bob_key.ok());
  Status started = moat.Start();
  ASSERT_TRUE(started.ok()) << started.ToString() << moat.Log();

  // Alice is served until her value passes the budget (after about six answers), then blocked.
  HttpClient client("127.0.0.1", moat.port());
  int served = 0;
  HttpResponse last;
  for (int i = 0; i < 20; ++i) {
    last = Chat(client, *alice_key);
    if (last.status != 200) break;
    ++served;
  }
  ASSERT_EQ(last.status, 403) << last.body;
  EXPECT_GE(served, 3);
  EXPECT_EQ(last.Header("x-moat-action"), "block");
  ASSERT_EQ(Chat(client, *bob_key).status, 200);
  const json::object alice_before = Risk(moat.port(), "alice");
  const json::object bob_before = Risk(moat.port(), "bob");
  ASSERT_TRUE(alice_before.at("restricted").as_bool());

  // A graceful stop writes the state file, owner-only.
  auto code = moat.Stop(SIGTERM);
  ASSERT_TRUE(code.ok() && *code == 0) << moat.Log();
  const std::string state_file = moat.data_dir() + "/detection-state.bin";
  struct stat st {};
  ASSERT_EQ(::stat(state_file.c_str(), &st), 0) << moat.Log();
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // Started again: alice is refused at once, bob is known from when he was first seen.
  started = moat.Start();
  ASSERT_TRUE(started.ok()) << started.ToString() << moat.Log();
  EXPECT_NE(moat.Log().find("detection state restored from " + state_file), std::string::npos) << moat.Log();
  HttpClient again("127.0.0.1", moat.port());
  EXPECT_EQ(Chat(again, *alice_key).status, 403);
  const json::object alice_after = Risk(moat.port(), "alice");
  EXPECT_TRUE(alice_after.at("restricted").as_bool());
  EXPECT_EQ(Int(alice_after, "first_seen_ns"), Int(alice_before, "first_seen_ns"));
  EXPECT_EQ(Int(alice_after, "requests"), Int(alice_before, "requests") + 1);
  ASSERT_EQ(Chat(again, *bob_key).status, 200);
  const json::object bob_after = Risk(moat.port(), "bob");
  EXPECT_EQ(Int(bob_after, "first_seen_ns"), Int(bob_before, "first_seen_ns"));
  EXPECT_EQ(Int(bob_after, "requests"), 2);

  // A damaged state file: the gateway warns, starts afresh, and serves alice again.
  code = moat.Stop(SIGTERM);
  ASSERT_TRUE(code.ok() && *code == 0) << moat.Log();
  {
    std::fstream f(state_file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(state_file) / 2));
    f.put('\x5a');
  }
  started = moat.Start();
  ASSERT_TRUE(started.ok()) << started.ToString() << moat.Log();
  EXPECT_NE(moat.Log().find("is damaged"), std::string::npos) << moat.Log();
  EXPECT_NE(moat.Log().find("detection starts afresh"), std::string::npos) << moat.Log();
  HttpClient fresh("127.0.0.1", moat.port());
  EXPECT_EQ(Chat(fresh, *alice_key).status, 200);
  EXPECT_EQ(Int(Risk(moat.port(), "alice"), "requests"), 1);
}

}  // namespace
}  // namespace moat::integration

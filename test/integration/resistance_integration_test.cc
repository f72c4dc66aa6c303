// Response hardening through the real `moat serve` with a trained built-in model: a subject the
// policy degrades gets its tier's hardening profile (anti-distillation sampling, answer-only,
// logprobs refused), another tier's profile applies to that tier only, and an allowed subject's
// answer is untouched. The watermark is off so that two accounts' answers to the same seeded
// request are identical unless hardening changes them.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "test/integration/moat_harness.h"
#include "test/upstream/test_process.h"

namespace moat::integration {
namespace {

namespace json = boost::json;
using moat::testing::HttpClient;
using moat::testing::TempDir;

struct Answer {
  int status = 0;
  std::string action;  // x-moat-action
  std::string content;
  bool has_logprobs = false;
};

Answer Ask(HttpClient& client, const std::string& key) {
  const std::string body =
      R"({"model":"tiny","messages":[{"role":"user","content":"Tell me about life."}],)"
      R"("max_tokens":60,"temperature":1,"seed":42,"logprobs":true,"top_logprobs":2})";
  Answer a;
  auto res = client.Request("POST", "/v1/chat/completions", body,
                            {{"authorization", "Bearer " + key}, {"content-type", "application/json"}});
  if (!res.ok()) return a;
  a.status = res->status;
  a.action = res->Header("x-moat-action");
  if (a.status != 200) return a;
  const json::value v = json::parse(res->body);
  const json::object& choice = v.at("choices").as_array().at(0).as_object();
  a.content = std::string(choice.at("message").as_object().at("content").as_string());
  a.has_logprobs = choice.contains("logprobs") && !choice.at("logprobs").is_null();
  return a;
}

TEST(ResistanceIntegrationTest, DegradedSubjectsGetTheirTiersHardening) {
  TempDir dir("moat-resistance");
  const std::string model = dir.File("tiny-model.bin");
  CommandResult train =
      RunCommand({MoatBinary(), "model", "train", "--out", model, "--max-bytes", "200000"}, std::chrono::seconds(120));
  ASSERT_EQ(train.exit_code, 0) << train.err;
  // unverified and enterprise subjects are restricted at once (a certain prior, no budget) and
  // degraded; verified ones keep the defaults and are allowed.
  const std::string config = R"toml(
[server]
listen = "127.0.0.1:0"
threads = 1
[storage]
data_dir = "{data_dir}"
[watermark]
enabled = false
[detection.tiers.unverified]
prior_log_odds = 20.0
subject_budget = 0.0
action = "degrade"
[detection.tiers.unverified.hardening]
antidistill_kl = 1.0
answer_only = "always"
[detection.tiers.enterprise]
prior_log_odds = 20.0
subject_budget = 0.0
action = "degrade"
[detection.tiers.enterprise.hardening]
logprobs = "allow"
[[models]]
name = "tiny"
backend = "builtin"
model_path = "{model}"
generation_threads = 1
)toml";
  std::string toml = config;
  toml.replace(toml.find("{model}"), 7, model);
  MoatInstance moat;
  ASSERT_TRUE(moat.WriteConfig(toml).ok());
  auto plain_key = moat.CreateAccountAndKeyWithCli("plain", "verified");
  auto hard_key = moat.CreateAccountAndKeyWithCli("hard", "unverified");
  auto ent_key = moat.CreateAccountAndKeyWithCli("ent", "enterprise");
  ASSERT_TRUE(plain_key.ok() && hard_key.ok() && ent_key.ok());
  Status started = moat.Start();
  ASSERT_TRUE(started.ok()) << started.ToString() << moat.Log();
  HttpClient client("127.0.0.1", moat.port());

  // Each subject's first requests build the value that puts it over its budget.
  for (int i = 0; i < 2; ++i) {
    Ask(client, *hard_key);
    Ask(client, *ent_key);
  }
  const Answer plain = Ask(client, *plain_key);
  const Answer hard = Ask(client, *hard_key);
  const Answer ent = Ask(client, *ent_key);
  ASSERT_EQ(plain.status, 200);
  ASSERT_EQ(hard.status, 200);
  ASSERT_EQ(ent.status, 200);
  EXPECT_EQ(plain.action, "allow");
  EXPECT_EQ(hard.action, "degrade");
  EXPECT_EQ(ent.action, "degrade");

  // Allowed: the seeded answer with logprobs. Enterprise's profile allows logprobs and has no
  // sampling stage: the same answer, logprobs kept, though the subject is degraded.
  EXPECT_TRUE(plain.has_logprobs);
  EXPECT_FALSE(plain.content.empty());
  EXPECT_EQ(ent.content, plain.content);
  EXPECT_TRUE(ent.has_logprobs);
  // Unverified's profile: logprobs refused, anti-distillation sampling (a different answer to
  // the same seeded request), reduced to one line by answer-only.
  EXPECT_FALSE(hard.has_logprobs);
  std::string plain_last = plain.content.substr(plain.content.rfind('\n') + 1);
  while (!plain_last.empty() && plain_last.back() == ' ') plain_last.pop_back();
  while (!plain_last.empty() && plain_last.front() == ' ') plain_last.erase(plain_last.begin());
  EXPECT_NE(hard.content, plain.content);
  EXPECT_NE(hard.content, plain_last) << "answer-only alone would give the plain answer's last line";
  EXPECT_EQ(hard.content.find('\n'), std::string::npos) << hard.content;
  EXPECT_TRUE(moat.Stop(SIGTERM).ok());
}

}  // namespace
}  // namespace moat::integration

#include "server/config.h"

#include <gtest/gtest.h>

namespace moat::server {
namespace {

TEST(ConfigTest, ParsesAFullConfig) {
  auto cfg = ParseGatewayConfig(R"(
[server]
listen = "0.0.0.0:9000"
threads = 2
max_body_bytes = 65536
trusted_proxies = ["127.0.0.1"]
admin_token = "adm"

[storage]
data_dir = "/tmp/moat-x"

[audit]
retention = "hash-only"

[limits.unverified]
key_rpm = 10
key_tpm = 1000

[[models]]
name = "m1"
backend = "upstream"
base_url = "http://127.0.0.1:8000/v1"
)");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->server.host, "0.0.0.0");
  EXPECT_EQ(cfg->server.port, 9000);
  EXPECT_EQ(cfg->server.threads, 2);
  EXPECT_EQ(cfg->storage.audit_db, "/tmp/moat-x/audit.db");
  EXPECT_EQ(cfg->audit.retention, "hash-only");
  EXPECT_EQ(cfg->limits.at("unverified").key_rpm, 10);
  ASSERT_EQ(cfg->models.size(), 1u);
  EXPECT_EQ(cfg->models[0].upstream_model, "m1");
  auto url = ParseBaseUrl(cfg->models[0].base_url);
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 8000);
  EXPECT_EQ(url->path, "");  // a trailing /v1 is stripped
}

TEST(ConfigTest, RejectsBadConfigsWithTheKeyInTheMessage) {
  auto unknown = ParseGatewayConfig("[server]\nlisten_port = 3\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("server.listen_port"), std::string::npos);

  auto wrong_type = ParseGatewayConfig("[server]\nthreads = \"two\"\n");
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_NE(wrong_type.status().message().find("server.threads"), std::string::npos);

  auto bad_backend = ParseGatewayConfig("[[models]]\nname = \"x\"\nbackend = \"magic\"\n");
  ASSERT_FALSE(bad_backend.ok());
  EXPECT_NE(bad_backend.status().message().find("backend"), std::string::npos);

  auto no_url = ParseGatewayConfig("[[models]]\nname = \"x\"\n");
  ASSERT_FALSE(no_url.ok());
  EXPECT_NE(no_url.status().message().find("base_url"), std::string::npos);

  auto not_toml = ParseGatewayConfig("[server\n");
  ASSERT_FALSE(not_toml.ok());
  EXPECT_NE(not_toml.status().message().find("TOML"), std::string::npos);

  auto https = ParseBaseUrl("https://example.com/v1");
  ASSERT_TRUE(https.ok()) << https.status().ToString();
  EXPECT_TRUE(https->tls);
  EXPECT_EQ(https->port, 443);
  EXPECT_EQ(https->path, "");
}

TEST(ConfigTest, ParsesStepUpVerification) {
  auto cfg = ParseGatewayConfig(R"toml(
[detection]
step_up_url = "https://id.example/verify?account={account}&user={end_user}&ref={reference}"
[step_up]
webhook_url = "http://127.0.0.1:9000/hooks/moat"
webhook_secret_file = "/etc/moat/webhook.key"
webhook_timeout_ms = 2000
dedup_interval_s = 600
queue_limit = 50
max_attempts = 3
retry_backoff_ms = 250
max_retry_backoff_ms = 4000
)toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->detection.step_up_url, "https://id.example/verify?account={account}&user={end_user}&ref={reference}");
  EXPECT_EQ(cfg->step_up.webhook_url, "http://127.0.0.1:9000/hooks/moat");
  EXPECT_EQ(cfg->step_up.webhook_secret_file, "/etc/moat/webhook.key");
  EXPECT_EQ(cfg->step_up.webhook_timeout_ms, 2000);
  EXPECT_EQ(cfg->step_up.dedup_interval_s, 600);
  EXPECT_EQ(cfg->step_up.queue_limit, 50);
  EXPECT_EQ(cfg->step_up.max_attempts, 3);
  EXPECT_EQ(cfg->step_up.retry_backoff_ms, 250);
  EXPECT_EQ(cfg->step_up.max_retry_backoff_ms, 4000);
  auto https = ParseGatewayConfig("[step_up]\nwebhook_url = \"https://id.example/hooks\"\nwebhook_secret_file = \"/k\"\n");
  ASSERT_TRUE(https.ok()) << https.status().ToString();
  // Off by default.
  EXPECT_TRUE(DefaultGatewayConfig().step_up.webhook_url.empty());
  EXPECT_TRUE(DefaultGatewayConfig().detection.step_up_url.empty());
}

TEST(ConfigTest, RejectsBadStepUpSettingsClearly) {
  struct Case {
    const char* toml;
    const char* message;
  } cases[] = {
      {"[detection]\nstep_up_url = \"https://id.example/?a={acount}\"\n", "unknown placeholder {acount}"},
      {"[detection]\nstep_up_url = \"https://id.example/?a={account\"\n", "unmatched '{'"},
      {"[detection]\nstep_up_url = \"ftp://id.example/{account}\"\n", "detection.step_up_url"},
      {"[detection]\nstep_up_url = \"/verify/{account}\"\n", "http://"},
      {"[step_up]\nwebhook_url = \"ftp://id.example/hooks\"\nwebhook_secret_file = \"/k\"\n",
       "step_up.webhook_url: only http:// and https://"},
      {"[step_up]\nwebhook_url = \"http://id.example/hooks\"\n", "webhook_secret_file is required"},
      {"[step_up]\nwebhook_url = \"http://id.example/hooks\"\nwebhook_secret_file = \"/k\"\nmax_attempts = 0\n",
       "at least 1"},
      {"[step_up]\nwebhook_url = \"http://id.example/hooks\"\nwebhook_secret_file = \"/k\"\nmax_attempts = 21\n",
       "at most 20"},
      {"[step_up]\nwebhook_url = \"http://id.example/hooks\"\nwebhook_secret_file = \"/k\"\n"
       "retry_backoff_ms = 5000\nmax_retry_backoff_ms = 1000\n",
       "max_retry_backoff_ms"},
      {"[step_up]\nwebhook = \"http://id.example/hooks\"\n", "step_up.webhook"},
  };
  for (const Case& c : cases) {
    auto cfg = ParseGatewayConfig(c.toml);
    ASSERT_FALSE(cfg.ok()) << c.toml;
    EXPECT_NE(cfg.status().message().find(c.message), std::string::npos) << cfg.status().message();
  }
}

TEST(ConfigTest, DefaultsHaveTierLimitsButNoModels) {
  GatewayConfig cfg = DefaultGatewayConfig();
  EXPECT_TRUE(cfg.models.empty());
  EXPECT_FALSE(RequireServable(cfg).ok());
  EXPECT_EQ(cfg.limits.count("unverified"), 1u);
  EXPECT_EQ(cfg.storage.accounts_db, "var/moat.db");
}

TEST(ConfigTest, TheDetectionStateFileHasADefaultAndCanBeTurnedOff) {
  auto defaults = ParseGatewayConfig("[storage]\ndata_dir = \"/srv/moat\"\n");
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(defaults->detection.state_file, "/srv/moat/detection-state.bin");
  EXPECT_EQ(defaults->detection.state_save_interval_s, 300);
  auto off = ParseGatewayConfig("[detection]\nstate_file = \"none\"\nstate_save_interval_s = 60\n");
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_EQ(off->detection.state_file, "");
  EXPECT_EQ(off->detection.state_save_interval_s, 60);
  auto too_often = ParseGatewayConfig("[detection]\nstate_save_interval_s = 1\n");
  ASSERT_FALSE(too_often.ok());
  EXPECT_NE(too_often.status().message().find("state_save_interval_s"), std::string::npos);
}

TEST(ConfigTest, NoPeerSetsDetectionsClockUnlessListed) {
  auto defaults = ParseGatewayConfig("");
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_TRUE(defaults->detection.replay_clock_peers.empty());
  auto listed = ParseGatewayConfig("[detection]\nreplay_clock_peers = [\"127.0.0.1\", \"::1\"]\n");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(listed->detection.replay_clock_peers, (std::vector<std::string>{"127.0.0.1", "::1"}));
  auto wrong = ParseGatewayConfig("[detection]\nreplay_clock_peers = \"127.0.0.1\"\n");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("replay_clock_peers"), std::string::npos) << wrong.status().message();
}

TEST(ConfigTest, HardeningKeysHaveSafeDefaults) {
  GatewayConfig cfg = DefaultGatewayConfig();
  EXPECT_EQ(cfg.server.max_connections, 10'000);
  EXPECT_EQ(cfg.server.max_connections_per_ip, 256);
  EXPECT_EQ(cfg.server.max_header_bytes, 64u * 1024);
  EXPECT_EQ(cfg.server.max_buffered_body_bytes, 256u << 20);
  EXPECT_TRUE(cfg.server.tls_listen.empty());
  EXPECT_EQ(cfg.auth.failures_per_ip_per_minute, 30);
  EXPECT_EQ(cfg.auth.failures_per_prefix_per_minute, 300);
  EXPECT_EQ(cfg.storage.data_dir_mode, 0700u);
  EXPECT_EQ(cfg.audit.wal_max_bytes, 64 << 20);
  EXPECT_EQ(cfg.audit.min_free_bytes, uint64_t{64} << 20);
  EXPECT_EQ(cfg.audit.anchor_file, cfg.storage.audit_db + ".anchor");
  EXPECT_EQ(cfg.detection.max_subjects, size_t{1} << 20);
  EXPECT_EQ(cfg.detection.max_evicted_subjects, 4'000'000u);
}

TEST(ConfigTest, ParsesTierBudgets) {
  auto cfg = ParseGatewayConfig(R"(
[detection.tiers.unverified]
subject_budget = 40000
evidence_budget = 2500
harness_evidence_budget = 90000
vouches_for_end_users = true
machines_judged_alone = true
)");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  const auto& t = cfg->detection.tiers.at("unverified");
  EXPECT_EQ(t.subject_budget, 40000);
  EXPECT_EQ(t.evidence_budget, 2500);
  EXPECT_EQ(t.harness_evidence_budget, 90000);
  EXPECT_EQ(t.vouches_for_end_users, true);
  EXPECT_EQ(t.machines_judged_alone, true);
  EXPECT_FALSE(t.pool_budget.has_value());
  for (const char* bad : {"[detection.tiers.unverified]\nevidence_budget = -1\n",
                          "[detection.tiers.unverified]\nharness_evidence_budget = -1\n",
                          "[detection.tiers.unverified]\nevidence_budgets = 1\n"}) {
    auto r = ParseGatewayConfig(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("evidence_budget"), std::string::npos) << r.status().message();
  }
}

TEST(ConfigTest, ParsesResponseHardeningWithTierOverrides) {
  auto cfg = ParseGatewayConfig(R"(
[detection.hardening]
trace = "summary"
summary_words = 12
antidistill_kl = 0.3
[detection.tiers.enterprise.hardening]
trace = "keep"
logprobs = "allow"
antidistill_kl = 0
)");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(resistance::Describe(cfg->detection.hardening),
            "trace=summary(12 words) answer_only=off logprobs=refuse max_tokens=default antidistill_kl=0.3");
  ASSERT_TRUE(cfg->detection.tiers.at("enterprise").hardening.has_value());
  EXPECT_EQ(resistance::Describe(*cfg->detection.tiers.at("enterprise").hardening),
            "trace=keep answer_only=off logprobs=allow max_tokens=default antidistill_kl=0");
  EXPECT_EQ(resistance::Describe(DefaultGatewayConfig().detection.hardening),
            resistance::Describe(resistance::HardeningProfile{}));
  for (const char* bad : {"[detection.hardening]\ntrace = \"shred\"\n", "[detection.hardening]\ncolour = 1\n",
                          "[detection.tiers.verified.hardening]\nantidistill_kl = true\n"}) {
    auto r = ParseGatewayConfig(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("hardening"), std::string::npos) << r.status().message();
  }
}

TEST(ConfigTest, ParsesTheHardeningKeys) {
  auto cfg = ParseGatewayConfig(R"(
[server]
max_connections = 500
max_connections_per_ip = 20
max_header_bytes = 16384
max_buffered_body_bytes = 67108864
max_buffered_body_bytes_per_ip = 8388608
tls_listen = "0.0.0.0:8443"
tls_cert_file = "/etc/moat/cert.pem"
tls_key_file = "/etc/moat/key.pem"

[auth]
failures_per_ip_per_minute = 10
failures_per_prefix_per_minute = 50
max_tracked_addresses = 1000

[storage]
data_dir = "/srv/moat"
data_dir_mode = "0750"

[audit]
wal_max_bytes = 1048576
wal_checkpoint_interval_ms = 250
min_free_bytes = 0
anchor_file = "none"

[detection]
max_subjects = 100000
max_evicted_subjects = 200000

[[models]]
name = "m"
base_url = "https://inference.internal:8443/v1"
tls_ca_file = "/etc/moat/ca.pem"
tls_server_name = "inference"
tls_client_cert_file = "/etc/moat/client.pem"
tls_client_key_file = "/etc/moat/client.key"
)");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->server.max_connections, 500);
  EXPECT_EQ(cfg->server.max_buffered_body_bytes_per_ip, 8u << 20);
  EXPECT_EQ(cfg->server.max_connections_per_ip, 20);
  EXPECT_EQ(cfg->server.max_header_bytes, 16384u);
  EXPECT_EQ(cfg->server.tls_host, "0.0.0.0");
  EXPECT_EQ(cfg->server.tls_port, 8443);
  EXPECT_EQ(cfg->server.tls_key_file, "/etc/moat/key.pem");
  EXPECT_EQ(cfg->auth.failures_per_ip_per_minute, 10);
  EXPECT_EQ(cfg->auth.max_tracked_addresses, 1000u);
  EXPECT_EQ(cfg->storage.data_dir_mode, 0750u);
  EXPECT_EQ(cfg->audit.wal_max_bytes, 1048576);
  EXPECT_EQ(cfg->audit.wal_checkpoint_interval_ms, 250);
  EXPECT_EQ(cfg->audit.min_free_bytes, 0u);
  EXPECT_EQ(cfg->audit.anchor_file, "");
  EXPECT_EQ(cfg->detection.max_evicted_subjects, 200000u);
  ASSERT_EQ(cfg->models.size(), 1u);
  EXPECT_TRUE(cfg->models[0].tls_verify);
  EXPECT_EQ(cfg->models[0].tls_server_name, "inference");
  EXPECT_EQ(cfg->models[0].tls_client_key_file, "/etc/moat/client.key");
}

TEST(ConfigTest, RejectsInconsistentHardeningKeys) {
  auto expect_error = [](const std::string& toml, const std::string& fragment) {
    auto cfg = ParseGatewayConfig(toml);
    ASSERT_FALSE(cfg.ok()) << toml;
    EXPECT_NE(cfg.status().message().find(fragment), std::string::npos) << cfg.status().message();
  };
  expect_error("[server]\ntls_listen = \"127.0.0.1:8443\"\n", "tls_cert_file");
  expect_error("[server]\nmax_connections = 0\n", "server.max_connections");
  expect_error("[server]\nmax_buffered_body_bytes = 2048\n", "max_buffered_body_bytes");
  expect_error("[server]\nmax_buffered_body_bytes_per_ip = 2048\n", "max_buffered_body_bytes_per_ip");
  expect_error("[storage]\ndata_dir_mode = \"0077\"\n", "data_dir_mode");
  expect_error("[audit]\nwal_max_bytes = 10\n", "wal_max_bytes");
  expect_error("[auth]\nfailures_per_ip_per_minute = -1\n", "auth.failures");
  expect_error("[[models]]\nname = \"m\"\nbase_url = \"http://h\"\ntls_ca_file = \"ca.pem\"\n", "https");
  expect_error("[[models]]\nname = \"m\"\nbase_url = \"https://h\"\ntls_client_cert_file = \"c.pem\"\n",
               "go together");
}

}  // namespace
}  // namespace moat::server

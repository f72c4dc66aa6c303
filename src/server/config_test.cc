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

TEST(ConfigTest, DefaultsHaveTierLimitsButNoModels) {
  GatewayConfig cfg = DefaultGatewayConfig();
  EXPECT_TRUE(cfg.models.empty());
  EXPECT_FALSE(RequireServable(cfg).ok());
  EXPECT_EQ(cfg.limits.count("unverified"), 1u);
  EXPECT_EQ(cfg.storage.accounts_db, "var/moat.db");
}

}  // namespace
}  // namespace moat::server

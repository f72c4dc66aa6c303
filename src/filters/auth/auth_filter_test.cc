#include "filters/auth/auth_filter.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "common/metrics.h"
#include "moat/clock.h"
#include "ratelimit/failed_auth_limiter.h"
#include "store/account_store.h"

namespace moat::filters {
namespace {

namespace fs = std::filesystem;

const std::string kPepper(store::kPepperBytes, 'p');

// A real AccountStore in a temporary directory with one enabled account and one key.
class AuthFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("moat_auth_filter_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto opened = store::AccountStore::Open((dir_ / "accounts.db").string(), kPepper, &clock_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    accounts_ = std::move(opened).value();
    auto account = accounts_->CreateAccount("alice", "", store::Tier::kVerified);
    ASSERT_TRUE(account.ok()) << account.status().ToString();
    account_ = *account;
    auto key = accounts_->CreateKey(account_.id, "test");
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    key_ = *key;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static RequestContext Request(std::string bearer, std::string client_ip = "203.0.113.9") {
    RequestContext ctx;
    ctx.request_id = "req_test";
    ctx.endpoint = "/v1/chat/completions";
    ctx.client_ip = std::move(client_ip);
    ctx.bearer_token = std::move(bearer);
    return ctx;
  }

  // moat_auth_failures_total{reason}.
  static uint64_t Failures(const AuthFilterFactory& factory, const std::string& reason) {
    return factory.failures().With({reason}).value();
  }

  fs::path dir_;
  ManualClock clock_;
  std::unique_ptr<store::AccountStore> accounts_;
  store::Account account_;
  store::CreatedKey key_;
};

TEST_F(AuthFilterTest, ValidKeyFillsTheAccountFields) {
  MetricsRegistry metrics;
  AuthFilterFactory factory(accounts_.get(), &metrics);
  RequestContext ctx = Request(key_.secret);
  EXPECT_TRUE(factory.Create()->OnHeaders(ctx).is_continue());
  EXPECT_EQ(ctx.account_id, account_.id);
  EXPECT_EQ(ctx.key_id, key_.info.key_id);
  EXPECT_EQ(ctx.tier, "verified");
  EXPECT_EQ(Failures(factory, "missing_key"), 0u);
  EXPECT_EQ(Failures(factory, "invalid_key"), 0u);
}

TEST_F(AuthFilterTest, MissingKeyIs401AndCounted) {
  MetricsRegistry metrics;
  AuthFilterFactory factory(accounts_.get(), &metrics);
  RequestContext ctx = Request("");
  const FilterStatus ctx_status = factory.Create()->OnHeaders(ctx);
  ASSERT_TRUE(ctx_status.is_local_reply());
  EXPECT_EQ(ctx_status.reply().http_status, 401);
  EXPECT_EQ(ctx_status.reply().type, "invalid_request_error");
  EXPECT_EQ(ctx_status.reply().code, "missing_api_key");
  EXPECT_FALSE(ctx.skip_audit);
  EXPECT_TRUE(ctx.account_id.empty());
  EXPECT_EQ(Failures(factory, "missing_key"), 1u);
  EXPECT_EQ(Failures(factory, "invalid_key"), 0u);
}

TEST_F(AuthFilterTest, UnknownAndRevokedKeysAre401AndCounted) {
  MetricsRegistry metrics;
  AuthFilterFactory factory(accounts_.get(), &metrics);
  RequestContext unknown = Request(std::string(store::kKeyPrefix) + "not-a-real-key");
  const FilterStatus unknown_status = factory.Create()->OnHeaders(unknown);
  ASSERT_TRUE(unknown_status.is_local_reply());
  EXPECT_EQ(unknown_status.reply().http_status, 401);
  EXPECT_EQ(unknown_status.reply().code, "invalid_api_key");
  // The refusal never echoes the presented key.
  EXPECT_EQ(unknown_status.reply().message.find("not-a-real-key"), std::string::npos);

  ASSERT_TRUE(accounts_->RevokeKey(key_.info.key_id).ok());
  RequestContext revoked = Request(key_.secret);
  const FilterStatus revoked_status = factory.Create()->OnHeaders(revoked);
  ASSERT_TRUE(revoked_status.is_local_reply());
  EXPECT_EQ(revoked_status.reply().code, "invalid_api_key");
  EXPECT_TRUE(revoked.account_id.empty());
  EXPECT_EQ(Failures(factory, "invalid_key"), 2u);
}

TEST_F(AuthFilterTest, FailuresBeyondTheAddressBudgetAre429WithoutAudit) {
  MetricsRegistry metrics;
  ratelimit::FailedAuthLimits limits;
  limits.per_ip_per_minute = 2;
  limits.per_prefix_per_minute = 0;
  ratelimit::FailedAuthLimiter limiter(&clock_, limits);
  AuthFilterFactory factory(accounts_.get(), &metrics, &limiter);

  for (int i = 0; i < 2; ++i) {
    RequestContext ctx = Request("sk-moat-wrong");
    const FilterStatus ctx_status = factory.Create()->OnHeaders(ctx);
    ASSERT_TRUE(ctx_status.is_local_reply());
    EXPECT_EQ(ctx_status.reply().http_status, 401) << "failure " << i;
  }
  RequestContext throttled = Request("sk-moat-wrong");
  const FilterStatus throttled_status = factory.Create()->OnHeaders(throttled);
  ASSERT_TRUE(throttled_status.is_local_reply());
  EXPECT_EQ(throttled_status.reply().http_status, 429);
  EXPECT_EQ(throttled_status.reply().code, "too_many_auth_failures");
  EXPECT_TRUE(throttled.skip_audit);
  bool has_retry_after = false;
  for (const auto& [name, value] : throttled_status.reply().headers) {
    if (name == "retry-after") {
      has_retry_after = true;
      EXPECT_GE(std::stoi(value), 1);
    }
  }
  EXPECT_TRUE(has_retry_after);
  EXPECT_EQ(Failures(factory, "invalid_key"), 2u);
  EXPECT_EQ(Failures(factory, "throttled"), 1u);

  // A valid key from the throttled address is still accepted: the address may be shared.
  RequestContext valid = Request(key_.secret);
  EXPECT_TRUE(factory.Create()->OnHeaders(valid).is_continue());
  EXPECT_EQ(valid.account_id, account_.id);

  // Another address has its own budget.
  RequestContext other = Request("sk-moat-wrong", "198.51.100.4");
  const FilterStatus other_status = factory.Create()->OnHeaders(other);
  ASSERT_TRUE(other_status.is_local_reply());
  EXPECT_EQ(other_status.reply().http_status, 401);
}

}  // namespace
}  // namespace moat::filters

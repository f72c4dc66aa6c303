#include "audit/audit_test_util.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>

namespace moat::audit::testing {

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/moat_audit_XXXXXX";
  char* made = mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

AuditRecord SampleRecord(int64_t i) {
  AuditRecord r;
  r.time_ns = 1'700'000'000'000'000'000 + i * 1'000'000;
  r.request_id = "req-" + std::to_string(i);
  r.account_id = "acct-" + std::to_string(i % 7);
  r.org_id = "org-1";
  r.end_user = "user-" + std::to_string(i % 13);
  r.key_id = "key-abc";
  r.client_ip = "203.0.113." + std::to_string(i % 250);
  r.user_agent = "test-agent/1.0";
  r.endpoint = "/v1/chat/completions";
  r.model = "gpt-test";
  r.params_json = R"({"temperature":0.7,"top_p":1})";
  r.stream = (i % 2) == 0;
  r.prompt_tokens = 10 + i;
  r.completion_tokens = 20 + i;
  r.latency_ms = 12.5 + static_cast<double>(i) / 3.0;
  r.http_status = 200;
  r.verdict = "allow";
  r.action = "allow";
  r.reasons_json = "[]";
  r.watermark_key_id = "wm-1";
  r.retention = "full";
  r.prompt_text = "prompt number " + std::to_string(i);
  r.completion_text = "completion number " + std::to_string(i);
  // Records of both kinds: with an attested model (odd i) and without (even i).
  if (i % 2 != 0) r.model_attestation = std::string(63, 'a') + std::to_string(i % 10);
  return r;
}

AuditLogOptions OptionsIn(const TempDir& dir, int64_t checkpoint_every) {
  AuditLogOptions o;
  o.db_path = dir.File("audit.db");
  o.signing_key_path = dir.File("audit.key");
  o.checkpoint_every = checkpoint_every;
  return o;
}

void ExecSql(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "") << " in " << sql;
  sqlite3_free(err);
  sqlite3_close(db);
}

int64_t QueryInt(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
  int64_t v = -1;
  if (stmt && sqlite3_step(stmt) == SQLITE_ROW) v = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return v;
}

}  // namespace moat::audit::testing

#pragma once
// Test helpers for the audit tests: a scratch directory and sample records.

#include <string>

#include "audit/audit_log.h"
#include "moat/audit_record.h"

namespace moat::audit::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A record with every gateway field filled (model_attestation only for odd `i`); distinct per `i`.
AuditRecord SampleRecord(int64_t i);

// Options for a log under `dir` (audit.db, audit.key).
AuditLogOptions OptionsIn(const TempDir& dir, int64_t checkpoint_every = 1000);

// Runs one SQL statement against `db_path` directly (tamper simulation); fails the test on error.
void ExecSql(const std::string& db_path, const std::string& sql);
// The single integer a query returns (e.g. COUNT(*)).
int64_t QueryInt(const std::string& db_path, const std::string& sql);

}  // namespace moat::audit::testing

#include "audit/audit_verify.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "audit/audit_hash.h"
#include "audit/audit_log.h"
#include "audit/audit_schema.h"
#include "audit/audit_test_util.h"
#include "audit/record_reader.h"
#include "common/sqlite.h"

namespace moat::audit {
namespace {

using testing::ExecSql;
using testing::OptionsIn;
using testing::QueryInt;
using testing::SampleRecord;
using testing::TempDir;

constexpr int kRecords = 50;
constexpr int kCheckpointEvery = 10;

// A clean log of 50 records with checkpoints at 10, 20, ..., 50.
class VerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    opts_ = OptionsIn(dir_, kCheckpointEvery);
    opts_.anchor_path = dir_.File("audit.anchor");
    auto log = AuditLog::Open(opts_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    pub_ = (*log)->public_key_hex();
    for (int i = 1; i <= kRecords; ++i) ASSERT_TRUE((*log)->Append(SampleRecord(i)).ok());
  }

  VerifyReport Verify(const VerifyOptions& options = {}) {
    auto report = VerifyChain(opts_.db_path, pub_, options);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    return report.ok() ? *report : VerifyReport{};
  }

  // Rewrites records from..to with `edit` applied to record `from`, recomputing every hash so
  // the chain links stay consistent (an attacker who knows the format but not the key).
  void RewriteConsistently(int64_t from, const std::function<void(AuditRecord&)>& edit) {
    auto db = SqliteDb::Open(opts_.db_path, SqliteDb::Mode::kReadWriteCreate);
    ASSERT_TRUE(db.ok());
    auto sel = (*db)->Prepare(SelectRecordsSql() + "WHERE seq >= ? ORDER BY seq");
    ASSERT_TRUE(sel.ok());
    sel->BindInt64(1, from - 1);
    std::vector<AuditRecord> recs;
    while (*sel->Step()) recs.push_back(ReadRecord(*sel));
    sel = SqliteStmt();
    ASSERT_EQ(recs.front().seq, from - 1);
    edit(recs[1]);
    for (size_t i = 1; i < recs.size(); ++i) {
      recs[i].prev_hash = recs[i - 1].record_hash;
      recs[i].record_hash = ComputeRecordHash(recs[i]);
    }
    ASSERT_TRUE((*db)->Exec("BEGIN").ok());
    ASSERT_TRUE((*db)->Exec("DELETE FROM records WHERE seq >= " + std::to_string(from)).ok());
    auto ins = (*db)->Prepare(InsertRecordSql());
    ASSERT_TRUE(ins.ok());
    for (size_t i = 1; i < recs.size(); ++i) {
      ins->Reset();
      BindRecord(*ins, recs[i]);
      ASSERT_TRUE(ins->Run().ok());
    }
    ASSERT_TRUE((*db)->Exec("COMMIT").ok());
  }

  TempDir dir_;
  AuditLogOptions opts_;
  std::string pub_;
};

TEST_F(VerifyTest, CleanLogVerifies) {
  VerifyReport r = Verify();
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, kRecords);
  EXPECT_EQ(r.checkpoints, kRecords / kCheckpointEvery);
  EXPECT_EQ(r.first_broken_seq, -1);
  EXPECT_EQ(r.problem, "");
}

class FieldTamperTest : public VerifyTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(FieldTamperTest, UpdatedFieldIsReportedAtItsRecord) {
  ExecSql(opts_.db_path, std::string("UPDATE records SET ") + GetParam() + " WHERE seq = 23");
  VerifyReport r = Verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 23) << r.problem;
  EXPECT_EQ(r.records, 22);
}

INSTANTIATE_TEST_SUITE_P(
    Fields, FieldTamperTest,
    ::testing::Values("model = 'other-model'", "prompt_text = 'rewritten prompt'",
                      "completion_text = ''", "account_id = 'acct-x'", "time_ns = time_ns + 1",
                      "latency_ms = latency_ms + 0.5", "stream = 1 - stream", "http_status = 403",
                      "prompt_tokens = 0", "params_json = '{}'", "retention = 'none'",
                      // Record 23 names an attested model: its digest is covered.
                      "model_attestation = ''",
                      "model_attestation = 'b' || substr(model_attestation, 2)",
                      // Storage tricks that would read back as the original values.
                      "http_status = http_status + 4294967296",
                      "time_ns = CAST(time_ns AS TEXT) || 'x'", "stream = stream + 2",
                      "prev_hash = upper(prev_hash)", "record_hash = upper(record_hash)"));

TEST_F(VerifyTest, DeletedRecordIsReportedAsMissing) {
  ExecSql(opts_.db_path, "DELETE FROM records WHERE seq = 23");
  VerifyReport r = Verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 23);
  EXPECT_NE(r.problem.find("missing"), std::string::npos) << r.problem;
}

TEST_F(VerifyTest, DeletedFirstRecordIsReported) {
  ExecSql(opts_.db_path, "DELETE FROM records WHERE seq = 1");
  VerifyReport r = Verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 1);
}

TEST_F(VerifyTest, TruncatedTailIsCaughtByTheLastCheckpoint) {
  ExecSql(opts_.db_path, "DELETE FROM records WHERE seq > 45");
  VerifyReport r = Verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 46) << r.problem;
  EXPECT_NE(r.problem.find("truncated"), std::string::npos) << r.problem;
}

TEST_F(VerifyTest, ForgedCheckpointSignatureIsReported) {
  ExecSql(opts_.db_path,
          "UPDATE checkpoints SET signature = (SELECT signature FROM checkpoints "
          "WHERE seq = 10) WHERE seq = 30");
  VerifyReport r = Verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 30);
  EXPECT_NE(r.problem.find("signature"), std::string::npos) << r.problem;
  EXPECT_EQ(r.checkpoints, 2);
}

TEST_F(VerifyTest, EditedCheckpointHashFailsItsSignature) {
  ExecSql(opts_.db_path,
          "UPDATE checkpoints SET record_hash = (SELECT record_hash FROM records "
          "WHERE seq = 29) WHERE seq = 30");
  VerifyReport r = Verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 30);
}

TEST_F(VerifyTest, ConsistentRewriteIsCaughtByTheNextCheckpoint) {
  // Edit record 23 and recompute every later hash: the links hold, checkpoint 30 does not.
  RewriteConsistently(23, [](AuditRecord& r) { r.model = "evil"; });
  VerifyReport r = Verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 21) << r.problem;
  EXPECT_NE(r.problem.find("rewritten"), std::string::npos) << r.problem;
  EXPECT_EQ(r.records, 29);
  EXPECT_EQ(r.last_checkpoint_seq, 20);
}

TEST_F(VerifyTest, SingleRecordRewrittenWithItsHashBreaksTheNextLink) {
  // Edit record 23 and fix only its own record_hash: record 24's prev_hash exposes it.
  auto db = SqliteDb::Open(opts_.db_path, SqliteDb::Mode::kReadWriteCreate);
  ASSERT_TRUE(db.ok());
  auto sel = (*db)->Prepare(SelectRecordsSql() + "WHERE seq = 23");
  ASSERT_TRUE(sel.ok());
  ASSERT_TRUE(*sel->Step());
  AuditRecord rec = ReadRecord(*sel);
  sel = SqliteStmt();
  rec.model = "evil";
  ExecSql(opts_.db_path, "UPDATE records SET model = 'evil', record_hash = '" +
                             ComputeRecordHash(rec) + "' WHERE seq = 23");
  VerifyReport r = Verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 23) << r.problem;
}

TEST_F(VerifyTest, WrongPublicKeyFailsAtTheFirstCheckpoint) {
  auto report = VerifyChain(opts_.db_path, std::string(64, 'a'));
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->ok);
  EXPECT_EQ(report->first_broken_seq, kCheckpointEvery);
}

TEST(VerifyChainTest, ErrorsWhenTheCheckCannotRun) {
  TempDir dir;
  EXPECT_EQ(VerifyChain(dir.File("absent.db"), std::string(64, '0')).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(VerifyChain(dir.File("absent.db"), "xyz").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(VerifyChainTest, EmptyLogVerifies) {
  TempDir dir;
  AuditLogOptions opts = OptionsIn(dir);
  std::string pub;
  {
    auto log = AuditLog::Open(opts);
    ASSERT_TRUE(log.ok());
    pub = (*log)->public_key_hex();
  }
  auto report = VerifyChain(opts.db_path, pub);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok);
  EXPECT_EQ(report->records, 0);
}

TEST(VerifyChainTest, VerifiesASnapshotWhileTheWriterAppends) {
  TempDir dir;
  AuditLogOptions opts = OptionsIn(dir, 100);
  auto log = AuditLog::Open(opts);
  ASSERT_TRUE(log.ok());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      if (!(*log)->Append(SampleRecord(i)).ok()) std::this_thread::yield();
    }
  });
  for (int k = 0; k < 5; ++k) {
    auto report = VerifyChain(opts.db_path, (*log)->public_key_hex());
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->ok) << report->problem;
  }
  stop = true;
  writer.join();
}

// A database written before records had a model_attestation column: readers read it as it is
// (never changing the file), it verifies, and a gateway opening it adds the column and extends
// the chain, old records' hashes unchanged.
TEST(VerifyChainTest, AVersionOneDatabaseIsReadVerifiedAndMigrated) {
  TempDir dir;
  AuditLogOptions opts = OptionsIn(dir, 4);
  VerifyOptions every4;
  every4.checkpoint_every = 4;
  std::string pub;
  {
    auto log = AuditLog::Open(opts);
    ASSERT_TRUE(log.ok());
    pub = (*log)->public_key_hex();
    for (int i = 2; i <= 12; i += 2)
      ASSERT_TRUE((*log)->Append(SampleRecord(i)).ok());  // unattested
  }
  // What version 1 wrote: the same table without the column.
  ExecSql(opts.db_path,
          "ALTER TABLE records DROP COLUMN model_attestation;"
          "UPDATE audit_meta SET value = '1' WHERE key = 'schema_version'");
  auto read_all = [&] {
    std::vector<AuditRecord> out;
    auto reader = AuditRecordReader::Open(opts.db_path);
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    AuditRecord r;
    while (reader.ok()) {
      auto more = reader->Next(&r);
      EXPECT_TRUE(more.ok()) << more.status().ToString();
      if (!more.ok() || !*more) break;
      out.push_back(r);
    }
    return out;
  };
  std::vector<AuditRecord> old_records = read_all();
  ASSERT_EQ(old_records.size(), 6u);
  EXPECT_EQ(old_records[0].model_attestation, "");
  auto report = VerifyChain(opts.db_path, pub, every4);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(QueryInt(opts.db_path,
                     "SELECT COUNT(*) FROM pragma_table_info('records') "
                     "WHERE name = 'model_attestation'"),
            0);  // reading did not migrate

  {
    auto log = AuditLog::Open(opts);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    ASSERT_TRUE((*log)->Append(SampleRecord(13)).ok());  // attested
  }
  EXPECT_EQ(QueryInt(opts.db_path,
                     "SELECT CAST(value AS INTEGER) FROM audit_meta "
                     "WHERE key = 'schema_version'"),
            kSchemaVersion);
  std::vector<AuditRecord> all = read_all();
  ASSERT_EQ(all.size(), 7u);
  for (size_t i = 0; i < old_records.size(); ++i) {
    EXPECT_EQ(all[i].record_hash, old_records[i].record_hash);
    EXPECT_EQ(all[i].model_attestation, "");
  }
  EXPECT_EQ(all[6].model_attestation, SampleRecord(13).model_attestation);
  report = VerifyChain(opts.db_path, pub, every4);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->records, 7);
}

TEST(VerifyChainTest, OpeningNeverLowersANewerSchemaVersion) {
  TempDir dir;
  AuditLogOptions opts = OptionsIn(dir);
  ASSERT_TRUE(AuditLog::Open(opts).ok());
  ExecSql(opts.db_path, "UPDATE audit_meta SET value = '99' WHERE key = 'schema_version'");
  ASSERT_TRUE(AuditLog::Open(opts).ok());
  EXPECT_EQ(QueryInt(opts.db_path,
                     "SELECT CAST(value AS INTEGER) FROM audit_meta WHERE key = 'schema_version'"),
            99);
}

// ---------------------------------------------------------------------------------------------
// What checkpoint_every and the anchor add.

VerifyOptions Required(std::optional<CheckpointAnchor> anchor = std::nullopt) {
  VerifyOptions o;
  o.checkpoint_every = kCheckpointEvery;
  o.anchor = std::move(anchor);
  return o;
}

TEST_F(VerifyTest, IntactLogPassesEveryCheck) {
  auto anchor = ReadAnchorFile(opts_.anchor_path);
  ASSERT_TRUE(anchor.ok()) << anchor.status().ToString();
  EXPECT_EQ(anchor->seq, kRecords);
  VerifyReport r = Verify(Required(*anchor));
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.anchored_seq, kRecords);
  EXPECT_EQ(r.unsigned_tail, 0);
}

TEST_F(VerifyTest, RewrittenChainWithEveryCheckpointDeletedFails) {
  RewriteConsistently(25, [](AuditRecord& r) { r.prompt_text = "rewritten"; });
  ExecSql(opts_.db_path, "DELETE FROM checkpoints");
  // The chain alone is consistent: this is what passed before.
  EXPECT_TRUE(Verify().ok);
  VerifyReport r = Verify(Required());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 1);
  EXPECT_NE(r.problem.find("no signed checkpoint covers records 1..50"), std::string::npos) << r.problem;
}

TEST_F(VerifyTest, ADeletedCheckpointInTheMiddleIsAGap) {
  ExecSql(opts_.db_path, "DELETE FROM checkpoints WHERE seq = 30");
  EXPECT_TRUE(Verify().ok);
  VerifyReport r = Verify(Required());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 21);
  EXPECT_NE(r.problem.find("checkpoint_every = 10"), std::string::npos) << r.problem;
}

TEST_F(VerifyTest, AnUnsignedTailLongerThanAllowedFails) {
  // Without the last checkpoint, records 41..50 are unsigned: the writer never leaves
  // checkpoint_every of them (it signs the 10th in the same transaction).
  ExecSql(opts_.db_path, "DELETE FROM checkpoints WHERE seq = 50");
  EXPECT_TRUE(Verify().ok);
  VerifyReport r = Verify(Required());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 41);
  EXPECT_NE(r.problem.find("10 records after the last signed checkpoint (seq 40), more than the 9 allowed"),
            std::string::npos)
      << r.problem;
  VerifyOptions lenient = Required();
  lenient.max_unsigned_tail = 10;
  EXPECT_TRUE(Verify(lenient).ok);
}

TEST_F(VerifyTest, TruncationAfterDeletingLaterCheckpointsIsCaughtByTheAnchor) {
  auto anchor = ReadAnchorFile(opts_.anchor_path);
  ASSERT_TRUE(anchor.ok());
  ExecSql(opts_.db_path, "DELETE FROM records WHERE seq > 45");
  ExecSql(opts_.db_path, "DELETE FROM checkpoints WHERE seq > 40");
  EXPECT_TRUE(Verify(Required()).ok);  // a consistent, signed chain with a short tail
  VerifyReport r = Verify(Required(*anchor));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_broken_seq, 46);
  EXPECT_NE(r.problem.find("records 46..50 were removed"), std::string::npos) << r.problem;
}

TEST_F(VerifyTest, AForgedOrForeignAnchorIsRejected) {
  auto anchor = ReadAnchorFile(opts_.anchor_path);
  ASSERT_TRUE(anchor.ok());
  CheckpointAnchor forged = *anchor;
  forged.seq = 60;  // claims more than was signed
  VerifyReport r = Verify(Required(forged));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("not signed by this log's key"), std::string::npos) << r.problem;
}

}  // namespace
}  // namespace moat::audit

#include "audit/record_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "audit/audit_test_util.h"

namespace moat::audit {
namespace {

using testing::OptionsIn;
using testing::SampleRecord;
using testing::TempDir;

// Writes records 1..n through the real AuditLog and returns its database path.
std::string WriteLog(const TempDir& dir, int n) {
  AuditLogOptions opts = OptionsIn(dir);
  auto log = AuditLog::Open(opts);
  EXPECT_TRUE(log.ok());
  for (int i = 1; i <= n && log.ok(); ++i) EXPECT_TRUE((*log)->Append(SampleRecord(i)).ok());
  return opts.db_path;
}

TEST(AuditRecordReaderTest, ReadsEveryRecordInChainOrder) {
  TempDir dir;
  const std::string db = WriteLog(dir, 25);
  auto reader = AuditRecordReader::Open(db);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  auto count = reader->CountRecords();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 25);
  AuditRecord r;
  int64_t expected_seq = 1;
  for (;;) {
    auto more = reader->Next(&r);
    ASSERT_TRUE(more.ok()) << more.status().ToString();
    if (!*more) break;
    EXPECT_EQ(r.seq, expected_seq);
    EXPECT_EQ(r.request_id, SampleRecord(expected_seq).request_id);
    EXPECT_EQ(r.prompt_text, SampleRecord(expected_seq).prompt_text);
    ++expected_seq;
  }
  EXPECT_EQ(expected_seq, 26);
}

TEST(AuditRecordReaderTest, StartsAtTheFirstRecordOfItsTime) {
  TempDir dir;
  const std::string db = WriteLog(dir, 10);
  auto reader = AuditRecordReader::Open(db, SampleRecord(8).time_ns);
  ASSERT_TRUE(reader.ok());
  auto count = reader->CountRecords();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 10);  // the count is of the whole database
  std::vector<std::string> ids;
  AuditRecord r;
  while (true) {
    auto more = reader->Next(&r);
    ASSERT_TRUE(more.ok());
    if (!*more) break;
    ids.push_back(r.request_id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"req-8", "req-9", "req-10"}));
}

TEST(AuditRecordReaderTest, MissingDatabaseIsNotFound) {
  TempDir dir;
  EXPECT_EQ(AuditRecordReader::Open(dir.File("nope.db")).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace moat::audit

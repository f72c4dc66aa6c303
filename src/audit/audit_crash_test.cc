// Crash safety: a child process appends records and acknowledges each one on a pipe only after
// its on_durable callback fired; the parent SIGKILLs it mid-stream and checks that every
// acknowledged record is in the database and the chain verifies.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>

#include "audit/audit_log.h"
#include "audit/audit_schema.h"
#include "common/sqlite.h"
#include "audit/audit_test_util.h"
#include "audit/audit_verify.h"

namespace moat::audit {
namespace {

using testing::OptionsIn;
using testing::SampleRecord;
using testing::TempDir;

// Child body: append forever (bounded by a timeout), ack durable ids on `fd`. Never returns.
[[noreturn]] void RunChild(const AuditLogOptions& opts, int fd, int64_t first_id) {
  auto log = AuditLog::Open(opts);
  if (!log.ok()) _exit(2);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int64_t i = first_id; std::chrono::steady_clock::now() < deadline; ++i) {
    AuditRecord r = SampleRecord(i);
    std::string line = r.request_id + "\n";
    Status s = (*log)->Append(std::move(r), [fd, line](const Status& st) {
      if (!st.ok()) return;
      // One write() of < PIPE_BUF bytes is atomic; retry on EINTR only.
      while (write(fd, line.data(), line.size()) < 0 && errno == EINTR) {
      }
    });
    if (s.code() == StatusCode::kResourceExhausted) std::this_thread::yield();
  }
  _exit(3);  // the parent should have killed us long before
}

// Forks a child appending from `first_id`, waits until it acknowledged `min_acks` records,
// SIGKILLs it and returns every id it acknowledged.
std::set<std::string> RunAndKill(const AuditLogOptions& opts, int64_t first_id, size_t min_acks) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    RunChild(opts, fds[1], first_id);
  }
  close(fds[1]);
  std::set<std::string> acked;
  std::string buf;
  char chunk[4096];
  bool killed = false;
  for (;;) {
    ssize_t n = read(fds[0], chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child is gone and its pipe end closed
    buf.append(chunk, static_cast<size_t>(n));
    size_t pos;
    while ((pos = buf.find('\n')) != std::string::npos) {
      acked.insert(buf.substr(0, pos));
      buf.erase(0, pos + 1);
    }
    if (!killed && acked.size() >= min_acks) {
      kill(pid, SIGKILL);  // mid-stream: the writer is busy committing batches
      killed = true;
    }
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child did not die by SIGKILL (status " << status << ")";
  EXPECT_TRUE(buf.empty()) << "a partial ack line: " << buf;
  return acked;
}

std::set<std::string> RequestIdsInDb(const std::string& db_path) {
  std::set<std::string> ids;
  auto db = SqliteDb::Open(db_path, SqliteDb::Mode::kReadOnly);
  EXPECT_TRUE(db.ok());
  if (!db.ok()) return ids;
  auto q = (*db)->Prepare("SELECT request_id FROM records");
  EXPECT_TRUE(q.ok());
  while (*q->Step()) ids.insert(q->ColumnText(0));
  return ids;
}

TEST(AuditCrashTest, AcknowledgedRecordsSurviveSigkillAndTheChainVerifies) {
  TempDir dir;
  AuditLogOptions opts = OptionsIn(dir, /*checkpoint_every=*/500);
  std::string pub;
  {  // Create the key and database up front so the parent knows the public key.
    auto log = AuditLog::Open(opts);
    ASSERT_TRUE(log.ok());
    pub = (*log)->public_key_hex();
  }

  std::set<std::string> acked = RunAndKill(opts, /*first_id=*/0, /*min_acks=*/3000);
  ASSERT_GE(acked.size(), 3000u);
  std::set<std::string> stored = RequestIdsInDb(opts.db_path);
  size_t lost = 0;
  for (const auto& id : acked) lost += stored.count(id) == 0;
  EXPECT_EQ(lost, 0u) << "acknowledged records missing after kill -9";
  std::printf("[audit] crash: %zu acknowledged, %zu stored (%lld committed but not acked)\n",
              acked.size(), stored.size(),
              static_cast<long long>(stored.size()) - static_cast<long long>(acked.size()));

  auto report = VerifyChain(opts.db_path, pub);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->ok) << report->problem << " at " << report->first_broken_seq;
  EXPECT_EQ(report->records, static_cast<int64_t>(stored.size()));

  // Recovery: a second crashing run continues the same chain.
  std::set<std::string> acked2 = RunAndKill(opts, /*first_id=*/1'000'000, /*min_acks=*/1000);
  std::set<std::string> stored2 = RequestIdsInDb(opts.db_path);
  for (const auto& id : acked2) ASSERT_EQ(stored2.count(id), 1u) << id;
  for (const auto& id : stored) ASSERT_EQ(stored2.count(id), 1u) << id;
  auto report2 = VerifyChain(opts.db_path, pub);
  ASSERT_TRUE(report2.ok());
  EXPECT_TRUE(report2->ok) << report2->problem << " at " << report2->first_broken_seq;
  EXPECT_EQ(report2->records, static_cast<int64_t>(stored2.size()));
}

}  // namespace
}  // namespace moat::audit

#pragma once
// AuditLog: the tamper-evident audit log writer. Callers queue AuditRecords without blocking;
// one writer thread chains them (seq, prev_hash, record_hash; see audit_hash.h), commits them
// to SQLite (WAL, synchronous=NORMAL) in group-commit batches, signs an Ed25519 checkpoint every
// `checkpoint_every` records and at clean shutdown, then reports durability per record.
//
// Several AuditLog instances (even in different processes) may share one database: each
// transaction re-reads the chain head under SQLite's write lock, so the chain never forks.
//
// Durability: a record whose on_durable callback got OK is committed to the WAL; it survives a
// kill -9 of the process (the WAL bytes are in the OS page cache), though not a power loss
// between OS flushes (that is what synchronous=NORMAL trades for latency).
//
// Disk: a maintenance thread with its own connection checkpoints the WAL into the database file
// every wal_checkpoint_interval_ms (off the commit path), the WAL is truncated to wal_max_bytes
// whenever it restarts, and a WAL that still outgrows wal_max_bytes (a long reader) gets a
// TRUNCATE checkpoint. So the database file grows with the log and the WAL stays bounded.
//
// Health: health() tells the gateway, before it forwards a request, whether records can be
// written (the last commit succeeded and the file system has min_free_bytes left), so nothing
// is served whose record is known to be unwritable.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "moat/audit_record.h"
#include "moat/clock.h"
#include "moat/status.h"

namespace moat::audit {

struct AuditLogOptions {
  std::string db_path;           // SQLite file, opened in WAL mode, synchronous=NORMAL
  std::string signing_key_path;  // Ed25519 key file; created (0600) if missing; "<path>.pub" = hex
  int64_t checkpoint_every = 1000;  // sign a checkpoint every N records (and at clean shutdown);
                                    // <= 0 signs only at clean shutdown
  size_t max_queue = 100000;        // Append() refuses (ResourceExhausted) beyond this many queued
  const Clock* clock = nullptr;     // checkpoint timestamps; nullptr = SystemClock::Get()
  int64_t wal_checkpoint_interval_ms = 500;  // WAL -> database file copies, off the commit path
  int64_t wal_max_bytes = 64 << 20;          // WAL size bound (journal_size_limit and beyond)
  // health() is Unavailable while the database's file system has less free space than this
  // (headroom for the records of requests already in flight); 0 disables the check.
  uint64_t min_free_bytes = 64 << 20;
  // Where the latest signed checkpoint is anchored outside the database (checkpoint_anchor.h);
  // "" disables the anchor.
  std::string anchor_path;
};

class AuditLog {
 public:
  using DurableCallback = std::function<void(const Status&)>;

  // Opens/creates the store, recovers the chain head (last seq + hash) from the database and
  // starts the writer thread. Returns FailedPrecondition when the database was signed with a
  // different key than the one in signing_key_path (its checkpoints would no longer verify).
  static StatusOr<std::unique_ptr<AuditLog>> Open(const AuditLogOptions& options);
  // Commits everything queued, writes a final checkpoint, stops the writer.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Non-blocking, thread-safe: queues the record; the writer assigns seq / prev_hash /
  // record_hash (values set by the caller are overwritten; a non-finite latency_ms is stored as
  // -1). `on_durable`, if given, is called exactly once, from the writer thread, after the
  // record has been committed (OK) or could not be (the error; the record is then not in the
  // log). Records are committed in group batches; when a batch fails, its records are retried
  // one per transaction, so one unstorable record fails only its own request. The callback must
  // not block for long or call Flush. Returns ResourceExhausted when max_queue records are
  // already waiting (the callback is then not called).
  Status Append(AuditRecord record, DurableCallback on_durable = nullptr);
  // Blocks until every record queued before the call has been committed (or has failed).
  // Must not be called from an on_durable callback.
  void Flush();

  size_t queue_depth() const;          // records waiting for the writer
  uint64_t records_written() const;    // records committed by this instance
  uint64_t batches_committed() const;  // transactions committed by this instance
  int64_t last_seq() const;            // seq of the chain head (0 when the log is empty)
  std::string public_key_hex() const;
  // OK while new records can be made durable. Unavailable (with the reason) after a commit that
  // failed, until a later one succeeds (the records of refused requests are the probes), and
  // while free space is below min_free_bytes. Thread-safe; an atomic load when healthy.
  Status health() const;
  uint64_t wal_checkpoints() const;  // WAL checkpoints that copied frames or truncated it

 private:
  struct Pending {
    AuditRecord record;
    DurableCallback on_durable;
  };
  struct Writer;  // database state owned by the writer thread

  AuditLog(AuditLogOptions options, std::unique_ptr<Writer> writer, std::string public_key_hex);
  void WriterLoop();

  const AuditLogOptions options_;
  const std::string public_key_hex_;
  std::unique_ptr<Writer> writer_;  // used only by the writer thread after construction

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // queue_ became non-empty or stopping_ was set
  std::condition_variable done_cv_;  // processed_ advanced
  std::vector<Pending> queue_;       // guarded by mu_
  uint64_t enqueued_ = 0;            // guarded by mu_: records ever accepted by Append
  uint64_t processed_ = 0;           // guarded by mu_: records whose callback has run
  uint64_t written_ = 0;             // guarded by mu_
  uint64_t batches_ = 0;             // guarded by mu_
  int64_t last_seq_ = 0;             // guarded by mu_
  bool stopping_ = false;            // guarded by mu_

  std::thread thread_;
  // Checkpoints the WAL into the database file off the commit path (auto-checkpoints are off:
  // their fsyncs would otherwise stall whichever batch crossed the threshold, and with it every
  // request waiting for durability), bounds the WAL and watches free space.
  void MaintenanceLoop();
  void CheckFreeSpace();
  void SetCommitHealth(const Status& batch_status);
  std::condition_variable checkpoint_cv_;  // stopping_ was set
  std::thread checkpoint_thread_;

  std::atomic<bool> commit_failed_{false};
  std::atomic<bool> low_space_{false};
  std::atomic<uint64_t> wal_checkpoints_{0};
  std::atomic<bool> wal_over_bound_{false};  // the writer is truncating the WAL
  mutable std::mutex health_mu_;
  std::string commit_error_;  // guarded by health_mu_
  std::string space_error_;   // guarded by health_mu_
};

}  // namespace moat::audit

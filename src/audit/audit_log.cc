#include "audit/audit_log.h"

#include <sqlite3.h>

#include <sys/statvfs.h>

#include <cmath>
#include <exception>
#include <optional>
#include <utility>

#include "audit/audit_hash.h"
#include "audit/audit_schema.h"
#include "common/sqlite.h"
#include "audit/checkpoint_anchor.h"
#include "audit/signing_key.h"
#include "common/private_files.h"

namespace moat::audit {

namespace {

// How long the writer's own WAL truncation waits for readers before it gives up until the next
// batch, and the writer's ordinary busy timeout (SqliteDb::Open's).
constexpr int kWalTruncateBusyTimeoutMs = 100;
constexpr int kWriterBusyTimeoutMs = 5000;

}  // namespace

// Everything the writer thread touches while committing; no locking needed.
struct AuditLog::Writer {
  std::unique_ptr<SqliteDb> db;
  SqliteStmt begin, commit, rollback, insert_record, insert_checkpoint, read_head;
  SigningKey key;
  const Clock* clock;
  int64_t checkpoint_every;
  int64_t head_seq = 0;                  // last committed seq
  std::string head_hash = kGenesisHash;  // last committed record_hash
  int64_t last_checkpoint_seq = 0;
  std::string anchor_path;                        // "" : no anchor file
  std::optional<CheckpointAnchor> pending_anchor;  // signed in the open transaction
  int64_t wal_max_bytes = 0;
  int64_t page_size = 0;
  int wal_frames = 0;  // frames in the WAL after the last commit (sqlite3_wal_hook)

  static int OnWalCommit(void* self, sqlite3*, const char*, int frames) {
    static_cast<Writer*>(self)->wal_frames = frames;
    return SQLITE_OK;
  }

  // True when the WAL holds more than wal_max_bytes: the maintenance thread's passive
  // checkpoints did not catch up (a writer that never pauses keeps the WAL from ever being
  // completely copied, so it never restarts).
  bool WalOverBound() const {
    return wal_max_bytes > 0 && static_cast<int64_t>(wal_frames) * page_size > wal_max_bytes;
  }

  // Between batches, with the WAL over its bound: copies the rest and truncates the WAL here,
  // holding up the next batch. A reader in the way (export, verify) makes it give up quickly
  // and try again after the next batch. Returns true when it truncated the WAL.
  bool TruncateWal() {
    sqlite3_busy_timeout(db->handle(), kWalTruncateBusyTimeoutMs);
    int rc = sqlite3_wal_checkpoint_v2(db->handle(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
    sqlite3_busy_timeout(db->handle(), kWriterBusyTimeoutMs);
    if (rc != SQLITE_OK) return false;
    wal_frames = 0;
    return true;
  }

  Writer(SigningKey k, const Clock* c, int64_t every, std::string anchor)
      : key(std::move(k)), clock(c), checkpoint_every(every), anchor_path(std::move(anchor)) {}

  Status InsertCheckpoint(int64_t seq, const std::string& record_hash) {
    int64_t now = clock->NowNanos();
    std::string signature = key.SignHex(CheckpointMessage(seq, now, record_hash));
    insert_checkpoint.Reset();
    insert_checkpoint.BindInt64(1, seq);
    insert_checkpoint.BindText(2, record_hash);
    insert_checkpoint.BindInt64(3, now);
    insert_checkpoint.BindText(4, signature);
    MOAT_RETURN_IF_ERROR(insert_checkpoint.Run());
    last_checkpoint_seq = seq;
    pending_anchor = CheckpointAnchor{seq, record_hash, now, std::move(signature),
                                      key.public_key_hex()};
    return Status::Ok();
  }

  // After a commit: moves the anchor file to the checkpoint the transaction signed, if any.
  // A failure leaves the previous anchor, which stays consistent (only less recent).
  void AnchorCommittedCheckpoint() {
    if (pending_anchor && !anchor_path.empty()) (void)AdvanceAnchorFile(anchor_path, *pending_anchor);
    pending_anchor.reset();
  }

  // Commits `batch`, setting statuses[i] for batch[i]. The whole batch goes in one
  // transaction; if that fails, each record is retried in a transaction of its own so that one
  // unstorable record does not fail the requests batched with it.
  void Commit(std::vector<Pending>& batch, std::vector<Status>& statuses) {
    statuses.assign(batch.size(), Status::Ok());
    Status s = CommitRange(batch, 0, batch.size());
    if (s.ok()) return;
    if (batch.size() == 1) {
      statuses[0] = s;
      return;
    }
    for (size_t i = 0; i < batch.size(); ++i) statuses[i] = CommitRange(batch, i, i + 1);
  }

  // Chains and inserts batch[begin, end) in one transaction. On failure nothing is committed
  // and the chain head is unchanged.
  Status CommitRange(std::vector<Pending>& batch, size_t from, size_t to) {
    const int64_t saved_seq = head_seq;
    const std::string saved_hash = head_hash;
    const int64_t saved_checkpoint = last_checkpoint_seq;
    Status s = WriteRange(batch, from, to);
    if (!s.ok()) {
      rollback.Reset();
      (void)rollback.Run();  // fails harmlessly when BEGIN itself failed
      head_seq = saved_seq;
      head_hash = saved_hash;
      last_checkpoint_seq = saved_checkpoint;
      pending_anchor.reset();
    } else {
      AnchorCommittedCheckpoint();
    }
    return s;
  }

  // Re-reads the chain head inside the write transaction, so a second writer on the same file
  // (another gateway process) extends the chain instead of forking it.
  Status ReloadHead() {
    read_head.Reset();
    MOAT_ASSIGN_OR_RETURN(bool row, read_head.Step());
    if (row) {
      head_seq = read_head.ColumnInt64(0);
      head_hash = read_head.ColumnText(1);
    } else {
      head_seq = 0;
      head_hash = kGenesisHash;
    }
    read_head.Reset();
    return Status::Ok();
  }

  Status WriteRange(std::vector<Pending>& batch, size_t from, size_t to) {
    begin.Reset();
    MOAT_RETURN_IF_ERROR(begin.Run());
    MOAT_RETURN_IF_ERROR(ReloadHead());
    for (size_t i = from; i < to; ++i) {
      AuditRecord& r = batch[i].record;
      Normalize(r);
      r.seq = head_seq + 1;
      r.prev_hash = head_hash;
      r.record_hash = ComputeRecordHash(r);
      insert_record.Reset();
      BindRecord(insert_record, r);
      MOAT_RETURN_IF_ERROR(insert_record.Run());
      head_seq = r.seq;
      head_hash = r.record_hash;
      if (checkpoint_every > 0 && head_seq % checkpoint_every == 0) {
        MOAT_RETURN_IF_ERROR(InsertCheckpoint(head_seq, head_hash));
      }
    }
    commit.Reset();
    return commit.Run();
  }

  // SQLite stores NaN as NULL, which the schema rejects, and JSON has no infinities: a
  // non-finite latency is recorded as -1 before it is hashed.
  static void Normalize(AuditRecord& r) {
    if (!std::isfinite(r.latency_ms)) r.latency_ms = -1;
  }

  // Signs the chain head if it is not signed yet (clean shutdown).
  Status FinalCheckpoint() {
    begin.Reset();
    MOAT_RETURN_IF_ERROR(begin.Run());
    Status s = ReloadHead();
    if (s.ok() && head_seq != 0 && head_seq != last_checkpoint_seq) {
      s = InsertCheckpoint(head_seq, head_hash);
    }
    if (s.ok()) {
      commit.Reset();
      s = commit.Run();
    }
    if (!s.ok()) {
      rollback.Reset();
      (void)rollback.Run();
      pending_anchor.reset();
    } else {
      AnchorCommittedCheckpoint();
    }
    return s;
  }
};

namespace {

// How long a maintenance checkpoint waits for readers and the writer before giving up (it
// retries at the next interval).
constexpr int kMaintenanceBusyTimeoutMs = 100;

Status ConfigureDatabase(SqliteDb& db, int64_t wal_max_bytes) {
  MOAT_ASSIGN_OR_RETURN(SqliteStmt wal, db.Prepare("PRAGMA journal_mode=WAL"));
  MOAT_ASSIGN_OR_RETURN(bool row, wal.Step());
  if (!row || wal.ColumnText(0) != "wal") {
    return FailedPreconditionError("audit database could not be switched to WAL mode");
  }
  // journal_size_limit: each time the WAL restarts from its beginning (after a complete
  // checkpoint) it is truncated to this size, so it cannot keep its high-water mark.
  return db.Exec("PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=" +
                 std::to_string(wal_max_bytes) + ";");
}

// The directory holding `path` ("." for a bare file name).
std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Reads a single-string value from audit_meta ("" when absent).
StatusOr<std::string> ReadMeta(SqliteDb& db, const std::string& key) {
  MOAT_ASSIGN_OR_RETURN(SqliteStmt q, db.Prepare("SELECT value FROM audit_meta WHERE key = ?"));
  q.BindText(1, key);
  MOAT_ASSIGN_OR_RETURN(bool row, q.Step());
  return row ? q.ColumnText(0) : std::string();
}

}  // namespace

StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const AuditLogOptions& options) {
  if (options.db_path.empty()) return InvalidArgumentError("audit db_path is empty");
  if (options.signing_key_path.empty()) return InvalidArgumentError("audit signing key is empty");
  MOAT_ASSIGN_OR_RETURN(SigningKey key, SigningKey::LoadOrCreate(options.signing_key_path));
  const Clock* clock = options.clock ? options.clock : SystemClock::Get();
  if (options.wal_max_bytes <= 0) return InvalidArgumentError("audit wal_max_bytes must be > 0");
  if (options.wal_checkpoint_interval_ms <= 0) {
    return InvalidArgumentError("audit wal_checkpoint_interval_ms must be > 0");
  }
  auto w = std::make_unique<Writer>(key, clock, options.checkpoint_every, options.anchor_path);
  const std::string pub = key.public_key_hex();

  // Full prompts live here: owner-only, and SQLite gives the -wal and -shm files the same mode.
  MOAT_RETURN_IF_ERROR(EnsurePrivateFile(options.db_path));
  MOAT_ASSIGN_OR_RETURN(w->db, SqliteDb::Open(options.db_path, SqliteDb::Mode::kReadWriteCreate));
  SqliteDb& db = *w->db;
  MOAT_RETURN_IF_ERROR(ConfigureDatabase(db, options.wal_max_bytes));
  {
    MOAT_ASSIGN_OR_RETURN(SqliteStmt page_size, db.Prepare("PRAGMA page_size"));
    MOAT_ASSIGN_OR_RETURN(bool row, page_size.Step());
    w->page_size = row ? page_size.ColumnInt64(0) : 4096;
  }
  w->wal_max_bytes = options.wal_max_bytes;
  sqlite3_wal_hook(db.handle(), &Writer::OnWalCommit, w.get());
  MOAT_RETURN_IF_ERROR(CreateSchema(db));

  // The database remembers which key signed it, so a lost or swapped key file is noticed now
  // rather than at the next `moat audit verify`.
  MOAT_ASSIGN_OR_RETURN(std::string stored_pub, ReadMeta(db, "public_key"));
  if (stored_pub.empty()) {
    MOAT_ASSIGN_OR_RETURN(
        SqliteStmt put, db.Prepare("INSERT INTO audit_meta(key, value) VALUES ('public_key', ?)"));
    put.BindText(1, pub);
    MOAT_RETURN_IF_ERROR(put.Run());
  } else if (stored_pub != pub) {
    return FailedPreconditionError("audit database " + options.db_path +
                                   " is signed with public key " + stored_pub + " but " +
                                   options.signing_key_path + " holds " + pub);
  }

  // Recover the chain head. A crash mid-batch left no partial transaction behind.
  {
    MOAT_ASSIGN_OR_RETURN(SqliteStmt head,
                          db.Prepare("SELECT seq, record_hash FROM records ORDER BY seq DESC "
                                     "LIMIT 1"));
    MOAT_ASSIGN_OR_RETURN(bool row, head.Step());
    if (row) {
      w->head_seq = head.ColumnInt64(0);
      w->head_hash = head.ColumnText(1);
    }
    MOAT_ASSIGN_OR_RETURN(SqliteStmt cp,
                          db.Prepare("SELECT COALESCE(MAX(seq), 0) FROM checkpoints"));
    MOAT_ASSIGN_OR_RETURN(bool cp_row, cp.Step());
    if (cp_row) w->last_checkpoint_seq = cp.ColumnInt64(0);
  }

  MOAT_ASSIGN_OR_RETURN(w->read_head, db.Prepare("SELECT seq, record_hash FROM records ORDER BY "
                                                 "seq DESC LIMIT 1"));
  MOAT_ASSIGN_OR_RETURN(w->begin, db.Prepare("BEGIN IMMEDIATE"));
  MOAT_ASSIGN_OR_RETURN(w->commit, db.Prepare("COMMIT"));
  MOAT_ASSIGN_OR_RETURN(w->rollback, db.Prepare("ROLLBACK"));
  MOAT_ASSIGN_OR_RETURN(w->insert_record, db.Prepare(InsertRecordSql()));
  MOAT_ASSIGN_OR_RETURN(w->insert_checkpoint,
                        db.Prepare("INSERT OR IGNORE INTO checkpoints(seq, record_hash, time_ns, "
                                   "signature) "
                                   "VALUES (?, ?, ?, ?)"));
  return std::unique_ptr<AuditLog>(new AuditLog(options, std::move(w), pub));
}

AuditLog::AuditLog(AuditLogOptions options, std::unique_ptr<Writer> writer,
                   std::string public_key_hex)
    : options_(std::move(options)),
      public_key_hex_(std::move(public_key_hex)),
      writer_(std::move(writer)) {
  last_seq_ = writer_->head_seq;
  CheckFreeSpace();  // known before the first request is admitted
  thread_ = std::thread([this] { WriterLoop(); });
  checkpoint_thread_ = std::thread([this] { MaintenanceLoop(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_one();
  checkpoint_cv_.notify_one();
  checkpoint_thread_.join();  // joins the writer thread first (see MaintenanceLoop)
}

void AuditLog::MaintenanceLoop() {
  // A connection checkpoints the WAL only once it has read the database (before that it has no
  // WAL index open, and sqlite3_wal_checkpoint_v2 is a silent no-op).
  std::unique_ptr<SqliteDb> db;
  if (auto opened = SqliteDb::Open(options_.db_path, SqliteDb::Mode::kReadWriteCreate); opened.ok()) {
    db = std::move(*opened);
    if (!db->Exec("SELECT COUNT(*) FROM sqlite_master").ok()) db.reset();
  }
  if (db) sqlite3_busy_timeout(db->handle(), kMaintenanceBusyTimeoutMs);
  auto checkpoint = [&](int mode) {
    if (!db) return;
    int log_frames = 0, copied_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2(db->handle(), nullptr, mode, &log_frames, &copied_frames);
    if (rc == SQLITE_OK && copied_frames > 0) wal_checkpoints_.fetch_add(1, std::memory_order_relaxed);
  };
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    checkpoint_cv_.wait_for(lock, std::chrono::milliseconds(options_.wal_checkpoint_interval_ms),
                            [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    // PASSIVE: copies what it can (and syncs the database file) without blocking the writer or
    // readers. The writer restarts and truncates the WAL on its next commit once everything
    // has been copied, or truncates it itself when it outgrows wal_max_bytes (Writer::TruncateWal).
    // While the WAL is over its bound the writer truncates it; a passive checkpoint holding the
    // checkpoint lock (through a slow fsync) would only make the writer's attempt fail.
    if (!wal_over_bound_.load(std::memory_order_acquire)) checkpoint(SQLITE_CHECKPOINT_PASSIVE);
    CheckFreeSpace();
    lock.lock();
  }
  lock.unlock();
  // The writer thread has stopped (it is joined first): leave the database file complete.
  thread_.join();
  checkpoint(SQLITE_CHECKPOINT_TRUNCATE);
}

void AuditLog::CheckFreeSpace() {
  if (options_.min_free_bytes == 0) return;
  struct statvfs fs {};
  if (::statvfs(DirectoryOf(options_.db_path).c_str(), &fs) != 0) return;
  const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  const bool low = free_bytes < options_.min_free_bytes;
  if (low) {
    std::lock_guard<std::mutex> lock(health_mu_);
    space_error_ = "the audit volume has " + std::to_string(free_bytes) +
                   " bytes free, below audit.min_free_bytes (" +
                   std::to_string(options_.min_free_bytes) + ")";
  }
  low_space_.store(low, std::memory_order_release);
}

void AuditLog::SetCommitHealth(const Status& batch_status) {
  if (batch_status.ok()) {
    commit_failed_.store(false, std::memory_order_release);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    commit_error_ = "the last audit commit failed: " + batch_status.message();
  }
  commit_failed_.store(true, std::memory_order_release);
}

Status AuditLog::health() const {
  const bool failed = commit_failed_.load(std::memory_order_acquire);
  const bool low = low_space_.load(std::memory_order_acquire);
  if (!failed && !low) return Status::Ok();
  std::lock_guard<std::mutex> lock(health_mu_);
  return UnavailableError(failed ? commit_error_ : space_error_);
}

uint64_t AuditLog::wal_checkpoints() const {
  return wal_checkpoints_.load(std::memory_order_relaxed);
}

Status AuditLog::Append(AuditRecord record, DurableCallback on_durable) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return FailedPreconditionError("audit log is shutting down");
    if (queue_.size() >= options_.max_queue) {
      return ResourceExhaustedError("audit queue is full (" + std::to_string(queue_.size()) +
                                    " records waiting)");
    }
    queue_.push_back(Pending{std::move(record), std::move(on_durable)});
    ++enqueued_;
  }
  work_cv_.notify_one();
  return Status::Ok();
}

void AuditLog::WriterLoop() {
  std::vector<Pending> batch;
  std::vector<Status> statuses;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [this] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) break;  // stopping and drained
      batch.swap(queue_);         // group commit: take everything waiting
    }
    writer_->Commit(batch, statuses);
    uint64_t ok_count = 0;
    for (const Status& st : statuses) ok_count += st.ok();
    // Healthy again as soon as anything commits; failing when nothing of the batch could.
    SetCommitHealth(ok_count > 0 ? Status::Ok() : statuses.front());
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!batch[i].on_durable) continue;
      try {
        batch[i].on_durable(statuses[i]);
      } catch (...) {
        // A throwing callback must not kill the writer; the record itself is unaffected.
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      processed_ += batch.size();
      written_ += ok_count;
      if (ok_count > 0) ++batches_;
      last_seq_ = writer_->head_seq;
    }
    done_cv_.notify_all();
    batch.clear();
    // After the acknowledgements: only the next batch may wait for it.
    if (writer_->WalOverBound()) {
      wal_over_bound_.store(true, std::memory_order_release);
      if (writer_->TruncateWal()) {
        wal_checkpoints_.fetch_add(1, std::memory_order_relaxed);
        wal_over_bound_.store(false, std::memory_order_release);
      }
    }
  }
  (void)writer_->FinalCheckpoint();
  writer_.reset();  // closes the database on the thread that used it
}

void AuditLog::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = enqueued_;
  done_cv_.wait(lock, [&] { return processed_ >= target; });
}

size_t AuditLog::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

uint64_t AuditLog::records_written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return written_;
}

uint64_t AuditLog::batches_committed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_;
}

int64_t AuditLog::last_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_seq_;
}

std::string AuditLog::public_key_hex() const { return public_key_hex_; }

}  // namespace moat::audit

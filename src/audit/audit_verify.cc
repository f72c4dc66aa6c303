#include "audit/audit_verify.h"

#include "audit/audit_hash.h"
#include "audit/audit_schema.h"
#include "common/sqlite.h"
#include "audit/signing_key.h"

namespace moat::audit {
namespace {

struct Checkpoint {
  int64_t seq = 0;
  std::string record_hash;
  int64_t time_ns = 0;
  std::string signature;
};

// Merge-walks the records and checkpoints cursors; stops at the first break.
class ChainWalker {
 public:
  ChainWalker(SqliteStmt& records, SqliteStmt& checkpoints, std::string public_key_hex,
              const VerifyOptions& options)
      : records_(records),
        checkpoints_(checkpoints),
        public_key_hex_(std::move(public_key_hex)),
        options_(options) {}

  StatusOr<VerifyReport> Run() {
    if (options_.anchor && (options_.anchor->public_key_hex != public_key_hex_ ||
                            !AnchorSignatureValid(*options_.anchor))) {
      return Broken(options_.anchor->seq, "the checkpoint anchor is not signed by this log's key");
    }
    MOAT_RETURN_IF_ERROR(NextCheckpoint());
    int64_t expected_seq = 1;
    std::string prev_hash = kGenesisHash;
    for (;;) {
      MOAT_ASSIGN_OR_RETURN(bool row, records_.Step());
      if (!row) break;
      std::string storage_problem;
      AuditRecord rec = ReadRecord(records_, &storage_problem);
      if (rec.seq != expected_seq) {
        if (rec.seq > expected_seq) {
          return Broken(expected_seq, "record " + std::to_string(expected_seq) +
                                          " is missing (the next record is " +
                                          std::to_string(rec.seq) + ")");
        }
        return Broken(rec.seq, "unexpected seq " + std::to_string(rec.seq));
      }
      if (!storage_problem.empty()) return Broken(rec.seq, storage_problem);
      // Own hash first: a record edited in place is blamed on itself, not its predecessor.
      if (ComputeRecordHash(rec) != rec.record_hash) {
        return Broken(rec.seq, "record " + std::to_string(rec.seq) +
                                   " does not match its record_hash (a field was modified)");
      }
      if (rec.prev_hash != prev_hash) {
        if (rec.seq == 1) return Broken(1, "record 1 does not start from the genesis hash");
        return Broken(rec.seq - 1, "record " + std::to_string(rec.seq - 1) +
                                       " does not have the hash record " + std::to_string(rec.seq) +
                                       " commits to (it was rewritten, or the link was)");
      }
      while (has_checkpoint_ && checkpoint_.seq <= rec.seq) {
        if (checkpoint_.seq < rec.seq) {
          return Broken(checkpoint_.seq, "checkpoint at seq " + std::to_string(checkpoint_.seq) +
                                             " names no record");
        }
        if (!SignatureValid()) return BadSignature();
        if (checkpoint_.record_hash != rec.record_hash) {
          return Broken(report_.last_checkpoint_seq + 1,
                        "checkpoint at seq " + std::to_string(checkpoint_.seq) +
                            " signs a different hash: records " +
                            std::to_string(report_.last_checkpoint_seq + 1) + ".." +
                            std::to_string(checkpoint_.seq) + " were rewritten");
        }
        if (options_.checkpoint_every > 0 &&
            checkpoint_.seq - report_.last_checkpoint_seq > options_.checkpoint_every) {
          return MissingCheckpoint(checkpoint_.seq);
        }
        if (options_.anchor && checkpoint_.seq == options_.anchor->seq) {
          if (checkpoint_.signature != options_.anchor->signature ||
              checkpoint_.time_ns != options_.anchor->time_ns) {
            return Broken(checkpoint_.seq, "the checkpoint at seq " + std::to_string(checkpoint_.seq) +
                                               " is not the one anchored outside the database");
          }
          report_.anchored_seq = checkpoint_.seq;
        }
        report_.last_checkpoint_seq = checkpoint_.seq;
        ++report_.checkpoints;
        MOAT_RETURN_IF_ERROR(NextCheckpoint());
      }
      if (options_.anchor && rec.seq == options_.anchor->seq &&
          rec.record_hash != options_.anchor->record_hash) {
        return Broken(rec.seq, "record " + std::to_string(rec.seq) +
                                   " differs from the checkpoint anchored outside the database");
      }
      prev_hash = rec.record_hash;
      ++expected_seq;
      ++report_.records;
    }
    if (has_checkpoint_) {
      // A checkpoint beyond the last record: a genuine one proves records were cut off.
      if (!SignatureValid()) return BadSignature();
      return Broken(expected_seq, "records " + std::to_string(expected_seq) + ".." +
                                      std::to_string(checkpoint_.seq) +
                                      " are missing (the log was truncated before a signed "
                                      "checkpoint)");
    }
    const int64_t last_seq = expected_seq - 1;
    if (options_.anchor) {
      if (last_seq < options_.anchor->seq) {
        return Broken(expected_seq, "the log ends at seq " + std::to_string(last_seq) +
                                        " but a signed checkpoint at seq " +
                                        std::to_string(options_.anchor->seq) +
                                        " is anchored outside the database: records " +
                                        std::to_string(expected_seq) + ".." +
                                        std::to_string(options_.anchor->seq) + " were removed");
      }
      if (report_.anchored_seq != options_.anchor->seq) {
        return Broken(options_.anchor->seq, "the anchored checkpoint at seq " +
                                                std::to_string(options_.anchor->seq) +
                                                " is missing from the checkpoints table");
      }
    }
    report_.unsigned_tail = last_seq - report_.last_checkpoint_seq;
    int64_t max_tail = options_.max_unsigned_tail;
    if (max_tail < 0 && options_.checkpoint_every > 0) max_tail = options_.checkpoint_every - 1;
    if (max_tail >= 0 && report_.unsigned_tail > max_tail) {
      if (options_.checkpoint_every > 0 &&
          report_.unsigned_tail > options_.checkpoint_every) {
        return MissingCheckpoint(last_seq);
      }
      return Broken(report_.last_checkpoint_seq + 1,
                    std::to_string(report_.unsigned_tail) +
                        " records after the last signed checkpoint (seq " +
                        std::to_string(report_.last_checkpoint_seq) + "), more than the " +
                        std::to_string(max_tail) + " allowed");
    }
    return report_;
  }

 private:
  Status NextCheckpoint() {
    MOAT_ASSIGN_OR_RETURN(has_checkpoint_, checkpoints_.Step());
    if (has_checkpoint_) {
      checkpoint_.seq = checkpoints_.ColumnInt64(0);
      checkpoint_.record_hash = checkpoints_.ColumnText(1);
      checkpoint_.time_ns = checkpoints_.ColumnInt64(2);
      checkpoint_.signature = checkpoints_.ColumnText(3);
    }
    return Status::Ok();
  }

  bool SignatureValid() const {
    return VerifySignatureHex(
        public_key_hex_,
        CheckpointMessage(checkpoint_.seq, checkpoint_.time_ns, checkpoint_.record_hash),
        checkpoint_.signature);
  }

  // Records after the last verified checkpoint up to `upto` are covered by no checkpoint
  // although checkpoint_every requires one.
  VerifyReport MissingCheckpoint(int64_t upto) {
    const int64_t from = report_.last_checkpoint_seq + 1;
    return Broken(from, "no signed checkpoint covers records " + std::to_string(from) + ".." +
                            std::to_string(upto) + ", but audit.checkpoint_every = " +
                            std::to_string(options_.checkpoint_every) +
                            " puts one at least every " +
                            std::to_string(options_.checkpoint_every) +
                            " records (checkpoints were deleted)");
  }

  VerifyReport BadSignature() {
    return Broken(checkpoint_.seq, "checkpoint at seq " + std::to_string(checkpoint_.seq) +
                                       " has an invalid signature");
  }

  VerifyReport Broken(int64_t seq, std::string problem) {
    report_.ok = false;
    report_.first_broken_seq = seq;
    report_.problem = std::move(problem);
    return report_;
  }

  SqliteStmt& records_;
  SqliteStmt& checkpoints_;
  const std::string public_key_hex_;
  const VerifyOptions& options_;
  bool has_checkpoint_ = false;
  Checkpoint checkpoint_;
  VerifyReport report_;
};

}  // namespace

StatusOr<VerifyReport> VerifyChain(const std::string& db_path, const std::string& public_key_hex,
                                   const VerifyOptions& options) {
  auto key = HexDecode(public_key_hex);
  if (!key.ok() || key->size() != 32) {
    return InvalidArgumentError("public key must be 64 hex characters (Ed25519)");
  }
  MOAT_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(db_path, SqliteDb::Mode::kReadOnly));
  // One read transaction: both cursors see the same snapshot while a writer keeps appending.
  MOAT_ASSIGN_OR_RETURN(SqliteTransaction snapshot,
                        SqliteTransaction::Begin(*db, SqliteTransaction::Kind::kDeferred));
  MOAT_ASSIGN_OR_RETURN(std::string select, SelectRecordsSqlFor(*db));
  MOAT_ASSIGN_OR_RETURN(SqliteStmt records, db->Prepare(select + "ORDER BY seq"));
  MOAT_ASSIGN_OR_RETURN(
      SqliteStmt checkpoints,
      db->Prepare("SELECT seq, record_hash, time_ns, signature FROM checkpoints ORDER BY seq"));
  ChainWalker walker(records, checkpoints, public_key_hex, options);
  // Read-only: ending the transaction by rolling it back on return loses nothing.
  return walker.Run();
}

StatusOr<int64_t> CountCheckpoints(const std::string& db_path) {
  MOAT_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(db_path, SqliteDb::Mode::kReadOnly));
  MOAT_ASSIGN_OR_RETURN(SqliteStmt count, db->Prepare("SELECT COUNT(*) FROM checkpoints"));
  MOAT_ASSIGN_OR_RETURN(bool row, count.Step());
  return row ? count.ColumnInt64(0) : 0;
}

}  // namespace moat::audit

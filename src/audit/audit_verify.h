#pragma once
// VerifyChain: checks an audit database end to end (the `moat audit verify` command): hash
// links, record contents, seq contiguity and every signed checkpoint. Streams the tables, so
// memory use does not grow with the log.

#include <cstdint>
#include <optional>
#include <string>

#include "audit/checkpoint_anchor.h"
#include "moat/status.h"

namespace moat::audit {

struct VerifyReport {
  bool ok = true;
  int64_t records = 0;              // records checked and found intact (before the break, if any)
  int64_t checkpoints = 0;          // checkpoints whose signature and hash were verified
  int64_t first_broken_seq = -1;    // -1 if ok; else the first seq that cannot be trusted
  std::string problem;              // "" if ok; else what is wrong at first_broken_seq
  int64_t last_checkpoint_seq = 0;  // last verified checkpoint: records after it are chained
                                    // but not yet signed (they can be rewritten undetectably
                                    // by someone with write access to the file)
  int64_t unsigned_tail = 0;        // records after last_checkpoint_seq
  int64_t anchored_seq = 0;         // the anchor's checkpoint, found in the log (0: no anchor)
};

// What a verification requires beyond the chain itself.
struct VerifyOptions {
  // The writer signs a checkpoint at every multiple of checkpoint_every (and at clean
  // shutdown), so two consecutive checkpoints are never further apart: a larger gap means
  // checkpoints were deleted. 0 disables the check.
  int64_t checkpoint_every = 0;
  // Records allowed after the last checkpoint; -1 means checkpoint_every - 1 (the most an
  // intact log has, even after a crash) when checkpoint_every > 0, else unchecked.
  int64_t max_unsigned_tail = -1;
  // The latest checkpoint as anchored outside the database (checkpoint_anchor.h): the log must
  // contain it, unchanged. nullopt disables the check.
  std::optional<CheckpointAnchor> anchor;
};

// Walks every record in seq order and every checkpoint, and reports the first break:
//  - a missing record (seq gap, or the log ends before a signed checkpoint): the missing seq;
//  - a record whose fields no longer hash to its record_hash (a field was modified): its seq;
//  - a record whose prev_hash is not the previous record's record_hash: the previous record
//    (it was rewritten together with its own hash), or 1 when record 1 does not start from the
//    genesis hash;
//  - a checkpoint whose Ed25519 signature does not verify under `public_key_hex`: its seq;
//  - a checkpoint signing a hash other than the record's at that seq (the chain was rewritten
//    consistently after the previous checkpoint p): p + 1;
//  - with options.checkpoint_every: two consecutive checkpoints p < c (p = 0 at the start)
//    further apart than checkpoint_every: p + 1 (a checkpoint was deleted);
//  - an unsigned tail longer than allowed after the last checkpoint p: p + 1;
//  - with options.anchor: an anchor whose signature does not verify under `public_key_hex`, a
//    log that ends before the anchored seq (truncated: the first missing seq), or a record or
//    checkpoint at that seq that differs from the anchor (the anchored seq).
// Reads one consistent snapshot, so it can run while the gateway writes. Returns an error
// Status only when the check cannot run (NotFound for a missing file, InvalidArgument for a
// malformed key, Internal for an unreadable database); a tampered log is an OK StatusOr with
// report.ok == false.
StatusOr<VerifyReport> VerifyChain(const std::string& db_path, const std::string& public_key_hex,
                                   const VerifyOptions& options = {});

// The number of signed checkpoints in an audit database (NotFound for a missing file).
StatusOr<int64_t> CountCheckpoints(const std::string& db_path);

}  // namespace moat::audit

#pragma once
// VerifyChain: checks an audit database end to end (the `moat audit verify` command): hash
// links, record contents, seq contiguity and every signed checkpoint. Streams the tables, so
// memory use does not grow with the log.

#include <cstdint>
#include <string>

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
};

// Walks every record in seq order and every checkpoint, and reports the first break:
//  - a missing record (seq gap, or the log ends before a signed checkpoint): the missing seq;
//  - a record whose fields no longer hash to its record_hash (a field was modified): its seq;
//  - a record whose prev_hash is not the previous record's record_hash: the previous record
//    (it was rewritten together with its own hash), or 1 when record 1 does not start from the
//    genesis hash;
//  - a checkpoint whose Ed25519 signature does not verify under `public_key_hex`: its seq;
//  - a checkpoint signing a hash other than the record's at that seq (the chain was rewritten
//    consistently after the previous checkpoint p): p + 1.
// Reads one consistent snapshot, so it can run while the gateway writes. Returns an error
// Status only when the check cannot run (NotFound for a missing file, InvalidArgument for a
// malformed key, Internal for an unreadable database); a tampered log is an OK StatusOr with
// report.ok == false.
StatusOr<VerifyReport> VerifyChain(const std::string& db_path, const std::string& public_key_hex);

}  // namespace moat::audit

// moat audit verify | export
#include <chrono>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "audit/audit_export.h"
#include "audit/audit_verify.h"
#include "cli_common.h"
#include "cmd_scan.h"
#include "commands.h"

namespace moat::cli {
namespace {

struct Opts {
  std::string config, db, pubkey, since, format = "jsonl", anchor;
  bool no_anchor = false;
  int64_t checkpoint_every = -1;  // -1: audit.checkpoint_every from the config
  int64_t max_unsigned = -1;      // -1: checkpoint_every - 1
};

std::string ReadPublicKey(const std::string& path) {
  std::ifstream in(path);
  std::string hex;
  in >> hex;
  return hex;
}

}  // namespace

void AddAuditCommands(CLI::App& app) {
  auto opts = std::make_shared<Opts>();
  auto* audit = app.add_subcommand("audit", "Verify, export and scan the tamper-evident audit log");
  audit->require_subcommand(1);
  AddScanCommand(*audit);

  auto* verify = audit->add_subcommand("verify", "Check the hash chain and signed checkpoints");
  verify->add_option("--config,-c", opts->config, "Config file (default ./moat.toml or defaults)");
  verify->add_option("--db", opts->db, "Audit database (default: from the config)");
  verify->add_option("--pubkey", opts->pubkey, "Ed25519 public key file, hex (default: <signing key>.pub)");
  verify->add_option("--anchor", opts->anchor,
                     "Checkpoint anchor file, e.g. a copy kept elsewhere (default: audit.anchor_file)");
  verify->add_flag("--no-anchor", opts->no_anchor,
                   "Do not require the anchored checkpoint (truncation after the last checkpoint goes unnoticed)");
  verify->add_option("--checkpoint-every", opts->checkpoint_every,
                     "Require a signed checkpoint at least every N records, 0 to skip (default: audit.checkpoint_every)");
  verify->add_option("--max-unsigned", opts->max_unsigned,
                     "Records allowed after the last checkpoint (default: checkpoint_every - 1)");
  verify->callback([opts] {
    auto cfg = LoadConfigOrDefaults(opts->config);
    if (!cfg.ok()) std::exit(Fail(cfg.status()));
    std::string db = opts->db.empty() ? cfg->storage.audit_db : opts->db;
    std::string pub_path = opts->pubkey.empty() ? cfg->storage.audit_signing_key + ".pub" : opts->pubkey;
    std::string pub = ReadPublicKey(pub_path);
    if (pub.empty()) std::exit(Fail(moat::NotFoundError("cannot read the public key " + pub_path)));
    audit::VerifyOptions vo;
    vo.checkpoint_every = opts->checkpoint_every >= 0 ? opts->checkpoint_every : cfg->audit.checkpoint_every;
    vo.max_unsigned_tail = opts->max_unsigned;
    // Read before the database, so that a checkpoint signed meanwhile cannot look like truncation.
    const std::string anchor_path = !opts->anchor.empty() ? opts->anchor : cfg->audit.anchor_file;
    if (!opts->no_anchor && !anchor_path.empty()) {
      auto anchor = audit::ReadAnchorFile(anchor_path);
      if (anchor.ok()) {
        vo.anchor = *anchor;
      } else if (anchor.status().code() != moat::StatusCode::kNotFound || !opts->anchor.empty()) {
        std::exit(Fail(anchor.status()));
      } else if (auto count = audit::CountCheckpoints(db); !count.ok() || *count > 0) {
        // The log has signed checkpoints, so the writer kept an anchor: it was removed.
        std::cout << "BROKEN: the checkpoint anchor " << anchor_path
                  << " is missing although the log has signed checkpoints (pass --anchor with a "
                     "kept copy, or --no-anchor to skip this check)\n";
        std::exit(kExitAuditBroken);
      }
    }
    auto report = audit::VerifyChain(db, pub, vo);
    if (!report.ok()) std::exit(Fail(report.status()));
    if (report->ok) {
      std::cout << "OK: " << report->records << " records, " << report->checkpoints
                << " signed checkpoints verified (last signed seq " << report->last_checkpoint_seq
                << ", " << report->unsigned_tail << " records after it";
      if (vo.anchor) std::cout << "; anchored checkpoint " << report->anchored_seq << " present";
      std::cout << ")\n";
      std::exit(0);
    }
    std::cout << "BROKEN at seq " << report->first_broken_seq << ": " << report->problem << "\n"
              << report->records << " records before it verified\n";
    std::exit(kExitAuditBroken);
  });

  auto* exp = audit->add_subcommand("export", "Stream audit records out");
  exp->add_option("--config,-c", opts->config, "Config file");
  exp->add_option("--db", opts->db, "Audit database (default: from the config)");
  exp->add_option("--since", opts->since, "Only records at or after: ns, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or 24h/7d");
  exp->add_option("--format", opts->format, "Output format (jsonl)")->check(CLI::IsMember({"jsonl"}));
  exp->callback([opts] {
    auto cfg = LoadConfigOrDefaults(opts->config);
    if (!cfg.ok()) std::exit(Fail(cfg.status()));
    auto since = ParseSince(opts->since);
    if (!since.ok()) std::exit(Fail(since.status()));
    std::string db = opts->db.empty() ? cfg->storage.audit_db : opts->db;
    auto st = audit::ExportJsonl(db, *since, std::cout);
    std::cout.flush();
    std::exit(st.ok() ? 0 : Fail(st));
  });
}

}  // namespace moat::cli

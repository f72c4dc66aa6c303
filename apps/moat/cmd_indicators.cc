// moat indicators: share campaign indicators with another provider as STIX 2.1 bundles
// (docs/indicators.md). `export` reads this gateway's audit log, `import` validates another
// provider's bundle into the indicator folder the gateway loads at start, `list` shows what is
// imported, `salt` writes a new shared salt.
#include <sodium.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include <boost/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "common/file_contents.h"
#include "common/private_files.h"
#include "moat/clock.h"
#include "indicators/exporter.h"
#include "indicators/indicator_set.h"
#include "indicators/stix.h"

namespace moat::cli {
namespace {

struct IndicatorOpts {
  std::string config, since, until, format = "stix", salt_file, out, provider = "moat gateway", kinds, file, dir;
  uint32_t min_subjects = 2, min_item_subjects = 1;
  double min_share = 0.8, valid_days = 30, weight = 3.0, expiry_days = 30;
};

int64_t NowNs() { return SystemClock::Get()->NowNanos(); }

moat::StatusOr<std::string> SaltPath(const IndicatorOpts& o, const server::GatewayConfig& cfg) {
  const std::string path = o.salt_file.empty() ? cfg.detection.indicator_salt_file : o.salt_file;
  if (path.empty()) {
    return moat::InvalidArgumentError(
        "no indicator salt: pass --salt-file or set [detection] indicator_salt_file (make one with `moat indicators salt`)");
  }
  return path;
}

// The id of the configured salt, "" when none is configured (only network prefixes can match).
moat::StatusOr<std::string> SaltIdOf(const IndicatorOpts& o, const server::GatewayConfig& cfg) {
  auto path = SaltPath(o, cfg);
  if (!path.ok()) return std::string();
  MOAT_ASSIGN_OR_RETURN(const std::string salt, indicators::ReadSaltFile(*path));
  return indicators::IndicatorHasher(salt).salt_id();
}

moat::Status Export(const IndicatorOpts& o) {
  if (o.format != "stix") return moat::InvalidArgumentError("--format: only stix (STIX 2.1) is supported");
  MOAT_ASSIGN_OR_RETURN(auto cfg, LoadConfigOrDefaults(o.config));
  MOAT_ASSIGN_OR_RETURN(const std::string salt_path, SaltPath(o, cfg));
  MOAT_ASSIGN_OR_RETURN(const std::string salt, indicators::ReadSaltFile(salt_path));
  const indicators::IndicatorHasher hasher(salt);
  indicators::ExportOptions eo;
  MOAT_ASSIGN_OR_RETURN(eo.since_ns, ParseSince(o.since));
  if (!o.until.empty()) {
    MOAT_ASSIGN_OR_RETURN(eo.until_ns, ParseSince(o.until));
  }
  eo.min_subjects = o.min_subjects;
  eo.min_share = o.min_share;
  eo.min_item_subjects = o.min_item_subjects;
  if (!o.kinds.empty()) {
    eo.kinds.clear();
    std::stringstream ss(o.kinds);
    std::string k;
    while (std::getline(ss, k, ',')) {
      auto kind = indicators::ParseKind(k);
      if (!kind) {
        return moat::InvalidArgumentError("--kinds: unknown kind '" + k +
                                          "' (network-prefix, client-fingerprint, prompt-template-prefix, "
                                          "prompt-template-suffix, work-queue-item)");
      }
      eo.kinds.insert(*kind);
    }
  }
  MOAT_ASSIGN_OR_RETURN(auto result, indicators::ExportIndicators(cfg.storage.audit_db, hasher, eo));
  const int64_t now = NowNs();
  indicators::BundleInfo info;
  info.provider = o.provider;
  info.created_ns = now;
  info.campaign_name = "accounts restricted by " + o.provider + " since " + indicators::StixTimestamp(eo.since_ns);
  info.first_seen_ns = result.first_restricted_ns;
  info.last_seen_ns = result.last_restricted_ns;
  info.valid_from_ns = now;
  info.valid_until_ns = now + static_cast<int64_t>(o.valid_days * 86'400e9);
  info.salt_id = hasher.salt_id();
  const std::string bundle = indicators::BuildBundle(result.records, info);
  if (o.out.empty() || o.out == "-") {
    std::cout << bundle << "\n";
  } else {
    MOAT_RETURN_IF_ERROR(CreateNewFile(o.out, bundle + "\n", 0600));
  }
  std::cerr << "moat indicators: " << result.records.size() << " indicators from " << result.restricted_accounts
            << " restricted accounts (" << result.restricted_requests << " of " << result.requests
            << " requests restricted)\n";
  return moat::Status::Ok();
}

void PrintSummary(const indicators::ImportSummary& s) {
  std::cout << s.indicators << " usable indicators, " << s.unsupported << " not matchable by moat, " << s.other_salt
            << " hashed under another salt, " << s.expired << " expired\n";
}

moat::Status Import(const IndicatorOpts& o) {
  MOAT_ASSIGN_OR_RETURN(auto cfg, LoadConfigOrDefaults(o.config));
  MOAT_ASSIGN_OR_RETURN(const std::string text, ReadFileContents(o.file, "indicator bundle"));
  indicators::ImportOptions io;
  io.weight = o.weight;
  io.expiry_days = o.expiry_days;
  io.imported_ns = NowNs();
  const std::string dir = o.dir.empty() ? cfg.detection.indicators_dir : o.dir;
  MOAT_ASSIGN_OR_RETURN(const std::string id, indicators::ImportBundle(dir, text, io));
  // What the gateway will be able to match, under this deployment's salt.
  MOAT_ASSIGN_OR_RETURN(const std::string salt_id, SaltIdOf(o, cfg));
  indicators::ImportSummary summary;
  indicators::ReadIndicators(boost::json::parse(text), salt_id, io, io.imported_ns, &summary);
  std::cout << "imported " << id << " into " << dir << ": ";
  PrintSummary(summary);
  std::cout << "restart `moat serve` to use it\n";
  return moat::Status::Ok();
}

moat::Status List(const IndicatorOpts& o) {
  MOAT_ASSIGN_OR_RETURN(auto cfg, LoadConfigOrDefaults(o.config));
  MOAT_ASSIGN_OR_RETURN(const std::string salt_id, SaltIdOf(o, cfg));
  indicators::ImportSummary summary;
  const std::string dir = o.dir.empty() ? cfg.detection.indicators_dir : o.dir;
  MOAT_ASSIGN_OR_RETURN(auto list, indicators::LoadIndicatorDir(dir, salt_id, NowNs(), &summary));
  std::cout << "indicator\tkind\tconfidence\tweight\tvalid until\n";
  for (const auto& ind : list) {
    std::cout << ind.stix_id << "\t" << indicators::KindName(ind.kind) << "\t" << ind.confidence << "\t" << ind.weight
              << "\t" << indicators::StixTimestamp(ind.valid_until_ns) << "\n";
  }
  PrintSummary(summary);
  return moat::Status::Ok();
}

moat::Status NewSalt(const IndicatorOpts& o) {
  if (o.out.empty()) return moat::InvalidArgumentError("--out FILE is required");
  unsigned char bytes[32];
  randombytes_buf(bytes, sizeof(bytes));
  char hex[2 * sizeof(bytes) + 1];
  sodium_bin2hex(hex, sizeof(hex), bytes, sizeof(bytes));
  MOAT_RETURN_IF_ERROR(CreateSecretFile(o.out, std::string(hex) + "\n"));
  std::cout << "wrote a new indicator salt to " << o.out << " (0600); share it with the other provider out of band\n";
  return moat::Status::Ok();
}

}  // namespace

void AddIndicatorCommands(CLI::App& app) {
  auto o = std::make_shared<IndicatorOpts>();
  auto* ind = app.add_subcommand("indicators", "Share campaign indicators with other providers (STIX 2.1)");
  ind->require_subcommand(1);

  auto* ex = ind->add_subcommand("export", "Write a STIX 2.1 bundle of the keys restricted accounts used");
  ex->add_option("--config,-c", o->config, "Config file (its audit database is read)");
  ex->add_option("--since", o->since, "Start: ns, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or a duration like 7d")->required();
  ex->add_option("--until", o->until, "End (default: now)");
  ex->add_option("--format", o->format, "Bundle format (stix)");
  ex->add_option("--salt-file", o->salt_file, "Salt shared with the other provider (default: [detection] indicator_salt_file)");
  ex->add_option("--out,-o", o->out, "Output file (default: stdout)");
  ex->add_option("--provider", o->provider, "Your name in the bundle's identity object");
  ex->add_option("--min-subjects", o->min_subjects, "Restricted accounts a key needs (default 2)");
  ex->add_option("--min-share", o->min_share, "Their share of the accounts that used it (default 0.8)");
  ex->add_option("--min-item-subjects", o->min_item_subjects, "Restricted accounts a work-queue item needs (default 1)");
  ex->add_option("--valid-days", o->valid_days, "valid_until of the indicators, days from now (default 30)");
  ex->add_option("--kinds", o->kinds, "Only these kinds (comma-separated)");
  ex->callback([o] { std::exit(ExitCodeOf(Export(*o))); });

  auto* im = ind->add_subcommand("import", "Validate another provider's bundle and add it to the indicator folder");
  im->add_option("file", o->file, "STIX 2.1 bundle (JSON)")->required();
  im->add_option("--config,-c", o->config, "Config file");
  im->add_option("--salt-file", o->salt_file, "Salt shared with that provider (default: [detection] indicator_salt_file)");
  im->add_option("--dir", o->dir, "Indicator folder (default: [detection] indicators_dir)");
  im->add_option("--weight", o->weight, "Log-odds a full-confidence indicator adds to a matching subject (default 3)");
  im->add_option("--expiry-days", o->expiry_days, "The bundle's indicators end at most this long after the import (default 30)");
  im->callback([o] { std::exit(ExitCodeOf(Import(*o))); });

  auto* ls = ind->add_subcommand("list", "List the imported indicators the gateway can match");
  ls->add_option("--config,-c", o->config, "Config file");
  ls->add_option("--salt-file", o->salt_file, "Salt (default: [detection] indicator_salt_file)");
  ls->add_option("--dir", o->dir, "Indicator folder (default: [detection] indicators_dir)");
  ls->callback([o] { std::exit(ExitCodeOf(List(*o))); });

  auto* salt = ind->add_subcommand("salt", "Write a new random salt to share with another provider");
  salt->add_option("--out,-o", o->out, "File to create (mode 0600; never replaced)")->required();
  salt->callback([o] { std::exit(ExitCodeOf(NewSalt(*o))); });
}

}  // namespace moat::cli

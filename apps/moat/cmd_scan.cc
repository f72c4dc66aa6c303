// moat audit scan FILE.jsonl... | --store [PATH]
#include "cmd_scan.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli_common.h"
#include "forensics/log_reader.h"
#include "forensics/offline_scan.h"
#include "forensics/progress.h"
#include "forensics/scan_report.h"

namespace moat::cli {
namespace {

struct ScanOpts {
  std::vector<std::string> files;
  std::string store, config, out = "scan-report", format = "auto";
  size_t reorder_window = 4096;
  size_t top = 15;
  bool no_progress = false;
};

int RunScan(const ScanOpts& o, bool use_store) {
  if (o.files.empty() && !use_store) {
    return Fail(moat::InvalidArgumentError("give one or more JSONL files, or --store [PATH]"));
  }
  auto cfg = LoadConfigOrDefaults(o.config);
  if (!cfg.ok()) return Fail(cfg.status());
  forensics::FormatChoice choice = forensics::FormatChoice::kAuto;
  if (o.format == "audit") choice = forensics::FormatChoice::kAuditExport;
  if (o.format == "generic") choice = forensics::FormatChoice::kGeneric;

  std::vector<std::unique_ptr<forensics::LogSource>> sources;
  if (use_store) {
    const std::string db = o.store.empty() ? cfg->storage.audit_db : o.store;
    auto src = forensics::OpenAuditStoreSource(db);
    if (!src.ok()) return Fail(src.status());
    sources.push_back(std::move(*src));
  }
  for (const auto& f : o.files) {
    auto src = forensics::OpenJsonlSource(f, choice);
    if (!src.ok()) return Fail(src.status());
    sources.push_back(std::move(*src));
  }

  forensics::ScanOptions so;
  auto dc = DetectionConfigFrom(cfg->detection);
  if (!dc.ok()) return Fail(dc.status());
  so.detection = std::move(*dc);
  so.reorder_window = o.reorder_window;
  forensics::OfflineScanner scanner(so);
  forensics::ScanProgress progress(stderr, !o.no_progress && ::isatty(STDERR_FILENO) == 1);
  for (auto& src : sources) {
    auto st = scanner.AddSource(*src, [&](const forensics::LogSource& s) {
      progress.Update(scanner.records_read(), s.bytes_read(), s.bytes_total());
    });
    if (!st.ok()) return Fail(st);
  }
  forensics::ScanReport report = scanner.Finish();
  progress.Done(report.records_scanned, report.bad_lines);
  if (auto st = forensics::WriteReport(report, o.out); !st.ok()) return Fail(st);
  std::cout << forensics::SummaryText(report, o.top);
  std::cout << "\nreport: " << o.out << "/report.json, " << o.out << "/report.html\n";
  if (report.no_content > 0) {
    std::cout << "note: " << report.no_content
              << " records had no prompt text (hash-only/none retention); content features were "
                 "unavailable for them\n";
  }
  return 0;
}

}  // namespace

void AddScanCommand(CLI::App& audit_subcommand) {
  auto o = std::make_shared<ScanOpts>();
  auto* scan = audit_subcommand.add_subcommand(
      "scan", "Run the detection engine over historical request logs and write a report");
  scan->add_option("files", o->files,
                   "JSONL logs: `moat audit export` output or the generic "
                   "format (docs/offline-audit.md); - reads stdin");
  auto* store = scan->add_option("--store", o->store,
                                 "Read the audit database directly (default path: from the config)")
                    ->expected(0, 1);
  scan->add_option("--config,-c", o->config, "Config file (detection settings, audit db path)");
  scan->add_option("--out,-o", o->out, "Report directory (report.json, report.html)")
      ->capture_default_str();
  scan->add_option("--format", o->format, "Line format: auto, audit or generic")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "audit", "generic"}));
  scan->add_option("--reorder-window", o->reorder_window,
                   "Records buffered to sort out local disorder")
      ->capture_default_str();
  scan->add_option("--top", o->top, "Rows of the summary tables printed")->capture_default_str();
  scan->add_flag("--no-progress", o->no_progress, "No progress bar on stderr");
  scan->callback([o, store] { std::exit(RunScan(*o, store->count() > 0)); });
}

}  // namespace moat::cli

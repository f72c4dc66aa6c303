#pragma once
// Renderings of a ScanReport: JSON (report.json), a self-contained HTML page with inline SVG
// plots (report.html: campaigns by accounts and volume, score distributions, actions over
// time) and a plain-text summary table for the terminal.

#include <boost/json/object.hpp>
#include <string>

#include "forensics/offline_scan.h"
#include "moat/status.h"

namespace moat::forensics {

// Every counter, histogram, campaign and account row. `max_accounts` caps the account rows
// (highest scores first; 0 = all); the total is always reported.
boost::json::object ReportToJson(const ScanReport& report, size_t max_accounts = 0);
// A standalone page: no scripts, styles inline, no external URLs.
std::string ReportToHtml(const ScanReport& report, size_t max_accounts = 500);
// Totals, then the campaigns and the riskiest accounts as fixed-width tables.
std::string SummaryText(const ScanReport& report, size_t max_rows = 15);
// Creates `dir` and writes report.json and report.html; Internal on I/O errors.
Status WriteReport(const ScanReport& report, const std::string& dir);

// "2024-06-03T12:00:00Z" (UTC, seconds).
std::string FormatTime(int64_t ns);

}  // namespace moat::forensics

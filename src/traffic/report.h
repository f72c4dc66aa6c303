#pragma once
// Renders a benchmark Report: a plain-text table for the terminal, JSON for machines, and a
// self-contained HTML page (inline SVG plots, no external assets) for people.

#include <string>

#include "moat/status.h"
#include "traffic/scorer.h"

namespace moat::traffic {

std::string FormatTable(const Report& report);
std::string ReportToJson(const Report& report);
std::string ReportToHtml(const Report& report);
// Writes report.json and report.html into `dir` (created if needed).
Status WriteReportFiles(const Report& report, const std::string& dir);

}  // namespace moat::traffic

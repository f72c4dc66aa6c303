// Fuzzes the offline log readers (forensics/log_reader.h): every line of the input parsed as
// auto-detected, audit-export and generic JSONL, and the time formats on their own.
#include <boost/json.hpp>
#include <cstdint>
#include <string_view>

#include "forensics/log_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using moat::forensics::FormatChoice;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t start = 0;
  while (start <= in.size()) {
    size_t nl = in.find('\n', start);
    std::string_view line = in.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    for (FormatChoice choice : {FormatChoice::kAuto, FormatChoice::kAuditExport, FormatChoice::kGeneric}) {
      auto rec = moat::forensics::ParseLogLine(line, choice);
      if (rec.ok()) (void)rec->event.body_json.size();
    }
    (void)moat::forensics::ParseRfc3339(line);
    boost::json::error_code ec;
    boost::json::value v = boost::json::parse(line, ec);
    if (!ec) (void)moat::forensics::ParseTimeValue(v);
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return 0;
}

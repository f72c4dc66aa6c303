#include "forensics/log_reader.h"

#include <sys/stat.h>

#include <boost/json.hpp>
#include <cctype>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iostream>

#include "audit/admin_record.h"
#include "audit/record_reader.h"

namespace moat::forensics {
namespace json = boost::json;

namespace {

constexpr int64_t kNsPerSec = 1'000'000'000LL;
// Seconds from the epoch whose nanoseconds (plus a fraction) still fit int64 (~1677..2262).
constexpr int64_t kMaxEpochSeconds = INT64_MAX / kNsPerSec - 1;
// Nanoseconds as a double that still convert to int64 (just below 2^63).
constexpr double kMaxNsAsDouble = 9.2e18;

bool ParseDigits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::string_view Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return {};
  return v->get_string();
}

int64_t Int(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->get_uint64());
  if (v->is_double()) {
    // Out of range (or NaN) is refused as 0, never cast: the cast would be undefined.
    const double d = v->get_double();
    if (!(d > -9.2e18 && d < 9.2e18)) return 0;
    return static_cast<int64_t>(d);
  }
  return 0;
}

bool IsRole(std::string_view r) {
  return r == "system" || r == "user" || r == "assistant" || r == "tool" || r == "developer" ||
         r == "function";
}

bool LooksLikeSha256Hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) ||
        std::isupper(static_cast<unsigned char>(c)))
      return false;
  }
  return true;
}

// A chat body's messages from the gateway's "role: content" prompt text. A line that starts
// with a known role and ": " opens a message; any other line continues the previous one (a
// message's content may itself span lines).
json::array MessagesFromPromptText(std::string_view text) {
  json::array messages;
  std::string role, content;
  bool open = false;
  auto flush = [&] {
    if (open) messages.push_back(json::object{{"role", role}, {"content", content}});
  };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    size_t colon = line.find(": ");
    if (colon != std::string_view::npos && IsRole(line.substr(0, colon))) {
      flush();
      role = std::string(line.substr(0, colon));
      content = std::string(line.substr(colon + 2));
      open = true;
    } else if (open) {
      content += '\n';
      content += line;
    } else {
      role = "user";
      content = std::string(line);
      open = true;
    }
    pos = end + 1;
  }
  flush();
  return messages;
}

StatusOr<LogRecord> ParseAuditObject(const json::object& o) {
  AuditRecord r;
  const json::value* t = o.if_contains("time_ns");
  if (t == nullptr || !t->is_number()) return InvalidArgumentError("audit record without time_ns");
  r.seq = Int(o, "seq");
  r.time_ns = Int(o, "time_ns");
  r.request_id = std::string(Str(o, "request_id"));
  r.account_id = std::string(Str(o, "account_id"));
  r.end_user = std::string(Str(o, "end_user"));
  r.key_id = std::string(Str(o, "key_id"));
  r.client_ip = std::string(Str(o, "client_ip"));
  r.user_agent = std::string(Str(o, "user_agent"));
  r.endpoint = std::string(Str(o, "endpoint"));
  r.model = std::string(Str(o, "model"));
  r.params_json = std::string(Str(o, "params_json"));
  r.http_status = static_cast<int>(Int(o, "http_status"));
  r.action = std::string(Str(o, "action"));
  r.verdict = std::string(Str(o, "verdict"));
  r.retention = std::string(Str(o, "retention"));
  r.prompt_text = std::string(Str(o, "prompt_text"));
  return FromAuditRecord(r);
}

StatusOr<LogRecord> ParseGenericObject(const json::object& o) {
  LogRecord rec;
  rec.format = LogFormat::kGeneric;
  detect::RequestEvent& e = rec.event;
  const json::value* t = o.if_contains("time");
  if (t == nullptr) t = o.if_contains("t");  // the traffic benchmark's events.jsonl
  if (t == nullptr) return InvalidArgumentError("missing \"time\"");
  MOAT_ASSIGN_OR_RETURN(e.time_ns, ParseTimeValue(*t));
  e.account_id = std::string(Str(o, "account"));
  if (e.account_id.empty()) return InvalidArgumentError("missing or empty \"account\"");
  e.end_user = std::string(Str(o, "user"));
  e.client_ip = std::string(Str(o, "ip"));
  e.key_id = std::string(Str(o, "key"));
  e.user_agent = std::string(Str(o, "user_agent"));
  if (const json::value* h = o.if_contains("headers"); h != nullptr) {
    if (!h->is_object()) return InvalidArgumentError("\"headers\" is not an object");
    for (const auto& [k, v] : h->get_object()) {
      if (!v.is_string()) continue;
      std::string name(k);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (name == "user-agent") {
        if (e.user_agent.empty()) e.user_agent = std::string(v.get_string());
        continue;
      }
      e.headers.emplace_back(std::move(name), std::string(v.get_string()));
    }
  }
  e.endpoint = std::string(Str(o, "endpoint"));
  const json::value* body = o.if_contains("body");
  const json::value* prompt = o.if_contains("prompt");
  if (body != nullptr && body->is_string()) {
    boost::system::error_code ec;
    json::value parsed = json::parse(body->get_string(), ec);
    if (ec || !parsed.is_object())
      return InvalidArgumentError("\"body\" string is not a JSON object");
    e.body_json = std::string(body->get_string());
    if (e.endpoint.empty() && parsed.get_object().contains("prompt") &&
        !parsed.get_object().contains("messages"))
      e.endpoint = "/v1/completions";
  } else if (body != nullptr && body->is_object()) {
    e.body_json = json::serialize(*body);
    if (e.endpoint.empty() && body->get_object().contains("prompt") &&
        !body->get_object().contains("messages"))
      e.endpoint = "/v1/completions";
  } else if (body != nullptr && !body->is_null()) {
    return InvalidArgumentError("\"body\" is neither an object nor a JSON string");
  } else if (prompt != nullptr && prompt->is_string()) {
    if (e.endpoint.empty()) e.endpoint = "/v1/chat/completions";
    std::string_view model = Str(o, "model");
    json::object b;
    if (!model.empty()) b["model"] = model;
    if (e.endpoint == "/v1/completions") {
      b["prompt"] = prompt->get_string();
    } else {
      b["messages"] =
          json::array{json::object{{"role", "user"}, {"content", prompt->get_string()}}};
    }
    e.body_json = json::serialize(b);
  } else {
    rec.has_content = false;
    json::object b;
    if (std::string_view model = Str(o, "model"); !model.empty()) b["model"] = model;
    e.body_json = json::serialize(b);
  }
  if (e.endpoint.empty()) e.endpoint = "/v1/chat/completions";
  return rec;
}

class JsonlSource final : public LogSource {
 public:
  JsonlSource(std::string path, std::unique_ptr<std::ifstream> file, uint64_t total,
              FormatChoice choice)
      : path_(std::move(path)), file_(std::move(file)), total_(total), choice_(choice) {}

  StatusOr<bool> Next(LogRecord* out, uint64_t* bad_line) override {
    std::istream& in = file_ ? static_cast<std::istream&>(*file_) : std::cin;
    while (std::getline(in, line_)) {
      ++line_no_;
      bytes_ += line_.size() + 1;
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      if (line_.find_first_not_of(" \t") == std::string::npos) continue;
      auto rec = ParseLogLine(line_, choice_);
      if (!rec.ok()) {
        *bad_line = line_no_;
        return InvalidArgumentError("line " + std::to_string(line_no_) + ": " +
                                    rec.status().message());
      }
      *out = std::move(*rec);
      out->line = line_no_;
      return true;
    }
    if (in.bad()) return InternalError("reading " + path_ + " failed");
    return false;
  }
  uint64_t bytes_read() const override { return bytes_; }
  uint64_t bytes_total() const override { return total_; }
  std::string name() const override { return path_; }

 private:
  std::string path_;
  std::unique_ptr<std::ifstream> file_;  // null: stdin
  uint64_t total_;
  FormatChoice choice_;
  std::string line_;
  uint64_t line_no_ = 0, bytes_ = 0;
};

class StoreSource final : public LogSource {
 public:
  StoreSource(std::string path, audit::AuditRecordReader reader, uint64_t total_rows)
      : path_(std::move(path)), reader_(std::move(reader)), total_(total_rows) {}

  StatusOr<bool> Next(LogRecord* out, uint64_t* /*bad_line*/) override {
    AuditRecord r;
    MOAT_ASSIGN_OR_RETURN(bool more, reader_.Next(&r));
    if (!more) return false;
    *out = FromAuditRecord(r);
    out->line = static_cast<uint64_t>(r.seq);
    ++read_;
    return true;
  }
  // Progress in rows rather than bytes.
  uint64_t bytes_read() const override { return read_; }
  uint64_t bytes_total() const override { return total_; }
  std::string name() const override { return path_; }

 private:
  std::string path_;
  audit::AuditRecordReader reader_;
  uint64_t total_;
  uint64_t read_ = 0;
};

}  // namespace

StatusOr<int64_t> ParseRfc3339(std::string_view s) {
  int y, mo, d, h, mi, sec;
  auto bad = [&] {
    return InvalidArgumentError("not an RFC 3339 time: \"" + std::string(s) + "\"");
  };
  if (s.size() < 19 || !ParseDigits(s, 0, 4, &y) || s[4] != '-' || !ParseDigits(s, 5, 2, &mo) ||
      s[7] != '-' || !ParseDigits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !ParseDigits(s, 11, 2, &h) || s[13] != ':' || !ParseDigits(s, 14, 2, &mi) || s[16] != ':' ||
      !ParseDigits(s, 17, 2, &sec))
    return bad();
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return bad();
  size_t pos = 19;
  int64_t frac_ns = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t scale = 100'000'000;
    size_t digits = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      frac_ns += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
      ++digits;
    }
    if (digits == 0) return bad();
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!ParseDigits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !ParseDigits(s, pos + 4, 2, &om) || oh > 23 || om > 59)
      return bad();
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return bad();  // RFC 3339 requires an offset
  }
  if (pos != s.size()) return bad();
  const int64_t secs = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
  // Nanoseconds since the epoch fit int64 only from 1677 to 2262.
  if (secs < -kMaxEpochSeconds || secs > kMaxEpochSeconds) {
    return InvalidArgumentError("timestamp out of range (1677..2262): " + std::string(s));
  }
  return secs * kNsPerSec + frac_ns;
}

StatusOr<int64_t> ParseTimeValue(const json::value& v) {
  double x;
  if (v.is_int64() || v.is_uint64()) {
    const int64_t i = v.is_int64() ? v.get_int64() : static_cast<int64_t>(v.get_uint64());
    if (i < 0) return InvalidArgumentError("negative \"time\"");
    int64_t scale = kNsPerSec;                                   // s
    if (i >= 100'000'000'000'000'000LL) scale = 1;               // ns
    else if (i >= 100'000'000'000'000LL) scale = 1000;           // us
    else if (i >= 100'000'000'000LL) scale = 1'000'000;          // ms
    int64_t ns = 0;
    if (__builtin_mul_overflow(i, scale, &ns)) return InvalidArgumentError("\"time\" out of range");
    return ns;
  }
  if (v.is_double()) {
    x = v.get_double();
    if (!std::isfinite(x) || x < 0) return InvalidArgumentError("bad numeric \"time\"");
    double ns = x * 1e9;
    if (x >= 1e17) ns = x;
    else if (x >= 1e14) ns = x * 1e3;
    else if (x >= 1e11) ns = x * 1e6;
    // The largest double below 2^63: converting anything larger to int64 is undefined.
    if (!(ns < kMaxNsAsDouble)) return InvalidArgumentError("\"time\" out of range");
    return static_cast<int64_t>(std::llround(ns));
  }
  if (v.is_string()) {
    std::string_view s = v.get_string();
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos &&
        s.size() < 19) {
      return ParseTimeValue(json::value(static_cast<int64_t>(std::stoll(std::string(s)))));
    }
    return ParseRfc3339(s);
  }
  return InvalidArgumentError("\"time\" must be a number or an RFC 3339 string");
}

std::string RebuildBody(std::string_view endpoint, std::string_view model,
                        std::string_view params_json, std::string_view prompt_text,
                        bool has_content) {
  json::object body;
  if (!model.empty()) body["model"] = model;
  if (!params_json.empty()) {
    boost::system::error_code ec;
    json::value params = json::parse(params_json, ec);
    if (!ec && params.is_object()) {
      for (const auto& [k, v] : params.get_object()) {
        // Counts the gateway stores instead of the values; they are not request fields.
        if (k == "logit_bias_entries" || k == "tools") continue;
        body[k] = v;
      }
    }
  }
  if (has_content) {
    if (endpoint == "/v1/completions") {
      body["prompt"] = prompt_text;
    } else {
      body["messages"] = MessagesFromPromptText(prompt_text);
    }
  }
  return json::serialize(body);
}

bool AuditRecordHasContent(const AuditRecord& r) {
  if (r.prompt_text.empty()) return false;
  if (r.retention == "hash-only" || r.retention == "none") return false;
  if (r.retention.empty() && LooksLikeSha256Hex(r.prompt_text)) return false;
  return true;
}

LogRecord FromAuditRecord(const AuditRecord& r) {
  LogRecord rec;
  rec.format = LogFormat::kAuditExport;
  rec.has_content = AuditRecordHasContent(r);
  rec.logged_action = r.action;
  rec.line = static_cast<uint64_t>(r.seq);
  detect::RequestEvent& e = rec.event;
  e.time_ns = r.time_ns;
  // An admin record (a key created, a tier changed) names an account but is no request of it:
  // it is skipped like a request without an account.
  e.account_id = audit::IsAdminRecord(r) ? std::string() : r.account_id;
  e.key_id = r.key_id;
  e.end_user = r.end_user;
  e.client_ip = r.client_ip;
  e.user_agent = r.user_agent;
  e.endpoint = r.endpoint.empty() ? "/v1/chat/completions" : r.endpoint;
  e.body_json = RebuildBody(e.endpoint, r.model, r.params_json, r.prompt_text, rec.has_content);
  return rec;
}

StatusOr<LogRecord> ParseLogLine(std::string_view line, FormatChoice choice) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec) return InvalidArgumentError("not valid JSON (" + ec.message() + ")");
  if (!v.is_object()) return InvalidArgumentError("not a JSON object");
  const json::object& o = v.get_object();
  bool audit = false;
  switch (choice) {
    case FormatChoice::kAuditExport:
      audit = true;
      break;
    case FormatChoice::kGeneric:
      audit = false;
      break;
    case FormatChoice::kAuto:
      audit = o.contains("time_ns") || o.contains("account_id") || o.contains("record_hash");
      if (!audit && !o.contains("account") && !o.contains("time") && !o.contains("t"))
        return InvalidArgumentError("neither an audit export record nor a generic log record");
      break;
  }
  return audit ? ParseAuditObject(o) : ParseGenericObject(o);
}

StatusOr<std::unique_ptr<LogSource>> OpenJsonlSource(const std::string& path, FormatChoice choice) {
  if (path == "-") return std::unique_ptr<LogSource>(new JsonlSource("-", nullptr, 0, choice));
  auto file = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*file) return NotFoundError("cannot open " + path);
  struct stat st {};
  uint64_t total = 0;
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode))
    total = static_cast<uint64_t>(st.st_size);
  return std::unique_ptr<LogSource>(new JsonlSource(path, std::move(file), total, choice));
}

StatusOr<std::unique_ptr<LogSource>> OpenAuditStoreSource(const std::string& db_path) {
  MOAT_ASSIGN_OR_RETURN(audit::AuditRecordReader reader, audit::AuditRecordReader::Open(db_path));
  MOAT_ASSIGN_OR_RETURN(int64_t total, reader.CountRecords());
  return std::unique_ptr<LogSource>(
      new StoreSource(db_path, std::move(reader), static_cast<uint64_t>(total)));
}

}  // namespace moat::forensics

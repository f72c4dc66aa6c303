#include "indicators/stix.h"

#include <sodium.h>

#include <cctype>
#include <cstdio>
#include <ctime>

#include <boost/json.hpp>

namespace moat::indicators {
namespace json = boost::json;
namespace {

std::string NewId(std::string_view type) {
  unsigned char b[16];
  randombytes_buf(b, sizeof(b));
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char s[37];
  std::snprintf(s, sizeof(s), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return std::string(type) + "--" + s;
}

json::object Common(std::string_view type, const std::string& id, const std::string& created) {
  return json::object{{"type", type}, {"spec_version", "2.1"}, {"id", id}, {"created", created}, {"modified", created}};
}

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// "<type>--<uuid>" with a lower-case type of letters, digits and hyphens, and an RFC 4122 UUID.
bool ValidId(std::string_view id, std::string_view expected_type) {
  const size_t sep = id.find("--");
  if (sep == std::string_view::npos || sep == 0) return false;
  const std::string_view type = id.substr(0, sep), uuid = id.substr(sep + 2);
  if (!expected_type.empty() && type != expected_type) return false;
  for (char c : type) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  if (uuid.size() != 36) return false;
  for (size_t i = 0; i < uuid.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? uuid[i] != '-' : !IsHex(uuid[i])) return false;
  }
  const char version = uuid[14], variant = static_cast<char>(std::tolower(uuid[19]));
  return version >= '1' && version <= '8' && (variant == '8' || variant == '9' || variant == 'a' || variant == 'b');
}

// ---- pattern parser ------------------------------------------------------------------------

class PatternParser {
 public:
  explicit PatternParser(std::string_view s) : s_(s) {}

  Status Parse(std::vector<PatternComparison>* out) {
    out_ = out;
    MOAT_RETURN_IF_ERROR(ObservationSequence());
    Skip();
    if (pos_ != s_.size()) return Error("unexpected text");
    return Status();
  }

 private:
  Status Error(std::string_view what) const {
    return InvalidArgumentError("pattern: " + std::string(what) + " at offset " + std::to_string(pos_));
  }
  void Skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool Keyword(std::string_view k) {
    Skip();
    if (s_.substr(pos_, k.size()) != k) return false;
    const size_t end = pos_ + k.size();
    if (end < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[end])) || s_[end] == '_')) return false;
    pos_ = end;
    return true;
  }
  bool Punct(char c) {
    Skip();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  Status ObservationSequence() {
    MOAT_RETURN_IF_ERROR(Observation());
    while (Keyword("AND") || Keyword("OR") || Keyword("FOLLOWEDBY")) MOAT_RETURN_IF_ERROR(Observation());
    return Status();
  }
  Status Observation() {
    if (Punct('(')) {
      MOAT_RETURN_IF_ERROR(ObservationSequence());
      if (!Punct(')')) return Error("missing ')'");
    } else {
      if (!Punct('[')) return Error("expected '['");
      MOAT_RETURN_IF_ERROR(ComparisonExpression());
      if (!Punct(']')) return Error("missing ']'");
    }
    return Qualifiers();
  }
  Status Qualifiers() {
    for (;;) {
      if (Keyword("WITHIN")) {
        MOAT_RETURN_IF_ERROR(Number());
        if (!Keyword("SECONDS")) return Error("expected SECONDS");
      } else if (Keyword("REPEATS")) {
        MOAT_RETURN_IF_ERROR(Number());
        if (!Keyword("TIMES")) return Error("expected TIMES");
      } else if (Keyword("START")) {
        std::string v;
        MOAT_RETURN_IF_ERROR(Literal(&v));
        if (!Keyword("STOP")) return Error("expected STOP");
        MOAT_RETURN_IF_ERROR(Literal(&v));
      } else {
        return Status();
      }
    }
  }
  Status ComparisonExpression() {
    MOAT_RETURN_IF_ERROR(Comparison());
    while (Keyword("AND") || Keyword("OR")) MOAT_RETURN_IF_ERROR(Comparison());
    return Status();
  }
  Status Comparison() {
    if (Punct('(')) {
      MOAT_RETURN_IF_ERROR(ComparisonExpression());
      if (!Punct(')')) return Error("missing ')'");
      return Status();
    }
    PatternComparison c;
    Skip();
    const size_t type_start = pos_;
    while (pos_ < s_.size() && (std::islower(static_cast<unsigned char>(s_[pos_])) ||
                                std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '-')) {
      ++pos_;
    }
    c.object_type = std::string(s_.substr(type_start, pos_ - type_start));
    if (c.object_type.empty() || pos_ >= s_.size() || s_[pos_] != ':') return Error("expected an object type and ':'");
    ++pos_;
    // A property path: name ( '.' name | '[' digits or '*' ']' )*
    const size_t prop_start = pos_;
    auto name = [&] {
      if (pos_ < s_.size() && s_[pos_] == '\'') {  // a quoted component: hashes.'SHA-256'
        const size_t close = s_.find('\'', pos_ + 1);
        if (close == std::string_view::npos || close == pos_ + 1) return false;
        pos_ = close + 1;
        return true;
      }
      const size_t start = pos_;
      while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_' || s_[pos_] == '-')) ++pos_;
      return pos_ > start;
    };
    if (!name()) return Error("expected a property name");
    for (;;) {
      if (pos_ < s_.size() && s_[pos_] == '.') {
        ++pos_;
        if (!name()) return Error("expected a property name after '.'");
      } else if (pos_ + 2 < s_.size() && s_[pos_] == '[' &&
                 (s_[pos_ + 1] == '*' || std::isdigit(static_cast<unsigned char>(s_[pos_ + 1])))) {
        ++pos_;
        while (pos_ < s_.size() && (s_[pos_] == '*' || std::isdigit(static_cast<unsigned char>(s_[pos_])))) ++pos_;
        if (pos_ >= s_.size() || s_[pos_] != ']') return Error("expected ']' after a list index");
        ++pos_;
      } else {
        break;
      }
    }
    c.property = std::string(s_.substr(prop_start, pos_ - prop_start));
    Keyword("NOT");
    Skip();
    static constexpr std::string_view kOps[] = {"!=", "<=", ">=", "=", "<", ">"};
    for (std::string_view op : kOps) {
      if (s_.substr(pos_, op.size()) == op) {
        c.op = std::string(op);
        pos_ += op.size();
        break;
      }
    }
    if (c.op.empty()) {
      for (std::string_view op : {"ISSUBSET", "ISSUPERSET", "MATCHES", "LIKE", "IN"}) {
        if (Keyword(op)) {
          c.op = std::string(op);
          break;
        }
      }
    }
    if (c.op.empty()) return Error("expected a comparison operator");
    if (c.op == "IN") {
      if (!Punct('(')) return Error("expected '(' after IN");
      do {
        std::string v;
        MOAT_RETURN_IF_ERROR(Literal(&v));
      } while (Punct(','));
      if (!Punct(')')) return Error("missing ')' after IN list");
    } else {
      MOAT_RETURN_IF_ERROR(Literal(&c.value));
    }
    out_->push_back(std::move(c));
    return Status();
  }
  Status Number() {
    Skip();
    const size_t start = pos_;
    while (pos_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.' ||
                                s_[pos_] == '-' || s_[pos_] == '+')) {
      ++pos_;
    }
    return pos_ > start ? Status() : Error("expected a number");
  }
  // A string ('...' with \' and \\ escapes), a prefixed string (t'..', h'..', b'..'), a number
  // or a boolean. Only strings fill `value`.
  Status Literal(std::string* value) {
    Skip();
    if (pos_ >= s_.size()) return Error("expected a literal");
    const bool prefixed = (s_[pos_] == 't' || s_[pos_] == 'h' || s_[pos_] == 'b') && pos_ + 1 < s_.size() &&
                          s_[pos_ + 1] == '\'';
    if (prefixed || s_[pos_] == '\'') {
      if (prefixed) ++pos_;
      ++pos_;
      std::string v;
      while (pos_ < s_.size() && s_[pos_] != '\'') {
        if (s_[pos_] == '\\') {
          if (pos_ + 1 >= s_.size() || (s_[pos_ + 1] != '\'' && s_[pos_ + 1] != '\\')) return Error("bad escape");
          ++pos_;
        }
        v.push_back(s_[pos_++]);
      }
      if (pos_ >= s_.size()) return Error("unterminated string");
      ++pos_;
      if (!prefixed) *value = std::move(v);
      return Status();
    }
    if (Keyword("true") || Keyword("false")) return Status();
    return Number();
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::vector<PatternComparison>* out_ = nullptr;
};

// ---- validation helpers --------------------------------------------------------------------

Status Fail(size_t index, const json::object& o, std::string_view rule) {
  std::string who = "object " + std::to_string(index);
  if (auto* id = o.if_contains("id"); id && id->is_string()) who += " (" + std::string(id->as_string()) + ")";
  return InvalidArgumentError("STIX bundle: " + who + ": " + std::string(rule));
}

const json::string* StringField(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? &v->as_string() : nullptr;
}

}  // namespace

std::string StixTimestamp(int64_t ns) {
  const std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000LL);
  const int ms = static_cast<int>((ns / 1'000'000LL) % 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

StatusOr<int64_t> ParseStixTimestamp(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fraction]Z
  auto bad = [&] { return InvalidArgumentError("not a STIX timestamp (YYYY-MM-DDTHH:MM:SS[.s]Z): '" + std::string(s) + "'"); };
  if (s.size() < 20 || s.back() != 'Z') return bad();
  auto digits = [&](size_t at, size_t n, int* v) {
    *v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      *v = *v * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, se;
  if (!digits(0, 4, &y) || s[4] != '-' || !digits(5, 2, &mo) || s[7] != '-' || !digits(8, 2, &d) || s[10] != 'T' ||
      !digits(11, 2, &h) || s[13] != ':' || !digits(14, 2, &mi) || s[16] != ':' || !digits(17, 2, &se)) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return bad();
  int64_t frac_ns = 0;
  size_t pos = 19;
  if (s[pos] == '.') {
    ++pos;
    int64_t scale = 100'000'000;
    const size_t start = pos;
    while (pos < s.size() - 1) {
      if (!std::isdigit(static_cast<unsigned char>(s[pos]))) return bad();
      frac_ns += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return bad();
  }
  if (pos != s.size() - 1) return bad();
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  const std::time_t t = timegm(&tm);
  return static_cast<int64_t>(t) * 1'000'000'000LL + frac_ns;
}

std::string PatternOf(const IndicatorRecord& r) {
  switch (r.kind) {
    case IndicatorKind::kNetworkPrefix: {
      const bool v6 = r.value.find(':') != std::string::npos;
      return std::string("[") + (v6 ? "ipv6-addr" : "ipv4-addr") + ":value ISSUBSET '" + r.value + "']";
    }
    case IndicatorKind::kClientFingerprint: return "[x-moat-request:client_fingerprint = '" + r.value + "']";
    case IndicatorKind::kTemplatePrefix: return "[x-moat-request:template_prefix = '" + r.value + "']";
    case IndicatorKind::kTemplateSuffix: return "[x-moat-request:template_suffix = '" + r.value + "']";
    case IndicatorKind::kWorkQueueItem: return "[x-moat-request:item_sketch = '" + r.value + "']";
    case IndicatorKind::kCount: break;
  }
  return "";
}

std::string BuildBundle(const std::vector<IndicatorRecord>& records, const BundleInfo& info) {
  const std::string created = StixTimestamp(info.created_ns);
  json::array objects;
  const std::string identity_id = NewId("identity");
  json::object identity = Common("identity", identity_id, created);
  identity["name"] = info.provider;
  identity["identity_class"] = "organization";
  objects.push_back(std::move(identity));

  const std::string campaign_id = NewId("campaign");
  json::object campaign = Common("campaign", campaign_id, created);
  campaign["created_by_ref"] = identity_id;
  campaign["name"] = info.campaign_name;
  campaign["description"] =
      "Accounts this provider restricted as a suspected distillation campaign; the indicators are "
      "the keys their requests shared.";
  if (info.first_seen_ns > 0) campaign["first_seen"] = StixTimestamp(info.first_seen_ns);
  if (info.last_seen_ns > 0) campaign["last_seen"] = StixTimestamp(info.last_seen_ns);
  objects.push_back(std::move(campaign));

  for (const IndicatorRecord& r : records) {
    const std::string id = NewId("indicator");
    json::object ind = Common("indicator", id, created);
    ind["created_by_ref"] = identity_id;
    ind["name"] = std::string(KindName(r.kind)) + " shared by " + std::to_string(r.subjects) + " restricted accounts";
    ind["indicator_types"] = json::array{"malicious-activity"};
    ind["pattern"] = PatternOf(r);
    ind["pattern_type"] = "stix";
    ind["pattern_version"] = "2.1";
    ind["valid_from"] = StixTimestamp(info.valid_from_ns);
    ind["valid_until"] = StixTimestamp(info.valid_until_ns);
    ind["confidence"] = r.confidence;
    ind["x_moat_kind"] = KindName(r.kind);
    ind["x_moat_subjects"] = r.subjects;
    ind["x_moat_all_subjects"] = r.all_subjects;
    if (r.kind != IndicatorKind::kNetworkPrefix) ind["x_moat_salt_id"] = info.salt_id;
    if (r.kind == IndicatorKind::kWorkQueueItem) ind["x_moat_min_band_matches"] = detect::kCorpusMinBandMatches;
    objects.push_back(std::move(ind));

    json::object rel = Common("relationship", NewId("relationship"), created);
    rel["created_by_ref"] = identity_id;
    rel["relationship_type"] = "indicates";
    rel["source_ref"] = id;
    rel["target_ref"] = campaign_id;
    objects.push_back(std::move(rel));
  }
  json::object bundle{{"type", "bundle"}, {"id", NewId("bundle")}, {"objects", std::move(objects)}};
  return json::serialize(bundle);
}

StatusOr<std::vector<PatternComparison>> ParsePattern(std::string_view pattern) {
  std::vector<PatternComparison> out;
  PatternParser p(pattern);
  MOAT_RETURN_IF_ERROR(p.Parse(&out));
  return out;
}

Status ValidateBundle(const json::value& bundle) {
  if (!bundle.is_object()) return InvalidArgumentError("STIX bundle: not a JSON object");
  const json::object& b = bundle.as_object();
  const json::string* type = StringField(b, "type");
  if (!type || *type != "bundle") return InvalidArgumentError("STIX bundle: type must be \"bundle\"");
  const json::string* id = StringField(b, "id");
  if (!id || !ValidId(*id, "bundle")) return InvalidArgumentError("STIX bundle: id must be bundle--<UUID>");
  auto* objects = b.if_contains("objects");
  if (objects == nullptr) return Status();  // an empty bundle may omit objects
  if (!objects->is_array()) return InvalidArgumentError("STIX bundle: objects must be an array");
  size_t index = 0;
  for (const json::value& v : objects->as_array()) {
    if (!v.is_object()) return InvalidArgumentError("STIX bundle: object " + std::to_string(index) + " is not an object");
    const json::object& o = v.as_object();
    const json::string* t = StringField(o, "type");
    if (!t || t->empty() || t->size() > 250) return Fail(index, o, "type is required (3-250 characters)");
    const json::string* oid = StringField(o, "id");
    if (!oid || !ValidId(*oid, *t)) return Fail(index, o, "id must be <type>--<RFC 4122 UUID>");
    const json::string* spec = StringField(o, "spec_version");
    const bool is_sco = *t == "ipv4-addr" || *t == "ipv6-addr" || *t == "domain-name" || *t == "url" ||
                        *t == "x-moat-request";
    if (!is_sco && (!spec || *spec != "2.1")) return Fail(index, o, "spec_version must be \"2.1\"");
    if (!is_sco && *t != "marking-definition") {
      const json::string* created = StringField(o, "created");
      const json::string* modified = StringField(o, "modified");
      if (!created || !modified) return Fail(index, o, "created and modified are required");
      auto c = ParseStixTimestamp(*created);
      auto m = ParseStixTimestamp(*modified);
      if (!c.ok() || !m.ok()) return Fail(index, o, "created/modified must be RFC 3339 UTC timestamps ending in Z");
      if (*m < *c) return Fail(index, o, "modified must not be before created");
    }
    if (auto* by = StringField(o, "created_by_ref"); by && !ValidId(*by, "identity")) {
      return Fail(index, o, "created_by_ref must be an identity id");
    }
    if (*t == "indicator") {
      const json::string* pattern = StringField(o, "pattern");
      const json::string* pattern_type = StringField(o, "pattern_type");
      const json::string* valid_from = StringField(o, "valid_from");
      if (!pattern || !pattern_type || !valid_from) return Fail(index, o, "indicator needs pattern, pattern_type and valid_from");
      auto from = ParseStixTimestamp(*valid_from);
      if (!from.ok()) return Fail(index, o, "valid_from must be a timestamp");
      if (const json::string* until = StringField(o, "valid_until")) {
        auto u = ParseStixTimestamp(*until);
        if (!u.ok()) return Fail(index, o, "valid_until must be a timestamp");
        if (*u <= *from) return Fail(index, o, "valid_until must be after valid_from");
      }
      if (*pattern_type == "stix") {
        if (auto p = ParsePattern(*pattern); !p.ok()) return Fail(index, o, p.status().message());
      }
    }
    if (auto* conf = o.if_contains("confidence")) {
      if (!conf->is_int64() && !conf->is_uint64()) return Fail(index, o, "confidence must be an integer");
      const int64_t c = conf->is_int64() ? conf->as_int64() : static_cast<int64_t>(conf->as_uint64());
      if (c < 0 || c > 100) return Fail(index, o, "confidence must be in 0-100");
    }
    if (*t == "campaign" || *t == "identity") {
      const json::string* name = StringField(o, "name");
      if (!name || name->empty()) return Fail(index, o, "name is required");
    }
    if (*t == "relationship") {
      const json::string* rt = StringField(o, "relationship_type");
      const json::string* src = StringField(o, "source_ref");
      const json::string* dst = StringField(o, "target_ref");
      if (!rt || rt->empty() || !src || !dst) return Fail(index, o, "relationship needs relationship_type, source_ref, target_ref");
      if (!ValidId(*src, "") || !ValidId(*dst, "")) return Fail(index, o, "source_ref/target_ref must be ids");
    }
    ++index;
  }
  return Status();
}

}  // namespace moat::indicators

#include "traffic/event_io.h"

#include <zlib.h>

#include <boost/json.hpp>
#include <filesystem>

namespace moat::traffic {
namespace json = boost::json;

namespace {
std::string_view Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return {};
  return {v->get_string().data(), v->get_string().size()};
}
void AppendQuoted(std::string& out, std::string_view s) { out += json::serialize(json::string(s)); }
}  // namespace

std::string EventToJson(const detect::RequestEvent& e) {
  std::string out;
  out.reserve(e.body_json.size() + 256);
  out += "{\"t\":";
  out += std::to_string(e.time_ns);
  out += ",\"account\":";
  AppendQuoted(out, e.account_id);
  out += ",\"key\":";
  AppendQuoted(out, e.key_id);
  out += ",\"ip\":";
  AppendQuoted(out, e.client_ip);
  out += ",\"user\":";
  AppendQuoted(out, e.end_user);
  if (!e.tier.empty()) {
    out += ",\"tier\":";
    AppendQuoted(out, e.tier);
  }
  out += ",\"headers\":{";
  bool first = true;
  bool has_agent = false;
  for (const auto& [k, v] : e.headers) {
    if (!first) out += ',';
    first = false;
    AppendQuoted(out, k);
    out += ':';
    AppendQuoted(out, v);
    has_agent |= k == "user-agent";
  }
  if (!has_agent && !e.user_agent.empty()) {
    if (!first) out += ',';
    out += "\"user-agent\":";
    AppendQuoted(out, e.user_agent);
  }
  out += "},\"endpoint\":";
  AppendQuoted(out, e.endpoint);
  out += ",\"body\":";
  out += e.body_json.empty() ? "null" : e.body_json;
  out += '}';
  return out;
}

StatusOr<detect::RequestEvent> EventFromJson(std::string_view line) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) return InvalidArgumentError("event line is not a JSON object");
  const json::object& o = v.get_object();
  detect::RequestEvent e;
  const json::value* t = o.if_contains("t");
  if (t == nullptr || !t->is_int64()) return InvalidArgumentError("event lacks integer \"t\"");
  e.time_ns = t->get_int64();
  e.account_id = Str(o, "account");
  e.key_id = Str(o, "key");
  e.client_ip = Str(o, "ip");
  e.end_user = Str(o, "user");
  e.tier = Str(o, "tier");
  e.endpoint = Str(o, "endpoint");
  if (const json::value* h = o.if_contains("headers"); h && h->is_object()) {
    for (const auto& [k, hv] : h->get_object()) {
      if (!hv.is_string()) continue;
      e.headers.emplace_back(std::string(k), std::string(hv.get_string()));
      if (k == "user-agent") e.user_agent = hv.get_string();
    }
  }
  if (const json::value* b = o.if_contains("body"); b && !b->is_null()) e.body_json = json::serialize(*b);
  if (e.account_id.empty()) return InvalidArgumentError("event lacks \"account\"");
  return e;
}

std::string LabelToJson(const SubjectLabel& l) {
  json::object o;
  o["account"] = l.account;
  o["user"] = l.end_user;
  o["kind"] = l.campaign ? "campaign" : "organic";
  o["variant"] = l.variant;
  o["campaign_id"] = l.campaign_id;
  o["persona"] = l.persona;
  o["created_t"] = l.created_ns;
  if (!l.tier.empty()) o["tier"] = l.tier;
  return json::serialize(o);
}

StatusOr<SubjectLabel> LabelFromJson(std::string_view line) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) return InvalidArgumentError("label line is not a JSON object");
  const json::object& o = v.get_object();
  SubjectLabel l;
  l.account = Str(o, "account");
  l.end_user = Str(o, "user");
  std::string_view kind = Str(o, "kind");
  if (l.account.empty() || (kind != "campaign" && kind != "organic")) {
    return InvalidArgumentError("label needs account and kind organic|campaign");
  }
  l.campaign = kind == "campaign";
  l.variant = Str(o, "variant");
  l.campaign_id = Str(o, "campaign_id");
  l.persona = Str(o, "persona");
  if (const json::value* c = o.if_contains("created_t"); c && c->is_int64()) l.created_ns = c->get_int64();
  l.tier = Str(o, "tier");
  return l;
}

JsonlTrafficWriter::JsonlTrafficWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  events_ = std::fopen((dir + "/events.jsonl").c_str(), "wb");
  labels_ = std::fopen((dir + "/labels.jsonl").c_str(), "wb");
  if (events_ == nullptr || labels_ == nullptr) {
    status_ = InternalError("cannot create events.jsonl / labels.jsonl in " + dir);
  }
}

JsonlTrafficWriter::~JsonlTrafficWriter() { (void)Close(); }

void JsonlTrafficWriter::OnLabel(const SubjectLabel& label) {
  if (labels_ == nullptr) return;
  line_ = LabelToJson(label);
  line_ += '\n';
  if (std::fwrite(line_.data(), 1, line_.size(), labels_) != line_.size() && status_.ok()) {
    status_ = InternalError("write to labels.jsonl failed");
  }
}

void JsonlTrafficWriter::OnEvent(const detect::RequestEvent& event) {
  if (events_ == nullptr) return;
  line_ = EventToJson(event);
  line_ += '\n';
  if (std::fwrite(line_.data(), 1, line_.size(), events_) != line_.size() && status_.ok()) {
    status_ = InternalError("write to events.jsonl failed");
  }
}

Status JsonlTrafficWriter::Close() {
  for (std::FILE** f : {&events_, &labels_}) {
    if (*f != nullptr) {
      if (std::fclose(*f) != 0 && status_.ok()) status_ = InternalError("close failed");
      *f = nullptr;
    }
  }
  return status_;
}

Status ForEachLineImpl(const std::string& path, void* ctx,
                       Status (*fn)(void*, std::string_view)) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return NotFoundError("cannot open " + path);
  gzbuffer(file, 1 << 17);
  std::string pending;
  char buf[1 << 16];
  Status status;
  while (status.ok()) {
    int n = gzread(file, buf, sizeof(buf));
    if (n < 0) {
      status = DataLossError("read error in " + path);
      break;
    }
    if (n == 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; status.ok() && (nl = pending.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      if (nl > start) status = fn(ctx, std::string_view(pending).substr(start, nl - start));
    }
    pending.erase(0, start);
  }
  if (status.ok() && !pending.empty()) status = fn(ctx, pending);
  gzclose(file);
  return status;
}

}  // namespace moat::traffic

#include "server/sse_relay.h"

#include <boost/json.hpp>

namespace moat::server {

namespace json = boost::json;

void TakeUsageAndText(const json::object& o, RequestContext& ctx, int64_t* content_events) {
  if (const auto* u = o.if_contains("usage"); u && u->is_object()) {
    const auto& uo = u->as_object();
    auto num = [&](const char* k) -> int64_t {
      const auto* v = uo.if_contains(k);
      if (!v) return -1;
      if (v->is_int64()) return v->as_int64();
      if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
      return -1;
    };
    int64_t p = num("prompt_tokens"), c = num("completion_tokens");
    if (p >= 0 && c >= 0) {
      ctx.prompt_tokens = p;
      ctx.completion_tokens = c;
      ctx.usage_from_upstream = true;
    }
  }
  const auto* choices = o.if_contains("choices");
  if (!choices || !choices->is_array()) return;
  for (const auto& ch : choices->as_array()) {
    if (!ch.is_object()) continue;
    const auto& co = ch.as_object();
    const json::value* text = nullptr;
    if (const auto* d = co.if_contains("delta"); d && d->is_object()) text = d->as_object().if_contains("content");
    if (const auto* m = co.if_contains("message"); m && m->is_object()) text = m->as_object().if_contains("content");
    if (!text) text = co.if_contains("text");
    if (text && text->is_string() && !text->as_string().empty()) {
      ctx.completion_text.append(text->as_string().data(), text->as_string().size());
      if (content_events) ++*content_events;
    }
  }
}

bool StripReasoning(json::object& o) {
  bool removed = false;
  auto* choices = o.if_contains("choices");
  if (!choices || !choices->is_array()) return false;
  for (auto& ch : choices->as_array()) {
    if (!ch.is_object()) continue;
    for (const char* part : {"delta", "message"}) {
      auto* p = ch.as_object().if_contains(part);
      if (!p || !p->is_object()) continue;
      removed |= p->as_object().erase("reasoning_content") > 0;
      removed |= p->as_object().erase("reasoning") > 0;
    }
  }
  return removed;
}

SseRelay::SseRelay(RequestContext& ctx, bool client_wants_usage, size_t max_event_bytes)
    : ctx_(ctx), client_wants_usage_(client_wants_usage), max_event_bytes_(max_event_bytes) {}

void SseRelay::Feed(std::string_view bytes, std::string* out) {
  if (overflowed_) return;
  pending_.append(bytes);
  size_t start = 0;
  for (;;) {
    size_t end = pending_.find("\n\n", start);
    size_t sep = 2;
    size_t crlf = pending_.find("\r\n\r\n", start);
    if (crlf != std::string::npos && (end == std::string::npos || crlf < end)) {
      end = crlf;
      sep = 4;
    }
    if (end == std::string::npos) break;
    HandleEvent(std::string_view(pending_).substr(start, end - start), out);
    start = end + sep;
  }
  pending_.erase(0, start);
  if (pending_.size() > max_event_bytes_) {
    overflowed_ = true;
    pending_.clear();
    pending_.shrink_to_fit();
  }
}

void SseRelay::HandleEvent(std::string_view event, std::string* out) {
  std::string data;
  size_t pos = 0;
  while (pos <= event.size()) {
    size_t nl = event.find('\n', pos);
    std::string_view line = event.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.rfind("data:", 0) == 0) {
      line.remove_prefix(5);
      if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
      if (!data.empty()) data.push_back('\n');
      data.append(line);
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  if (data == "[DONE]") {
    done_ = true;  // the pipeline sends [DONE] itself once the audit record is durable
    return;
  }
  if (!data.empty()) {
    json::error_code ec;
    json::value v = json::parse(data, ec);
    if (!ec && v.is_object()) {
      auto& o = v.as_object();
      TakeUsageAndText(o, ctx_, &content_events_);
      const auto* choices = o.if_contains("choices");
      bool usage_only = o.contains("usage") && !o.at("usage").is_null() && choices &&
                        choices->is_array() && choices->as_array().empty();
      if (usage_only && !client_wants_usage_) return;  // injected by us: not the client's
      if (ctx_.strip_reasoning && StripReasoning(o)) {
        out->append("data: ");
        out->append(json::serialize(o));
        out->append("\n\n");
        return;
      }
    }
  }
  out->append(event);
  out->append("\n\n");
}

}  // namespace moat::server

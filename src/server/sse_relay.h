#pragma once
// SseRelay: the parser of an upstream's server-sent event stream. It splits the bytes into
// events ("\n\n" or "\r\n\r\n" terminated), takes usage and output text from each event's JSON
// into the RequestContext, and decides what the client gets: every event as received, except the
// upstream's "[DONE]" (the pipeline sends its own once the audit record is durable), a usage-only
// chunk the client did not ask for (the gateway injected include_usage), and reasoning fields
// when ctx.strip_reasoning is set (the event is then re-serialized without them).
//
// Memory: at most one incomplete event is buffered. An event that grows beyond max_event_bytes
// without its terminator makes the relay overflowed(): it forwards nothing more and the caller
// ends the stream with an error, so a misbehaving upstream cannot grow the gateway's memory.

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "moat/filter.h"

namespace moat::server {

class SseRelay {
 public:
  static constexpr size_t kDefaultMaxEventBytes = 8 << 20;

  // `ctx` must outlive the relay. `client_wants_usage`: the client itself asked for
  // stream_options.include_usage.
  SseRelay(RequestContext& ctx, bool client_wants_usage,
           size_t max_event_bytes = kDefaultMaxEventBytes);

  // Consumes the next bytes of the stream; appends the events to forward to `out`.
  void Feed(std::string_view bytes, std::string* out);

  bool done() const { return done_; }                    // "[DONE]" was received
  int64_t content_events() const { return content_events_; }  // events that carried output text
  bool overflowed() const { return overflowed_; }

 private:
  void HandleEvent(std::string_view event, std::string* out);

  RequestContext& ctx_;
  const bool client_wants_usage_;
  const size_t max_event_bytes_;
  std::string pending_;
  bool done_ = false;
  int64_t content_events_ = 0;
  bool overflowed_ = false;
};

// Takes usage (prompt/completion tokens) and output text from one completion or chunk object
// into ctx; counts the choices that carried text in *content_events when given.
void TakeUsageAndText(const boost::json::object& o, RequestContext& ctx, int64_t* content_events);
// Removes reasoning traces (vLLM / SGLang `reasoning_content`, `reasoning`) from every choice's
// delta or message. Returns true when something was removed.
bool StripReasoning(boost::json::object& o);

}  // namespace moat::server

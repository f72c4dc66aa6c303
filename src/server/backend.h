#pragma once
// Backend: what answers a completion request once the filters have let it through — an
// upstream OpenAI-compatible server (UpstreamBackend) or the in-process model.
// ClientStream: the client's side of a streamed (server-sent events) response.

#include <functional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "moat/filter.h"

namespace moat::server {

// The client connection of a streamed response. The pipeline owns it; backends write
// complete SSE events ("data: ...\n\n") to it as they arrive, never buffering more.
class ClientStream {
 public:
  virtual ~ClientStream() = default;
  // Sends the 200 status line and SSE headers (plus ctx.response_headers). Idempotent.
  virtual boost::asio::awaitable<bool> Begin(const RequestContext& ctx) = 0;
  // Sends bytes made of complete SSE events. Returns false when the client has gone away.
  virtual boost::asio::awaitable<bool> Send(std::string_view events) = 0;
  virtual bool begun() const = 0;
};

// Where and how a backend runs one request.
struct BackendCall {
  RequestContext& ctx;
  int worker = 0;                      // index of the worker thread (for per-thread pools)
  boost::asio::io_context* io = nullptr;  // the worker's io_context
  ClientStream* client = nullptr;      // set when ctx.stream
  // Called after each stream event that added output; returns false to stop the stream
  // (the caller has set the context's local reply).
  std::function<bool()> on_progress;
};

// What a backend produced. For a non-streamed request `body` is the full JSON response to
// send with ctx.http_status(). For a streamed request the events were already sent; the
// pipeline finishes the stream ("data: [DONE]") after the audit record is durable, or sends
// an error event when ctx.local_reply() is set.
struct BackendResult {
  std::string body;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Runs the request. Never throws. Sets the outcome with ctx.SetResponseStatus (the answer's
  // status; for the upstream's own error also its code, with the error in `body`) or
  // ctx.SetLocalReply (an error the gateway makes: unreachable upstream, invalid parameter).
  virtual boost::asio::awaitable<BackendResult> Handle(BackendCall& call) = 0;
  // Releases per-worker resources (pooled upstream connections). Called once, after the worker
  // threads have stopped and before their io_contexts are destroyed.
  virtual void Shutdown() {}
};

}  // namespace moat::server

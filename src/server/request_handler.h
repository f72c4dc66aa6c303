#pragma once
// The contract between the transport (HttpServer: listener, connections, framing) and what
// answers requests (the Gateway). The transport frames each request head, then hands it to the
// RequestHandler with a RequestBody that reads the body only when asked.

#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "moat/filter.h"
#include "server/client_connection.h"

namespace moat::server {

// The body of the request being handled. The server reads it only when the handler asks, i.e.
// after the header-phase filters (authentication) admitted the request; a request answered
// without asking never has its body read (the server then closes the connection).
class RequestBody {
 public:
  virtual ~RequestBody() = default;
  // Reads the whole body into the request (sending "100 Continue" first when the client waits
  // for it). Returns nullopt on success, else the refusal to answer: 408 (too slow), 413 (too
  // large), 400 (malformed chunked framing) or 503 (the gateway's memory for request bodies is
  // taken); the connection is closed after that answer. Call at most once.
  virtual boost::asio::awaitable<std::optional<LocalReply>> Read() = 0;
};

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // Answers the request whose head is `req` on `conn`; `body` reads the body when wanted.
  // `peer_ip` is the socket's peer address, `worker` the index of the worker thread whose
  // io_context `io` runs the connection. Returns false when the connection must be closed.
  // Never throws.
  virtual boost::asio::awaitable<bool> Handle(HttpRequest& req, RequestBody& body,
                                              ClientConnection& conn, const std::string& peer_ip,
                                              int worker, boost::asio::io_context& io) = 0;
};

}  // namespace moat::server

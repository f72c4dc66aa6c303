#pragma once
// Response: a complete (not streamed) answer, and the one way the server writes one (Respond).
// Error answers are in the OpenAI error format, built here only:
//   {"error": {"message": ..., "type": ..., "param": null | ..., "code": null | ...}}

#include <chrono>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "moat/filter.h"
#include "server/client_connection.h"

namespace moat::server {

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  HeaderList headers;  // extra headers, set in order (a later one replaces an earlier namesake)
};

// The OpenAI error body for a message, error type, code ("" -> null) and parameter ("" -> null).
std::string ErrorBody(std::string_view message, std::string_view type, std::string_view code,
                      std::string_view param = {});
// The body of `reply`, with its "verification_url" field when the reply has one.
std::string ErrorBody(const LocalReply& reply);

// The answer that carries `reply`: its status, its OpenAI error body and its extra headers.
Response ErrorResponse(const LocalReply& reply);

// Writes `response` as the answer to `request`, within `write_timeout`. The connection is kept
// alive when the request asked for it; a null `request` (a protocol error: the head could not be
// trusted) answers HTTP/1.1 with "Connection: close". Returns whether the connection can carry
// another request: false when the write failed or the connection is to close.
// (Build the Response as a named object before the co_await: GCC 12 miscompiles temporaries made
// from string literals inside co_await arguments.)
boost::asio::awaitable<bool> Respond(ClientConnection& conn, const HttpRequest* request,
                                     const Response& response,
                                     std::chrono::milliseconds write_timeout);

}  // namespace moat::server

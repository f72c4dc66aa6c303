#pragma once
// The one internal HTTP/1.1 client of moat (Boost.Beast underneath, not visible here).
//
// AsyncHttpClient runs its calls as Asio coroutines on an executor the caller runs; HttpClient
// is the blocking form for CLI commands and tools, built on the same code with a private
// io_context. Both talk to one origin (the base URL they were created with) over one kept-alive
// connection, reopened when the server closes it.
//
// Contract of Send (both forms):
//  - Nothing throws out of it. Every failure is a Status:
//      kUnavailable        the connection could not be made or broke (refused, reset, closed
//                          before a complete answer, a malformed answer);
//      kDeadlineExceeded   the connect deadline or the total deadline passed;
//      kResourceExhausted  the answer's header or body exceeds the configured limits;
//      kInvalidArgument    the request cannot be sent (unknown method);
//      kFailedPrecondition a second call on the same client while one is in flight.
//  - Any complete HTTP answer is a value, whatever its status code: callers decide what a
//    4xx/5xx means to them (HttpResponse::ok() says 2xx).
//  - Keep-alive: the connection stays open after an answer that allows it, and the next call
//    reuses it. When a reused connection turns out to be closed by the server before any byte of
//    the answer arrived, the request is sent once more on a fresh connection (the server cannot
//    have acted on it). After any other failure the connection is dropped.
//  - Deadlines: `connect_timeout` bounds name resolution and TCP connect; `total_timeout`
//    bounds the whole call (connect, write, read), measured from the call's start.
//
// TLS: https:// URLs are refused with kUnimplemented today; the connection state is private, so
// an SSL stream can take the TCP stream's place without changing this interface.
//
// Thread-safety and lifetime: a client is used by one thread (or one strand) at a time, and
// must outlive every call it has started (an AsyncHttpClient call in flight holds its state).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "common/http_url.h"
#include "moat/status.h"

namespace moat::net {

struct HttpClientOptions {
  std::chrono::milliseconds connect_timeout{5000};   // resolve + TCP connect
  std::chrono::milliseconds total_timeout{30000};    // the whole call, connect included
  size_t max_response_body_bytes = 64u << 20;        // larger answers are kResourceExhausted
  size_t max_response_header_bytes = 64u << 10;
  bool keep_alive = true;                            // false: one connection per call
  std::string user_agent = "moat";                   // sent unless the request sets its own
  // When not empty, "Authorization: Bearer <token>" on every request that sets none itself.
  std::string bearer_token;
};

struct HttpRequest {
  std::string method = "GET";  // "GET", "POST", "PUT", "DELETE", ...
  std::string target = "/";    // sent as is: the caller adds the base URL's path prefix
  // Extra header fields, sent in order. Host and User-Agent are added unless set here;
  // Content-Length is always computed from the body.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Sets field `name` to `value`: replaces every field of that name (case-insensitive) with one.
  void SetHeader(std::string_view name, std::string value);
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  bool ok() const { return status >= 200 && status <= 299; }
  // The first field named `name` (case-insensitive), "" when absent.
  std::string Header(std::string_view name) const;
};

class AsyncHttpClient {
 public:
  // A client for the origin of `base_url` ("http://host[:port][/prefix]"); its calls run on
  // `executor`. InvalidArgument for a malformed URL, Unimplemented for https://.
  static StatusOr<AsyncHttpClient> Create(boost::asio::any_io_executor executor,
                                          std::string_view base_url,
                                          HttpClientOptions options = {});

  AsyncHttpClient(AsyncHttpClient&&) noexcept;
  AsyncHttpClient& operator=(AsyncHttpClient&&) noexcept;
  ~AsyncHttpClient();

  // Sends `request` and reads the whole answer (see the contract at the top of this file).
  // Must be awaited on the client's executor.
  boost::asio::awaitable<StatusOr<HttpResponse>> Send(HttpRequest request);

  // Closes the kept-alive connection, if any (the next call opens a new one).
  void Close();

  const HttpUrl& url() const;
  // How many TCP connections this client has opened so far (keep-alive keeps this low).
  int64_t connections_opened() const;

 private:
  struct State;
  explicit AsyncHttpClient(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

class HttpClient {
 public:
  // As AsyncHttpClient::Create, with a private io_context.
  static StatusOr<HttpClient> Create(std::string_view base_url, HttpClientOptions options = {});

  HttpClient(HttpClient&&) = default;
  HttpClient& operator=(HttpClient&&) = delete;  // would end the io_context before the stream

  // Blocks until the answer is read or the call fails (see the contract at the top).
  StatusOr<HttpResponse> Send(const HttpRequest& request);

  void Close() { async_->Close(); }
  const HttpUrl& url() const { return async_->url(); }
  int64_t connections_opened() const { return async_->connections_opened(); }

 private:
  HttpClient() = default;
  // On the heap, so the client's executor stays valid when a HttpClient is moved; declared
  // before async_ so it is destroyed after the connection that lives on it.
  std::unique_ptr<boost::asio::io_context> io_;
  std::optional<AsyncHttpClient> async_;
};

// "host:port" + target: how errors name the place they happened.
std::string DescribeTarget(const HttpUrl& url, std::string_view target);

}  // namespace moat::net

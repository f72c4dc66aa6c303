#pragma once
// The one internal HTTP/1.1 client of moat (Boost.Beast and OpenSSL underneath, not visible
// here), used by the gateway's upstream backend, the CLI's admin client, the watermark suspect
// client and the traffic benchmark's HTTP replay.
//
// AsyncHttpClient runs its calls as Asio coroutines on an executor the caller runs; it is the
// per-thread connection pool of one origin (the base URL it was created with): any number of
// calls may be in flight at once, each on a connection of its own, and up to
// `max_idle_connections` finished connections stay open for the next calls. HttpClient is the
// blocking form for CLI commands and tools, built on the same code with a private io_context.
//
// Contract of Send and SendStreamed (both forms):
//  - Nothing throws out of them. Every failure is a Status:
//      kUnavailable        the connection could not be made or broke (refused, reset, closed
//                          before a complete answer, a malformed answer, a failed TLS handshake
//                          or certificate verification);
//      kDeadlineExceeded   the connect deadline, the total deadline or the idle deadline passed;
//      kResourceExhausted  the answer's header or (Send) body exceeds the configured limits;
//      kInvalidArgument    the request cannot be sent (unknown method).
//    HttpCallTrace (optional) tells at which stage a call failed and whether the request had
//    been written.
//  - Any complete HTTP answer is a value, whatever its status code: callers decide what a
//    4xx/5xx means to them (HttpResponse::ok() says 2xx).
//  - Keep-alive: a connection goes back to the pool after an answer read to its end that
//    allows it. When a reused connection turns out to be closed by the server before any byte of
//    the answer arrived, the request is sent once more on a fresh connection (the server cannot
//    have acted on it). After any other failure, or a streamed call its caller stopped, the
//    connection is closed.
//  - Deadlines: `connect_timeout` bounds name resolution and TCP connect, and separately the
//    TLS handshake; `total_timeout` bounds the whole call (connect, write, read), measured from
//    the call's start; `idle_timeout`, when set, bounds each write and read on its own (the
//    answer must start, and keep coming, that often).
//
// TLS: an https:// origin is spoken to over TLS 1.2+ with the settings of a TlsClientContext
// (HttpClientOptions::tls; by default the system trust store and the URL's host): the chain and
// the name are verified unless disabled, SNI carries the name (never an IP address), a client
// certificate is presented when configured, and each new connection offers the client's last
// session for resumption, so handshakes are rare and mostly abbreviated.
//
// Thread-safety and lifetime: an AsyncHttpClient is used by one thread (its executor's) and
// takes no locks; make one per thread (e.g. per worker io_context). It must outlive every call
// it has started (a call in flight holds a pointer to its state).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/http_url.h"
#include "moat/status.h"

namespace moat::net {

// How to speak TLS to an https:// origin.
struct TlsClientOptions {
  bool verify = true;            // verify the certificate chain and the name; false: anything goes
  std::string ca_file;           // PEM trust anchors; "" : the system trust store
  std::string server_name;       // SNI and the name verified; "" : the URL's host
  std::string client_cert_file;  // optional client certificate chain (PEM) ...
  std::string client_key_file;   // ... and its key (must not be readable by group or others)
};

// The loaded TLS settings of one origin (OpenSSL context: trust store, client certificate),
// built once and shared read-only by the clients of every thread.
class TlsClientContext {
 public:
  // Loads the files `options` names. InvalidArgument when a file cannot be loaded or the key
  // does not match the certificate; FailedPrecondition/NotFound for an unsafe or missing key
  // file (CheckSecretFilePermissions).
  static StatusOr<std::shared_ptr<const TlsClientContext>> Create(const TlsClientOptions& options,
                                                                  std::string_view url_host);
  ~TlsClientContext();

  struct Impl;  // defined in http_client.cc
  const Impl& impl() const { return *impl_; }

 private:
  explicit TlsClientContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct HttpClientOptions {
  std::chrono::milliseconds connect_timeout{5000};  // resolve + TCP connect; TLS handshake
  std::chrono::milliseconds total_timeout{30000};   // the whole call; 0: no total deadline
  std::chrono::milliseconds idle_timeout{0};        // each write and read; 0: none
  size_t max_response_body_bytes = 64u << 20;       // Send: larger answers are kResourceExhausted
  size_t max_response_header_bytes = 64u << 10;
  bool keep_alive = true;                            // false: one connection per call
  size_t max_idle_connections = 1;                   // kept open between calls
  // Resolve the host once, at the first connection, and connect to that address from then on
  // (no resolver work per new connection). false: resolve for every new connection.
  bool resolve_once = false;
  std::string user_agent = "moat";  // sent unless the request sets its own; "" none
  // When not empty, "Authorization: Bearer <token>" on every request that sets none itself.
  std::string bearer_token;
  // https:// origins: the TLS settings (null: verify against the system trust store).
  std::shared_ptr<const TlsClientContext> tls;
  // Called after each completed TLS handshake, with whether a session was resumed (metrics).
  std::function<void(bool resumed)> on_tls_handshake;
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

// The status line and header fields of an answer.
struct HttpResponseHead {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;

  // The first field named `name` (case-insensitive), "" when absent.
  std::string Header(std::string_view name) const;
};

struct HttpResponse : HttpResponseHead {
  std::string body;

  bool ok() const { return status >= 200 && status <= 299; }
};

// Where a call got to, for callers that answer each failure differently.
enum class HttpCallStage {
  kConnect,       // resolving and connecting (TCP)
  kTlsHandshake,  // the TLS handshake of a new connection
  kExchange,      // writing the request and reading the answer's head
  kBody,          // reading the body (the head was received)
};

struct HttpCallTrace {
  HttpCallStage stage = HttpCallStage::kConnect;  // the stage reached (where a failure happened)
  bool request_sent = false;  // a request was written completely (the server may act on it)
  bool reused = false;        // the last attempt used a pooled connection
};

// What SendStreamed does with the answer as it arrives.
struct HttpStreamHandlers {
  // Optional: called each time the request has been written (twice when a stale pooled
  // connection made the client send it again).
  std::function<void()> on_request_sent;
  // Called once with the head, before any body piece. Returns false to stop (the connection is
  // closed; the call returns the head with complete = false).
  std::function<bool(const HttpResponseHead&)> on_head;
  // Called with each piece of the body (chunked framing removed) as it arrives, and awaited
  // before the next read: one read at a time, so a slow consumer slows the server down instead
  // of making the client buffer. `more_ready` says that more bytes already wait on the
  // connection (a consumer can gather them before writing on). Returns false to stop (the
  // connection is closed; complete = false). The piece is valid during the call only.
  std::function<boost::asio::awaitable<bool>(std::string_view piece, bool more_ready)> on_body;
};

struct HttpStreamedAnswer {
  HttpResponseHead head;
  bool complete = false;  // the body was read to its end (false: a handler stopped it)
};

class AsyncHttpClient {
 public:
  // A client for the origin of `base_url` ("http[s]://host[:port][/prefix]"); its calls run on
  // `executor`. InvalidArgument for a malformed URL; for https:// without options.tls, the
  // errors of TlsClientContext::Create with default settings.
  static StatusOr<AsyncHttpClient> Create(boost::asio::any_io_executor executor,
                                          std::string_view base_url,
                                          HttpClientOptions options = {});

  AsyncHttpClient(AsyncHttpClient&&) noexcept;
  AsyncHttpClient& operator=(AsyncHttpClient&&) noexcept;
  ~AsyncHttpClient();

  // Sends `request` and reads the whole answer (see the contract at the top of this file).
  // Must be awaited on the client's executor.
  boost::asio::awaitable<StatusOr<HttpResponse>> Send(HttpRequest request,
                                                      HttpCallTrace* trace = nullptr);

  // Sends `request` and hands its answer to `handlers` as it arrives (head, then body pieces),
  // with no limit on the body's size. OK once the body was read to its end or a handler stopped
  // it; the errors of the contract otherwise (a failure after the head was handed over has
  // trace->stage == kBody). Must be awaited on the client's executor.
  boost::asio::awaitable<StatusOr<HttpStreamedAnswer>> SendStreamed(
      HttpRequest request, const HttpStreamHandlers& handlers, HttpCallTrace* trace = nullptr);

  // Closes the idle connections and forgets the TLS session (calls in flight finish on theirs).
  void Close();

  const HttpUrl& url() const;
  // How many connections this client has opened so far (keep-alive keeps this low).
  int64_t connections_opened() const;
  // How many finished connections wait for the next call.
  size_t idle_connections() const;

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

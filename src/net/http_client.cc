#include "net/http_client.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <exception>
#include <optional>

#include "common/private_files.h"

namespace moat::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

// Body bytes one read hands over at most (the buffer lives in the call's coroutine frame).
constexpr size_t kReadChunkBytes = 16384;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool HasHeader(const HttpRequest& request, std::string_view name) {
  return std::any_of(request.headers.begin(), request.headers.end(),
                     [&](const auto& h) { return EqualsIgnoreCase(h.first, name); });
}

// A reused connection that the server closed while it sat idle fails like this, before any byte
// of the answer: the request can safely be sent again on a new connection.
bool IsStaleConnection(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == ssl::error::stream_truncated;
}

struct SessionFree {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};

// One connection: a TCP stream, or a TLS stream over one, and the bytes read past the last
// answer.
struct Connection {
  std::optional<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  void Close() {
    beast::error_code ignored;  // closing a connection we are done with; nothing to report
    tcp::socket& socket = lowest().socket();
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
};

// What one attempt on one connection came to.
struct Attempt {
  Status status;          // OK: the answer was read to its end, or a handler stopped it
  bool retry = false;     // a pooled connection had gone stale: send again on a fresh one
  bool complete = false;  // the body was read to its end
  bool reusable = false;  // the connection may go back to the pool
};

}  // namespace

struct TlsClientContext::Impl {
  ssl::context context{ssl::context::tls_client};
  std::string server_name;  // SNI (unless an IP address) and the name verified
  bool server_name_is_address = false;
  bool verify = true;
};

TlsClientContext::TlsClientContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsClientContext::~TlsClientContext() = default;

StatusOr<std::shared_ptr<const TlsClientContext>> TlsClientContext::Create(
    const TlsClientOptions& options, std::string_view url_host) {
  auto impl = std::make_unique<Impl>();
  ssl::context& ctx = impl->context;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  beast::error_code ec;
  if (options.verify) {
    ctx.set_verify_mode(ssl::verify_peer);
    if (!options.ca_file.empty()) {
      ctx.load_verify_file(options.ca_file, ec);
      if (ec) {
        return InvalidArgumentError("cannot load tls_ca_file " + options.ca_file + ": " +
                                    ec.message());
      }
    } else {
      ctx.set_default_verify_paths(ec);
      if (ec) return InvalidArgumentError("cannot load the system trust store: " + ec.message());
    }
  } else {
    ctx.set_verify_mode(ssl::verify_none);
  }
  if (!options.client_cert_file.empty()) {
    MOAT_RETURN_IF_ERROR(CheckSecretFilePermissions(options.client_key_file));
    ctx.use_certificate_chain_file(options.client_cert_file, ec);
    if (ec) return InvalidArgumentError("cannot load tls_client_cert_file: " + ec.message());
    ctx.use_private_key_file(options.client_key_file, ssl::context::pem, ec);
    if (ec) return InvalidArgumentError("cannot load tls_client_key_file: " + ec.message());
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
      return InvalidArgumentError("tls_client_key_file does not match tls_client_cert_file");
    }
  }
  impl->server_name = options.server_name.empty() ? std::string(url_host) : options.server_name;
  beast::error_code addr_ec;
  asio::ip::make_address(impl->server_name, addr_ec);
  impl->server_name_is_address = !addr_ec;
  impl->verify = options.verify;
  return std::shared_ptr<const TlsClientContext>(new TlsClientContext(std::move(impl)));
}

void HttpRequest::SetHeader(std::string_view name, std::string value) {
  std::erase_if(headers, [&](const auto& h) { return EqualsIgnoreCase(h.first, name); });
  headers.emplace_back(std::string(name), std::move(value));
}

std::string HttpResponseHead::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return {};
}

std::string DescribeTarget(const HttpUrl& url, std::string_view target) {
  return url.host + ":" + std::to_string(url.port) + std::string(target);
}

// The client's pool and settings. Heap-allocated so a coroutine in flight keeps a stable pointer
// when the client object is moved. Touched only from the client's executor: no locks.
struct AsyncHttpClient::State {
  asio::any_io_executor executor;
  HttpUrl url;
  std::string host_field;  // "host:port", the Host header
  HttpClientOptions options;
  std::vector<std::unique_ptr<Connection>> idle;          // most recently used last
  std::optional<tcp::resolver::results_type> resolved;    // with options.resolve_once
  std::unique_ptr<SSL_SESSION, SessionFree> tls_session;  // offered to new TLS connections
  int64_t connections_opened = 0;

  void CloseIdle() {
    for (auto& c : idle) c->Close();
    idle.clear();
  }

  SteadyTime CallDeadline(SteadyTime start) const {
    return options.total_timeout.count() > 0 ? start + options.total_timeout : SteadyTime::max();
  }

  // The deadline of one write or read: the call's, or sooner with an idle timeout.
  SteadyTime OperationDeadline(SteadyTime call_deadline) const {
    if (options.idle_timeout.count() <= 0) return call_deadline;
    return std::min(call_deadline, std::chrono::steady_clock::now() + options.idle_timeout);
  }

  // Resolves the host (bounded by `deadline`), or returns the address resolved before.
  asio::awaitable<StatusOr<tcp::resolver::results_type>> Resolve(SteadyTime deadline) {
    if (resolved) co_return *resolved;
    const std::string where = host_field;
    beast::error_code ec;
    // The timer's handler may run after this frame is gone, so what it touches is shared.
    auto resolver = std::make_shared<tcp::resolver>(executor);
    auto timed_out = std::make_shared<bool>(false);
    asio::steady_timer timer(executor);
    timer.expires_at(deadline);
    timer.async_wait([resolver, timed_out](const beast::error_code& e) {
      if (e) return;  // cancelled: the resolve finished first
      *timed_out = true;
      resolver->cancel();
    });
    auto endpoints = co_await resolver->async_resolve(
        url.host, std::to_string(url.port), asio::redirect_error(asio::use_awaitable, ec));
    timer.cancel();
    if (*timed_out) co_return DeadlineExceededError("resolving " + where + " timed out");
    if (ec) co_return UnavailableError("cannot resolve " + where + ": " + ec.message());
    if (options.resolve_once) resolved = endpoints;
    co_return endpoints;
  }

  // Opens a connection: TCP (resolve and connect before `call_deadline` and connect_timeout),
  // then for https the TLS handshake (within connect_timeout again).
  asio::awaitable<StatusOr<std::unique_ptr<Connection>>> Connect(SteadyTime call_deadline,
                                                                 HttpCallTrace& trace) {
    trace.stage = HttpCallStage::kConnect;
    const SteadyTime connect_deadline =
        std::min(call_deadline, std::chrono::steady_clock::now() + options.connect_timeout);
    StatusOr<tcp::resolver::results_type> endpoints = co_await Resolve(connect_deadline);
    if (!endpoints.ok()) co_return endpoints.status();
    beast::error_code ec;
    auto on_error = asio::redirect_error(asio::use_awaitable, ec);
    beast::tcp_stream stream(executor);
    ++connections_opened;
    stream.expires_at(connect_deadline);
    co_await stream.async_connect(*endpoints, on_error);
    if (ec == beast::error::timeout) {
      co_return DeadlineExceededError("connecting to " + host_field + " timed out");
    }
    if (ec) co_return UnavailableError("cannot connect to " + host_field + ": " + ec.message());
    stream.socket().set_option(tcp::no_delay(true), ec);
    auto conn = std::make_unique<Connection>();
    if (!url.tls) {
      stream.expires_never();
      conn->plain.emplace(std::move(stream));
      co_return conn;
    }

    trace.stage = HttpCallStage::kTlsHandshake;
    const TlsClientContext::Impl& tls = options.tls->impl();
    // ssl::context is not const-correct; creating SSL objects from one SSL_CTX is thread-safe.
    auto& context = const_cast<ssl::context&>(tls.context);
    conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(stream), context);
    SSL* native = conn->tls->native_handle();
    // SNI names hosts only, never literal addresses (RFC 6066 §3).
    if (!tls.server_name_is_address) SSL_set_tlsext_host_name(native, tls.server_name.c_str());
    if (tls.verify) conn->tls->set_verify_callback(ssl::host_name_verification(tls.server_name));
    if (tls_session) SSL_set_session(native, tls_session.get());
    conn->lowest().expires_at(
        std::min(call_deadline, std::chrono::steady_clock::now() + options.connect_timeout));
    co_await conn->tls->async_handshake(ssl::stream_base::client, on_error);
    if (ec) {
      if (ec == beast::error::timeout) {
        co_return DeadlineExceededError("TLS handshake with " + host_field + " timed out");
      }
      std::string why = ec.message();
      if (long verify = SSL_get_verify_result(native); verify != X509_V_OK) {
        why = std::string("certificate verification failed: ") +
              X509_verify_cert_error_string(verify);
      }
      co_return UnavailableError("TLS handshake with " + host_field + " failed: " + why);
    }
    conn->lowest().expires_never();
    if (options.on_tls_handshake) options.on_tls_handshake(SSL_session_reused(native) == 1);
    co_return conn;
  }

  // Keeps the session of a connection that finished an answer (with the tickets a TLS 1.3
  // server sends after the handshake), so the next new connection resumes it. A copy: OpenSSL
  // marks a connection's own session unresumable when the connection is dropped without a TLS
  // shutdown, as pooled connections are.
  void KeepSession(Connection& conn) {
    SSL_SESSION* session = SSL_get_session(conn.tls->native_handle());
    if (session != nullptr && SSL_SESSION_is_resumable(session)) {
      tls_session.reset(SSL_SESSION_dup(session));
    }
  }

  // Moves the body out of `request`.
  http::request<http::string_body> BuildRequest(HttpRequest& request, http::verb verb) {
    http::request<http::string_body> req{verb, request.target, 11};
    if (!HasHeader(request, "host")) req.set(http::field::host, host_field);
    if (!options.user_agent.empty() && !HasHeader(request, "user-agent")) {
      req.set(http::field::user_agent, options.user_agent);
    }
    if (!options.bearer_token.empty() && !HasHeader(request, "authorization")) {
      req.set(http::field::authorization, "Bearer " + options.bearer_token);
    }
    for (const auto& [k, v] : request.headers) req.insert(k, v);
    req.keep_alive(options.keep_alive);
    req.body() = std::move(request.body);
    req.prepare_payload();
    return req;
  }

  Status ReadError(const beast::error_code& ec, std::string_view target) {
    const std::string where = DescribeTarget(url, target);
    if (ec == beast::error::timeout) {
      return DeadlineExceededError(
          where + ": timed out (total_timeout " + std::to_string(options.total_timeout.count()) +
          " ms, idle_timeout " + std::to_string(options.idle_timeout.count()) + " ms)");
    }
    if (ec == http::error::header_limit) {
      return ResourceExhaustedError(where + ": answer header exceeds " +
                                    std::to_string(options.max_response_header_bytes) + " bytes");
    }
    return UnavailableError(where + ": " + ec.message());
  }

  // Writes `req` on `stream` and hands the answer to `handlers`.
  template <class Stream>
  asio::awaitable<Attempt> Exchange(Stream& stream, Connection& conn, bool reused,
                                    http::request<http::string_body>& req, SteadyTime deadline,
                                    const HttpStreamHandlers& handlers, HttpResponseHead& head,
                                    HttpCallTrace& trace) {
    Attempt attempt;
    beast::error_code ec;
    auto on_error = asio::redirect_error(asio::use_awaitable, ec);
    beast::tcp_stream& lowest = conn.lowest();
    trace.stage = HttpCallStage::kExchange;
    trace.reused = reused;
    lowest.expires_at(OperationDeadline(deadline));
    co_await http::async_write(stream, req, on_error);
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    parser.header_limit(static_cast<uint32_t>(options.max_response_header_bytes));
    if (!ec) {
      trace.request_sent = true;
      if (handlers.on_request_sent) handlers.on_request_sent();
      lowest.expires_at(OperationDeadline(deadline));
      co_await http::async_read_header(stream, conn.buffer, parser, on_error);
    }
    if (ec) {
      attempt.retry = reused && !parser.got_some() && IsStaleConnection(ec);
      attempt.status = ReadError(ec, req.target());
      co_return attempt;
    }

    trace.stage = HttpCallStage::kBody;
    const auto& res = parser.get();
    head.status = static_cast<int>(res.result_int());
    head.headers.clear();
    for (const auto& field : res) {
      head.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    if (handlers.on_head && !handlers.on_head(head)) co_return attempt;

    char chunk[kReadChunkBytes];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof(chunk);
      lowest.expires_at(OperationDeadline(deadline));
      co_await http::async_read_some(stream, conn.buffer, parser, on_error);
      if (ec == http::error::need_buffer) ec = {};
      const size_t got = sizeof(chunk) - parser.get().body().size;
      if (got > 0 && handlers.on_body) {
        beast::error_code available_ec;
        const bool more_ready =
            !ec && !parser.is_done() && lowest.socket().available(available_ec) > 0;
        if (!co_await handlers.on_body(std::string_view(chunk, got), more_ready)) co_return attempt;
      }
      if (ec) {
        attempt.status = ReadError(ec, req.target());
        co_return attempt;
      }
    }
    attempt.complete = true;
    attempt.reusable = options.keep_alive && parser.get().keep_alive();
    co_return attempt;
  }

  asio::awaitable<StatusOr<HttpStreamedAnswer>> Call(HttpRequest& request,
                                                     const HttpStreamHandlers& handlers,
                                                     HttpCallTrace& trace) {
    const http::verb verb = http::string_to_verb(request.method);
    if (verb == http::verb::unknown) {
      co_return InvalidArgumentError("unknown HTTP method " + request.method);
    }
    const SteadyTime deadline = CallDeadline(std::chrono::steady_clock::now());
    http::request<http::string_body> req = BuildRequest(request, verb);
    HttpStreamedAnswer answer;
    for (int attempt_no = 0;; ++attempt_no) {
      std::unique_ptr<Connection> conn;
      const bool reused = attempt_no == 0 && !idle.empty();
      if (reused) {
        conn = std::move(idle.back());
        idle.pop_back();
      } else {
        StatusOr<std::unique_ptr<Connection>> opened = co_await Connect(deadline, trace);
        if (!opened.ok()) co_return opened.status();
        conn = std::move(*opened);
      }
      // (if/else, not ?: : GCC 12 mishandles co_await in both arms of a conditional expression.)
      Attempt attempt;
      if (conn->tls) {
        attempt = co_await Exchange(*conn->tls, *conn, reused, req, deadline, handlers, answer.head,
                                    trace);
      } else {
        attempt = co_await Exchange(*conn->plain, *conn, reused, req, deadline, handlers,
                                    answer.head, trace);
      }
      if (attempt.retry) {
        conn->Close();
        trace.request_sent = false;  // the server closed it unread: nothing was acted on
        continue;
      }
      if (conn->tls && attempt.complete) KeepSession(*conn);
      if (attempt.reusable && idle.size() < options.max_idle_connections) {
        conn->lowest().expires_never();  // an idle pooled connection has no deadline
        idle.push_back(std::move(conn));
      } else {
        conn->Close();
      }
      if (!attempt.status.ok()) co_return attempt.status;
      answer.complete = attempt.complete;
      co_return answer;
    }
  }
};

StatusOr<AsyncHttpClient> AsyncHttpClient::Create(asio::any_io_executor executor,
                                                  std::string_view base_url,
                                                  HttpClientOptions options) {
  MOAT_ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl(base_url, UrlSchemes::kHttpOrHttps));
  if (url.tls && !options.tls) {
    MOAT_ASSIGN_OR_RETURN(options.tls, TlsClientContext::Create(TlsClientOptions{}, url.host));
  }
  auto state = std::make_unique<State>();
  state->executor = std::move(executor);
  state->host_field = url.host + ":" + std::to_string(url.port);
  state->url = std::move(url);
  state->options = std::move(options);
  return AsyncHttpClient(std::move(state));
}

AsyncHttpClient::AsyncHttpClient(std::unique_ptr<State> state) : state_(std::move(state)) {}
AsyncHttpClient::AsyncHttpClient(AsyncHttpClient&&) noexcept = default;
AsyncHttpClient& AsyncHttpClient::operator=(AsyncHttpClient&&) noexcept = default;
AsyncHttpClient::~AsyncHttpClient() = default;

asio::awaitable<StatusOr<HttpStreamedAnswer>> AsyncHttpClient::SendStreamed(
    HttpRequest request, const HttpStreamHandlers& handlers, HttpCallTrace* trace) {
  State* s = state_.get();
  HttpCallTrace local_trace;
  HttpCallTrace& t = trace != nullptr ? *trace : local_trace;
  t = HttpCallTrace{};
  StatusOr<HttpStreamedAnswer> result = InternalError("unreachable");
  try {
    result = co_await s->Call(request, handlers, t);
  } catch (const std::exception& e) {  // allocation failures and the like: never thrown out
    result = InternalError(DescribeTarget(s->url, request.target) + ": " + e.what());
  }
  co_return result;
}

asio::awaitable<StatusOr<HttpResponse>> AsyncHttpClient::Send(HttpRequest request,
                                                              HttpCallTrace* trace) {
  const size_t limit = state_->options.max_response_body_bytes;
  HttpResponse response;
  bool too_large = false;
  HttpStreamHandlers handlers;
  handlers.on_head = [&](const HttpResponseHead& head) {
    static_cast<HttpResponseHead&>(response) = head;
    return true;
  };
  handlers.on_body = [&](std::string_view piece, bool) -> asio::awaitable<bool> {
    if (response.body.size() + piece.size() > limit) {
      too_large = true;
      co_return false;
    }
    response.body.append(piece);
    co_return true;
  };
  const std::string target = request.target;
  StatusOr<HttpStreamedAnswer> answer = co_await SendStreamed(std::move(request), handlers, trace);
  if (!answer.ok()) co_return answer.status();
  if (too_large) {
    co_return ResourceExhaustedError(DescribeTarget(state_->url, target) +
                                     ": answer body exceeds " + std::to_string(limit) + " bytes");
  }
  co_return response;
}

void AsyncHttpClient::Close() {
  state_->CloseIdle();
  state_->tls_session.reset();
}
const HttpUrl& AsyncHttpClient::url() const { return state_->url; }
int64_t AsyncHttpClient::connections_opened() const { return state_->connections_opened; }
size_t AsyncHttpClient::idle_connections() const { return state_->idle.size(); }

namespace {

// co_spawn needs a default-constructible result type, which StatusOr is not: store it instead.
asio::awaitable<void> SendInto(AsyncHttpClient* client, HttpRequest request,
                               std::optional<StatusOr<HttpResponse>>* out) {
  out->emplace(co_await client->Send(std::move(request)));
}

}  // namespace

StatusOr<HttpClient> HttpClient::Create(std::string_view base_url, HttpClientOptions options) {
  HttpClient client;
  client.io_ = std::make_unique<asio::io_context>();
  MOAT_ASSIGN_OR_RETURN(AsyncHttpClient async,
                        AsyncHttpClient::Create(client.io_->get_executor(), base_url,
                                                std::move(options)));
  client.async_.emplace(std::move(async));
  return client;
}

StatusOr<HttpResponse> HttpClient::Send(const HttpRequest& request) {
  std::optional<StatusOr<HttpResponse>> result;
  try {
    asio::co_spawn(*io_, SendInto(&*async_, request, &result), asio::detached);
    io_->restart();
    io_->run();
  } catch (const std::exception& e) {
    return InternalError(DescribeTarget(url(), request.target) + ": " + e.what());
  }
  if (!result) return InternalError(DescribeTarget(url(), request.target) + ": call did not finish");
  return std::move(*result);
}

}  // namespace moat::net

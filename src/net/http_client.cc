#include "net/http_client.h"

#include <algorithm>
#include <cctype>
#include <exception>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace moat::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

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
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
}

int64_t MillisUntil(SteadyTime deadline, SteadyTime start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - start).count();
}

}  // namespace

void HttpRequest::SetHeader(std::string_view name, std::string value) {
  std::erase_if(headers, [&](const auto& h) { return EqualsIgnoreCase(h.first, name); });
  headers.emplace_back(std::string(name), std::move(value));
}

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return {};
}

std::string DescribeTarget(const HttpUrl& url, std::string_view target) {
  return url.host + ":" + std::to_string(url.port) + std::string(target);
}

// The client's connection state. Heap-allocated so a coroutine in flight keeps a stable pointer
// when the client object is moved. The TCP stream is the one place an SSL stream would go.
struct AsyncHttpClient::State {
  asio::any_io_executor executor;
  HttpUrl url;
  HttpClientOptions options;
  std::optional<beast::tcp_stream> stream;  // the kept-alive connection, when open
  beast::flat_buffer buffer;                // bytes read past the last answer stay here
  bool busy = false;
  int64_t connections_opened = 0;

  void CloseConnection() {
    if (stream) {
      beast::error_code ignored;  // closing a connection we are done with; nothing to report
      stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream->socket().close(ignored);
    }
    stream.reset();
    buffer.clear();
  }

  // Resolves the host (bounded by `connect_deadline`) and connects a new stream.
  asio::awaitable<Status> Connect(SteadyTime connect_deadline) {
    CloseConnection();
    const std::string where = url.host + ":" + std::to_string(url.port);
    beast::error_code ec;
    auto on_error = asio::redirect_error(asio::use_awaitable, ec);
    // The timer's handler may run after this frame is gone, so what it touches is shared.
    auto resolver = std::make_shared<tcp::resolver>(executor);
    auto resolve_timed_out = std::make_shared<bool>(false);
    asio::steady_timer resolve_timer(executor);
    resolve_timer.expires_at(connect_deadline);
    resolve_timer.async_wait([resolver, resolve_timed_out](const beast::error_code& e) {
      if (e) return;  // cancelled: the resolve finished first
      *resolve_timed_out = true;
      resolver->cancel();
    });
    auto endpoints =
        co_await resolver->async_resolve(url.host, std::to_string(url.port), on_error);
    resolve_timer.cancel();
    if (*resolve_timed_out) co_return DeadlineExceededError("resolving " + where + " timed out");
    if (ec) co_return UnavailableError("cannot resolve " + where + ": " + ec.message());
    stream.emplace(executor);
    ++connections_opened;
    stream->expires_at(connect_deadline);
    co_await stream->async_connect(endpoints, on_error);
    if (ec == beast::error::timeout) {
      stream.reset();
      co_return DeadlineExceededError("connecting to " + where + " timed out");
    }
    if (ec) {
      stream.reset();
      co_return UnavailableError("cannot connect to " + where + ": " + ec.message());
    }
    co_return Status::Ok();
  }

  http::request<http::string_body> BuildRequest(const HttpRequest& request, http::verb verb) {
    http::request<http::string_body> req{verb, request.target, 11};
    if (!HasHeader(request, "host")) {
      req.set(http::field::host, url.host + ":" + std::to_string(url.port));
    }
    if (!HasHeader(request, "user-agent")) req.set(http::field::user_agent, options.user_agent);
    if (!options.bearer_token.empty() && !HasHeader(request, "authorization")) {
      req.set(http::field::authorization, "Bearer " + options.bearer_token);
    }
    for (const auto& [k, v] : request.headers) req.insert(k, v);
    req.keep_alive(options.keep_alive);
    req.body() = request.body;
    req.prepare_payload();
    return req;
  }

  static HttpResponse ToResponse(http::response<http::string_body>&& res) {
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    out.body = std::move(res.body());
    return out;
  }

  Status ReadError(const beast::error_code& ec, std::string_view target, SteadyTime start,
                   SteadyTime deadline) {
    const std::string where = DescribeTarget(url, target);
    if (ec == beast::error::timeout) {
      return DeadlineExceededError(where + ": no complete answer within " +
                                   std::to_string(MillisUntil(deadline, start)) + " ms");
    }
    if (ec == http::error::body_limit) {
      return ResourceExhaustedError(where + ": answer body exceeds " +
                                    std::to_string(options.max_response_body_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return ResourceExhaustedError(where + ": answer header exceeds " +
                                    std::to_string(options.max_response_header_bytes) + " bytes");
    }
    return UnavailableError(where + ": " + ec.message());
  }

  asio::awaitable<StatusOr<HttpResponse>> Exchange(const HttpRequest& request) {
    const http::verb verb = http::string_to_verb(request.method);
    if (verb == http::verb::unknown) {
      co_return InvalidArgumentError("unknown HTTP method " + request.method);
    }
    const SteadyTime start = std::chrono::steady_clock::now();
    const SteadyTime deadline = start + options.total_timeout;
    http::request<http::string_body> req = BuildRequest(request, verb);
    beast::error_code ec;
    auto on_error = asio::redirect_error(asio::use_awaitable, ec);
    for (int attempt = 0;; ++attempt) {
      const bool reused = stream.has_value();
      if (!reused) {
        Status connected =
            co_await Connect(std::min(deadline, std::chrono::steady_clock::now() +
                                                    options.connect_timeout));
        if (!connected.ok()) co_return connected;
      }
      stream->expires_at(deadline);
      co_await http::async_write(*stream, req, on_error);
      http::response_parser<http::string_body> parser;
      parser.body_limit(options.max_response_body_bytes);
      parser.header_limit(static_cast<uint32_t>(options.max_response_header_bytes));
      if (!ec) co_await http::async_read(*stream, buffer, parser, on_error);
      if (ec) {
        const bool retry = reused && attempt == 0 && !parser.got_some() && IsStaleConnection(ec);
        CloseConnection();
        if (retry) continue;
        co_return ReadError(ec, request.target, start, deadline);
      }
      http::response<http::string_body> res = parser.release();
      if (!options.keep_alive || !res.keep_alive()) {
        CloseConnection();
      } else {
        stream->expires_never();
      }
      co_return ToResponse(std::move(res));
    }
  }
};

StatusOr<AsyncHttpClient> AsyncHttpClient::Create(asio::any_io_executor executor,
                                                  std::string_view base_url,
                                                  HttpClientOptions options) {
  MOAT_ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl(base_url));
  auto state = std::make_unique<State>();
  state->executor = std::move(executor);
  state->url = std::move(url);
  state->options = std::move(options);
  return AsyncHttpClient(std::move(state));
}

AsyncHttpClient::AsyncHttpClient(std::unique_ptr<State> state) : state_(std::move(state)) {}
AsyncHttpClient::AsyncHttpClient(AsyncHttpClient&&) noexcept = default;
AsyncHttpClient& AsyncHttpClient::operator=(AsyncHttpClient&&) noexcept = default;
AsyncHttpClient::~AsyncHttpClient() = default;

asio::awaitable<StatusOr<HttpResponse>> AsyncHttpClient::Send(HttpRequest request) {
  State* s = state_.get();
  if (s->busy) co_return FailedPreconditionError("an HTTP call is already in flight on this client");
  s->busy = true;
  StatusOr<HttpResponse> result = InternalError("unreachable");
  try {
    result = co_await s->Exchange(request);
  } catch (const std::exception& e) {  // allocation failures and the like: never thrown out
    s->CloseConnection();
    result = InternalError(DescribeTarget(s->url, request.target) + ": " + e.what());
  }
  s->busy = false;
  co_return result;
}

void AsyncHttpClient::Close() { state_->CloseConnection(); }
const HttpUrl& AsyncHttpClient::url() const { return state_->url; }
int64_t AsyncHttpClient::connections_opened() const { return state_->connections_opened; }

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

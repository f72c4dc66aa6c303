// HttpClient and AsyncHttpClient against a real HTTP server on loopback (LoopbackServer below,
// a small Beast server on its own thread), so every byte crosses a real socket.

#include "net/http_client.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace moat::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// Answers by target:
//   /hello        200 "hello", keep-alive
//   /echo         200 "<method> <x-test header> <body>"
//   /auth         200 with the Authorization header as the body
//   /close        200 "bye" with Connection: close, then closes
//   /drop-after   200 "dropped" announced as keep-alive, then closes the socket anyway
//   /chunked      200 in three chunks (raw bytes on the wire, Transfer-Encoding: chunked)
//   /big          200 with a 100,000-byte body
//   /slow         never answers
class LoopbackServer {
 public:
  LoopbackServer() : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    asio::co_spawn(io_, Accept(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~LoopbackServer() {
    io_.stop();
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  int accepted() const { return accepted_.load(); }

 private:
  asio::awaitable<void> Accept() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket = co_await acceptor_.async_accept(
          asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      ++accepted_;
      asio::co_spawn(io_, Serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> Serve(tcp::socket socket) {
    beast::error_code ec;
    auto on_error = asio::redirect_error(asio::use_awaitable, ec);
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      co_await http::async_read(socket, buffer, req, on_error);
      if (ec) co_return;
      const std::string target(req.target());
      if (target == "/slow") {
        asio::steady_timer never(io_, 1h);
        co_await never.async_wait(on_error);
        co_return;
      }
      if (target == "/chunked") {
        static constexpr std::string_view kChunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
            "5\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\n\r\n";
        co_await asio::async_write(socket, asio::buffer(kChunked), on_error);
        if (ec) co_return;
        continue;
      }
      http::response<http::string_body> res{http::status::ok, 11};
      res.set("x-served-by", "loopback");
      if (target == "/hello") {
        res.body() = "hello";
      } else if (target == "/echo") {
        res.body() = std::string(req.method_string()) + " " + std::string(req["x-test"]) + " " +
                     req.body();
      } else if (target == "/auth") {
        res.body() = std::string(req[http::field::authorization]);
      } else if (target == "/close") {
        res.body() = "bye";
        res.keep_alive(false);
      } else if (target == "/drop-after") {
        res.body() = "dropped";
      } else if (target == "/big") {
        res.body() = std::string(100000, 'x');
      } else {
        res.result(http::status::not_found);
        res.body() = "no such target";
      }
      res.prepare_payload();
      co_await http::async_write(socket, res, on_error);
      if (ec || !res.keep_alive() || target == "/drop-after") co_return;
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

HttpRequest Get(std::string target) {
  HttpRequest r;
  r.target = std::move(target);
  return r;
}

TEST(HttpClientTest, KeepAliveReusesOneConnection) {
  LoopbackServer server;
  auto client = HttpClient::Create(server.url());
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  for (int i = 0; i < 3; ++i) {
    auto res = client->Send(Get("/hello"));
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "hello");
    EXPECT_EQ(res->Header("X-Served-By"), "loopback");
  }
  EXPECT_EQ(server.accepted(), 1);
  EXPECT_EQ(client->connections_opened(), 1);
}

TEST(HttpClientTest, WithoutKeepAliveEveryCallOpensAConnection) {
  LoopbackServer server;
  HttpClientOptions options;
  options.keep_alive = false;
  auto client = HttpClient::Create(server.url(), options);
  ASSERT_TRUE(client.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Send(Get("/hello")).ok());
  EXPECT_EQ(server.accepted(), 3);
}

TEST(HttpClientTest, ConnectionCloseFromTheServerIsHonoured) {
  LoopbackServer server;
  auto client = HttpClient::Create(server.url());
  ASSERT_TRUE(client.ok());
  auto bye = client->Send(Get("/close"));
  ASSERT_TRUE(bye.ok()) << bye.status().ToString();
  EXPECT_EQ(bye->body, "bye");
  auto hello = client->Send(Get("/hello"));
  ASSERT_TRUE(hello.ok()) << hello.status().ToString();
  EXPECT_EQ(server.accepted(), 2);
}

TEST(HttpClientTest, StaleKeptAliveConnectionIsReplacedTransparently) {
  LoopbackServer server;
  auto client = HttpClient::Create(server.url());
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->Send(Get("/drop-after")).ok());
  std::this_thread::sleep_for(50ms);  // let the server's close reach the client's socket
  auto res = client->Send(Get("/hello"));
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->body, "hello");
  EXPECT_EQ(server.accepted(), 2);
  EXPECT_EQ(client->connections_opened(), 2);
}

TEST(HttpClientTest, SendsMethodHeadersAndBody) {
  LoopbackServer server;
  auto client = HttpClient::Create(server.url());
  ASSERT_TRUE(client.ok());
  HttpRequest req;
  req.method = "POST";
  req.target = "/echo";
  req.headers = {{"X-Test", "six"}, {"content-type", "text/plain"}};
  req.SetHeader("x-test", "seven");  // replaces X-Test
  EXPECT_EQ(req.headers.size(), 2u);
  req.body = "payload";
  auto res = client->Send(req);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->body, "POST seven payload");
}

TEST(HttpClientTest, BearerTokenIsSentUnlessTheRequestHasItsOwn) {
  LoopbackServer server;
  HttpClientOptions options;
  options.bearer_token = "sk-one";
  auto client = HttpClient::Create(server.url(), options);
  ASSERT_TRUE(client.ok());
  auto token = client->Send(Get("/auth"));
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->body, "Bearer sk-one");
  HttpRequest own = Get("/auth");
  own.headers = {{"Authorization", "Bearer sk-two"}};
  auto overridden = client->Send(own);
  ASSERT_TRUE(overridden.ok()) << overridden.status().ToString();
  EXPECT_EQ(overridden->body, "Bearer sk-two");
}

TEST(HttpClientTest, ErrorStatusIsAnAnswerNotAFailure) {
  LoopbackServer server;
  auto client = HttpClient::Create(server.url());
  ASSERT_TRUE(client.ok());
  auto res = client->Send(Get("/missing"));
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 404);
  EXPECT_FALSE(res->ok());
  EXPECT_EQ(res->body, "no such target");
}

TEST(HttpClientTest, ChunkedAnswerIsReassembled) {
  LoopbackServer server;
  auto client = HttpClient::Create(server.url());
  ASSERT_TRUE(client.ok());
  for (int i = 0; i < 2; ++i) {  // the second read proves the chunked framing ended cleanly
    auto res = client->Send(Get("/chunked"));
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->body, "hello, world");
  }
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpClientTest, TotalDeadlineExpires) {
  LoopbackServer server;
  HttpClientOptions options;
  options.total_timeout = 300ms;
  auto client = HttpClient::Create(server.url(), options);
  ASSERT_TRUE(client.ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto res = client->Send(Get("/slow"));
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kDeadlineExceeded) << res.status().ToString();
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 5s);
  // The timed-out connection is dropped; the next call works on a new one.
  auto again = client->Send(Get("/hello"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(server.accepted(), 2);
}

TEST(HttpClientTest, OversizeBodyIsRefused) {
  LoopbackServer server;
  HttpClientOptions options;
  options.max_response_body_bytes = 1000;
  auto client = HttpClient::Create(server.url(), options);
  ASSERT_TRUE(client.ok());
  auto res = client->Send(Get("/big"));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kResourceExhausted) << res.status().ToString();
  // Just under the limit of a larger client, the same answer is read whole.
  options.max_response_body_bytes = 100000;
  auto roomy = HttpClient::Create(server.url(), options);
  ASSERT_TRUE(roomy.ok());
  auto whole = roomy->Send(Get("/big"));
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ(whole->body.size(), 100000u);
}

TEST(HttpClientTest, RefusedConnectionIsUnavailable) {
  // A port that was just free: bind, read the port, close.
  int port = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto client = HttpClient::Create("http://127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(client.ok());
  auto res = client->Send(Get("/hello"));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kUnavailable) << res.status().ToString();
}

TEST(HttpClientTest, ConnectDeadlineExpiresOnAFullListenQueue) {
  // A listener that never accepts, with a backlog of 0: once its queue holds one connection,
  // the kernel drops further SYNs, so a connect hangs until the client's connect deadline.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ::fcntl(fd, F_SETFL, O_NONBLOCK);
    (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);  // in progress
    fillers.push_back(fd);
  }
  std::this_thread::sleep_for(100ms);
  HttpClientOptions options;
  options.connect_timeout = 300ms;
  options.total_timeout = 10s;
  auto client =
      HttpClient::Create("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), options);
  ASSERT_TRUE(client.ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto res = client->Send(Get("/hello"));
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  for (int fd : fillers) ::close(fd);
  ::close(listener);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kDeadlineExceeded) << res.status().ToString();
  EXPECT_LT(elapsed, 3s);
}

TEST(HttpClientTest, RejectsUrlsItCannotServe) {
  EXPECT_EQ(HttpClient::Create("ftp://x").status().code(), StatusCode::kInvalidArgument);
  auto client = HttpClient::Create("http://127.0.0.1:1");
  ASSERT_TRUE(client.ok());
  HttpRequest bad = Get("/");
  bad.method = "NOT A METHOD";
  EXPECT_EQ(client->Send(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST(AsyncHttpClientTest, CoroutineCallsShareOneConnection) {
  LoopbackServer server;
  asio::io_context io;
  auto client = AsyncHttpClient::Create(io.get_executor(), server.url());
  ASSERT_TRUE(client.ok());
  std::vector<std::string> bodies;
  Status failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (const char* target : {"/hello", "/chunked", "/hello"}) {
          StatusOr<HttpResponse> res = co_await client->Send(Get(target));
          if (!res.ok()) {
            failure = res.status();
            co_return;
          }
          bodies.push_back(res->body);
        }
      },
      asio::detached);
  io.run();
  ASSERT_TRUE(failure.ok()) << failure.ToString();
  EXPECT_EQ(bodies, (std::vector<std::string>{"hello", "hello, world", "hello"}));
  EXPECT_EQ(server.accepted(), 1);
}

TEST(AsyncHttpClientTest, OverlappingCallsEachGetAConnectionAndThePoolKeepsThem) {
  LoopbackServer server;
  HttpClientOptions options;
  options.total_timeout = 300ms;
  options.max_idle_connections = 2;
  asio::io_context io;
  auto client = AsyncHttpClient::Create(io.get_executor(), server.url(), options);
  ASSERT_TRUE(client.ok());
  std::vector<std::string> outcomes;
  auto call = [&](std::string target) -> asio::awaitable<void> {
    StatusOr<HttpResponse> res = co_await client->Send(Get(target));
    outcomes.push_back(target + " " +
                       (res.ok() ? res->body : std::string(StatusCodeName(res.status().code()))));
  };
  // A slow call does not hold up the next one: each has a connection of its own.
  asio::co_spawn(io, call("/slow"), asio::detached);
  asio::co_spawn(io, call("/hello"), asio::detached);
  io.run();
  EXPECT_EQ(outcomes, (std::vector<std::string>{"/hello hello", "/slow DEADLINE_EXCEEDED"}));
  EXPECT_EQ(server.accepted(), 2);
  EXPECT_EQ(client->idle_connections(), 1u);  // the timed-out one was closed

  // Two at once again: one reuses the pooled connection, one opens another; both are kept.
  outcomes.clear();
  io.restart();
  asio::co_spawn(io, call("/hello"), asio::detached);
  asio::co_spawn(io, call("/hello"), asio::detached);
  io.run();
  EXPECT_EQ(outcomes, (std::vector<std::string>{"/hello hello", "/hello hello"}));
  EXPECT_EQ(server.accepted(), 3);
  EXPECT_EQ(client->idle_connections(), 2u);
  io.restart();
  asio::co_spawn(io, call("/hello"), asio::detached);
  asio::co_spawn(io, call("/hello"), asio::detached);
  io.run();
  EXPECT_EQ(server.accepted(), 3);
}

// Runs `body` as a coroutine on a fresh io_context until it finishes.
void RunCoroutine(const std::function<asio::awaitable<void>(asio::io_context&)>& body) {
  asio::io_context io;
  asio::co_spawn(io, body(io), asio::detached);
  io.run();
}

TEST(AsyncHttpClientTest, StreamedCallHandsOverTheHeadThenTheBodyAndKeepsTheConnection) {
  LoopbackServer server;
  RunCoroutine([&](asio::io_context& io) -> asio::awaitable<void> {
    auto client = AsyncHttpClient::Create(io.get_executor(), server.url());
    EXPECT_TRUE(client.ok());
    std::string events;
    HttpStreamHandlers handlers;
    handlers.on_request_sent = [&] { events += "sent;"; };
    handlers.on_head = [&](const HttpResponseHead& head) {
      events +=
          "head " + std::to_string(head.status) + " " + head.Header("Transfer-Encoding") + ";";
      return true;
    };
    std::string body;
    handlers.on_body = [&](std::string_view piece, bool) -> asio::awaitable<bool> {
      if (events.back() != '+') events += "body+";
      body.append(piece);
      co_return true;
    };
    HttpCallTrace trace;
    StatusOr<HttpStreamedAnswer> answer =
        co_await client->SendStreamed(Get("/chunked"), handlers, &trace);
    EXPECT_TRUE(answer.ok()) << answer.status().ToString();
    if (!answer.ok()) co_return;
    EXPECT_TRUE(answer->complete);
    EXPECT_EQ(answer->head.status, 200);
    EXPECT_EQ(events, "sent;head 200 chunked;body+");
    EXPECT_EQ(body, "hello, world");  // chunk framing removed
    EXPECT_EQ(trace.stage, HttpCallStage::kBody);
    EXPECT_TRUE(trace.request_sent);
    StatusOr<HttpResponse> again = co_await client->Send(Get("/hello"));
    EXPECT_TRUE(again.ok());
    EXPECT_EQ(client->connections_opened(), 1);
  });
  EXPECT_EQ(server.accepted(), 1);
}

TEST(AsyncHttpClientTest, StreamedCallReadsOnlyWhileNoPieceIsBeingHandled) {
  LoopbackServer server;
  RunCoroutine([&](asio::io_context& io) -> asio::awaitable<void> {
    auto client = AsyncHttpClient::Create(io.get_executor(), server.url());
    EXPECT_TRUE(client.ok());
    int in_handler = 0, most_in_handler = 0, pieces = 0;
    size_t bytes = 0;
    HttpStreamHandlers handlers;
    handlers.on_body = [&](std::string_view piece, bool) -> asio::awaitable<bool> {
      most_in_handler = std::max(most_in_handler, ++in_handler);
      ++pieces;
      bytes += piece.size();
      asio::steady_timer slow_consumer(co_await asio::this_coro::executor, 2ms);
      co_await slow_consumer.async_wait(asio::use_awaitable);
      --in_handler;
      co_return true;
    };
    StatusOr<HttpStreamedAnswer> answer = co_await client->SendStreamed(Get("/big"), handlers);
    EXPECT_TRUE(answer.ok()) << answer.status().ToString();
    EXPECT_EQ(bytes, 100000u);
    EXPECT_GT(pieces, 1);  // more than one read's worth
    EXPECT_EQ(most_in_handler, 1);
  });
}

TEST(AsyncHttpClientTest, StoppingAStreamClosesItsConnection) {
  LoopbackServer server;
  RunCoroutine([&](asio::io_context& io) -> asio::awaitable<void> {
    auto client = AsyncHttpClient::Create(io.get_executor(), server.url());
    EXPECT_TRUE(client.ok());
    HttpStreamHandlers handlers;
    handlers.on_body = [&](std::string_view, bool) -> asio::awaitable<bool> { co_return false; };
    StatusOr<HttpStreamedAnswer> answer = co_await client->SendStreamed(Get("/big"), handlers);
    EXPECT_TRUE(answer.ok()) << answer.status().ToString();
    EXPECT_FALSE(answer.ok() && answer->complete);
    EXPECT_EQ(client->idle_connections(), 0u);
    StatusOr<HttpResponse> next = co_await client->Send(Get("/hello"));
    EXPECT_TRUE(next.ok());
  });
  EXPECT_EQ(server.accepted(), 2);
}

TEST(AsyncHttpClientTest, StreamedCallIsRetriedOnceOnAStalePooledConnection) {
  LoopbackServer server;
  RunCoroutine([&](asio::io_context& io) -> asio::awaitable<void> {
    auto client = AsyncHttpClient::Create(io.get_executor(), server.url());
    EXPECT_TRUE(client.ok());
    EXPECT_TRUE((co_await client->Send(Get("/drop-after"))).ok());
    asio::steady_timer settle(io, 50ms);  // let the server's close arrive
    co_await settle.async_wait(asio::use_awaitable);
    int sent = 0;
    std::string body;
    HttpStreamHandlers handlers;
    handlers.on_request_sent = [&] { ++sent; };
    handlers.on_body = [&](std::string_view piece, bool) -> asio::awaitable<bool> {
      body.append(piece);
      co_return true;
    };
    HttpCallTrace trace;
    StatusOr<HttpStreamedAnswer> answer =
        co_await client->SendStreamed(Get("/hello"), handlers, &trace);
    EXPECT_TRUE(answer.ok()) << answer.status().ToString();
    EXPECT_EQ(body, "hello");
    EXPECT_FALSE(trace.reused);  // answered on the fresh connection
    EXPECT_GE(sent, 1);
  });
  EXPECT_EQ(server.accepted(), 2);
}

TEST(AsyncHttpClientTest, IdleTimeoutBoundsTheWaitForTheAnswer) {
  LoopbackServer server;
  HttpClientOptions options;
  options.total_timeout = 0ms;  // none
  options.idle_timeout = 200ms;
  RunCoroutine([&](asio::io_context& io) -> asio::awaitable<void> {
    auto client = AsyncHttpClient::Create(io.get_executor(), server.url(), options);
    EXPECT_TRUE(client.ok());
    const auto start = std::chrono::steady_clock::now();
    HttpCallTrace trace;
    StatusOr<HttpResponse> res = co_await client->Send(Get("/slow"), &trace);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(res.status().code(), StatusCode::kDeadlineExceeded) << res.status().ToString();
    EXPECT_EQ(trace.stage, HttpCallStage::kExchange);
    EXPECT_TRUE(trace.request_sent);
    EXPECT_GE(elapsed, 180ms);
    EXPECT_LT(elapsed, 2s);
  });
}

TEST(AsyncHttpClientTest, TraceNamesTheStageOfAFailure) {
  LoopbackServer server;
  RunCoroutine([&](asio::io_context& io) -> asio::awaitable<void> {
    HttpCallTrace trace;
    auto refused = AsyncHttpClient::Create(io.get_executor(), "http://127.0.0.1:1");
    EXPECT_TRUE(refused.ok());
    StatusOr<HttpResponse> res = co_await refused->Send(Get("/"), &trace);
    EXPECT_EQ(res.status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(trace.stage, HttpCallStage::kConnect);
    EXPECT_FALSE(trace.request_sent);

    // TLS to a server that speaks plain HTTP: the handshake fails, nothing is sent.
    const std::string https = "https" + server.url().substr(4);
    TlsClientOptions tls_options;
    tls_options.verify = false;
    auto tls = TlsClientContext::Create(tls_options, "127.0.0.1");
    EXPECT_TRUE(tls.ok()) << tls.status().ToString();
    HttpClientOptions options;
    options.tls = *tls;
    int handshakes = 0;
    options.on_tls_handshake = [&](bool) { ++handshakes; };
    auto client = AsyncHttpClient::Create(io.get_executor(), https, options);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    res = co_await client->Send(Get("/hello"), &trace);
    EXPECT_EQ(res.status().code(), StatusCode::kUnavailable) << res.status().ToString();
    EXPECT_EQ(trace.stage, HttpCallStage::kTlsHandshake);
    EXPECT_FALSE(trace.request_sent);
    EXPECT_EQ(handshakes, 0);
  });
}

TEST(TlsClientContextTest, RefusesFilesItCannotLoad) {
  TlsClientOptions missing_ca;
  missing_ca.ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(TlsClientContext::Create(missing_ca, "localhost").status().code(),
            StatusCode::kInvalidArgument);
  TlsClientOptions missing_key;
  missing_key.client_cert_file = "/nonexistent/client.pem";
  missing_key.client_key_file = "/nonexistent/client.key";
  EXPECT_EQ(TlsClientContext::Create(missing_key, "localhost").status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace moat::net

#pragma once
// ClientConnection: one accepted client connection, plain TCP or TLS, as the HttpServer and the
// Gateway see it: read a request head and body, write responses, response heads and raw bytes
// (SSE chunks), each under a deadline, and close. Owned by the connection's coroutine and used
// only from its worker thread (not thread-safe).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace moat::server {

using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;
using StringResponse = boost::beast::http::response<boost::beast::http::string_body>;
using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

class ClientConnection {
 public:
  // A plain HTTP connection.
  explicit ClientConnection(boost::asio::ip::tcp::socket socket);
  // An HTTPS connection: Handshake() must succeed before anything else is read or written.
  // `context` stays alive as long as the connection (a certificate reload only affects
  // connections accepted afterwards).
  ClientConnection(boost::asio::ip::tcp::socket socket,
                   std::shared_ptr<boost::asio::ssl::context> context);
  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  bool tls() const { return tls_.has_value(); }

  // TLS: the server side of the handshake, within `timeout`. Plain: succeeds at once.
  boost::asio::awaitable<boost::beast::error_code> Handshake(std::chrono::milliseconds timeout);

  // Reads a request head / the rest of the request into `parser` (no deadline of their own: the
  // caller arms one and calls CancelReads() when it passes).
  boost::asio::awaitable<boost::beast::error_code> ReadHeader(boost::beast::flat_buffer& buffer,
                                                              RequestParser& parser);
  boost::asio::awaitable<boost::beast::error_code> ReadBody(boost::beast::flat_buffer& buffer,
                                                            RequestParser& parser);
  // Cancels pending reads (a read deadline passed); writes are unaffected.
  void CancelReads();

  // Writes a complete response / a response head / raw bytes / one chunk of a chunked body /
  // the last chunk, each within `timeout`. A write that times out closes the connection.
  boost::asio::awaitable<boost::beast::error_code> Write(StringResponse& response,
                                                         std::chrono::milliseconds timeout);
  boost::asio::awaitable<boost::beast::error_code> WriteHead(
      boost::beast::http::response_serializer<boost::beast::http::empty_body>& head,
      std::chrono::milliseconds timeout);
  boost::asio::awaitable<boost::beast::error_code> WriteRaw(std::string_view bytes,
                                                            std::chrono::milliseconds timeout);
  boost::asio::awaitable<boost::beast::error_code> WriteChunk(std::string_view bytes,
                                                              std::chrono::milliseconds timeout);
  boost::asio::awaitable<boost::beast::error_code> WriteLastChunk(std::chrono::milliseconds timeout);

  // Ends the connection: TLS close_notify (best effort, bounded by `timeout`), a TCP shutdown of
  // the sending side, then (plain connections, `drain_bytes` > 0) reads and discards what the
  // client still sends, up to `drain_bytes` or `timeout`, so that closing with unread data does
  // not reset the connection before the client has read the answer; then closes.
  boost::asio::awaitable<void> Close(std::chrono::milliseconds timeout, size_t drain_bytes = 0);

  boost::asio::ip::tcp::socket& socket();
  boost::beast::tcp_stream& tcp();
  // Bytes written to the connection so far (tells whether a response has begun).
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  uint64_t bytes_written_ = 0;
  std::shared_ptr<boost::asio::ssl::context> context_;  // keeps tls_'s context alive
  std::optional<boost::beast::tcp_stream> plain_;
  std::optional<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls_;

  boost::asio::awaitable<void> Drain(size_t max_bytes, std::chrono::milliseconds timeout);
  // Starts `operation(stream)` on the connection's stream, TLS or plain, and returns what it
  // returns (an awaitable).
  template <typename StreamOperation>
  auto OnStream(StreamOperation operation);
  // Awaits `write(stream)` (a write returning (error, bytes)) within `timeout`, counts the bytes
  // written and returns the error.
  template <typename WriteOperation>
  boost::asio::awaitable<boost::beast::error_code> WriteWithin(std::chrono::milliseconds timeout,
                                                               WriteOperation write);
};

}  // namespace moat::server

#include "server/client_connection.h"

#include <array>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "server/asio_names.h"

namespace moat::server {

namespace {

constexpr size_t kDrainReadBytes = 16 * 1024;

}  // namespace

ClientConnection::ClientConnection(tcp::socket socket) { plain_.emplace(std::move(socket)); }

ClientConnection::ClientConnection(tcp::socket socket, std::shared_ptr<ssl::context> context)
    : context_(std::move(context)) {
  tls_.emplace(beast::tcp_stream(std::move(socket)), *context_);
}

ClientConnection::~ClientConnection() = default;

beast::tcp_stream& ClientConnection::tcp() { return tls_ ? tls_->next_layer() : *plain_; }

tcp::socket& ClientConnection::socket() { return tcp().socket(); }

asio::awaitable<beast::error_code> ClientConnection::Handshake(std::chrono::milliseconds timeout) {
  if (!tls_) co_return beast::error_code{};
  tcp().expires_after(timeout);
  auto [ec] = co_await tls_->async_handshake(ssl::stream_base::server, kNoThrow);
  tcp().expires_never();
  co_return ec;
}

template <typename StreamOperation>
auto ClientConnection::OnStream(StreamOperation operation) {
  if (tls_) return operation(*tls_);
  return operation(*plain_);
}

template <typename WriteOperation>
asio::awaitable<beast::error_code> ClientConnection::WriteWithin(std::chrono::milliseconds timeout,
                                                                 WriteOperation write) {
  tcp().expires_after(timeout);
  auto [ec, n] = co_await OnStream(write);
  bytes_written_ += n;
  tcp().expires_never();
  co_return ec;
}

asio::awaitable<beast::error_code> ClientConnection::ReadHeader(beast::flat_buffer& buffer,
                                                                RequestParser& parser) {
  auto [ec, n] = co_await OnStream([&](auto& stream) {
    return http::async_read_header(stream, buffer, parser, kNoThrow);
  });
  co_return ec;
}

asio::awaitable<beast::error_code> ClientConnection::ReadBody(beast::flat_buffer& buffer,
                                                              RequestParser& parser) {
  auto [ec, n] = co_await OnStream([&](auto& stream) {
    return http::async_read(stream, buffer, parser, kNoThrow);
  });
  co_return ec;
}

asio::awaitable<void> ClientConnection::Drain(size_t max_bytes, std::chrono::milliseconds timeout) {
  std::array<char, kDrainReadBytes> scratch;
  size_t drained = 0;
  tcp().expires_after(timeout);
  while (drained < max_bytes) {
    auto [ec, n] = co_await OnStream([&](auto& stream) {
      return stream.async_read_some(asio::buffer(scratch), kNoThrow);
    });
    if (ec) break;
    drained += n;
  }
  tcp().expires_never();
}

void ClientConnection::CancelReads() {
  beast::error_code ignored;
  socket().cancel(ignored);
}

asio::awaitable<beast::error_code> ClientConnection::Write(StringResponse& response,
                                                           std::chrono::milliseconds timeout) {
  co_return co_await WriteWithin(timeout, [&](auto& stream) {
    return http::async_write(stream, response, kNoThrow);
  });
}

asio::awaitable<beast::error_code> ClientConnection::WriteHead(
    http::response_serializer<http::empty_body>& head, std::chrono::milliseconds timeout) {
  co_return co_await WriteWithin(timeout, [&](auto& stream) {
    return http::async_write_header(stream, head, kNoThrow);
  });
}

asio::awaitable<beast::error_code> ClientConnection::WriteRaw(std::string_view bytes,
                                                              std::chrono::milliseconds timeout) {
  co_return co_await WriteWithin(timeout, [&](auto& stream) {
    return asio::async_write(stream, asio::buffer(bytes), kNoThrow);
  });
}

asio::awaitable<beast::error_code> ClientConnection::WriteChunk(std::string_view bytes,
                                                                std::chrono::milliseconds timeout) {
  auto chunk = http::make_chunk(asio::buffer(bytes));
  co_return co_await WriteWithin(timeout, [&](auto& stream) {
    return asio::async_write(stream, chunk, kNoThrow);
  });
}

asio::awaitable<beast::error_code> ClientConnection::WriteLastChunk(std::chrono::milliseconds timeout) {
  auto last = http::make_chunk_last();
  co_return co_await WriteWithin(timeout, [&](auto& stream) {
    return asio::async_write(stream, last, kNoThrow);
  });
}

asio::awaitable<void> ClientConnection::Close(std::chrono::milliseconds timeout, size_t drain_bytes) {
  beast::error_code ec;
  if (tls_ && socket().is_open()) {
    tcp().expires_after(timeout);
    std::tie(ec) = co_await tls_->async_shutdown(kNoThrow);
    tcp().expires_never();
  }
  if (!socket().is_open()) co_return;
  socket().shutdown(tcp::socket::shutdown_send, ec);
  if (!tls_ && drain_bytes > 0 && !ec) co_await Drain(drain_bytes, timeout);
  tcp().close();
}

}  // namespace moat::server

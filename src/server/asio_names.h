#pragma once
// The short names the server's sources use for Boost.Asio and Beast, and the completion token
// that makes `co_await` hand back the error code (and result) as a tuple instead of throwing.
// For the server's .cc files; headers spell the names out.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/message.hpp>

namespace moat::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

inline constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

}  // namespace moat::server

#include "watermark/suspect_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

namespace moat::watermark {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

struct Exchange {
  const HttpUrl* url;
  std::string target;
  std::string body;
  std::string api_key;
  std::chrono::milliseconds timeout;
  http::response<http::string_body> response;
  beast::error_code error;  // the first failure of the exchange; none when it completed
};

// Runs the exchange; failures end it early and are left in x->error (nothing throws).
asio::awaitable<void> Run(Exchange* x) {
  auto ex = co_await asio::this_coro::executor;
  beast::error_code& ec = x->error;
  auto on_error = asio::redirect_error(asio::use_awaitable, ec);
  beast::tcp_stream stream(ex);
  tcp::resolver resolver(ex);
  stream.expires_after(x->timeout);  // one deadline for the whole exchange
  auto endpoints =
      co_await resolver.async_resolve(x->url->host, std::to_string(x->url->port), on_error);
  if (ec) co_return;
  co_await stream.async_connect(endpoints, on_error);
  if (ec) co_return;
  http::request<http::string_body> req{http::verb::post, x->target, 11};
  req.set(http::field::host, x->url->host + ":" + std::to_string(x->url->port));
  req.set(http::field::content_type, "application/json");
  req.set(http::field::user_agent, "moat-wm");
  if (!x->api_key.empty()) req.set(http::field::authorization, "Bearer " + x->api_key);
  req.body() = x->body;
  req.prepare_payload();
  co_await http::async_write(stream, req, on_error);
  if (ec) co_return;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  co_await http::async_read(stream, buffer, parser, on_error);
  if (ec) co_return;
  x->response = parser.release();
  beast::error_code ignored;  // the answer is complete; a failed shutdown changes nothing
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

std::string Excerpt(std::string_view s) {
  return std::string(s.substr(0, 200)) + (s.size() > 200 ? "..." : "");
}

StatusOr<json::value> ParseBody(const std::string& body) {
  boost::system::error_code ec;
  json::parse_options opt;
  opt.allow_invalid_utf8 = true;  // a byte-level model may cut a UTF-8 sequence at max_tokens
  json::value v = json::parse(body, ec, {}, opt);
  if (ec) return DataLossError("response is not JSON: " + Excerpt(body));
  return v;
}

}  // namespace

StatusOr<SuspectClient> SuspectClient::Create(std::string_view base_url, std::string api_key,
                                              std::chrono::milliseconds timeout) {
  MOAT_ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl(base_url));
  return SuspectClient(std::move(url), std::move(api_key), timeout);
}

StatusOr<std::string> SuspectClient::PostJson(const std::string& target,
                                              const std::string& body) const {
  Exchange x{&url_, target, body, api_key_, timeout_, {}, {}};
  asio::io_context ioc;
  asio::co_spawn(ioc, Run(&x), asio::detached);
  ioc.run();
  const std::string where = url_.host + ":" + std::to_string(url_.port) + target;
  if (x.error) {
    if (x.error == beast::error::timeout) return DeadlineExceededError("timeout on " + where);
    return UnavailableError("POST " + where + ": " + x.error.message());
  }
  const int status = static_cast<int>(x.response.result_int());
  if (status < 200 || status > 299) {
    return UnavailableError("POST " + where + " answered " + std::to_string(status) + ": " +
                            Excerpt(x.response.body()));
  }
  return std::move(x.response.body());
}

StatusOr<std::string> SuspectClient::ChatCompletion(const ChatRequest& request) const {
  json::object body{{"model", request.model},
                    {"messages", json::array{json::object{{"role", "user"},
                                                          {"content", request.prompt}}}},
                    {"max_tokens", request.max_tokens},
                    {"temperature", request.temperature}};
  if (request.seed) body["seed"] = *request.seed;
  const bool has_v1 = url_.path.size() >= 3 && url_.path.substr(url_.path.size() - 3) == "/v1";
  const std::string target = url_.path + (has_v1 ? "" : "/v1") + "/chat/completions";
  MOAT_ASSIGN_OR_RETURN(std::string text, PostJson(target, json::serialize(body)));
  MOAT_ASSIGN_OR_RETURN(json::value v, ParseBody(text));
  const auto* choices = v.is_object() ? v.as_object().if_contains("choices") : nullptr;
  if (choices == nullptr || !choices->is_array() || choices->as_array().empty() ||
      !choices->as_array()[0].is_object()) {
    return DataLossError("no choices in completion: " + Excerpt(text));
  }
  const auto* msg = choices->as_array()[0].as_object().if_contains("message");
  const auto* content = msg != nullptr && msg->is_object() ? msg->as_object().if_contains("content")
                                                           : nullptr;
  if (content == nullptr || !content->is_string()) {
    return DataLossError("no message content in completion: " + Excerpt(text));
  }
  return std::string(content->as_string());
}

StatusOr<std::vector<int32_t>> SuspectClient::Tokenize(std::string_view model,
                                                       std::string_view text) const {
  json::object body{{"model", model}, {"prompt", text}};
  const std::string target = url_.path.empty() ? "/tokenize" : url_.path;
  MOAT_ASSIGN_OR_RETURN(std::string resp, PostJson(target, json::serialize(body)));
  MOAT_ASSIGN_OR_RETURN(json::value v, ParseBody(resp));
  const auto* tokens = v.is_object() ? v.as_object().if_contains("tokens") : nullptr;
  if (tokens == nullptr || !tokens->is_array()) return DataLossError("no tokens array: " + Excerpt(resp));
  std::vector<int32_t> out;
  out.reserve(tokens->as_array().size());
  for (const auto& t : tokens->as_array()) {
    if (!t.is_int64() || t.as_int64() < 0 || t.as_int64() > INT32_MAX) {
      return DataLossError("token id is not a non-negative 32-bit integer: " + Excerpt(resp));
    }
    out.push_back(static_cast<int32_t>(t.as_int64()));
  }
  return out;
}

}  // namespace moat::watermark

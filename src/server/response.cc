#include "server/response.h"

#include <boost/beast/http/field.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace moat::server {

namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

// The "error" object of an OpenAI error body.
json::object ErrorObject(std::string_view message, std::string_view type, std::string_view code,
                         std::string_view param) {
  json::object err;
  err["message"] = message;
  err["type"] = type;
  if (param.empty()) {
    err["param"] = nullptr;
  } else {
    err["param"] = param;
  }
  if (code.empty()) {
    err["code"] = nullptr;
  } else {
    err["code"] = code;
  }
  return err;
}

std::string Serialized(json::object err) {
  json::object root;
  root["error"] = std::move(err);
  return json::serialize(root);
}

}  // namespace

std::string ErrorBody(std::string_view message, std::string_view type, std::string_view code,
                      std::string_view param) {
  return Serialized(ErrorObject(message, type, code, param));
}

std::string ErrorBody(const LocalReply& reply) {
  json::object err = ErrorObject(reply.message, reply.type, reply.code, reply.param);
  if (!reply.verification_url.empty()) err["verification_url"] = reply.verification_url;
  return Serialized(std::move(err));
}

Response ErrorResponse(const LocalReply& reply) {
  return Response{reply.http_status, ErrorBody(reply), "application/json", reply.headers};
}

boost::asio::awaitable<bool> Respond(ClientConnection& conn, const HttpRequest* request,
                                     const Response& response,
                                     std::chrono::milliseconds write_timeout) {
  StringResponse res{static_cast<http::status>(response.status), request ? request->version() : 11};
  res.set(http::field::content_type, response.content_type);
  res.set(http::field::server, "moat");
  for (const auto& [name, value] : response.headers) res.set(name, value);
  res.keep_alive(request ? request->keep_alive() : false);
  res.body() = response.body;
  res.prepare_payload();
  boost::beast::error_code ec = co_await conn.Write(res, write_timeout);
  co_return !ec && res.keep_alive();
}

}  // namespace moat::server

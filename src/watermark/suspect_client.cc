#include "watermark/suspect_client.h"

#include <boost/json.hpp>

namespace moat::watermark {
namespace {

namespace json = boost::json;

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
  net::HttpClientOptions options;
  options.total_timeout = timeout;
  options.connect_timeout = timeout;  // one deadline for the whole exchange, as documented
  options.user_agent = "moat-wm";
  options.bearer_token = std::move(api_key);
  MOAT_ASSIGN_OR_RETURN(net::HttpClient http, net::HttpClient::Create(base_url, options));
  return SuspectClient(std::move(http));
}

StatusOr<std::string> SuspectClient::PostJson(const std::string& target,
                                              const std::string& body) const {
  net::HttpRequest req;
  req.method = "POST";
  req.target = target;
  req.headers = {{"content-type", "application/json"}};
  req.body = body;
  MOAT_ASSIGN_OR_RETURN(net::HttpResponse res, http_.Send(req));
  if (!res.ok()) {
    return UnavailableError("POST " + net::DescribeTarget(url(), target) + " answered " +
                            std::to_string(res.status) + ": " + Excerpt(res.body));
  }
  return std::move(res.body);
}

StatusOr<std::string> SuspectClient::ChatCompletion(const ChatRequest& request) const {
  json::object body{{"model", request.model},
                    {"messages", json::array{json::object{{"role", "user"},
                                                          {"content", request.prompt}}}},
                    {"max_tokens", request.max_tokens},
                    {"temperature", request.temperature}};
  if (request.seed) body["seed"] = *request.seed;
  const bool has_v1 = url().path.size() >= 3 && url().path.substr(url().path.size() - 3) == "/v1";
  const std::string target = url().path + (has_v1 ? "" : "/v1") + "/chat/completions";
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
  const std::string target = url().path.empty() ? "/tokenize" : url().path;
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

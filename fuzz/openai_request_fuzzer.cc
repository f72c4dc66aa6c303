// Fuzzes OpenAI request validation (server/openai.h) on any JSON: the checks of both completion
// endpoints, and what the gateway derives from a body for its audit record (prompt text,
// sampling parameters, token estimate).
#include <boost/json.hpp>
#include <cstdint>
#include <string>

#include "moat/filter.h"
#include "server/config.h"
#include "server/openai.h"
#include "server/response.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  boost::json::error_code ec;
  boost::json::value v = boost::json::parse(
      std::string_view(reinterpret_cast<const char*>(data), size), ec);
  if (ec || !v.is_object()) return 0;
  const boost::json::object& body = v.as_object();
  static const moat::server::ServerConfig defaults;
  for (const char* endpoint : {"/v1/chat/completions", "/v1/completions"}) {
    moat::RequestContext ctx;
    std::string param;
    moat::Status s = moat::server::ValidateCompletionRequest(
        endpoint, body, defaults.default_max_tokens, defaults.max_tokens_limit, &ctx, &param);
    if (!s.ok()) (void)moat::server::ErrorBody(s.message(), "invalid_request_error", "invalid_value", param);
    const std::string prompt = moat::server::PromptText(endpoint, body);
    (void)moat::server::EstimateTokens(prompt);
    (void)moat::server::SamplingParamsJson(body);
  }
  return 0;
}

#pragma once
// Helpers for the OpenAI wire format: request validation, and the text and sampling parameters
// the gateway records for each request. (Error bodies: server/response.h.)

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "moat/filter.h"
#include "moat/status.h"

namespace moat::server {

// The most prompts one /v1/completions request may hold (an array "prompt").
inline constexpr size_t kMaxPromptsPerRequest = 2048;

// Checks an /v1/chat/completions or /v1/completions body against the fields the gateway
// relies on and fills ctx.model / ctx.stream / ctx.max_tokens / ctx.prompt_tokens_estimate.
// ctx.max_tokens is what the answer may take in all: max_tokens x n (or best_of) x the
// prompts of a completions request, each of which is answered on its own.
// Returns a LocalReply-ready InvalidArgument status whose message names the bad field.
// `param` receives the offending parameter name.
moat::Status ValidateCompletionRequest(std::string_view endpoint, const boost::json::object& body,
                                       int64_t default_max_tokens, int64_t max_tokens_limit,
                                       RequestContext* ctx, std::string* param);

// The user-facing text of the request: the messages' text parts joined by newlines, or the prompt.
std::string PromptText(std::string_view endpoint, const boost::json::object& body);

// A JSON object text with the sampling parameters present in the body.
std::string SamplingParamsJson(const boost::json::object& body);

// Cheap token estimate used for reservations before the real count is known
// (about 4 bytes per token, plus per-message overhead).
int64_t EstimateTokens(std::string_view text);

}  // namespace moat::server

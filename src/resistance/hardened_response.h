#pragma once
// The hardening profile applied to whole OpenAI-style responses, for the gateway's backends:
// one call per response, so the backends need no knowledge of the modes.

#include <string_view>

#include <boost/json/object.hpp>

#include "resistance/hardening.h"

namespace moat::resistance {

// Applies the profile to a non-streamed chat or text completion in place: every choice's
// message.reasoning_content / message.reasoning (the trace mode) and message.content or text
// (the answer-only mode, which RequestAsksForSteps decides from `request_body` for kWhenAsked).
// Returns true when it changed the response. Streams are not summarised or reduced to their
// final answer (neither can be done before the stream ends): the analysis filter sets
// RequestContext::strip_reasoning unless the trace is kept, and the stream relay drops the trace
// (docs/resistance.md).
bool HardenResponse(const HardeningProfile& p, std::string_view request_body, boost::json::object& response);

}  // namespace moat::resistance

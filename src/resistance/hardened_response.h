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
// Returns true when it changed the response.
bool HardenResponse(const HardeningProfile& p, std::string_view request_body, boost::json::object& response);

// Applies the profile to one streamed event in place. A stream cannot be summarised or reduced
// to its final answer before it ends, so in a stream a trace in summary mode is removed like in
// remove mode, and answer-only is not applied (docs/resistance.md). Returns true when it changed
// the event.
bool HardenStreamEvent(const HardeningProfile& p, boost::json::object& event);

}  // namespace moat::resistance

#pragma once
// Action: what happens to a request, ordered by severity. The detection engine decides one (the
// request's verdict); the pipeline applies one (its action), which can differ: a rate limit
// throttles a request detection allowed, a silent degrade tells the client "allow".

#include <string_view>

namespace moat {

enum class Action { kAllow, kThrottle, kDegrade, kStepUp, kBlock };

// "allow", "throttle", "degrade", "step_up", "block": the one spelling of an action in audit
// records, metric labels, the x-moat-action header and the config.
inline std::string_view ToString(Action action) {
  switch (action) {
    case Action::kAllow: return "allow";
    case Action::kThrottle: return "throttle";
    case Action::kDegrade: return "degrade";
    case Action::kStepUp: return "step_up";
    case Action::kBlock: return "block";
  }
  return "unknown";
}

}  // namespace moat

#pragma once
// The contract between the gateway (or the traffic benchmark) and the behavioural detection
// engine: one RequestEvent in, one Verdict out, in time order.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "moat/action.h"

namespace moat::detect {

// One API request as the gateway sees it after authentication.
struct RequestEvent {
  int64_t time_ns = 0;     // nanoseconds since the Unix epoch (simulated or real clock)
  std::string account_id;  // the authenticated account
  std::string key_id;      // the API key used (an account may hold several)
  std::string end_user;    // the OpenAI `user` field, "" when absent
  std::string tier;        // the account's tier (unverified, verified, enterprise); "" unknown
  std::string client_ip;
  std::string user_agent;
  std::vector<std::pair<std::string, std::string>> headers;  // other request headers, lower-case names
  std::string endpoint;   // e.g. "/v1/chat/completions"
  std::string body_json;  // raw OpenAI request body
};

// The policy verdict (moat::Action, ordered by severity).
using moat::Action;

// "allow", "throttle", "degrade", "step_up", "block" (moat::ToString).
inline std::string_view ActionName(Action action) { return moat::ToString(action); }

struct Verdict {
  Action action = Action::kAllow;
  double account_score = 0;   // posterior that the deciding subject is a campaign's, in [0, 1]
  double campaign_score = 0;  // risk of the campaign the subject is linked to, in [0, 1]
  std::string campaign_id;    // the linked campaign, "" when none
  // The evidence behind the verdict, for the audit record and operators (not for clients).
  std::vector<std::string> reasons;
  // What a client may see of a restriction: a coarse category ("automated_extraction",
  // "coordinated_activity", "account_policy") and a reference id it can quote to support.
  // Empty when the request is allowed.
  std::string category;
  std::string reference;
  bool show_evidence = false;  // the account's tier may see `reasons` too
};

// The behavioural detection engine: observes every request in time order and returns the
// policy verdict for it. Implementations must be thread-safe.
class Engine {
 public:
  virtual ~Engine() = default;
  virtual Verdict Observe(const RequestEvent& event) = 0;
};

}  // namespace moat::detect

#pragma once
// HTTP replay: registers a labelled population's accounts in a running moat gateway through its
// admin API (ProvisionAccounts), then sends the generated event stream to the gateway at a chosen
// rate (real clock, real upstream behind the gateway) and scores the gateway's verdicts, read
// from the `x-moat-action` response header (or, failing that, from the HTTP status).
//
// Time: the gateway stamps every request with its own clock, so the scenario's simulated hours
// are compressed into the replay's wall time (events are paced at `rate` per second, not at their
// timestamps). Everything the detector decays over time (1-hour request rate, 24-hour signal
// sums, linkage counters) sees the whole replay as one burst, and inter-arrival and time-of-day
// features see machine pacing for every account; no subject lives long enough to define normal
// traffic. With `replay_clock` each request carries its event's time instead, and a gateway that
// lists the replaying host in [detection] replay_clock_peers judges it at that time. Scores keep
// the events' own timestamps either way.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "moat/detect_engine.h"
#include "moat/status.h"
#include "traffic/scorer.h"

namespace moat::traffic {

// What the gateway answered to one replayed request.
struct GatewayAnswer {
  int status = 0;               // HTTP status
  std::string moat_action;      // the x-moat-action header, "" when absent
  std::string moat_reason;      // the x-moat-reason header (trusted tiers only), "" when absent
  std::string moat_category;    // the x-moat-category header, "" when absent
  std::string moat_reference;   // the x-moat-reference header, "" when absent
  detect::Action action = detect::Action::kAllow;  // ActionFromResponse(status, moat_action)
};

struct HttpReplayOptions {
  std::string gateway_url = "http://127.0.0.1:8080";  // http only; path prefix allowed
  double rate = 20;          // requests per second (real clock); <= 0: as fast as possible
  int64_t max_events = 0;    // 0: all
  double timeout_s = 120;    // per request
  bool forward_client_ip = true;  // send the event's IP as X-Forwarded-For
  // Send the event's own time as `x-moat-replay-time` (Unix ns), which a gateway believes from
  // its [detection] replay_clock_peers: detection then sees the scenario's hours, not the
  // replay's compressed wall time.
  bool replay_clock = false;
  // Extra headers on every request (e.g. x-test-tokens for moat-test-upstream).
  std::vector<std::pair<std::string, std::string>> extra_headers;
  // When set, called after every answered request, in stream order (tests use it to look at
  // individual verdicts).
  std::function<void(const detect::RequestEvent&, const GatewayAnswer&)> on_answer;
};

struct ProvisionOptions {
  std::string gateway_url = "http://127.0.0.1:8080";
  std::string admin_token;       // the gateway's [server] admin_token
  std::string tier = "verified";  // tier of the created accounts whose label names none
  bool label_tiers = true;        // use the tier a label names (labels.jsonl "tier")
  double timeout_s = 30;
};

// The gateway account name used for a benchmark account id. Gateway names may not start with
// "acct_" (that prefix is reserved for gateway ids), so the id is prefixed with "bench-".
std::string GatewayAccountName(std::string_view bench_account);

// Registers every distinct account of the labels file in the gateway (POST /admin/accounts with
// name GatewayAccountName(account) and `tier`; an account that already exists is reused) and
// creates one API key for each (POST /admin/keys). Returns bench account -> key secret.
// Returns the gateway's error (with its HTTP status and body) on the first failed call,
// Unavailable when the gateway cannot be reached.
StatusOr<std::unordered_map<std::string, std::string>> ProvisionAccounts(
    const std::string& labels_path, const ProvisionOptions& options);

// Writes "account secret" lines (sorted by account) with a header comment. The file is created
// with mode 0600 because it holds live API keys.
Status WriteKeysFile(const std::string& path,
                     const std::unordered_map<std::string, std::string>& keys);

// Reads "account secret" pairs, one per line (whitespace-separated; '#' comments).
StatusOr<std::unordered_map<std::string, std::string>> LoadKeysFile(const std::string& path);

// The verdict a gateway response expresses: the x-moat-action header when present
// ("allow", "throttle", "degrade", "step_up", "block"), else 429 -> throttle,
// 401/403 -> block, anything else -> allow.
detect::Action ActionFromResponse(int status, std::string_view moat_action_header);

// Replays events and scores the gateway's verdicts. Each event's body goes to gateway URL +
// endpoint with `Authorization: Bearer <secret of the event's account>`, the event's headers
// (user agent included), `X-Forwarded-For: <event IP>`, and the event's end user as the body's
// `user` field when the body lacks one. Events of accounts missing from `keys` are skipped and
// counted in the log line. Returns Unavailable when most requests fail (the gateway is gone).
StatusOr<Report> ReplayOverHttp(const std::string& events_path, const std::string& labels_path,
                                const std::unordered_map<std::string, std::string>& keys,
                                const HttpReplayOptions& options);

}  // namespace moat::traffic

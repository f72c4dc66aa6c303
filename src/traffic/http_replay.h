#pragma once
// HTTP replay: sends a generated event stream to a running moat gateway at a chosen rate (real
// clock, real upstream behind the gateway) and scores the gateway's verdicts, read from the
// `x-moat-action` response header (or, failing that, from the HTTP status).

#include <cstdint>
#include <string>
#include <unordered_map>

#include "moat/detect_engine.h"
#include "moat/status.h"
#include "traffic/scorer.h"

namespace moat::traffic {

struct HttpReplayOptions {
  std::string gateway_url = "http://127.0.0.1:8080";  // http only; path prefix allowed
  double rate = 20;          // requests per second (real clock); <= 0: as fast as possible
  int64_t max_events = 0;    // 0: all
  double timeout_s = 120;    // per request
  bool forward_client_ip = true;  // send the event's IP as X-Forwarded-For
};

// Reads "account secret" pairs, one per line (whitespace-separated; '#' comments).
StatusOr<std::unordered_map<std::string, std::string>> LoadKeysFile(const std::string& path);

// The verdict a gateway response expresses: the x-moat-action header when present
// ("allow", "throttle", "degrade", "step_up", "block"), else 429 -> throttle,
// 401/403 -> block, anything else -> allow.
detect::Action ActionFromResponse(int status, std::string_view moat_action_header);

// Replays events (their bodies, with the account's secret as the bearer token) and scores.
// Events of accounts missing from `keys` are skipped and counted in the log line.
StatusOr<Report> ReplayOverHttp(const std::string& events_path, const std::string& labels_path,
                                const std::unordered_map<std::string, std::string>& keys,
                                const HttpReplayOptions& options);

}  // namespace moat::traffic

#pragma once
// StepUpNotifier: tells the operator's identity service that a subject must verify, with a
// signed webhook (webhook_signature.h), off the request path.
//
// Notify is called by the analysis filter on a worker thread when the policy answers step_up.
// It never blocks on the network: it checks the subject's deduplication entry and appends the
// event to a bounded queue, under a mutex held for a map lookup and a push. One sender thread
// owned by the notifier drains the queue: each event is POSTed as JSON to the configured URL
// with net::HttpClient (one kept-alive connection), signed afresh for each attempt, and retried
// with exponential backoff up to max_attempts; an event that is never accepted (a 2xx) is
// dropped. Events are delivered in the order they were queued, one at a time.
//
// Deduplication: a subject (an account, or an account's end user) is notified at most once per
// dedup_interval_s, counted from the event that was queued (by the events' own times). The
// table is bounded (max_tracked_subjects): entries older than the interval are pruned when it
// is full, and an event that still finds it full is dropped like one that finds the queue
// full, so neither memory nor the identity service can be flooded.
//
// Every outcome is counted in moat_step_up_webhooks_total{outcome}: queued, deduplicated,
// delivered, retried (per repeated attempt), and the drops dropped_queue_full,
// dropped_undeliverable (every attempt failed) and dropped_shutdown (still queued when the
// notifier was destroyed).
//
// Thread-safety: Notify may be called from any thread. The destructor stops the sender at its
// next step (an attempt in flight finishes or times out first) and must not race with Notify.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "common/metrics.h"
#include "moat/clock.h"
#include "moat/status.h"
#include "net/http_client.h"

namespace moat::stepup {

// One subject the policy asked to step up.
struct StepUpEvent {
  std::string account_id;
  std::string end_user;   // "" when the request named none
  std::string reference;  // the restriction's reference (the x-moat-reference header)
  std::string category;   // the restriction's category (the x-moat-category header)
  std::string request_id;
  int64_t time_ns = 0;            // when the request arrived (ns since the Unix epoch)
  std::string verification_url;   // the filled [detection] step_up_url, "" when none
};

// The webhook's JSON body (docs/detection.md): {"id", "type": "step_up.required", "created"
// (unix seconds), "account_id", "end_user" (null when none), "reference", "category",
// "request_id", "verification_url" (null when none)}.
std::string WebhookBody(const StepUpEvent& event, std::string_view event_id);

struct StepUpNotifierOptions {
  std::string url;      // http(s)://host[:port][/path] the events are POSTed to
  std::string secret;   // the HMAC-SHA256 key (LoadWebhookSecret), at least kMinSecretBytes
  std::chrono::milliseconds timeout{5000};  // one delivery attempt, connect included
  int64_t dedup_interval_s = 3600;          // a subject is notified at most once per interval
  size_t queue_limit = 1024;                // events waiting to be sent
  size_t max_tracked_subjects = 100'000;    // deduplication entries kept
  int max_attempts = 5;                     // per event, the first included
  std::chrono::milliseconds retry_backoff{1000};      // before the second attempt; doubles
  std::chrono::milliseconds max_retry_backoff{60000};  // the longest wait between attempts
};

class StepUpNotifier {
 public:
  enum class Outcome { kQueued, kDeduplicated, kDropped };

  // Starts the sender thread. InvalidArgument for a URL that is not http(s)://host[:port][/path]
  // (an https:// receiver is verified against the system trust store), a short secret or a
  // zero limit. `clock` (the signature's timestamp) and `metrics` must outlive the notifier.
  static StatusOr<std::unique_ptr<StepUpNotifier>> Create(StepUpNotifierOptions options, const Clock* clock,
                                                          MetricsRegistry* metrics);
  ~StepUpNotifier();
  StepUpNotifier(const StepUpNotifier&) = delete;
  StepUpNotifier& operator=(const StepUpNotifier&) = delete;

  // Queues `event` for delivery unless its subject was notified within the dedup interval
  // (kDeduplicated) or the queue or the dedup table is full (kDropped). Never blocks on I/O.
  Outcome Notify(StepUpEvent event);

 private:
  struct Queued {
    std::string id;    // "evt_" + 16 hex, also sent as x-moat-event-id
    std::string body;  // the same bytes for every attempt
  };
  StepUpNotifier(StepUpNotifierOptions options, net::HttpClient client, const Clock* clock, MetricsRegistry* metrics);
  void Run();
  void Deliver(const Queued& event);
  // Waits `d` or until the notifier stops; false when it stopped.
  bool Sleep(std::chrono::milliseconds d);

  const StepUpNotifierOptions options_;
  const Clock* const clock_;
  std::optional<net::HttpClient> client_;  // used by the sender thread only
  Counter* queued_;
  Counter* deduplicated_;
  Counter* delivered_;
  Counter* retried_;
  Counter* dropped_queue_full_;
  Counter* dropped_undeliverable_;
  Counter* dropped_shutdown_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                                       // GUARDED_BY(mu_)
  std::deque<Queued> queue_;                                // GUARDED_BY(mu_)
  std::unordered_map<std::string, int64_t> last_notified_;  // subject -> event time, GUARDED_BY(mu_)
  std::thread sender_;
};

}  // namespace moat::stepup

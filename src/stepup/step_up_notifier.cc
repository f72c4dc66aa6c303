#include "stepup/step_up_notifier.h"

#include <sodium.h>

#include <algorithm>
#include <boost/json.hpp>

#include "stepup/webhook_signature.h"

namespace moat::stepup {
namespace {

namespace json = boost::json;

constexpr int64_t kNanosPerSecond = 1'000'000'000;

std::string EventId() {
  unsigned char raw[8];
  randombytes_buf(raw, sizeof(raw));
  char hex[2 * sizeof(raw) + 1];
  sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
  return std::string("evt_") + hex;
}

json::value OrNull(const std::string& s) { return s.empty() ? json::value(nullptr) : json::value(s); }

}  // namespace

std::string WebhookBody(const StepUpEvent& event, std::string_view event_id) {
  json::object o;
  o["id"] = event_id;
  o["type"] = "step_up.required";
  o["created"] = event.time_ns / kNanosPerSecond;
  o["account_id"] = event.account_id;
  o["end_user"] = OrNull(event.end_user);
  o["reference"] = event.reference;
  o["category"] = event.category;
  o["request_id"] = event.request_id;
  o["verification_url"] = OrNull(event.verification_url);
  return json::serialize(o);
}

StatusOr<std::unique_ptr<StepUpNotifier>> StepUpNotifier::Create(StepUpNotifierOptions options, const Clock* clock,
                                                                 MetricsRegistry* metrics) {
  if (sodium_init() < 0) return InternalError("libsodium initialisation failed");
  if (options.secret.size() < kMinSecretBytes)
    return InvalidArgumentError("the webhook secret must hold at least " + std::to_string(kMinSecretBytes) + " bytes");
  if (options.queue_limit == 0 || options.max_tracked_subjects == 0 || options.max_attempts < 1)
    return InvalidArgumentError("webhook queue_limit, max_tracked_subjects and max_attempts must be at least 1");
  net::HttpClientOptions http;
  http.connect_timeout = options.timeout;
  http.total_timeout = options.timeout;
  http.max_response_body_bytes = 64 << 10;  // the answer is not read: only its status counts
  http.user_agent = "moat-webhook";
  MOAT_ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::Create(options.url, http));
  return std::unique_ptr<StepUpNotifier>(new StepUpNotifier(std::move(options), std::move(client), clock, metrics));
}

StepUpNotifier::StepUpNotifier(StepUpNotifierOptions options, net::HttpClient client, const Clock* clock,
                               MetricsRegistry* metrics)
    : options_(std::move(options)), clock_(clock) {
  client_.emplace(std::move(client));
  Family<Counter>& f = metrics->AddCounter(
      "moat_step_up_webhooks_total", "Step-up webhook events by outcome (docs/detection.md).", {"outcome"});
  queued_ = &f.With({"queued"});
  deduplicated_ = &f.With({"deduplicated"});
  delivered_ = &f.With({"delivered"});
  retried_ = &f.With({"retried"});
  dropped_queue_full_ = &f.With({"dropped_queue_full"});
  dropped_undeliverable_ = &f.With({"dropped_undeliverable"});
  dropped_shutdown_ = &f.With({"dropped_shutdown"});
  sender_ = std::thread([this] { Run(); });
}

StepUpNotifier::~StepUpNotifier() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  sender_.join();
  dropped_shutdown_->Inc(queue_.size());
}

StepUpNotifier::Outcome StepUpNotifier::Notify(StepUpEvent event) {
  std::string subject = event.account_id;
  if (!event.end_user.empty()) subject.append("/").append(event.end_user);
  const int64_t interval = options_.dedup_interval_s * kNanosPerSecond;
  {
    std::lock_guard lock(mu_);
    auto it = last_notified_.find(subject);
    const bool known = it != last_notified_.end();
    if (known && event.time_ns - it->second < interval) {
      deduplicated_->Inc();
      return Outcome::kDeduplicated;
    }
    if (!known && last_notified_.size() >= options_.max_tracked_subjects) {
      std::erase_if(last_notified_, [&](const auto& e) { return event.time_ns - e.second >= interval; });
    }
    if (queue_.size() >= options_.queue_limit ||
        (!known && last_notified_.size() >= options_.max_tracked_subjects)) {
      dropped_queue_full_->Inc();
      return Outcome::kDropped;
    }
    last_notified_[subject] = event.time_ns;
    queue_.push_back({EventId(), ""});
    queue_.back().body = WebhookBody(event, queue_.back().id);
    queued_->Inc();
  }
  cv_.notify_one();
  return Outcome::kQueued;
}

void StepUpNotifier::Run() {
  for (;;) {
    Queued event;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      event = std::move(queue_.front());
      queue_.pop_front();
    }
    Deliver(event);
  }
}

void StepUpNotifier::Deliver(const Queued& event) {
  const std::string target = client_->url().path.empty() ? "/" : client_->url().path;
  std::chrono::milliseconds backoff = options_.retry_backoff;
  for (int attempt = 1;; ++attempt) {
    net::HttpRequest req;
    req.method = "POST";
    req.target = target;
    req.body = event.body;
    req.SetHeader("content-type", "application/json");
    req.SetHeader("x-moat-event-id", event.id);
    req.SetHeader(kSignatureHeader, WebhookSignature(options_.secret, clock_->NowNanos() / kNanosPerSecond, event.body));
    StatusOr<net::HttpResponse> res = client_->Send(req);
    if (res.ok() && res->ok()) {
      delivered_->Inc();
      return;
    }
    if (attempt >= options_.max_attempts) {
      dropped_undeliverable_->Inc();
      return;
    }
    if (!Sleep(backoff)) {
      dropped_shutdown_->Inc();
      return;
    }
    retried_->Inc();
    backoff = std::min(backoff * 2, options_.max_retry_backoff);
  }
}

bool StepUpNotifier::Sleep(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [&] { return stop_; });
}

}  // namespace moat::stepup

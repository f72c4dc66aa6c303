// StepUpNotifier against a real HTTP receiver on loopback (test/upstream/test_http_server.h):
// signed delivery, deduplication per subject, retries with backoff, and the bounded drops.
#include "stepup/step_up_notifier.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "stepup/webhook_signature.h"
#include "test/upstream/test_http_server.h"

namespace moat::stepup {
namespace {

using namespace std::chrono_literals;
using moat::testing::TestHttpServer;
namespace json = boost::json;

constexpr int64_t kSec = 1'000'000'000;
const std::string kSecret = "whsec_0123456789abcdef";

// What the receiver saw, shared with its handler (which runs on the server's thread).
struct Received {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<TestHttpServer::Request> requests;
  int fail_first = 0;  // answer 500 to this many requests first
  int status_after = 204;

  TestHttpServer::Reply Handle(const TestHttpServer::Request& r) {
    std::lock_guard lock(mu);
    requests.push_back(r);
    cv.notify_all();
    const int status = static_cast<int>(requests.size()) <= fail_first ? 500 : status_after;
    return {status, "", "application/json"};
  }
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return requests.size() >= n; });
  }
  size_t count() {
    std::lock_guard lock(mu);
    return requests.size();
  }
};

// The value of moat_step_up_webhooks_total{outcome="<outcome>"} in `metrics`.
uint64_t Count(const MetricsRegistry& metrics, const std::string& outcome) {
  const std::string text = metrics.RenderPrometheus();
  const std::string key = "moat_step_up_webhooks_total{outcome=\"" + outcome + "\"} ";
  const size_t at = text.find(key);
  return at == std::string::npos ? 0 : std::stoull(text.substr(at + key.size()));
}

// Polls `pred` for up to 10 s (the sender thread counts after the receiver answered).
template <typename Pred>
bool Eventually(Pred pred) {
  for (int i = 0; i < 1000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

StepUpEvent Event(const std::string& account, const std::string& end_user, int64_t t) {
  StepUpEvent e;
  e.account_id = account;
  e.end_user = end_user;
  e.reference = "ref_0123456789abcdef";
  e.category = "automated_extraction";
  e.request_id = "req_1";
  e.time_ns = t;
  e.verification_url = "https://id.example/verify?account=" + account;
  return e;
}

StepUpNotifierOptions Options(const std::string& url) {
  StepUpNotifierOptions o;
  o.url = url + "/hooks/moat";
  o.secret = kSecret;
  o.timeout = 2000ms;
  o.dedup_interval_s = 60;
  o.retry_backoff = 10ms;
  return o;
}

TEST(StepUpNotifierTest, DeliversASignedEventOffTheCallersThread) {
  Received rx;
  TestHttpServer server([&](const TestHttpServer::Request& r) { return rx.Handle(r); });
  ManualClock clock(1'700'000'000 * kSec);
  MetricsRegistry metrics;
  auto n = StepUpNotifier::Create(Options(server.url()), &clock, &metrics);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ((*n)->Notify(Event("acct_1", "bob", clock.NowNanos())), StepUpNotifier::Outcome::kQueued);
  ASSERT_TRUE(rx.WaitFor(1));
  const TestHttpServer::Request r = rx.requests.at(0);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/hooks/moat");
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Header(std::string(kSignatureHeader)), WebhookSignature(kSecret, 1'700'000'000, r.body));
  EXPECT_TRUE(VerifyWebhookSignature(kSecret, r.Header("x-moat-signature"), r.body, 1'700'000'000, 300).ok());
  const json::object body = json::parse(r.body).as_object();
  EXPECT_EQ(body.at("type").as_string(), "step_up.required");
  EXPECT_EQ(body.at("id").as_string(), r.Header("x-moat-event-id"));
  EXPECT_EQ(body.at("account_id").as_string(), "acct_1");
  EXPECT_EQ(body.at("end_user").as_string(), "bob");
  EXPECT_EQ(body.at("reference").as_string(), "ref_0123456789abcdef");
  EXPECT_EQ(body.at("category").as_string(), "automated_extraction");
  EXPECT_EQ(body.at("request_id").as_string(), "req_1");
  EXPECT_EQ(body.at("created").as_int64(), 1'700'000'000);
  EXPECT_EQ(body.at("verification_url").as_string(), "https://id.example/verify?account=acct_1");
  EXPECT_TRUE(Eventually([&] { return Count(metrics, "delivered") == 1; }));
  EXPECT_EQ(Count(metrics, "queued"), 1u);
  EXPECT_EQ(Count(metrics, "retried"), 0u);
}

TEST(StepUpNotifierTest, NotifiesEachSubjectOncePerInterval) {
  Received rx;
  TestHttpServer server([&](const TestHttpServer::Request& r) { return rx.Handle(r); });
  ManualClock clock;
  MetricsRegistry metrics;
  auto n = StepUpNotifier::Create(Options(server.url()), &clock, &metrics);
  ASSERT_TRUE(n.ok());
  const int64_t t0 = 1'700'000'000 * kSec;
  using O = StepUpNotifier::Outcome;
  EXPECT_EQ((*n)->Notify(Event("acct_1", "", t0)), O::kQueued);
  EXPECT_EQ((*n)->Notify(Event("acct_1", "", t0 + 1 * kSec)), O::kDeduplicated);
  EXPECT_EQ((*n)->Notify(Event("acct_1", "", t0 + 59 * kSec)), O::kDeduplicated);
  EXPECT_EQ((*n)->Notify(Event("acct_1", "bob", t0 + 2 * kSec)), O::kQueued);  // an end user is its own subject
  EXPECT_EQ((*n)->Notify(Event("acct_2", "", t0 + 3 * kSec)), O::kQueued);
  EXPECT_EQ((*n)->Notify(Event("acct_1", "", t0 + 60 * kSec)), O::kQueued);  // the interval is over
  ASSERT_TRUE(rx.WaitFor(4));
  EXPECT_TRUE(Eventually([&] { return Count(metrics, "delivered") == 4; }));
  EXPECT_EQ(Count(metrics, "deduplicated"), 2u);
  EXPECT_EQ(Count(metrics, "queued"), 4u);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(rx.count(), 4u);
}

TEST(StepUpNotifierTest, RetriesWithBackoffThenDropsAnUndeliverableEvent) {
  Received rx;
  rx.fail_first = 2;
  TestHttpServer server([&](const TestHttpServer::Request& r) { return rx.Handle(r); });
  ManualClock clock(1'700'000'000 * kSec);
  MetricsRegistry metrics;
  StepUpNotifierOptions o = Options(server.url());
  o.max_attempts = 3;
  auto n = StepUpNotifier::Create(o, &clock, &metrics);
  ASSERT_TRUE(n.ok());
  (*n)->Notify(Event("acct_1", "", clock.NowNanos()));
  ASSERT_TRUE(rx.WaitFor(3));  // two failures, then accepted
  EXPECT_TRUE(Eventually([&] { return Count(metrics, "delivered") == 1; }));
  EXPECT_EQ(Count(metrics, "retried"), 2u);
  // Every attempt carries the same event and body, signed again.
  EXPECT_EQ(rx.requests[0].body, rx.requests[2].body);
  EXPECT_EQ(rx.requests[0].Header("x-moat-event-id"), rx.requests[2].Header("x-moat-event-id"));

  // A receiver that never accepts: max_attempts tries, then the event is dropped and counted.
  rx.fail_first = 1000;
  (*n)->Notify(Event("acct_2", "", clock.NowNanos()));
  ASSERT_TRUE(rx.WaitFor(6));
  EXPECT_TRUE(Eventually([&] { return Count(metrics, "dropped_undeliverable") == 1; }));
  EXPECT_EQ(Count(metrics, "retried"), 4u);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(rx.count(), 6u);
}

TEST(StepUpNotifierTest, AStalledReceiverNeverBlocksNotifyAndTheQueueIsBounded) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> seen{0};
  TestHttpServer server([&](const TestHttpServer::Request&) {
    ++seen;
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return release; });
    return TestHttpServer::Reply{204, "", "application/json"};
  });
  ManualClock clock(1'700'000'000 * kSec);
  MetricsRegistry metrics;
  StepUpNotifierOptions o = Options(server.url());
  o.queue_limit = 2;
  o.timeout = 10s;
  auto n = StepUpNotifier::Create(o, &clock, &metrics);
  ASSERT_TRUE(n.ok());
  using O = StepUpNotifier::Outcome;
  EXPECT_EQ((*n)->Notify(Event("acct_0", "", clock.NowNanos())), O::kQueued);
  ASSERT_TRUE(Eventually([&] { return seen.load() == 1; }));  // the sender is stuck on it
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ((*n)->Notify(Event("acct_1", "", clock.NowNanos())), O::kQueued);
  EXPECT_EQ((*n)->Notify(Event("acct_2", "", clock.NowNanos())), O::kQueued);
  EXPECT_EQ((*n)->Notify(Event("acct_3", "", clock.NowNanos())), O::kDropped);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
  EXPECT_EQ(Count(metrics, "dropped_queue_full"), 1u);
  // A dropped event leaves no deduplication entry: the subject can be notified later.
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(Eventually([&] { return Count(metrics, "delivered") == 3; }));
  EXPECT_EQ((*n)->Notify(Event("acct_3", "", clock.NowNanos())), O::kQueued);
  EXPECT_TRUE(Eventually([&] { return Count(metrics, "delivered") == 4; }));
}

TEST(StepUpNotifierTest, TheDeduplicationTableIsBounded) {
  Received rx;
  TestHttpServer server([&](const TestHttpServer::Request& r) { return rx.Handle(r); });
  ManualClock clock;
  MetricsRegistry metrics;
  StepUpNotifierOptions o = Options(server.url());
  o.max_tracked_subjects = 2;
  auto n = StepUpNotifier::Create(o, &clock, &metrics);
  ASSERT_TRUE(n.ok());
  const int64_t t0 = 1'700'000'000 * kSec;
  using O = StepUpNotifier::Outcome;
  EXPECT_EQ((*n)->Notify(Event("acct_1", "", t0)), O::kQueued);
  EXPECT_EQ((*n)->Notify(Event("acct_2", "", t0)), O::kQueued);
  EXPECT_EQ((*n)->Notify(Event("acct_3", "", t0 + kSec)), O::kDropped);  // both entries still current
  EXPECT_EQ((*n)->Notify(Event("acct_3", "", t0 + 61 * kSec)), O::kQueued);  // the old ones pruned
  EXPECT_EQ(Count(metrics, "dropped_queue_full"), 1u);
  ASSERT_TRUE(rx.WaitFor(3));
}

TEST(StepUpNotifierTest, EventsStillQueuedAtShutdownAreCountedAsDropped) {
  Received rx;
  rx.status_after = 503;
  TestHttpServer server([&](const TestHttpServer::Request& r) { return rx.Handle(r); });
  ManualClock clock(1'700'000'000 * kSec);
  MetricsRegistry metrics;
  StepUpNotifierOptions o = Options(server.url());
  o.retry_backoff = 60s;  // the sender waits between attempts when the notifier goes
  auto n = StepUpNotifier::Create(o, &clock, &metrics);
  ASSERT_TRUE(n.ok());
  (*n)->Notify(Event("acct_1", "", clock.NowNanos()));
  (*n)->Notify(Event("acct_2", "", clock.NowNanos()));
  ASSERT_TRUE(rx.WaitFor(1));
  const auto start = std::chrono::steady_clock::now();
  n->reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);  // the backoff wait was cut short
  EXPECT_EQ(Count(metrics, "dropped_shutdown"), 2u);
  EXPECT_EQ(Count(metrics, "delivered"), 0u);
}

TEST(StepUpNotifierTest, RefusesWhatItCannotSendAndTakesHttps) {
  ManualClock clock;
  MetricsRegistry metrics;
  StepUpNotifierOptions o = Options("http://127.0.0.1:9");
  o.url = "https://id.example/hooks";  // TLS, verified against the system trust store
  EXPECT_TRUE(StepUpNotifier::Create(o, &clock, &metrics).ok());
  o.url = "ftp://id.example/hooks";
  EXPECT_EQ(StepUpNotifier::Create(o, &clock, &metrics).status().code(), StatusCode::kInvalidArgument);
  o = Options("http://127.0.0.1:9");
  o.secret = "short";
  EXPECT_EQ(StepUpNotifier::Create(o, &clock, &metrics).status().code(), StatusCode::kInvalidArgument);
  o = Options("http://127.0.0.1:9");
  o.queue_limit = 0;
  EXPECT_EQ(StepUpNotifier::Create(o, &clock, &metrics).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moat::stepup

#include "common/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace moat {
namespace {

TEST(MetricsTest, RendersCountersGaugesAndHistograms) {
  MetricsRegistry reg;
  auto& req = reg.AddCounter("moat_requests_total", "Requests.", {"endpoint", "status"});
  auto& lat = reg.AddHistogram("moat_latency_seconds", "Latency.", {}, {0.001, 0.01});
  reg.AddCallbackGauge("moat_audit_queue_depth", "Queued audit records.", [] { return 3.0; });
  req.With({"/v1/models", "200"}).Inc();
  req.With({"/v1/models", "200"}).Inc(2);
  lat.With({}).Observe(0.0005);
  lat.With({}).Observe(0.005);
  lat.With({}).Observe(5);
  std::string text = reg.RenderPrometheus();
  EXPECT_NE(text.find("moat_requests_total{endpoint=\"/v1/models\",status=\"200\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("moat_latency_seconds_bucket{le=\"0.001\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("moat_latency_seconds_bucket{le=\"0.01\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("moat_latency_seconds_bucket{le=\"+Inf\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("moat_latency_seconds_count 3"), std::string::npos) << text;
  EXPECT_NE(text.find("moat_audit_queue_depth 3"), std::string::npos) << text;
}

TEST(MetricsTest, CountsExactlyUnderConcurrency) {
  MetricsRegistry reg;
  auto& c = reg.AddCounter("c_total", "c", {"k"});
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.With({i % 2 ? "a" : "b"}).Inc();
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.With({"a"}).value() + c.With({"b"}).value(), 40000u);
}

}  // namespace
}  // namespace moat

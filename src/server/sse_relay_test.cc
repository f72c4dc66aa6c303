#include "server/sse_relay.h"

#include <gtest/gtest.h>

#include <string>

namespace moat::server {
namespace {

constexpr char kTwoEvents[] =
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"lo\",\"reasoning_content\":\"secret\"}}]}\r\n\r\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n"
    "data: [DONE]\n\n";

TEST(SseRelayTest, SplitsEventsAnywhereAndTakesTextAndUsage) {
  for (size_t step = 1; step <= 7; ++step) {
    RequestContext ctx;
    SseRelay relay(ctx, /*client_wants_usage=*/false);
    std::string out;
    const std::string input = kTwoEvents;
    for (size_t i = 0; i < input.size(); i += step) relay.Feed(std::string_view(input).substr(i, step), &out);
    EXPECT_TRUE(relay.done());
    EXPECT_EQ(ctx.completion_text, "Hello");
    EXPECT_EQ(relay.content_events(), 2);
    EXPECT_EQ(ctx.prompt_tokens, 3);
    EXPECT_TRUE(ctx.usage_from_upstream);
    EXPECT_EQ(out.find("usage"), std::string::npos) << "injected usage chunk forwarded";
    EXPECT_EQ(out.find("[DONE]"), std::string::npos) << "the pipeline sends its own [DONE]";
    EXPECT_NE(out.find("reasoning_content"), std::string::npos);
  }
}

TEST(SseRelayTest, StripsReasoningWhenAsked) {
  RequestContext ctx;
  ctx.strip_reasoning = true;
  SseRelay relay(ctx, /*client_wants_usage=*/true);
  std::string out;
  relay.Feed(kTwoEvents, &out);
  EXPECT_EQ(out.find("secret"), std::string::npos) << out;
  EXPECT_NE(out.find("usage"), std::string::npos) << "the client asked for usage";
}

TEST(SseRelayTest, AnEventWithoutEndStopsTheRelayAtItsBound) {
  RequestContext ctx;
  SseRelay relay(ctx, false, /*max_event_bytes=*/1024);
  std::string out;
  relay.Feed("data: {\"choices\":[]}\n\n", &out);
  EXPECT_FALSE(relay.overflowed());
  relay.Feed("data: " + std::string(2000, 'x'), &out);
  EXPECT_TRUE(relay.overflowed());
  const size_t before = out.size();
  relay.Feed("\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n", &out);
  EXPECT_EQ(out.size(), before) << "nothing is forwarded after an overflow";
}

}  // namespace
}  // namespace moat::server

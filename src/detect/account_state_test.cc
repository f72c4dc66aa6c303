#include "detect/account_state.h"

#include <gtest/gtest.h>

namespace moat::detect {
namespace {

constexpr int64_t kSec = 1'000'000'000LL;

RequestFeatures Features(float logprobs) {
  RequestFeatures f;
  f.signal[kLogprobs] = logprobs;
  f.skeleton_hash = Hash64(std::to_string(logprobs));
  return f;
}

TEST(SubjectStateTest, FixedSize) {
  // The per-subject footprint is fixed whatever the subject's volume (and within the 1 KB per
  // live subject the engine promises, with the table's index overhead).
  EXPECT_LE(sizeof(SubjectState), 768u);
  SubjectState s;
  const size_t before = sizeof(s);
  for (int i = 0; i < 10000; ++i) {
    ObserveRequest(s, Features(1), "10.0.0." + std::to_string(i % 250), i * kSec, DecayConfig{});
  }
  EXPECT_EQ(sizeof(s), before);
  EXPECT_EQ(s.requests, 10000u);
  EXPECT_NEAR(s.DistinctIps(), 250, 60);
  EXPECT_NEAR(s.DistinctPrefixes(), 1, 0.2);
}

TEST(SubjectStateTest, DecaysAndCounts) {
  SubjectState s;
  DecayConfig d;
  d.signal_half_life_ns = 100 * kSec;
  ObserveRequest(s, Features(1), "1.2.3.4", 0, d);
  ObserveRequest(s, Features(1), "1.2.3.4", 100 * kSec, d);
  EXPECT_NEAR(s.n, 1.5, 1e-4);
  EXPECT_NEAR(s.signal[kLogprobs], 1.5, 1e-4);
  EXPECT_EQ(s.first_seen_ns, 0);
  EXPECT_EQ(s.last_seen_ns, 100 * kSec);
  EXPECT_NEAR(s.DistinctIps(), 1, 0.1);
  // Rate: 120 requests in an hour at a steady pace reads as about 120 per hour.
  SubjectState r;
  for (int i = 0; i < 600; ++i) ObserveRequest(r, Features(0), "1.2.3.4", i * 30 * kSec, DecayConfig{});
  EXPECT_NEAR(r.RatePerHour(), 120, 15);
}

TEST(SubjectStateTest, HistoryRing) {
  SubjectState s;
  for (int i = 0; i < kScoreHistory + 3; ++i) s.PushHistory((i + 1) * 60 * kSec, 0.5f, 0);
  EXPECT_EQ(s.history_pos, 3);
  EXPECT_EQ(s.history[2].minute, static_cast<uint32_t>(kScoreHistory + 3));
}

TEST(SubjectTableTest, EvictsLeastRecentToStoreAndRestores) {
  auto store = std::make_shared<InMemorySubjectStore>();
  SubjectTable table(4, store, 1);
  for (int i = 0; i < 6; ++i) {
    const std::string id = "acct" + std::to_string(i);
    table.With(Hash64(id), id, [&](SubjectState& s, bool created) {
      EXPECT_TRUE(created);
      s.requests = 100 + i;
    });
  }
  EXPECT_EQ(table.size(), 4u);
  EXPECT_EQ(store->size(), 2u);  // acct0, acct1 were least recently seen
  EXPECT_EQ(table.evictions(), 2u);
  SubjectState out;
  ASSERT_TRUE(table.Read(Hash64("acct0"), &out));  // from the store
  EXPECT_EQ(out.requests, 100u);
  EXPECT_EQ(out.IdView(), "acct0");
  // Coming back restores the state instead of starting over.
  table.With(Hash64("acct0"), "acct0", [&](SubjectState& s, bool created) {
    EXPECT_FALSE(created);
    EXPECT_EQ(s.requests, 100u);
  });
  EXPECT_EQ(store->size(), 2u);  // acct0 out, acct2 evicted in its place
  EXPECT_FALSE(table.Read(Hash64("nobody"), &out));
}

TEST(SubjectTableTest, EvictIdle) {
  auto store = std::make_shared<InMemorySubjectStore>();
  SubjectTable table(100, store, 4);
  for (int i = 0; i < 10; ++i) {
    const std::string id = "a" + std::to_string(i);
    table.With(Hash64(id), id, [&](SubjectState& s, bool) { s.last_seen_ns = i * kSec; });
  }
  EXPECT_EQ(table.EvictIdle(5 * kSec), 5u);
  EXPECT_EQ(table.size(), 5u);
  EXPECT_EQ(store->size(), 5u);
}

TEST(SubjectTableTest, BoundedWithoutStore) {
  SubjectTable table(64, nullptr, 8);
  for (int i = 0; i < 10000; ++i) {
    const std::string id = "f" + std::to_string(i);
    table.With(Hash64(id), id, [](SubjectState&, bool) {});
  }
  EXPECT_LE(table.size(), 64u);
}

}  // namespace
}  // namespace moat::detect

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

// One request's template and known-set features.
RequestFeatures Shaped(uint64_t prefix, uint64_t suffix, uint64_t ends, int corpus = -1) {
  RequestFeatures f;
  f.prefix_hash = prefix;
  f.suffix_hash = suffix;
  f.ends_hash = ends;
  if (corpus >= 0) {
    f.corpus.found = true;
    f.corpus.corpus = static_cast<uint16_t>(corpus);
  }
  return f;
}

TEST(SubjectStateTest, TemplateShareTellsAHarnessFromFreeText) {
  auto share_after = [](auto make, int n) {
    SubjectState s;
    for (int i = 0; i < n; ++i) ObserveRequest(s, make(i), "1.2.3.4", i * kSec, DecayConfig{});
    return s.TemplateShare();
  };
  // Every prompt in one frame (a fixed instruction before the item): 1, whichever part holds.
  EXPECT_DOUBLE_EQ(share_after([](int i) { return Shaped(7, 100 + i, 200 + i); }, 300), 1.0);
  EXPECT_DOUBLE_EQ(share_after([](int i) { return Shaped(100 + i, 7, 200 + i); }, 300), 1.0);
  EXPECT_DOUBLE_EQ(share_after([](int i) { return Shaped(100 + i, 200 + i, 7); }, 300), 1.0);
  // Free text: every prompt its own beginning and end: about a half at most, never 0.8.
  EXPECT_LT(share_after([](int i) { return Shaped(100 + i, 200 + i, 300 + i); }, 300), 0.55);
  // A voice that opens two prompts in three the same way: about two thirds.
  EXPECT_NEAR(
      share_after([](int i) { return Shaped(i % 3 != 2 ? 7 : 100 + i, 200 + i, 300 + i); }, 300),
      0.67, 0.05);
  // Prompts too short to have a template count against it.
  EXPECT_LT(share_after([](int) { return Shaped(0, 0, 0); }, 50), 0.55);
  // The counts halve together past 255 requests: a subject that turns into a harness is one
  // within a few hundred requests.
  EXPECT_GT(
      share_after(
          [](int i) { return i < 1000 ? Shaped(100 + i, 200 + i, 300 + i) : Shaped(7, 8, 9); },
          1400),
      0.8);
  EXPECT_EQ(SubjectState{}.TemplateShare(), 0.0);
}

TEST(SubjectStateTest, KnownSetShareCountsItemsOfOneSetNetOfOtherSets) {
  auto share_after = [](auto make, int n) {
    SubjectState s;
    for (int i = 0; i < n; ++i) ObserveRequest(s, make(i), "1.2.3.4", i * kSec, DecayConfig{});
    return s.KnownSetShare();
  };
  // A run of one public benchmark, 80 % of whose items the index holds.
  EXPECT_NEAR(share_after([](int i) { return Shaped(i, i, i, i % 5 == 0 ? -1 : 3); }, 200), 0.8,
              0.01);
  // A slice of four sets: each request a known item of one of them, in turn.
  EXPECT_LT(share_after([](int i) { return Shaped(i, i, i, i % 4); }, 200), 0.05);
  // Nothing known.
  EXPECT_EQ(share_after([](int i) { return Shaped(i, i, i); }, 200), 0.0);
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

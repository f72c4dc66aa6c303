#include "detect/sketches.h"

#include <gtest/gtest.h>

namespace moat::detect {
namespace {

TEST(HyperLogLogTest, SmallCountsAreNearlyExact) {
  EXPECT_NEAR(HyperLogLog<64>().Estimate(), 0.0, 1e-9);
  // Linear counting: only register collisions (rare for a handful of items) cause error.
  double sum = 0;
  for (int trial = 0; trial < 200; ++trial) {
    HyperLogLog<64> h;
    for (int rep = 0; rep < 2; ++rep) {  // repeats don't count
      for (int i = 0; i < 3; ++i) h.Add(Hash64("ip" + std::to_string(trial) + "." + std::to_string(i)));
    }
    sum += h.Estimate();
  }
  EXPECT_NEAR(sum / 200, 3.0, 0.15);
}

TEST(HyperLogLogTest, LargeCountsWithinError) {
  HyperLogLog<128> h;
  for (int i = 0; i < 20000; ++i) h.Add(Hash64("k" + std::to_string(i)));
  EXPECT_NEAR(h.Estimate(), 20000.0, 20000.0 * 0.3);  // 1.04 / sqrt(128) ~ 9% std error
  HyperLogLog<128> other;
  for (int i = 10000; i < 30000; ++i) other.Add(Hash64("k" + std::to_string(i)));
  h.Merge(other);
  EXPECT_NEAR(h.Estimate(), 30000.0, 30000.0 * 0.3);
}

TEST(MinHashTest, SimilarityTracksJaccard) {
  MinHash<64> a, b, c;
  for (int i = 0; i < 100; ++i) a.Add(i);
  for (int i = 50; i < 150; ++i) b.Add(i);  // Jaccard 50 / 150 = 0.33
  for (int i = 1000; i < 1100; ++i) c.Add(i);
  EXPECT_NEAR(a.Similarity(b), 1.0 / 3, 0.17);
  EXPECT_LT(a.Similarity(c), 0.1);
  EXPECT_DOUBLE_EQ(a.Similarity(a), 1.0);
  EXPECT_EQ(a.BandKey(0, 4), a.BandKey(0, 4));
  EXPECT_NE(a.BandKey(0, 4), a.BandKey(1, 4));
}

TEST(DecayTest, HalfLifeHalves) {
  EXPECT_FLOAT_EQ(DecayFactor(0, 100), 1.0f);
  EXPECT_NEAR(DecayFactor(100, 100), 0.5f, 1e-6);
  EXPECT_NEAR(DecayFactor(300, 100), 0.125f, 1e-6);
}

TEST(DecayedWelfordTest, MeanAndVariance) {
  DecayedWelford w;
  for (double x : {1.0, 2.0, 3.0, 4.0}) w.Add(x, 1.0f);
  EXPECT_NEAR(w.mean(), 2.5, 1e-5);
  EXPECT_NEAR(w.variance(), 1.25, 1e-5);
  // Strong decay: the newest value dominates.
  for (int i = 0; i < 20; ++i) w.Add(10.0, 0.1f);
  EXPECT_NEAR(w.mean(), 10.0, 0.01);
}

TEST(RampTest, Clamps) {
  EXPECT_EQ(Ramp(0, 1, 2), 0);
  EXPECT_EQ(Ramp(3, 1, 2), 1);
  EXPECT_DOUBLE_EQ(Ramp(1.5, 1, 2), 0.5);
}

}  // namespace
}  // namespace moat::detect

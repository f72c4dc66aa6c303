#include "detect/sketches.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "detect/ascii.h"
#include "detect/hash_batch.h"

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

// ---- ascii.h -------------------------------------------------------------------------------

TEST(LowerAsciiTest, SameAsTheByteLoopOnRandomBytes) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 5000; ++trial) {
    // Any byte, or mostly the bytes around the letter ranges (the edge cases of the word trick).
    const bool edges = trial % 2 == 0;
    const size_t n = rng() % 80;
    const size_t offset = rng() % 8;  // unaligned starts
    std::string in(offset + n, '\0');
    for (char& c : in) {
      static constexpr unsigned char kEdges[] = {'@', 'A', 'B', 'Y', 'Z', '[', '`', 'a', 'z', '{',
                                                 0x00, 0x7f, 0x80, 0xc0, 0xc1, 0xda, 0xdb, 0xff};
      c = static_cast<char>(edges ? kEdges[rng() % std::size(kEdges)] : rng() % 256);
    }
    std::string expected(n, '\0');
    size_t expected_upper = 0;
    for (size_t i = 0; i < n; ++i) {
      const unsigned char c = static_cast<unsigned char>(in[offset + i]);
      const bool upper = c >= 'A' && c <= 'Z';
      expected[i] = static_cast<char>(upper ? c + ('a' - 'A') : c);
      expected_upper += upper;
    }
    std::string out(n, '\0');
    EXPECT_EQ(LowerAscii(in.data() + offset, n, out.data()), expected_upper);
    EXPECT_EQ(out, expected);
    // In place.
    EXPECT_EQ(LowerAscii(in.data() + offset, n, in.data() + offset), expected_upper);
    EXPECT_EQ(in.substr(offset), expected);
  }
}

// ---- hash_batch.h ---------------------------------------------------------------------------

// Every kernel this CPU runs, and the active dispatch, against the scalar loops of the header.
std::vector<const HashBatchKernels*> RunnableKernels() {
  std::vector<const HashBatchKernels*> kernels;
  for (HashBatchIsa isa : {HashBatchIsa::kScalar, HashBatchIsa::kAvx2, HashBatchIsa::kAvx512}) {
    if (const HashBatchKernels* k = HashBatchKernelsFor(isa); k != nullptr) kernels.push_back(k);
  }
  static const HashBatchKernels kActive = {Mix64Batch, MinHashUpdate, MultiplyShiftMinUpdate};
  kernels.push_back(&kActive);
  return kernels;
}

TEST(HashBatchTest, ScalarKernelsAlwaysRun) {
  EXPECT_NE(HashBatchKernelsFor(HashBatchIsa::kScalar), nullptr);
  EXPECT_NE(HashBatchKernelsFor(ActiveHashBatchIsa()), nullptr);
}

TEST(HashBatchTest, Mix64BatchIsMix64OfEachValue) {
  std::mt19937_64 rng(11);
  for (const HashBatchKernels* k : RunnableKernels()) {
    for (int trial = 0; trial < 2000; ++trial) {
      const size_t n = rng() % 70;
      const uint64_t salt = trial % 3 == 0 ? 0 : rng();
      std::vector<uint64_t> in(n);
      for (uint64_t& v : in) v = trial % 5 == 0 ? rng() % 4 : rng();
      std::vector<uint64_t> out(n, 0);
      k->mix64(in.data(), salt, out.data(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], Mix64(in[i] ^ salt)) << "n=" << n << " i=" << i;
      k->mix64(in.data(), salt, in.data(), n);  // in place
      EXPECT_EQ(in, out);
    }
  }
}

TEST(HashBatchTest, MinHashUpdatesAreTheScalarLoops) {
  std::mt19937_64 rng(13);
  for (const HashBatchKernels* k : RunnableKernels()) {
    for (int trial = 0; trial < 500; ++trial) {
      const size_t n = rng() % 70;
      std::vector<uint64_t> seeds(n);
      for (uint64_t& v : seeds) v = rng() | 1;  // odd: valid multipliers too
      std::vector<uint32_t> mins(n, UINT32_MAX), ms_mins(n, UINT32_MAX);
      std::vector<uint32_t> expected = mins, ms_expected = ms_mins;
      for (int e = 0; e < 20; ++e) {
        const uint64_t element = rng();
        k->minhash(element, seeds.data(), mins.data(), n);
        k->multiply_shift_min(element, seeds.data(), ms_mins.data(), n);
        for (size_t j = 0; j < n; ++j) {
          expected[j] = std::min(expected[j], static_cast<uint32_t>(Mix64(element ^ seeds[j]) >> 32));
          ms_expected[j] = std::min(ms_expected[j], static_cast<uint32_t>((element * seeds[j]) >> 32));
        }
        ASSERT_EQ(mins, expected);
        ASSERT_EQ(ms_mins, ms_expected);
      }
    }
  }
}

TEST(HashBatchTest, MinHashAddIsTheDefinition) {
  // MinHash::Add goes through MinHashUpdate; the result is what its comment says.
  MinHash<64> a, b;
  std::mt19937_64 rng(17);
  std::vector<uint64_t> elements(100);
  for (uint64_t& e : elements) e = rng();
  for (uint64_t e : elements) a.Add(e);
  for (auto it = elements.rbegin(); it != elements.rend(); ++it) b.Add(*it);  // order-free
  EXPECT_EQ(a.Similarity(b), 1.0);
  MinHash<64> c;
  for (size_t i = 0; i < 50; ++i) c.Add(elements[i]);
  EXPECT_NEAR(a.Similarity(c), 0.5, 0.2);
}

}  // namespace
}  // namespace moat::detect

#include "common/random.h"

#include <set>

#include <gtest/gtest.h>

namespace moat {
namespace {

TEST(RandomTest, ASeededRandomRepeatsItsSequenceAndSeedsDiffer) {
  SeededRandom a(42), b(42), c(43);
  std::set<uint64_t> seen;
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.Next();
    EXPECT_EQ(x, b.Next()) << "draw " << i;
    differs = differs || x != c.Next();
    seen.insert(x);
  }
  EXPECT_TRUE(differs);
  EXPECT_EQ(seen.size(), 100u);  // 64-bit draws: a repeat would mean a broken generator
}

TEST(RandomTest, TheSystemRandomDoesNotRepeat) {
  std::set<uint64_t> seen;
  for (int i = 0; i < 100; ++i) seen.insert(SystemRandom::Get()->Next());
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace moat

#include "common/utf8.h"

#include <gtest/gtest.h>

namespace moat {
namespace {

TEST(Utf8Test, WellFormedAndNot) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC1\x81"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xC3"));              // cut short
  EXPECT_EQ(ReplaceInvalidUtf8("a\xC1z\xC3\xA9"), "a\xEF\xBF\xBDz\xC3\xA9");
  EXPECT_EQ(ReplaceInvalidUtf8("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Utf8Test, IncompleteTailIsWhatTheNextBytesMayComplete) {
  EXPECT_EQ(IncompleteUtf8Tail(""), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("abc"), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("caf\xC3\xA9"), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("caf\xC3"), 1u);
  EXPECT_EQ(IncompleteUtf8Tail("x\xE2\x82"), 2u);
  EXPECT_EQ(IncompleteUtf8Tail("x\xF0\x9F\x98"), 3u);
  EXPECT_EQ(IncompleteUtf8Tail("x\xF0\x9F\x98\x80"), 0u);
  EXPECT_EQ(IncompleteUtf8Tail("x\xC1"), 0u);      // never valid: nothing to wait for
  EXPECT_EQ(IncompleteUtf8Tail("x\xE0\x80"), 0u);  // an overlong start: broken already
  EXPECT_EQ(IncompleteUtf8Tail("x\x80\x80\x80"), 0u);
  // Holding back the tail and appending the rest gives the whole, valid text.
  const std::string whole = "\xE2\x82\xAC\xF0\x9F\x98\x80";
  for (size_t cut = 0; cut <= whole.size(); ++cut) {
    const std::string head = whole.substr(0, cut);
    const size_t keep = IncompleteUtf8Tail(head);
    EXPECT_TRUE(IsValidUtf8(head.substr(0, head.size() - keep))) << cut;
  }
}

}  // namespace
}  // namespace moat

#include "detect/recent_prompts.h"

#include <gtest/gtest.h>

namespace moat::detect {
namespace {

TEST(RecentPromptsTest, RemembersEachSubjectsPromptsApart) {
  RecentPrompts recent;
  EXPECT_FALSE(recent.SeenBefore(1, 100));
  EXPECT_TRUE(recent.SeenBefore(1, 100));
  EXPECT_TRUE(recent.SeenBefore(1, 100));
  EXPECT_FALSE(recent.SeenBefore(2, 100));  // another subject's prompt
  EXPECT_FALSE(recent.SeenBefore(1, 101));  // another prompt
  EXPECT_FALSE(recent.SeenBefore(1, 0));    // no prompt: never remembered
  EXPECT_FALSE(recent.SeenBefore(1, 0));
}

TEST(RecentPromptsTest, AnOverwrittenPromptCountsAsNewAgain) {
  RecentPrompts recent(1024);  // the smallest table: 1,024 slots
  EXPECT_FALSE(recent.SeenBefore(7, 42));
  // Many other prompts later, the first one's slot has been taken: it is new again (forgetting
  // errs on the side of scoring a prompt), then remembered again.
  for (uint64_t p = 1000; p < 1000 + 100'000; ++p) (void)recent.SeenBefore(8, p);
  EXPECT_FALSE(recent.SeenBefore(7, 42));
  EXPECT_TRUE(recent.SeenBefore(7, 42));
}

TEST(RecentPromptsTest, ARememberedPromptIsTakenOnce) {
  RecentPrompts recent;
  EXPECT_FALSE(recent.Take(1, 100));  // never sent
  EXPECT_FALSE(recent.SeenBefore(1, 100));
  EXPECT_FALSE(recent.Take(2, 100));  // another subject's
  EXPECT_TRUE(recent.Take(1, 100));
  EXPECT_FALSE(recent.Take(1, 100));        // taken: forgotten
  EXPECT_FALSE(recent.SeenBefore(1, 100));  // ... so new again when sent again
  EXPECT_FALSE(recent.Take(1, 0));
}

}  // namespace
}  // namespace moat::detect

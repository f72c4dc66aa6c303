#include "store/risk_lists.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace moat::store {
namespace {

TEST(RiskListsTest, SetReplaceRemoveAndPersist) {
  std::string dir = std::filesystem::temp_directory_path() / ("risk-lists-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string db = dir + "/moat.db";
  ManualClock clock;
  {
    auto lists = RiskLists::Open(db, &clock);
    ASSERT_TRUE(lists.ok()) << lists.status().ToString();
    ASSERT_TRUE((*lists)->Set("acct_a", "deny", "scraper").ok());
    ASSERT_TRUE((*lists)->Set("acct_b", "allow", "").ok());
    ASSERT_TRUE((*lists)->Set("acct_a", "allow", "reviewed").ok());
    EXPECT_EQ((*lists)->Set("acct_c", "maybe", "").code(), StatusCode::kInvalidArgument);
  }
  auto reopened = RiskLists::Open(db, &clock);
  ASSERT_TRUE(reopened.ok());
  auto all = (*reopened)->All();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
  EXPECT_EQ(all->at("acct_a"), "allow");
  ASSERT_TRUE((*reopened)->Set("acct_b", "none", "").ok());
  EXPECT_EQ((*reopened)->All()->count("acct_b"), 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moat::store

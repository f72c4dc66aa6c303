#include "watermark/watermark_key.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace moat::watermark {
namespace {

MasterSecret FixedSecret(uint8_t fill) {
  std::array<uint8_t, kMasterSecretBytes> b{};
  b.fill(fill);
  return MasterSecret(b);
}

TEST(WatermarkKeyTest, DerivationIsDeterministic) {
  const MasterSecret m = FixedSecret(1);
  WatermarkKey a = DeriveKey(m, "acct-1", 0);
  WatermarkKey b = DeriveKey(m, "acct-1", 0);
  EXPECT_EQ(a.material, b.material);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.key_id, "wm:acct-1:0");
  uint64_t seed = 0;
  for (int i = 7; i >= 0; --i) seed = (seed << 8) | a.material[i];
  EXPECT_EQ(a.seed, seed);
}

TEST(WatermarkKeyTest, KeysAreSeparatedByAccountEpochAndMaster) {
  std::set<std::array<uint8_t, kKeyBytes>> seen;
  for (uint8_t m : {1, 2}) {
    for (const char* acct : {"a", "b", "ab", "a:1"}) {
      for (uint32_t epoch : {0u, 1u, 7u}) {
        EXPECT_TRUE(seen.insert(DeriveKey(FixedSecret(m), acct, epoch).material).second)
            << int(m) << " " << acct << " " << epoch;
      }
    }
  }
}

TEST(WatermarkKeyTest, KeyIdRoundTrip) {
  auto parsed = ParseKeyId(KeyId("org:acct:9", 12));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->first, "org:acct:9");
  EXPECT_EQ(parsed->second, 12u);
  for (const char* bad : {"", "wm:", "wm::3", "wm:a:", "wm:a:x1", "xx:a:1", "wm:a:99999999999"}) {
    EXPECT_FALSE(ParseKeyId(bad).ok()) << bad;
  }
}

TEST(WatermarkKeyTest, DeriveKeysCoversEpochs) {
  auto keys = DeriveKeys(FixedSecret(3), {"x", "y"}, 2, 4);
  ASSERT_EQ(keys.size(), 6u);
  EXPECT_EQ(keys[0].key_id, "wm:x:2");
  EXPECT_EQ(keys[5].key_id, "wm:y:4");
  EXPECT_EQ(keys[4].material, DeriveKey(FixedSecret(3), "y", 3).material);
}

TEST(MasterSecretTest, LoadOrCreatePersistsWithPrivateMode) {
  const auto dir = std::filesystem::temp_directory_path() / ("moat_wm_" + std::to_string(::getpid()));
  const std::string path = (dir / "sub" / "wm_master.key").string();
  auto created = MasterSecret::LoadOrCreate(path);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = MasterSecret::LoadOrCreate(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(created->bytes(), again->bytes());
  EXPECT_NE(MasterSecret::Generate().bytes(), created->bytes());
  {
    std::ofstream out(path, std::ios::trunc);
    out << "nothex\n";
  }
  EXPECT_EQ(MasterSecret::LoadOrCreate(path).status().code(), StatusCode::kDataLoss);
  std::filesystem::remove_all(dir);
}

TEST(MasterSecretTest, ASecretOthersCanReadIsRefused) {
  const auto dir = std::filesystem::temp_directory_path() / ("moat_wm_perm_" + std::to_string(::getpid()));
  const std::string path = (dir / "wm_master.key").string();
  ASSERT_TRUE(MasterSecret::LoadOrCreate(path).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto loaded = MasterSecret::Load(path);
  EXPECT_EQ(loaded.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(loaded.status().message().find("chmod 600"), std::string::npos) << loaded.status().message();
  // LoadOrCreate must not replace it either (that would change every account's watermark).
  EXPECT_EQ(MasterSecret::LoadOrCreate(path).status().code(), StatusCode::kFailedPrecondition);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moat::watermark

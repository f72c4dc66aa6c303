#include "common/private_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace moat {
namespace {

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class PrivateFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-private-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string root_;
};

TEST_F(PrivateFilesTest, CreatesMissingDirectoriesOwnerOnlyWhateverTheUmask) {
  const mode_t old = ::umask(022);
  Status s = EnsurePrivateDirectory(root_ + "/a/b");
  ::umask(old);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ModeOf(root_ + "/a"), 0700u);
  EXPECT_EQ(ModeOf(root_ + "/a/b"), 0700u);
}

TEST_F(PrivateFilesTest, NarrowsAnExistingWorldReadableDirectory) {
  ASSERT_EQ(::chmod(root_.c_str(), 0755), 0);
  ASSERT_TRUE(EnsurePrivateDirectory(root_).ok());
  EXPECT_EQ(ModeOf(root_), 0700u);
}

TEST_F(PrivateFilesTest, DataFilesAreCreatedAndNarrowedTo0600) {
  const std::string created = root_ + "/new.db";
  const mode_t old = ::umask(022);
  ASSERT_TRUE(EnsurePrivateFile(created).ok());
  ::umask(old);
  EXPECT_EQ(ModeOf(created), 0600u);
  const std::string existing = root_ + "/old.db";
  std::ofstream(existing) << "data";
  ASSERT_EQ(::chmod(existing.c_str(), 0644), 0);
  ASSERT_TRUE(EnsurePrivateFile(existing).ok());
  EXPECT_EQ(ModeOf(existing), 0600u);
  std::ifstream in(existing);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "data");  // narrowing never truncates
}

TEST_F(PrivateFilesTest, SecretFilesReadableByOthersAreRefusedWithTheFix) {
  const std::string key = root_ + "/signing.key";
  EXPECT_EQ(CheckSecretFilePermissions(key).code(), StatusCode::kNotFound);
  std::ofstream(key) << "secret";
  ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
  Status s = CheckSecretFilePermissions(key);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("chmod 600 " + key), std::string::npos) << s.message();
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  EXPECT_TRUE(CheckSecretFilePermissions(key).ok());
  ASSERT_EQ(::chmod(key.c_str(), 0620), 0);  // group-writable: could be replaced
  EXPECT_EQ(CheckSecretFilePermissions(key).code(), StatusCode::kFailedPrecondition);
}

TEST_F(PrivateFilesTest, SecretFilesAreCreated0600CompleteAndNeverReplaced) {
  const std::string key = root_ + "/pepper.bin";
  const mode_t old = ::umask(0);
  Status created = CreateSecretFile(key, std::string("k\0ey", 4));
  ::umask(old);
  ASSERT_TRUE(created.ok()) << created.ToString();
  EXPECT_EQ(ModeOf(key), 0600u);
  std::ifstream in(key, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, std::string("k\0ey", 4));

  // A second writer finds the first one's file and leaves it alone.
  EXPECT_EQ(CreateSecretFile(key, "other").code(), StatusCode::kAlreadyExists);
  std::ifstream again(key, std::ios::binary);
  std::string kept((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, std::string("k\0ey", 4));
  // No temporary file is left behind either way.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(root_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);

  EXPECT_EQ(CreateSecretFile(root_ + "/missing-dir/key", "x").code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace moat

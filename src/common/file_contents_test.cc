#include "common/file_contents.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace moat {
namespace {

TEST(FileContentsTest, ReadsEveryByteUnchanged) {
  const std::string path = ::testing::TempDir() + "/file_contents_bytes";
  const std::string bytes("line\r\n\0binary\xff tail", 19);
  {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
  }
  auto read = ReadFileContents(path);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, bytes);
}

TEST(FileContentsTest, MissingFileIsNotFoundNamingWhatItIs) {
  auto read = ReadFileContents("/nonexistent/anchor", "the checkpoint anchor");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(read.status().message(), "cannot read the checkpoint anchor /nonexistent/anchor");
}

}  // namespace
}  // namespace moat

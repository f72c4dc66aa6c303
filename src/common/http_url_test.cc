#include "common/http_url.h"

#include <gtest/gtest.h>

namespace moat {
namespace {

TEST(HttpUrlTest, ParsesHostPortAndPath) {
  auto u = ParseHttpUrl("http://example.org:8000/v1/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "example.org");
  EXPECT_EQ(u->port, 8000);
  EXPECT_EQ(u->path, "/v1");
  auto d = ParseHttpUrl("http://h");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 80);
  EXPECT_EQ(d->path, "");
}

TEST(HttpUrlTest, RefusesWhatItCannotServe) {
  EXPECT_EQ(ParseHttpUrl("https://h").status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(ParseHttpUrl("ftp://h").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseHttpUrl("http://:80").ok());
  EXPECT_FALSE(ParseHttpUrl("http://h:99999").ok());
  EXPECT_FALSE(ParseHttpUrl("http://h:0").ok());
  EXPECT_FALSE(ParseHttpUrl("http://h:x").ok());
  EXPECT_FALSE(ParseHttpUrl("http://h:").ok());
}

}  // namespace
}  // namespace moat

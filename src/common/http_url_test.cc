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

TEST(HttpUrlTest, HttpsOnlyWhereTheCallerHasATlsClient) {
  auto u = ParseHttpUrl("https://api.example.org/v1", UrlSchemes::kHttpOrHttps);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "api.example.org");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->path, "/v1");
  auto p = ParseHttpUrl("https://h:8443", UrlSchemes::kHttpOrHttps);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->port, 8443);
  auto plain = ParseHttpUrl("http://h", UrlSchemes::kHttpOrHttps);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->tls);
  EXPECT_EQ(ParseHttpUrl("ftp://h", UrlSchemes::kHttpOrHttps).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moat

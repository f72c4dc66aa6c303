#include "common/url_template.h"

#include <gtest/gtest.h>

namespace moat {
namespace {

const std::vector<std::string> kNames = {"account", "end_user", "reference"};

TEST(UrlTemplateTest, FillsPlaceholdersPercentEncoded) {
  auto t = UrlTemplate::Parse("https://id.example/verify?account={account}&user={end_user}&ref={reference}", kNames);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->Fill({{"account", "acct_1"}, {"end_user", "bob & alice/x?y=z"}, {"reference", "ref_00ff"}}),
            "https://id.example/verify?account=acct_1&user=bob%20%26%20alice%2Fx%3Fy%3Dz&ref=ref_00ff");
  // A placeholder without a value is left empty; a placeholder may repeat.
  auto twice = UrlTemplate::Parse("http://127.0.0.1:8080/v/{account}/{account}", kNames);
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(twice->Fill({{"account", "a~b.c_d-e"}}), "http://127.0.0.1:8080/v/a~b.c_d-e/a~b.c_d-e");
  EXPECT_EQ(twice->Fill({}), "http://127.0.0.1:8080/v//");
  EXPECT_EQ(PercentEncode("\xff\x01 é"), "%FF%01%20%C3%A9");
}

TEST(UrlTemplateTest, AnEmptyTemplateFillsToNothing) {
  auto t = UrlTemplate::Parse("", kNames);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->empty());
  EXPECT_EQ(t->Fill({{"account", "a"}}), "");
  auto plain = UrlTemplate::Parse("https://id.example/verify", kNames);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->empty());
  EXPECT_EQ(plain->Fill({{"account", "a"}}), "https://id.example/verify");
}

TEST(UrlTemplateTest, RefusesUnknownPlaceholdersBracesAndOtherSchemes) {
  auto unknown = UrlTemplate::Parse("https://id.example/?a={acount}", kNames);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("unknown placeholder {acount}"), std::string::npos)
      << unknown.status().message();
  EXPECT_NE(unknown.status().message().find("{account}, {end_user}, {reference}"), std::string::npos);
  EXPECT_FALSE(UrlTemplate::Parse("https://id.example/?a={account", kNames).ok());
  EXPECT_FALSE(UrlTemplate::Parse("https://id.example/?a=account}", kNames).ok());
  EXPECT_FALSE(UrlTemplate::Parse("https://id.example/?a={{account}}", kNames).ok());
  for (const char* bad : {"ftp://id.example/{account}", "javascript:alert({account})", "id.example/{account}",
                          "https:///path?{account}", "https://id.example:99999/"}) {
    auto t = UrlTemplate::Parse(bad, kNames);
    EXPECT_FALSE(t.ok()) << bad;
    if (!t.ok()) EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace moat

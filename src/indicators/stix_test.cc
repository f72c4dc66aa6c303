#include "indicators/stix.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace moat::indicators {
namespace {
namespace json = boost::json;

constexpr int64_t kNow = 1'790'000'000'000'000'000LL;  // 2026-09-21
constexpr int64_t kDay = 86'400'000'000'000LL;

std::vector<IndicatorRecord> SampleRecords() {
  std::vector<IndicatorRecord> r(3);
  r[0].kind = IndicatorKind::kNetworkPrefix;
  r[0].value = "198.51.100.0/24";
  r[0].confidence = 75;
  r[0].subjects = 3;
  r[1].kind = IndicatorKind::kClientFingerprint;
  r[1].value = "0123456789abcdef";
  r[1].confidence = 90;
  r[1].subjects = 9;
  r[2].kind = IndicatorKind::kWorkQueueItem;
  r[2].value = "0000000000000001 0000000000000002 0000000000000003 0000000000000004 0000000000000005 "
               "0000000000000006 0000000000000007 0000000000000008";
  r[2].confidence = 50;
  r[2].subjects = 1;
  return r;
}

BundleInfo SampleInfo() {
  BundleInfo info;
  info.provider = "provider A";
  info.campaign_name = "restricted traffic";
  info.created_ns = kNow;
  info.first_seen_ns = kNow - kDay;
  info.last_seen_ns = kNow;
  info.valid_from_ns = kNow;
  info.valid_until_ns = kNow + 30 * kDay;
  info.salt_id = "00112233445566ff";
  return info;
}

json::value SampleBundle() { return json::parse(BuildBundle(SampleRecords(), SampleInfo())); }

// Applies `edit` to the first object of `type` in a fresh sample bundle and validates it.
Status ValidateEdited(std::string_view type, const std::function<void(json::object&)>& edit) {
  json::value b = SampleBundle();
  for (auto& o : b.as_object()["objects"].as_array()) {
    if (o.as_object()["type"].as_string() == type) {
      edit(o.as_object());
      break;
    }
  }
  return ValidateBundle(b);
}

TEST(StixBundle, OwnBundleIsValidAndComplete) {
  json::value b = SampleBundle();
  ASSERT_TRUE(ValidateBundle(b).ok()) << ValidateBundle(b).message();
  std::map<std::string, int> types;
  std::string campaign_id;
  for (const auto& o : b.as_object()["objects"].as_array()) {
    ++types[std::string(o.as_object().at("type").as_string())];
    if (o.as_object().at("type").as_string() == "campaign") campaign_id = std::string(o.as_object().at("id").as_string());
  }
  EXPECT_EQ(types["identity"], 1);
  EXPECT_EQ(types["campaign"], 1);
  EXPECT_EQ(types["indicator"], 3);
  EXPECT_EQ(types["relationship"], 3);
  for (const auto& o : b.as_object()["objects"].as_array()) {
    const auto& obj = o.as_object();
    if (obj.at("type").as_string() == "relationship") {
      EXPECT_EQ(obj.at("relationship_type").as_string(), "indicates");
      EXPECT_EQ(obj.at("target_ref").as_string(), campaign_id);
    }
    if (obj.at("type").as_string() == "indicator") {
      EXPECT_EQ(obj.at("valid_from").as_string(), StixTimestamp(kNow));
      EXPECT_EQ(obj.at("valid_until").as_string(), StixTimestamp(kNow + 30 * kDay));
    }
  }
}

TEST(StixBundle, PatternsPerKind) {
  auto r = SampleRecords();
  EXPECT_EQ(PatternOf(r[0]), "[ipv4-addr:value ISSUBSET '198.51.100.0/24']");
  EXPECT_EQ(PatternOf(r[1]), "[x-moat-request:client_fingerprint = '0123456789abcdef']");
  r[0].value = "2001:db8:1::/48";
  EXPECT_EQ(PatternOf(r[0]), "[ipv6-addr:value ISSUBSET '2001:db8:1::/48']");
}

TEST(StixValidate, RejectsBrokenRules) {
  EXPECT_FALSE(ValidateBundle(json::parse(R"({"type":"bundle","id":"bundle--nope"})")).ok());
  EXPECT_FALSE(ValidateBundle(json::parse(R"({"type":"report","id":"bundle--6ba7b810-9dad-41d1-80b4-00c04fd430c8"})")).ok());
  EXPECT_TRUE(ValidateBundle(json::parse(R"({"type":"bundle","id":"bundle--6ba7b810-9dad-41d1-80b4-00c04fd430c8"})")).ok());
  // id: wrong type prefix, bad UUID version nibble, bad variant.
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o["id"] = "campaign--6ba7b810-9dad-41d1-80b4-00c04fd430c8"; }).ok());
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o["id"] = "indicator--6ba7b810-9dad-01d1-80b4-00c04fd430c8"; }).ok());
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o["id"] = "indicator--6ba7b810-9dad-41d1-c0b4-00c04fd430c8"; }).ok());
  EXPECT_TRUE(ValidateEdited("indicator", [](json::object& o) { o["id"] = "indicator--6ba7b810-9dad-51d1-80b4-00c04fd430c8"; }).ok());
  // spec_version, timestamps.
  EXPECT_FALSE(ValidateEdited("campaign", [](json::object& o) { o.erase("spec_version"); }).ok());
  EXPECT_FALSE(ValidateEdited("campaign", [](json::object& o) { o["spec_version"] = "2.0"; }).ok());
  EXPECT_FALSE(ValidateEdited("campaign", [](json::object& o) { o["created"] = "2026-11-29 10:00:00"; }).ok());
  EXPECT_FALSE(ValidateEdited("campaign", [](json::object& o) { o["created"] = "2026-11-29T10:00:00+01:00"; }).ok());
  EXPECT_FALSE(ValidateEdited("campaign", [](json::object& o) { o["modified"] = "2000-01-01T00:00:00Z"; }).ok());
  EXPECT_FALSE(ValidateEdited("campaign", [](json::object& o) { o.erase("name"); }).ok());
  EXPECT_FALSE(ValidateEdited("identity", [](json::object& o) { o["name"] = ""; }).ok());
  // Indicators: required properties, validity window, confidence, pattern.
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o.erase("pattern"); }).ok());
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o.erase("pattern_type"); }).ok());
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o.erase("valid_from"); }).ok());
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o["valid_until"] = o["valid_from"]; }).ok());
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o["confidence"] = 101; }).ok());
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o["confidence"] = 0.5; }).ok());
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o["pattern"] = "[ipv4-addr:value = '1.2.3.4'"; }).ok());
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o["pattern"] = "ipv4-addr:value = '1.2.3.4'"; }).ok());
  EXPECT_FALSE(ValidateEdited("indicator", [](json::object& o) { o["pattern"] = "[ipv4-addr:value ~ '1.2.3.4']"; }).ok());
  // Relationships and refs.
  EXPECT_FALSE(ValidateEdited("relationship", [](json::object& o) { o["source_ref"] = "indicator-x"; }).ok());
  EXPECT_FALSE(ValidateEdited("relationship", [](json::object& o) { o.erase("relationship_type"); }).ok());
  EXPECT_FALSE(ValidateEdited("campaign", [](json::object& o) { o["created_by_ref"] = "campaign--6ba7b810-9dad-41d1-80b4-00c04fd430c8"; }).ok());
}

TEST(StixPattern, ParsesTheGrammar) {
  const char* good[] = {
      "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
      "[ipv4-addr:value = '198.51.100.1/32' OR ipv4-addr:value = '203.0.113.33/32']",
      "[domain-name:value = 'example.com'] AND [url:value MATCHES '^https?://']",
      "[file:size > 1024] FOLLOWEDBY [file:name LIKE 'x%'] WITHIN 300 SECONDS",
      "([a:b = 'c'] OR [d:e != 'f']) REPEATS 5 TIMES",
      "[network-traffic:dst_port IN (443, 80)]",
      "[x-moat-request:item_sketch = 'it\\'s']",
      "[process:extensions.'windows-process-ext'.aslr_enabled = true]",
      "[email-message:to_refs[*].value = 'a@example.com']",
      "[a:b = t'2026-01-01T00:00:00Z'] START t'2026-01-01T00:00:00Z' STOP t'2026-02-01T00:00:00Z'",
  };
  for (const char* p : good) EXPECT_TRUE(ParsePattern(p).ok()) << p << ": " << ParsePattern(p).status().message();
  auto one = ParsePattern("[x-moat-request:item_sketch = 'it\\'s']");
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].object_type, "x-moat-request");
  EXPECT_EQ((*one)[0].property, "item_sketch");
  EXPECT_EQ((*one)[0].op, "=");
  EXPECT_EQ((*one)[0].value, "it's");
  const char* bad[] = {"", "[]", "[a = 'b']", "[a:b = 'c'", "[a:b = 'c'] AND", "[a:b 'c']", "[a:b = 'c\\x']",
                       "[A:b = 'c']", "[a:b = 'c'] trailing", "[a:b IN ('c'"};
  for (const char* p : bad) EXPECT_FALSE(ParsePattern(p).ok()) << p;
}

TEST(StixTimestamp, RoundTripAndStrictness) {
  EXPECT_EQ(StixTimestamp(0), "1970-01-01T00:00:00.000Z");
  const int64_t t = 1'764'410'000'123'000'000LL;
  auto back = ParseStixTimestamp(StixTimestamp(t));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, t);
  EXPECT_TRUE(ParseStixTimestamp("2026-11-29T10:00:00Z").ok());
  EXPECT_TRUE(ParseStixTimestamp("2026-11-29T10:00:00.5Z").ok());
  EXPECT_FALSE(ParseStixTimestamp("2026-11-29T10:00:00").ok());
  EXPECT_FALSE(ParseStixTimestamp("2026-13-29T10:00:00Z").ok());
  EXPECT_FALSE(ParseStixTimestamp("2026-11-29T10:00:00.Z").ok());
}

}  // namespace
}  // namespace moat::indicators

#include "indicators/indicator_set.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "audit/audit_log.h"
#include "audit/audit_test_util.h"
#include "detect/engine.h"
#include "detect/features.h"
#include "indicators/exporter.h"
#include "indicators/stix.h"

namespace moat::indicators {
namespace {
namespace json = boost::json;

constexpr int64_t kDay = 86'400'000'000'000LL;
const int64_t kT0 = 1'764'400'000'000'000'000LL;  // 2025-11-29

std::string ChatBody(const std::string& prompt) {
  json::object body{{"model", "builtin"},
                    {"temperature", 0.7},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", prompt}}}}};
  return json::serialize(body);
}

detect::RequestEvent Event(const std::string& ip, const std::string& ua, const std::string& prompt) {
  detect::RequestEvent e;
  e.time_ns = kT0;
  e.account_id = "acct";
  e.client_ip = ip;
  e.user_agent = ua;
  e.endpoint = "/v1/chat/completions";
  e.body_json = ChatBody(prompt);
  return e;
}

std::string Harvest(int i) {
  return "You are a meticulous tutor. Solve the following exercise carefully and show every step: "
         "a train leaves station " + std::to_string(i) + " at " + std::to_string(i % 12 + 1) +
         " o'clock travelling at " + std::to_string(40 + i) +
         " miles per hour; when does it meet the second train? End with the final answer on its own line.";
}

std::shared_ptr<const IndicatorSet> SetFromBundle(const std::string& bundle_text, const std::string& salt,
                                                  ImportSummary* summary, int64_t now = kT0) {
  auto hasher = std::make_shared<IndicatorHasher>(salt);
  ImportOptions options;
  options.imported_ns = now;
  auto list = ReadIndicators(json::parse(bundle_text), hasher->salt_id(), options, now, summary);
  return std::make_shared<IndicatorSet>(std::move(list), hasher);
}

BundleInfo Info(const IndicatorHasher& h) {
  BundleInfo info;
  info.campaign_name = "test";
  info.created_ns = kT0;
  info.valid_from_ns = kT0 - kDay;
  info.valid_until_ns = kT0 + 30 * kDay;
  info.salt_id = h.salt_id();
  return info;
}

TEST(IndicatorKeys, CidrConversions) {
  EXPECT_EQ(PrefixToCidr("203.0.113").value(), "203.0.113.0/24");
  EXPECT_EQ(PrefixToCidr("2001:db8:1").value(), "2001:db8:1::/48");
  EXPECT_FALSE(PrefixToCidr("203.0.113.7").has_value());
  EXPECT_EQ(CidrToPrefix("203.0.113.0/24").value(), "203.0.113");
  EXPECT_EQ(CidrToPrefix("2001:db8:1::/48").value(), "2001:db8:1");
  EXPECT_FALSE(CidrToPrefix("203.0.0.0/16").has_value());
  EXPECT_EQ(ParseHex64(Hex64(0x0123456789abcdefULL)).value(), 0x0123456789abcdefULL);
  EXPECT_FALSE(ParseHex64("0123").has_value());
}

TEST(IndicatorKeys, HashDependsOnSaltAndKind) {
  IndicatorHasher a("salt one"), b("salt two");
  EXPECT_NE(a.Hash(IndicatorKind::kClientFingerprint, 42), b.Hash(IndicatorKind::kClientFingerprint, 42));
  EXPECT_NE(a.Hash(IndicatorKind::kClientFingerprint, 42), a.Hash(IndicatorKind::kTemplatePrefix, 42));
  EXPECT_EQ(a.Hash(IndicatorKind::kClientFingerprint, 42), IndicatorHasher("salt one").Hash(IndicatorKind::kClientFingerprint, 42));
  EXPECT_NE(a.salt_id(), b.salt_id());
}

// Records for every key of one request, as an export would make them.
std::vector<IndicatorRecord> RecordsFor(const detect::RequestEvent& e, const IndicatorHasher& h) {
  const RequestKeys k = RequestKeysOf(e, detect::Extract(e));
  std::vector<IndicatorRecord> out;
  auto add = [&](IndicatorKind kind, std::string value) {
    IndicatorRecord r;
    r.kind = kind;
    r.value = std::move(value);
    r.confidence = 80;
    r.subjects = 4;
    out.push_back(r);
  };
  add(IndicatorKind::kNetworkPrefix, *PrefixToCidr(k.network_prefix));
  add(IndicatorKind::kClientFingerprint, Hex64(h.Hash(IndicatorKind::kClientFingerprint, k.client)));
  add(IndicatorKind::kTemplatePrefix, Hex64(h.Hash(IndicatorKind::kTemplatePrefix, k.template_prefix)));
  std::string bands;
  for (uint32_t b : k.item.band) bands += (bands.empty() ? "" : " ") + Hex64(h.Hash(IndicatorKind::kWorkQueueItem, b));
  add(IndicatorKind::kWorkQueueItem, bands);
  return out;
}

TEST(IndicatorSet, MatchesEachKindAndNothingElse) {
  IndicatorHasher h("shared salt");
  const auto campaign = Event("198.51.100.20", "harvester/3.1", Harvest(1));
  const std::string bundle = BuildBundle(RecordsFor(campaign, h), Info(h));
  ImportSummary summary;
  auto set = SetFromBundle(bundle, "shared salt", &summary);
  EXPECT_EQ(summary.indicators, 4u);
  EXPECT_EQ(summary.other_salt, 0u);

  ASSERT_TRUE(set->Match(campaign, detect::Extract(campaign), kT0).has_value());
  // Each kind alone.
  auto only = [&](const detect::RequestEvent& e) {
    auto hit = set->Match(e, detect::Extract(e), kT0);
    if (!hit) return std::string("none");
    for (const auto& ind : set->indicators()) {
      if (detect::IndicatorKeyOf(ind.stix_id) == hit->key) return std::string(KindName(ind.kind));
    }
    return std::string("unknown key");
  };
  EXPECT_EQ(only(Event("198.51.100.99", "curl/8", "what is the capital of peru")), "network-prefix");
  EXPECT_EQ(only(Event("10.1.2.3", "harvester/3.1", "what is the capital of peru")), "client-fingerprint");
  EXPECT_EQ(only(Event("10.1.2.3", "curl/8",
                       "You are a meticulous tutor. Solve the following exercise carefully and show every step: "
                       "what is the capital of peru and why did the city grow where it did in the sixteenth century")),
            "prompt-template-prefix");
  // The same item reworded slightly (the sketch is over content words).
  std::string reworded = Harvest(1);
  reworded.replace(reworded.find("carefully"), 9, "diligently");
  EXPECT_NE(only(Event("10.1.2.3", "curl/8", reworded)), "none");
  EXPECT_EQ(only(Event("10.9.9.9", "python-requests/2", "tell me a joke about compilers please")), "none");
  // Weight: import weight 3 x confidence 0.8.
  auto hit = set->Match(campaign, detect::Extract(campaign), kT0);
  EXPECT_FLOAT_EQ(hit->weight, 2.4f);
  EXPECT_NE(set->Describe(hit->key).find("indicator--"), std::string::npos);
  // The key names the same indicator in another set read from the same bundle (a reload).
  auto again = SetFromBundle(bundle, "shared salt", &summary);
  EXPECT_EQ(again->Describe(hit->key), set->Describe(hit->key));
  EXPECT_EQ(again->Match(campaign, detect::Extract(campaign), kT0)->key, hit->key);
}

TEST(IndicatorSet, OtherSaltAndExpiry) {
  IndicatorHasher h("salt A");
  const auto campaign = Event("198.51.100.20", "harvester/3.1", Harvest(2));
  const std::string bundle = BuildBundle(RecordsFor(campaign, h), Info(h));
  ImportSummary other;
  auto set = SetFromBundle(bundle, "salt B", &other);
  EXPECT_EQ(other.other_salt, 3u);  // every keyed kind; the CIDR is not keyed
  EXPECT_EQ(other.indicators, 1u);
  ImportSummary late;
  auto expired = SetFromBundle(bundle, "salt A", &late, kT0 + 31 * kDay);
  EXPECT_EQ(late.expired, 4u);
  EXPECT_EQ(expired->size(), 0u);
  ImportSummary now;
  auto live = SetFromBundle(bundle, "salt A", &now);
  auto hit = live->Match(campaign, detect::Extract(campaign), kT0);
  ASSERT_TRUE(hit.has_value());
  EXPECT_TRUE(live->WeightAt(hit->key, kT0).has_value());
  EXPECT_FALSE(live->WeightAt(hit->key, kT0 + 31 * kDay).has_value());
  EXPECT_FALSE(expired->WeightAt(hit->key, kT0).has_value());  // not in that set
}

// A running engine takes a new set (what a gateway does when a bundle is imported): the next
// request matches it; a set that no longer holds the indicator ends the subject's prior.
TEST(IndicatorSet, AnEngineTakesANewSetWithoutARestart) {
  IndicatorHasher h("shared salt");
  const auto campaign = Event("198.51.100.20", "harvester/3.1", Harvest(3));
  ImportSummary summary;
  auto live = SetFromBundle(BuildBundle(RecordsFor(campaign, h), Info(h)), "shared salt", &summary);
  auto none = std::make_shared<IndicatorSet>(std::vector<ImportedIndicator>{},
                                             std::make_shared<IndicatorHasher>("shared salt"));
  detect::DetectionConfig config;
  config.indicators = none;
  detect::DetectionEngine engine(config);
  auto at = [&](int minute) {
    detect::RequestEvent e = campaign;
    e.time_ns = kT0 + minute * 60'000'000'000LL;
    engine.Observe(e);
    return engine.Account("acct")->indicator;
  };
  EXPECT_EQ(at(0), "");
  ASSERT_TRUE(engine.SetIndicators(live));
  EXPECT_NE(at(1).find("indicator--"), std::string::npos);
  ASSERT_TRUE(engine.SetIndicators(none));
  EXPECT_EQ(at(2), "");
  // An engine built without indicators has no stage to give a set to.
  detect::DetectionEngine plain{detect::DetectionConfig{}};
  EXPECT_FALSE(plain.SetIndicators(live));
}

TEST(IndicatorExport, FromAnAuditLogThroughImportToAMatch) {
  audit::testing::TempDir dir;
  {
    auto log = audit::AuditLog::Open(audit::testing::OptionsIn(dir));
    ASSERT_TRUE(log.ok()) << log.status().message();
    int64_t i = 0;
    auto append = [&](const std::string& account, const std::string& ip, const std::string& ua,
                      const std::string& prompt, const std::string& action) {
      AuditRecord r = audit::testing::SampleRecord(i);
      r.time_ns = kT0 + (i++) * 1'000'000'000LL;
      r.account_id = account;
      r.client_ip = ip;
      r.user_agent = ua;
      r.model = "builtin";
      r.params_json = R"({"temperature":0.7})";
      r.stream = false;
      r.prompt_text = "user: " + prompt;
      r.action = action;
      r.verdict = action;
      ASSERT_TRUE((*log)->Append(r).ok());
    };
    for (int a = 0; a < 4; ++a) {
      for (int q = 0; q < 5; ++q) {
        append("harvest-" + std::to_string(a), "198.51.100." + std::to_string(10 + a), "harvester/3.1",
               Harvest(a * 10 + q), q < 2 ? "allow" : "degrade");
      }
    }
    for (int a = 0; a < 6; ++a) {
      append("organic-" + std::to_string(a), "203.0.113." + std::to_string(a), "OpenAI/Python 1.30.1",
             "how do I sort a list of tuples by the second element in python " + std::to_string(a), "allow");
    }
    (*log)->Flush();
  }
  IndicatorHasher h("exchange salt");
  ExportOptions options;
  auto result = ExportIndicators(dir.File("audit.db"), h, options);
  ASSERT_TRUE(result.ok()) << result.status().message();
  EXPECT_EQ(result->restricted_accounts, 4u);
  EXPECT_EQ(result->requests, 26u);
  std::map<std::string, int> kinds;
  for (const auto& r : result->records) {
    ++kinds[std::string(KindName(r.kind))];
    EXPECT_GE(r.confidence, 1);
    if (r.kind == IndicatorKind::kNetworkPrefix) {
      EXPECT_EQ(r.value, "198.51.100.0/24");
    }
  }
  EXPECT_EQ(kinds["network-prefix"], 1);
  EXPECT_EQ(kinds["client-fingerprint"], 1);
  EXPECT_EQ(kinds["prompt-template-prefix"], 1);
  EXPECT_EQ(kinds["prompt-template-suffix"], 1);
  // The restricted requests' items (12; the sketch ignores numbers, so some coincide); the two
  // allowed requests of each account are no indicator.
  EXPECT_GE(kinds["work-queue-item"], 1);
  EXPECT_LE(kinds["work-queue-item"], 12);

  BundleInfo info = Info(h);
  const std::string bundle = BuildBundle(result->records, info);
  ImportOptions io;
  io.imported_ns = kT0;
  const std::string store = dir.File("indicators");
  auto id = ImportBundle(store, bundle, io);
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_EQ(ImportBundle(store, bundle, io).status().code(), StatusCode::kAlreadyExists);
  EXPECT_FALSE(ImportBundle(store, "{\"type\":\"bundle\"}", io).ok());
  ImportSummary summary;
  auto loaded = LoadIndicatorDir(store, h.salt_id(), kT0, &summary);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->size(), result->records.size());
  IndicatorSet set(std::move(*loaded), std::make_shared<IndicatorHasher>("exchange salt"));
  // A fresh account at the other provider, live request body, same tooling and template.
  auto fresh = Event("10.20.30.40", "harvester/3.1", Harvest(99));
  auto hit = set.Match(fresh, detect::Extract(fresh), kT0 + kDay);
  ASSERT_TRUE(hit.has_value());
  auto organic = Event("10.20.30.41", "OpenAI/Python 1.30.1", "how do I sort a list of tuples by the second element in python 3");
  EXPECT_FALSE(set.Match(organic, detect::Extract(organic), kT0 + kDay).has_value());
}

}  // namespace
}  // namespace moat::indicators

#include "detect/campaign_linker.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace moat::detect {
namespace {

constexpr int64_t kSec = 1'000'000'000LL;
constexpr int64_t kT0 = 1'717'372'800LL * kSec;

LinkKeys Keys(const std::string& ip, const std::string& agent) {
  RequestEvent e;
  e.client_ip = ip;
  e.user_agent = agent;
  e.body_json = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
  return MakeLinkKeys(e, Extract(e));
}

TEST(LinkKeysTest, KindsAndSharing) {
  LinkKeys a = Keys("5.6.7.8", "bot/1"), b = Keys("5.6.7.99", "bot/1"), c = Keys("9.9.9.9", "ui/2");
  ASSERT_GE(a.count, 2);
  EXPECT_EQ(a.kind[0], kLinkNetwork);
  EXPECT_EQ(a.key[0], b.key[0]);  // same /24
  EXPECT_NE(a.key[0], c.key[0]);
  EXPECT_EQ(a.kind[1], kLinkFingerprint);
  EXPECT_EQ(a.key[1], b.key[1]);
  EXPECT_NE(a.key[1], c.key[1]);
}

TEST(CampaignLinkerTest, RestrictedSubjectsSharingKeysMergeIntoOneCampaign) {
  CampaignLinker linker;
  const LinkKeys keys = Keys("5.6.7.8", "bot/1");
  // Unrestricted traffic never makes a key risky.
  for (int i = 0; i < 50; ++i) {
    linker.Record(keys, Hash64("org" + std::to_string(i)), "org", false, 0.1f, 0.0f, 0, kT0 + i * kSec);
  }
  EXPECT_EQ(linker.Assess(keys, kT0 + 60 * kSec).risky_kinds, 0);
  // Sybils: each restricted on the shared keys.
  CampaignLinker sybil;
  for (int i = 0; i < 20; ++i) {
    const std::string id = "sybil" + std::to_string(i);
    sybil.Record(keys, Hash64(id), id, true, 0.9f, 300.0f, 3, kT0 + i * kSec);
  }
  const auto a = sybil.Assess(keys, kT0 + 30 * kSec);
  EXPECT_GE(a.risky_kinds, 2);
  EXPECT_GT(a.risk[kLinkNetwork], 0.7f);
  EXPECT_NE(a.campaign_root, 0u);
  EXPECT_GT(a.campaign_score, 0.9);  // many members add up
  auto campaigns = sybil.Campaigns();
  ASSERT_EQ(campaigns.size(), 1u);
  EXPECT_EQ(campaigns[0].members, 20u);
  EXPECT_GT(campaigns[0].links[kLinkNetwork], 0u);
  EXPECT_EQ(sybil.CampaignOf(Hash64("sybil3")), sybil.CampaignOf(Hash64("sybil17")));
  EXPECT_EQ(sybil.CampaignOf(Hash64("stranger")), 0u);

  // The reason helper agrees with the full snapshot: same members in sample order, minus the
  // excluded one, capped, and the same score; unknown roots leave the output untouched.
  const uint64_t root = sybil.CampaignOf(Hash64("sybil3"));
  const auto info = sybil.Campaign(root);
  ASSERT_TRUE(info.has_value());
  const std::string& first = info->sample_members[0];
  std::string expected;
  for (size_t i = 0, n = 0; i < info->sample_members.size() && n < 3; ++i) {
    if (info->sample_members[i] == first) continue;
    expected += (n++ ? "," : "") + info->sample_members[i];
  }
  std::string out = "linked:";
  double score = -1;
  ASSERT_TRUE(sybil.AppendSampleMembers(root, first, 3, &out, &score));
  EXPECT_EQ(out, "linked:" + expected);
  EXPECT_EQ(std::count(out.begin(), out.end(), ','), 2);
  EXPECT_EQ(score, info->score);
  std::string untouched = "x";
  EXPECT_FALSE(sybil.AppendSampleMembers(Hash64("stranger"), "", 3, &untouched, &score));
  EXPECT_EQ(untouched, "x");
}

TEST(CampaignLinkerTest, UnrelatedRestrictedSubjectsStaySeparate) {
  CampaignLinker linker;
  for (int i = 0; i < 10; ++i) {
    const std::string id = "s" + std::to_string(i);
    linker.Record(Keys("20.0." + std::to_string(i) + ".1", "agent" + std::to_string(i)), Hash64(id),
                  id, true, 0.9f, 300.0f, 1, kT0 + i * kSec);
  }
  EXPECT_TRUE(linker.Campaigns().empty());  // only singletons
}

TEST(CampaignLinkerTest, MixedKeyIsNotRisky) {
  // A reseller's address: a few restricted end users among hundreds of normal ones.
  CampaignLinker linker;
  const LinkKeys keys = Keys("7.7.7.7", "reseller");
  for (int i = 0; i < 400; ++i) {
    const std::string id = "u" + std::to_string(i);
    linker.Record(keys, Hash64(id), id, i % 10 == 0, 0.9f, 300.0f, 0, kT0 + i * kSec);
  }
  EXPECT_LT(linker.Assess(keys, kT0 + 500 * kSec).risk[kLinkNetwork], 0.3f);
}

TEST(CampaignLinkerTest, ManySubjectsWithCampaignContentMakeAKeyRiskyWithoutASeed) {
  // Nobody is restricted, but 30 subjects share a template key with campaign-like content.
  CampaignLinker linker;
  LinkKeys keys;
  keys.Add(kLinkPrefix, 0xabcdef);
  keys.content_llr = 2.0f;
  keys.tokens = 300;
  for (int i = 0; i < 30; ++i) {
    keys.text_hash = Hash64("text" + std::to_string(i));  // a template: many distinct prompts
    const std::string id = "t" + std::to_string(i);
    linker.Record(keys, Hash64(id), id, false, 0.1f, 0.0f, 0, kT0 + i * kSec);
  }
  const auto a = linker.Assess(keys, kT0 + 40 * kSec);
  EXPECT_GT(a.risk[kLinkPrefix], 0.9f);
  EXPECT_GT(a.key_value, 1000);
  // The same template with organic-looking content is not risky.
  CampaignLinker organic;
  keys.content_llr = -1.0f;
  for (int i = 0; i < 30; ++i) {
    keys.text_hash = Hash64("text" + std::to_string(i));
    const std::string id = "t" + std::to_string(i);
    organic.Record(keys, Hash64(id), id, false, 0.1f, 0.0f, 0, kT0 + i * kSec);
  }
  EXPECT_EQ(organic.Assess(keys, kT0 + 40 * kSec).risk[kLinkPrefix], 0.0f);
}

TEST(CampaignLinkerTest, KeysAreBounded) {
  LinkerConfig c;
  c.max_keys = 64 * 32;
  CampaignLinker linker(c);
  for (int i = 0; i < 20000; ++i) {
    linker.Record(Keys("30." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256) + ".1",
                       "a" + std::to_string(i)),
                  Hash64("x" + std::to_string(i)), "x", false, 0, 0.0f, 0, kT0 + i * kSec);
  }
  EXPECT_LE(linker.key_count(), c.max_keys);
}

// A flood of restricted subjects that all act as one live campaign: the union-find stops at
// max_nodes (it cannot prune a live campaign), the newcomers stay unlinked, and the campaign
// it holds is still there.
TEST(CampaignLinkerTest, NodesAreBoundedWhenEveryCampaignIsLive) {
  LinkerConfig c;
  c.max_nodes = 256;
  CampaignLinker linker(c);
  const LinkKeys keys = Keys("5.6.7.8", "bot/1");
  for (int i = 0; i < 5000; ++i) {
    const std::string id = "sybil" + std::to_string(i);
    linker.Record(keys, Hash64(id), id, true, 0.9f, 300.0f, 3, kT0 + i * kSec);
  }
  EXPECT_LE(linker.node_count(), c.max_nodes);
  EXPECT_NE(linker.CampaignOf(Hash64("sybil3")), 0u);
  EXPECT_EQ(linker.CampaignOf(Hash64("sybil4999")), 0u);
}

TEST(ShiftScoreTest, DetectsShiftedHistogram) {
  std::array<double, kFeatureBins> base{};
  base[0] = 9000;
  base[8] = 800;
  base[1] = 200;
  std::array<float, kFeatureBins> same{}, shifted{};
  same[0] = 900;
  same[8] = 80;
  same[1] = 20;
  shifted[1] = 500;
  shifted[17] = 500;
  EXPECT_LT(ShiftScore(same, base), 0.05);
  EXPECT_GT(ShiftScore(shifted, base), 0.9);
  std::array<float, kFeatureBins> tiny{};
  tiny[17] = 5;
  EXPECT_EQ(ShiftScore(tiny, base), 0.0);  // too few samples to say
}

}  // namespace
}  // namespace moat::detect

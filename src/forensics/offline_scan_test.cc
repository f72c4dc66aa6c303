#include "forensics/offline_scan.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "audit/audit_log.h"
#include "forensics/scan_report.h"
#include "detect/test_corpus.h"
#include "forensics/test_log.h"

namespace moat::forensics {
namespace {
namespace json = boost::json;
using testing::MakeTestLog;
using testing::TestRequest;

// The scanner on the synthetic detection model the test log's content comes from.
ScanOptions SyntheticOptions() {
  ScanOptions o;
  o.detection.model = detect::testing::SyntheticModel();
  return o;
}

std::string TempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("moat_scan_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// The log as generic JSONL: RFC 3339 times on every other line, neighbouring lines swapped (local
// disorder the reorder window must fix) and two bad lines.
std::string WriteGenericLog(const std::vector<TestRequest>& log, const std::string& dir) {
  const std::string path = dir + "/requests.jsonl";
  std::ofstream out(path);
  std::vector<std::string> lines;
  for (size_t i = 0; i < log.size(); ++i) {
    const TestRequest& r = log[i];
    json::object o;
    if (i % 2 == 0) {
      o["time"] = r.time_ns;
    } else {
      o["time"] = FormatTime(r.time_ns);  // whole seconds: the test log has no fractions
    }
    o["account"] = r.account;
    o["ip"] = r.ip;
    o["user_agent"] = r.user_agent;
    o["endpoint"] = "/v1/chat/completions";
    json::object body =
        r.params_json.empty() ? json::object{} : json::parse(r.params_json).as_object();
    body["model"] = "gpt-x";
    body["messages"] = json::array{json::object{{"role", "user"}, {"content", r.prompt}}};
    o["body"] = std::move(body);
    lines.push_back(json::serialize(o));
  }
  for (size_t i = 0; i + 1 < lines.size(); i += 10) std::swap(lines[i], lines[i + 1]);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i == 100) out << "{\"time\": oops}\n";
    if (i == 200) out << "{\"time\":1}\n";
    out << lines[i] << "\n";
  }
  return path;
}

void ExpectCampaignFound(const ScanReport& report, int sybils) {
  ASSERT_FALSE(report.campaigns.empty());
  const CampaignRow& top = report.campaigns[0];
  std::set<std::string> members(top.members.begin(), top.members.end());
  EXPECT_GE(members.size(), static_cast<size_t>(sybils * 2 / 3));
  for (const auto& m : members) EXPECT_EQ(m.rfind("sybil", 0), 0u) << m;
  EXPECT_GT(top.info.score, 0.5);
  int organic_flagged = 0, sybils_flagged = 0;
  for (const AccountRow& a : report.accounts) {
    if (a.account.rfind("org", 0) == 0) {
      organic_flagged += a.restricted_requests > 0 || !a.campaign_id.empty();
    } else {
      sybils_flagged += a.restricted_requests > 0;
      if (members.count(a.subject)) {
        EXPECT_EQ(a.campaign_id, top.info.id);
      }
    }
  }
  EXPECT_EQ(organic_flagged, 0);
  // The first sybils send all their requests before their keys carry enough value to be a pool.
  EXPECT_GE(sybils_flagged, sybils * 3 / 4);
}

TEST(OfflineScanTest, FindsTheTemplatedCampaignAndSparesOrganicAccounts) {
  const int organic = 40, sybils = 60;
  const auto log = MakeTestLog(organic, sybils);
  const std::string dir = TempDir("generic");
  const std::string path = WriteGenericLog(log, dir);

  OfflineScanner scanner(SyntheticOptions());
  auto src = OpenJsonlSource(path);
  ASSERT_TRUE(src.ok());
  uint64_t progress_calls = 0;
  ASSERT_TRUE(scanner.AddSource(**src, [&](const LogSource&) { ++progress_calls; }).ok());
  ScanReport report = scanner.Finish();

  EXPECT_GT(progress_calls, 0u);
  EXPECT_EQ(report.records_read, log.size());
  EXPECT_EQ(report.records_scanned, log.size());
  EXPECT_EQ(report.bad_lines, 2u);
  ASSERT_EQ(report.bad_line_samples.size(), 2u);
  EXPECT_EQ(report.bad_line_samples[0].line, 101u);
  EXPECT_EQ(report.bad_line_samples[1].line, 202u);
  EXPECT_EQ(report.out_of_order, 0u);
  EXPECT_EQ(report.accounts.size(), static_cast<size_t>(organic + sybils));
  EXPECT_EQ(report.first_ns, log.front().time_ns);
  EXPECT_EQ(report.last_ns, log.back().time_ns);
  uint64_t total = 0;
  for (uint64_t n : report.actions) total += n;
  EXPECT_EQ(total, log.size());
  uint64_t hist = 0;
  for (uint64_t n : report.request_scores) hist += n;
  EXPECT_EQ(hist, log.size());
  uint64_t timeline = 0;
  for (const auto& bin : report.timeline)
    for (uint64_t n : bin) timeline += n;
  EXPECT_EQ(timeline, log.size());
  ExpectCampaignFound(report, sybils);

  // Reports: JSON round-trips the counts; HTML is self-contained with its plots.
  ASSERT_TRUE(WriteReport(report, dir + "/out").ok());
  std::ifstream jin(dir + "/out/report.json");
  std::string jtext((std::istreambuf_iterator<char>(jin)), {});
  json::object j = json::parse(jtext).as_object();
  EXPECT_EQ(j["records"].as_object()["scanned"].to_number<uint64_t>(), log.size());
  EXPECT_EQ(j["campaigns"].as_array().size(), report.campaigns.size());
  EXPECT_EQ(j["accounts"].as_array().size(), report.accounts.size());
  EXPECT_EQ(j["bad_line_samples"].as_array()[0].as_object()["line"].to_number<uint64_t>(), 101u);

  std::ifstream hin(dir + "/out/report.html");
  std::string html((std::istreambuf_iterator<char>(hin)), {});
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  size_t svgs = 0;
  for (size_t p = 0; (p = html.find("<svg", p)) != std::string::npos; ++p) ++svgs;
  EXPECT_EQ(svgs, 4u);  // campaigns, two histograms, timeline
  size_t closes = 0;
  for (size_t p = 0; (p = html.find("</svg>", p)) != std::string::npos; ++p) ++closes;
  EXPECT_EQ(closes, svgs);
  EXPECT_EQ(html.find("http"), std::string::npos);  // no external URLs
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find(report.campaigns[0].info.id), std::string::npos);

  const std::string summary = SummaryText(report);
  EXPECT_NE(summary.find(report.campaigns[0].info.id), std::string::npos);
  EXPECT_NE(summary.find("sybil"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(OfflineScanTest, ScansTheAuditStoreWithAndWithoutPromptText) {
  const int organic = 20, sybils = 40;
  const auto log = MakeTestLog(organic, sybils);
  const std::string dir = TempDir("store");
  {
    audit::AuditLogOptions o;
    o.db_path = dir + "/audit.db";
    o.signing_key_path = dir + "/audit.key";
    auto alog = audit::AuditLog::Open(o);
    ASSERT_TRUE(alog.ok()) << alog.status().message();
    for (const TestRequest& r : log) {
      AuditRecord rec;
      rec.time_ns = r.time_ns;
      rec.account_id = r.account;
      rec.client_ip = r.ip;
      rec.user_agent = r.user_agent;
      rec.endpoint = "/v1/chat/completions";
      rec.model = "gpt-x";
      rec.params_json = r.params_json.empty() ? "{}" : r.params_json;
      rec.http_status = 200;
      rec.action = "allow";
      rec.retention = "full";
      rec.prompt_text = "user: " + r.prompt;
      ASSERT_TRUE((*alog)->Append(rec).ok());
    }
    AuditRecord anon;  // a failed authentication: no account, skipped
    anon.time_ns = log.back().time_ns;
    ASSERT_TRUE((*alog)->Append(anon).ok());
    (*alog)->Flush();
  }
  OfflineScanner scanner(SyntheticOptions());
  auto src = OpenAuditStoreSource(dir + "/audit.db");
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE(scanner.AddSource(**src).ok());
  ScanReport report = scanner.Finish();
  EXPECT_EQ(report.records_read, log.size() + 1);
  EXPECT_EQ(report.skipped_no_account, 1u);
  EXPECT_EQ(report.records_scanned, log.size());
  EXPECT_EQ(report.no_content, 0u);
  EXPECT_EQ(report.audit_format, log.size() + 1);
  ExpectCampaignFound(report, sybils);

  // Without prompt text (hash-only retention) the scan still runs and says so.
  OfflineScanner blind(SyntheticOptions());
  for (size_t i = 0; i < log.size(); ++i) {
    AuditRecord rec;
    rec.time_ns = log[i].time_ns;
    rec.account_id = log[i].account;
    rec.client_ip = log[i].ip;
    rec.retention = "hash-only";
    rec.prompt_text = std::string(64, 'a');
    blind.Add(FromAuditRecord(rec));
  }
  ScanReport br = blind.Finish();
  EXPECT_EQ(br.no_content, log.size());
  EXPECT_EQ(br.records_scanned, log.size());
  std::filesystem::remove_all(dir);
}

TEST(OfflineScanTest, RecordsOlderThanTheWindowAreClampedAndCounted) {
  ScanOptions opts;
  opts.reorder_window = 2;
  OfflineScanner scanner(opts);
  const int64_t base = 1'717'372'800LL * 1'000'000'000;
  for (int64_t t : {10, 11, 12, 13, 1, 14}) {
    LogRecord r;
    r.event.time_ns = base + t * 1'000'000'000;
    r.event.account_id = "a";
    r.event.body_json = "{}";
    scanner.Add(std::move(r));
  }
  ScanReport report = scanner.Finish();
  EXPECT_EQ(report.records_scanned, 6u);
  EXPECT_EQ(report.out_of_order, 1u);
  EXPECT_EQ(report.first_ns, base + 10'000'000'000);
  EXPECT_EQ(report.last_ns, base + 14'000'000'000);
  ASSERT_EQ(report.accounts.size(), 1u);
  EXPECT_EQ(report.accounts[0].requests, 6u);
}

}  // namespace
}  // namespace moat::forensics

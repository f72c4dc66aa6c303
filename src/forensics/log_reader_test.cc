#include "forensics/log_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

#include "audit/admin_record.h"
#include "audit/audit_export.h"
#include "audit/audit_log.h"

namespace moat::forensics {
namespace {
namespace json = boost::json;
constexpr int64_t kSec = 1'000'000'000LL;

std::string TempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("moat_forensics_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

TEST(ParseTimeTest, Rfc3339) {
  EXPECT_EQ(*ParseRfc3339("2024-06-03T00:00:00Z"), 1'717'372'800LL * kSec);
  EXPECT_EQ(*ParseRfc3339("2024-06-03t00:00:00.25z"), 1'717'372'800LL * kSec + 250'000'000);
  EXPECT_EQ(*ParseRfc3339("2024-06-03T02:30:00+02:30"), 1'717'372'800LL * kSec);
  EXPECT_EQ(*ParseRfc3339("2024-06-02 23:00:00.000000001-01:00"), 1'717'372'800LL * kSec + 1);
  EXPECT_EQ(*ParseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseRfc3339("2000-03-01T00:00:00Z"), 951'868'800LL * kSec);  // after a leap day
  for (const char* bad :
       {"2024-06-03", "2024-06-03T00:00:00", "2024-13-01T00:00:00Z", "2024-06-03T00:00:00.Z",
        "2024-06-03T00:00:00Zjunk", "yesterday", "2024-06-03T00:00:00+0200"}) {
    EXPECT_FALSE(ParseRfc3339(bad).ok()) << bad;
  }
}

TEST(ParseTimeTest, TimesBeyondInt64NanosecondsAreRefusedNotWrapped) {
  // Found by the log reader fuzzer: each of these overflowed int64 (undefined behaviour).
  EXPECT_FALSE(ParseTimeValue(json::value(int64_t{20'217'416'000'223})).ok());     // ms
  EXPECT_FALSE(ParseTimeValue(json::value(int64_t{99'999'999'999'999'999})).ok());  // us
  EXPECT_FALSE(ParseTimeValue(json::value(int64_t{99'999'999'999})).ok());          // s
  EXPECT_FALSE(ParseTimeValue(json::value(1e30)).ok());
  EXPECT_FALSE(ParseRfc3339("9999-12-31T23:59:59Z").ok());
  EXPECT_FALSE(ParseRfc3339("0001-01-01T00:00:00Z").ok());
  EXPECT_TRUE(ParseRfc3339("2262-01-01T00:00:00Z").ok());
  EXPECT_TRUE(ParseTimeValue(json::value(int64_t{9'000'000'000'000'000'000})).ok());
}

TEST(ParseTimeTest, NumbersInAnyUnit) {
  const int64_t ns = 1'717'372'800LL * kSec;
  EXPECT_EQ(*ParseTimeValue(json::value(1'717'372'800)), ns);
  EXPECT_EQ(*ParseTimeValue(json::value(1'717'372'800.5)), ns + 500'000'000);
  EXPECT_EQ(*ParseTimeValue(json::value(1'717'372'800'000LL)), ns);      // ms
  EXPECT_EQ(*ParseTimeValue(json::value(1'717'372'800'000'000LL)), ns);  // us
  EXPECT_EQ(*ParseTimeValue(json::value(ns)), ns);
  EXPECT_EQ(*ParseTimeValue(json::value("2024-06-03T00:00:00Z")), ns);
  EXPECT_EQ(*ParseTimeValue(json::value("1717372800")), ns);
  EXPECT_FALSE(ParseTimeValue(json::value(-5)).ok());
  EXPECT_FALSE(ParseTimeValue(json::value(true)).ok());
}

AuditRecord SampleAuditRecord() {
  AuditRecord r;
  r.seq = 7;
  r.time_ns = 1'717'372'800LL * kSec + 42;
  r.account_id = "acct_1";
  r.end_user = "alice";
  r.key_id = "key_1";
  r.client_ip = "10.1.2.3";
  r.user_agent = "OpenAI/Python 1.30";
  r.endpoint = "/v1/chat/completions";
  r.model = "gpt-x";
  r.params_json = R"({"temperature":0.2,"max_tokens":512,"logit_bias_entries":3})";
  r.http_status = 200;
  r.action = "degrade";
  r.retention = "full";
  r.prompt_text =
      "system: You are terse.\nuser: first line\nsecond line: still user\nassistant: ok\nuser: go";
  return r;
}

TEST(AuditFormatTest, ExportLineRebuildsTheRequest) {
  const std::string line = json::serialize(audit::RecordToJson(SampleAuditRecord()));
  auto rec = ParseLogLine(line);
  ASSERT_TRUE(rec.ok()) << rec.status().message();
  EXPECT_EQ(rec->format, LogFormat::kAuditExport);
  EXPECT_TRUE(rec->has_content);
  EXPECT_EQ(rec->logged_action, "degrade");
  const auto& e = rec->event;
  EXPECT_EQ(e.time_ns, 1'717'372'800LL * kSec + 42);
  EXPECT_EQ(e.account_id, "acct_1");
  EXPECT_EQ(e.end_user, "alice");
  EXPECT_EQ(e.key_id, "key_1");
  EXPECT_EQ(e.client_ip, "10.1.2.3");
  EXPECT_EQ(e.user_agent, "OpenAI/Python 1.30");
  json::object body = json::parse(e.body_json).as_object();
  EXPECT_EQ(body["model"], "gpt-x");
  EXPECT_EQ(body["max_tokens"], 512);
  EXPECT_FALSE(body.contains("logit_bias_entries"));
  const json::array& m = body["messages"].as_array();
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].as_object().at("role"), "system");
  EXPECT_EQ(m[1].as_object().at("content"), "first line\nsecond line: still user");
  EXPECT_EQ(m[2].as_object().at("role"), "assistant");
  EXPECT_EQ(m[3].as_object().at("content"), "go");
}

TEST(AuditFormatTest, HashedOrDroppedPromptsHaveNoContent) {
  AuditRecord r = SampleAuditRecord();
  r.retention = "hash-only";
  r.prompt_text = audit::ApplyRetention(TextRetention::kHashOnly, r.prompt_text);
  auto rec = ParseLogLine(json::serialize(audit::RecordToJson(r)));
  ASSERT_TRUE(rec.ok());
  EXPECT_FALSE(rec->has_content);
  EXPECT_FALSE(json::parse(rec->event.body_json).as_object().contains("messages"));
  r.retention = "none";
  r.prompt_text = "";
  EXPECT_FALSE(ParseLogLine(json::serialize(audit::RecordToJson(r)))->has_content);

  AuditRecord c = SampleAuditRecord();
  c.endpoint = "/v1/completions";
  c.prompt_text = "Once upon a time\nthere";
  auto comp = ParseLogLine(json::serialize(audit::RecordToJson(c)));
  ASSERT_TRUE(comp.ok());
  EXPECT_EQ(json::parse(comp->event.body_json).as_object().at("prompt"), "Once upon a time\nthere");
}

TEST(AuditFormatTest, AdminRecordsAreNoRequestOfTheirAccount) {
  audit::AdminAction a;
  a.operation = "key.create";
  a.account_id = "acct_0123456789ab";
  a.time_ns = 1'700'000'000'000'000'000;
  LogRecord rec = FromAuditRecord(audit::AdminAuditRecord(a));
  EXPECT_EQ(rec.event.account_id, "");
  auto line = ParseLogLine(json::serialize(audit::RecordToJson(audit::AdminAuditRecord(a))));
  ASSERT_TRUE(line.ok()) << line.status().ToString();
  EXPECT_EQ(line->event.account_id, "");
}

TEST(GenericFormatTest, BodyPromptHeadersAndTimes) {
  auto a =
      ParseLogLine(R"({"time":"2024-06-03T00:00:01Z","account":"a1","user":"u9","ip":"1.2.3.4",)"
                   R"("headers":{"User-Agent":"curl/8","X-Stainless-Lang":"python"},)"
                   R"("body":{"model":"m","messages":[{"role":"user","content":"hi"}]}})");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->format, LogFormat::kGeneric);
  EXPECT_EQ(a->event.time_ns, 1'717'372'801LL * kSec);
  EXPECT_EQ(a->event.account_id, "a1");
  EXPECT_EQ(a->event.end_user, "u9");
  EXPECT_EQ(a->event.user_agent, "curl/8");
  ASSERT_EQ(a->event.headers.size(), 1u);
  EXPECT_EQ(a->event.headers[0].first, "x-stainless-lang");
  EXPECT_EQ(a->event.endpoint, "/v1/chat/completions");
  EXPECT_EQ(json::parse(a->event.body_json).as_object().at("model"), "m");

  auto b = ParseLogLine(R"({"time":1717372801.5,"account":"a2","prompt":"tell me a joke"})");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->event.time_ns, 1'717'372'801LL * kSec + 500'000'000);
  auto msgs = json::parse(b->event.body_json).as_object().at("messages").as_array();
  EXPECT_EQ(msgs[0].as_object().at("content"), "tell me a joke");

  auto c = ParseLogLine(
      R"({"time":1717372801000000000,"account":"a3","endpoint":"/v1/completions","prompt":"x"})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(json::parse(c->event.body_json).as_object().at("prompt"), "x");

  auto d = ParseLogLine(R"({"time":5,"account":"a4"})");
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->has_content);
}

TEST(GenericFormatTest, BadLinesAreRejectedWithAReason) {
  for (const char* bad :
       {"not json", "[1,2]", R"({"foo":1})", R"({"time":1,"account":""})", R"({"account":"a"})",
        R"({"time":"last tuesday","account":"a"})", R"({"time":1,"account":"a","body":42})",
        R"({"time":1,"account":"a","headers":[]})"}) {
    auto r = ParseLogLine(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  // Forcing the audit format rejects a generic line.
  EXPECT_FALSE(ParseLogLine(R"({"time":1,"account":"a"})", FormatChoice::kAuditExport).ok());
}

TEST(JsonlSourceTest, StreamsMixedFormatsAndReportsBadLineNumbers) {
  const std::string dir = TempDir("jsonl");
  const std::string path = dir + "/log.jsonl";
  {
    std::ofstream out(path);
    out << json::serialize(audit::RecordToJson(SampleAuditRecord())) << "\n";
    out << R"({"time":2,"account":"a","prompt":"p"})"
        << "\n";
    out << "{broken\n\n";
    out << R"({"time":3,"account":"b","prompt":"q"})"
        << "\r\n";
    out << R"({"time":"nope","account":"b"})"
        << "\n";
  }
  auto src = OpenJsonlSource(path);
  ASSERT_TRUE(src.ok());
  std::vector<uint64_t> good, bad;
  LogRecord rec;
  for (;;) {
    uint64_t bad_line = 0;
    auto got = (*src)->Next(&rec, &bad_line);
    if (!got.ok()) {
      EXPECT_NE(got.status().message().find("line " + std::to_string(bad_line)), std::string::npos);
      bad.push_back(bad_line);
      continue;
    }
    if (!*got) break;
    good.push_back(rec.line);
  }
  EXPECT_EQ(good, (std::vector<uint64_t>{1, 2, 5}));
  EXPECT_EQ(bad, (std::vector<uint64_t>{3, 6}));
  EXPECT_EQ((*src)->bytes_read(), (*src)->bytes_total());
  EXPECT_EQ(OpenJsonlSource(dir + "/missing.jsonl").status().code(), StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(AuditStoreSourceTest, ReadsARealAuditDatabaseInSeqOrder) {
  const std::string dir = TempDir("store");
  {
    audit::AuditLogOptions o;
    o.db_path = dir + "/audit.db";
    o.signing_key_path = dir + "/audit.key";
    auto log = audit::AuditLog::Open(o);
    ASSERT_TRUE(log.ok()) << log.status().message();
    for (int i = 0; i < 25; ++i) {
      AuditRecord r = SampleAuditRecord();
      r.time_ns = (1000 - i) * kSec;  // seq order is not time order
      r.account_id = "acct_" + std::to_string(i % 3);
      r.prompt_text = "user: question " + std::to_string(i);
      if (i == 4) r.account_id = "";  // an unauthenticated request
      ASSERT_TRUE((*log)->Append(r).ok());
    }
    (*log)->Flush();
  }
  auto src = OpenAuditStoreSource(dir + "/audit.db");
  ASSERT_TRUE(src.ok()) << src.status().message();
  EXPECT_EQ((*src)->bytes_total(), 25u);
  LogRecord rec;
  uint64_t bad = 0;
  int n = 0;
  for (;;) {
    auto got = (*src)->Next(&rec, &bad);
    ASSERT_TRUE(got.ok());
    if (!*got) break;
    EXPECT_EQ(rec.line, static_cast<uint64_t>(n + 1));
    EXPECT_EQ(rec.event.time_ns, (1000 - n) * kSec);
    EXPECT_EQ(rec.event.account_id, n == 4 ? "" : "acct_" + std::to_string(n % 3));
    auto msgs = json::parse(rec.event.body_json).as_object().at("messages").as_array();
    EXPECT_EQ(std::string(msgs[0].as_object().at("content").as_string()),
              "question " + std::to_string(n));
    ++n;
  }
  EXPECT_EQ(n, 25);
  EXPECT_EQ(OpenAuditStoreSource(dir + "/none.db").status().code(), StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moat::forensics

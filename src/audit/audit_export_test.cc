#include "audit/audit_export.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <boost/json/parse.hpp>
#include <sstream>

#include "audit/audit_hash.h"
#include "audit/audit_log.h"
#include "audit/audit_test_util.h"

namespace moat::audit {
namespace {

using testing::OptionsIn;
using testing::SampleRecord;
using testing::TempDir;

std::string Str(const boost::json::object& o, const char* key) {
  return std::string(o.at(key).as_string());
}

// Rebuilds a record from an exported object (valid-UTF-8 fields only).
AuditRecord FromJson(const boost::json::object& o) {
  AuditRecord r;
  r.seq = o.at("seq").as_int64();
  r.prev_hash = Str(o, "prev_hash");
  r.record_hash = Str(o, "record_hash");
  r.time_ns = o.at("time_ns").as_int64();
  r.request_id = Str(o, "request_id");
  r.account_id = Str(o, "account_id");
  r.org_id = Str(o, "org_id");
  r.end_user = Str(o, "end_user");
  r.key_id = Str(o, "key_id");
  r.client_ip = Str(o, "client_ip");
  r.user_agent = Str(o, "user_agent");
  r.endpoint = Str(o, "endpoint");
  r.model = Str(o, "model");
  r.params_json = Str(o, "params_json");
  r.stream = o.at("stream").as_bool();
  r.prompt_tokens = o.at("prompt_tokens").as_int64();
  r.completion_tokens = o.at("completion_tokens").as_int64();
  r.latency_ms = o.at("latency_ms").as_double();
  r.http_status = static_cast<int>(o.at("http_status").as_int64());
  r.error_code = Str(o, "error_code");
  r.verdict = Str(o, "verdict");
  r.action = Str(o, "action");
  r.reasons_json = Str(o, "reasons_json");
  r.watermark_key_id = Str(o, "watermark_key_id");
  r.retention = Str(o, "retention");
  r.prompt_text = Str(o, "prompt_text");
  r.completion_text = Str(o, "completion_text");
  r.model_attestation = Str(o, "model_attestation");
  return r;
}

std::vector<boost::json::object> ParseLines(const std::string& jsonl) {
  std::vector<boost::json::object> out;
  std::istringstream in(jsonl);
  std::string line;
  while (std::getline(in, line)) {
    boost::json::error_code ec;
    auto v = boost::json::parse(line, ec);
    EXPECT_FALSE(ec) << "unparsable line: " << line;
    if (!ec) out.push_back(v.as_object());
  }
  return out;
}

TEST(AuditExportTest, RoundTripsEveryFieldInChainOrder) {
  TempDir dir;
  AuditLogOptions opts = OptionsIn(dir);
  std::vector<AuditRecord> written;
  for (int i = 1; i <= 40; ++i) written.push_back(SampleRecord(i));
  written[3].prompt_text = "quotes \" backslash \\ newline \n tab \t nul \0 ctl \x01 end";
  written[3].prompt_text += std::string("\0after-nul", 10);
  written[4].completion_text = "h\xC3\xA9llo \xF0\x9F\x9A\x80 \xE2\x80\xA8 line-sep";
  written[5].user_agent = "</script><script>alert(1)</script>";
  written[6].latency_ms = 0.1 + 0.2;  // needs the shortest round-trip form
  {
    auto log = AuditLog::Open(opts);
    ASSERT_TRUE(log.ok());
    for (const auto& r : written) ASSERT_TRUE((*log)->Append(r).ok());
  }
  std::ostringstream out;
  ASSERT_TRUE(ExportJsonl(opts.db_path, 0, out).ok());
  auto objs = ParseLines(out.str());
  ASSERT_EQ(objs.size(), written.size());
  for (size_t i = 0; i < objs.size(); ++i) {
    AuditRecord got = FromJson(objs[i]);
    const AuditRecord& want = written[i];
    EXPECT_EQ(got.seq, static_cast<int64_t>(i + 1));
    EXPECT_EQ(got.request_id, want.request_id);
    EXPECT_EQ(got.prompt_text, want.prompt_text);
    EXPECT_EQ(got.completion_text, want.completion_text);
    EXPECT_EQ(got.user_agent, want.user_agent);
    EXPECT_EQ(got.latency_ms, want.latency_ms);
    EXPECT_EQ(got.stream, want.stream);
    EXPECT_EQ(got.time_ns, want.time_ns);
    // The export carries everything the hash covers.
    EXPECT_EQ(ComputeRecordHash(got), got.record_hash) << "seq " << got.seq;
    if (i > 0) {
      EXPECT_EQ(got.prev_hash, Str(objs[i - 1], "record_hash"));
    }
  }
}

TEST(AuditExportTest, InvalidUtf8IsReplacedAndKeptExactlyAsBase64) {
  TempDir dir;
  AuditLogOptions opts = OptionsIn(dir);
  constexpr char kBinary[] = "ok \xFF\xFE bad \xC0\xAF overlong \xED\xA0\x80 surrogate";
  const std::string binary(kBinary, sizeof(kBinary) - 1);
  {
    auto log = AuditLog::Open(opts);
    ASSERT_TRUE(log.ok());
    AuditRecord r = SampleRecord(1);
    r.prompt_text = binary;
    ASSERT_TRUE((*log)->Append(r).ok());
  }
  std::ostringstream out;
  ASSERT_TRUE(ExportJsonl(opts.db_path, 0, out).ok());
  auto objs = ParseLines(out.str());  // boost::json::parse rejects invalid UTF-8
  ASSERT_EQ(objs.size(), 1u);
  std::string shown = Str(objs[0], "prompt_text");
  EXPECT_TRUE(IsValidUtf8(shown));
  EXPECT_NE(shown.find("\xEF\xBF\xBD"), std::string::npos);
  std::string b64 = Str(objs[0], "prompt_text_base64");
  std::string decoded(b64.size(), '\0');
  size_t len = 0;
  ASSERT_EQ(sodium_base642bin(reinterpret_cast<unsigned char*>(decoded.data()), decoded.size(),
                              b64.data(), b64.size(), nullptr, &len, nullptr,
                              sodium_base64_VARIANT_ORIGINAL),
            0);
  decoded.resize(len);
  EXPECT_EQ(decoded, binary);
  EXPECT_FALSE(objs[0].contains("completion_text_base64"));
}

TEST(AuditExportTest, SinceFiltersByTime) {
  TempDir dir;
  AuditLogOptions opts = OptionsIn(dir);
  {
    auto log = AuditLog::Open(opts);
    ASSERT_TRUE(log.ok());
    for (int i = 1; i <= 30; ++i) ASSERT_TRUE((*log)->Append(SampleRecord(i)).ok());
  }
  std::ostringstream out;
  ASSERT_TRUE(ExportJsonl(opts.db_path, SampleRecord(21).time_ns, out).ok());
  auto objs = ParseLines(out.str());
  ASSERT_EQ(objs.size(), 10u);
  EXPECT_EQ(Str(objs.front(), "request_id"), "req-21");
  EXPECT_EQ(Str(objs.back(), "request_id"), "req-30");

  std::ostringstream none;
  ASSERT_TRUE(ExportJsonl(opts.db_path, SampleRecord(31).time_ns, none).ok());
  EXPECT_EQ(none.str(), "");
}

TEST(AuditExportTest, MissingDatabaseIsNotFound) {
  TempDir dir;
  std::ostringstream out;
  EXPECT_EQ(ExportJsonl(dir.File("nope.db"), 0, out).code(), StatusCode::kNotFound);
}

TEST(AuditRetentionTest, AppliesEachMode) {
  EXPECT_EQ(ApplyRetention(TextRetention::kFull, "abc"), "abc");
  EXPECT_EQ(ApplyRetention(TextRetention::kHashOnly, "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ApplyRetention(TextRetention::kNone, "abc"), "");
}

TEST(AuditRetentionTest, ParsesNamesAndRejectsOthers) {
  for (TextRetention t : {TextRetention::kFull, TextRetention::kHashOnly, TextRetention::kNone}) {
    auto parsed = ParseRetention(RetentionName(t));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_EQ(RetentionName(TextRetention::kHashOnly), "hash-only");
  EXPECT_EQ(ParseRetention("hash").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRetention("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRetention("FULL").status().code(), StatusCode::kInvalidArgument);
}

TEST(AuditUtf8Test, ClassifiesSequences) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("h\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));          // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\x80"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
}

}  // namespace
}  // namespace moat::audit

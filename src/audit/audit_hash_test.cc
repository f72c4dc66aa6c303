#include "audit/audit_hash.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <functional>
#include <set>

#include "audit/audit_test_util.h"
#include "audit/signing_key.h"

namespace moat::audit {
namespace {

using testing::SampleRecord;
using testing::TempDir;

TEST(AuditHashTest, Sha256MatchesKnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(AuditHashTest, HexRoundTripAndErrors) {
  std::string bytes("\x00\x01\xab\xff", 4);
  EXPECT_EQ(HexEncode(bytes), "0001abff");
  EXPECT_EQ(*HexDecode("0001ABff"), bytes);
  EXPECT_EQ(HexDecode("abc").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(HexDecode("zz").status().code(), StatusCode::kInvalidArgument);
}

TEST(AuditHashTest, EncodingStartsWithTagAndLengthPrefixedPrevHash) {
  AuditRecord r;
  r.prev_hash = kGenesisHash;
  std::string enc = CanonicalEncoding(r);
  std::string expected_prefix = "moat-audit-record-v1";
  expected_prefix += std::string("\0\0\0\0\0\0\0\x40", 8);  // u64be(64)
  expected_prefix += kGenesisHash;
  ASSERT_GE(enc.size(), expected_prefix.size());
  EXPECT_EQ(enc.substr(0, expected_prefix.size()), expected_prefix);
}

TEST(AuditHashTest, MovingBytesBetweenFieldsChangesTheHash) {
  AuditRecord a = SampleRecord(1), b = SampleRecord(1);
  a.account_id = "ab";
  a.org_id = "c";
  b.account_id = "a";
  b.org_id = "bc";
  EXPECT_NE(ComputeRecordHash(a), ComputeRecordHash(b));
  a.prompt_text = "x";
  a.completion_text = "";
  b = a;
  b.prompt_text = "";
  b.completion_text = "x";
  EXPECT_NE(ComputeRecordHash(a), ComputeRecordHash(b));
}

TEST(AuditHashTest, EveryFieldIsCommittedTo) {
  const std::vector<std::function<void(AuditRecord&)>> mutations = {
      [](AuditRecord& r) { r.prev_hash[0] = '1'; },
      [](AuditRecord& r) { r.seq += 1; },
      [](AuditRecord& r) { r.time_ns += 1; },
      [](AuditRecord& r) { r.request_id += "x"; },
      [](AuditRecord& r) { r.account_id += "x"; },
      [](AuditRecord& r) { r.org_id += "x"; },
      [](AuditRecord& r) { r.end_user += "x"; },
      [](AuditRecord& r) { r.key_id += "x"; },
      [](AuditRecord& r) { r.client_ip += "x"; },
      [](AuditRecord& r) { r.user_agent += "x"; },
      [](AuditRecord& r) { r.endpoint += "x"; },
      [](AuditRecord& r) { r.model += "x"; },
      [](AuditRecord& r) { r.params_json += " "; },
      [](AuditRecord& r) { r.stream = !r.stream; },
      [](AuditRecord& r) { r.prompt_tokens += 1; },
      [](AuditRecord& r) { r.completion_tokens += 1; },
      [](AuditRecord& r) { r.latency_ms += 0.001; },
      [](AuditRecord& r) { r.http_status = 500; },
      [](AuditRecord& r) { r.error_code = "x"; },
      [](AuditRecord& r) { r.verdict += "x"; },
      [](AuditRecord& r) { r.action += "x"; },
      [](AuditRecord& r) { r.reasons_json += " "; },
      [](AuditRecord& r) { r.watermark_key_id += "x"; },
      [](AuditRecord& r) { r.retention = "none"; },
      [](AuditRecord& r) { r.prompt_text += "x"; },
      [](AuditRecord& r) { r.completion_text += "x"; },
      [](AuditRecord& r) { r.model_attestation[0] = 'b'; },
      [](AuditRecord& r) { r.model_attestation.clear(); },
  };
  AuditRecord base = SampleRecord(5);
  ASSERT_FALSE(base.model_attestation.empty());
  base.seq = 5;
  base.prev_hash = kGenesisHash;
  std::set<std::string> hashes = {ComputeRecordHash(base)};
  for (const auto& mutate : mutations) {
    AuditRecord r = base;
    mutate(r);
    hashes.insert(ComputeRecordHash(r));
  }
  EXPECT_EQ(hashes.size(), mutations.size() + 1);  // all distinct
  // record_hash itself is not an input.
  AuditRecord r = base;
  r.record_hash = "anything";
  EXPECT_EQ(ComputeRecordHash(r), ComputeRecordHash(base));
}

// A record with every version-1 field set and no optional field.
AuditRecord VersionOneRecord() {
  AuditRecord r;
  r.prev_hash = kGenesisHash;
  r.seq = 7;
  r.time_ns = 1700000000123456789;
  r.request_id = "req_1";
  r.account_id = "acct_1";
  r.org_id = "org_1";
  r.end_user = "user-1";
  r.key_id = "key_1";
  r.client_ip = "198.51.100.7";
  r.user_agent = "curl/8.0";
  r.endpoint = "/v1/chat/completions";
  r.model = "tiny";
  r.params_json = R"({"temperature":0.5})";
  r.stream = true;
  r.prompt_tokens = 12;
  r.completion_tokens = 34;
  r.latency_ms = 56.25;
  r.http_status = 200;
  r.verdict = "allow";
  r.action = "allow";
  r.reasons_json = "[]";
  r.watermark_key_id = "wm:acct_1:0";
  r.retention = "full";
  r.prompt_text = "hello";
  r.completion_text = "world";
  return r;
}

// Records written before model_attestation existed must keep verifying: without it a record
// hashes exactly as version 1 did. The expected value was computed by the code before the field
// was added (and independently from the format in audit_hash.h).
TEST(AuditHashTest, RecordWithoutAttestationHashesAsBeforeTheFieldExisted) {
  EXPECT_EQ(ComputeRecordHash(VersionOneRecord()),
            "be17ea1d4edc79c4028a91525fcad1a3a383d81908eb14159438fd1bf43e0604");
}

TEST(AuditHashTest, AttestationIsAppendedAsANamedFieldWhenSet) {
  AuditRecord r = VersionOneRecord();
  const std::string without = CanonicalEncoding(r);
  r.model_attestation = std::string(32, 'a') + std::string(32, 'b');
  const std::string with = CanonicalEncoding(r);
  ASSERT_EQ(with.substr(0, without.size()), without);
  EXPECT_EQ(with.substr(without.size()),
            std::string("\0\0\0\0\0\0\0\x11", 8) + "model_attestation" +
                std::string("\0\0\0\0\0\0\0\x40", 8) + r.model_attestation);
  EXPECT_EQ(ComputeRecordHash(r),
            "1a99cc45e0b82644a14d9d86c4e6559c4bbad56384c1b464af2d3bad3e85673d");
}

TEST(AuditHashTest, CheckpointMessageCoversSeqTimeAndHash) {
  std::string h(64, 'a');
  std::string m = CheckpointMessage(1000, 5, h);
  EXPECT_EQ(m, std::string("moat-audit-checkpoint-v1") + std::string("\0\0\0\0\0\0\x03\xe8", 8) +
                   std::string("\0\0\0\0\0\0\0\x05", 8) + h);
  EXPECT_NE(m, CheckpointMessage(1001, 5, h));
  EXPECT_NE(m, CheckpointMessage(1000, 6, h));
}

TEST(SigningKeyTest, CreatesKeyWithPrivateModeAndReloadsIt) {
  TempDir dir;
  const std::string path = dir.File("k");
  auto key = SigningKey::LoadOrCreate(path);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  std::ifstream pub(path + ".pub");
  std::string pub_hex;
  pub >> pub_hex;
  EXPECT_EQ(pub_hex, key->public_key_hex());
  EXPECT_EQ(pub_hex.size(), 64u);

  auto again = SigningKey::LoadOrCreate(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->public_key_hex(), key->public_key_hex());

  std::string sig = key->SignHex("hello");
  EXPECT_EQ(sig.size(), 128u);
  EXPECT_TRUE(VerifySignatureHex(pub_hex, "hello", sig));
  EXPECT_FALSE(VerifySignatureHex(pub_hex, "hellp", sig));
  EXPECT_FALSE(VerifySignatureHex(pub_hex, "hello", std::string(128, '0')));
  EXPECT_FALSE(VerifySignatureHex("nothex", "hello", sig));
}

TEST(SigningKeyTest, RejectsMalformedKeyAndMismatchedPublicKey) {
  TempDir dir;
  {
    std::ofstream(dir.File("bad")) << "not a key\n";
    ASSERT_EQ(::chmod(dir.File("bad").c_str(), 0600), 0);
    EXPECT_EQ(SigningKey::LoadOrCreate(dir.File("bad")).status().code(),
              StatusCode::kInvalidArgument);
  }
  ASSERT_TRUE(SigningKey::LoadOrCreate(dir.File("k")).ok());
  std::ofstream(dir.File("k.pub"), std::ios::trunc) << std::string(64, 'a') << "\n";
  EXPECT_EQ(SigningKey::LoadOrCreate(dir.File("k")).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST(SigningKeyTest, RefusesAKeyFileOthersCanRead) {
  TempDir dir;
  ASSERT_TRUE(SigningKey::LoadOrCreate(dir.File("k")).ok());
  ASSERT_EQ(::chmod(dir.File("k").c_str(), 0644), 0);
  auto key = SigningKey::LoadOrCreate(dir.File("k"));
  EXPECT_EQ(key.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(key.status().message().find("chmod 600"), std::string::npos) << key.status().message();
}

}  // namespace
}  // namespace moat::audit

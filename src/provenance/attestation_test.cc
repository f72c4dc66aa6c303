#include "provenance/attestation.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "audit/audit_hash.h"

namespace moat::provenance {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

audit::SigningKey TestKey(char fill) { return audit::SigningKey::FromSeed(std::string(32, fill)); }

class ProvenanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moat-provenance-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    model_ = (dir_ / "model.bin").string();
    std::ofstream(model_, std::ios::binary) << "the weights of a small model";
  }
  void TearDown() override { fs::remove_all(dir_); }

  Attestation Make() {
    Attestation a;
    a.subjects.push_back(*DigestArtifact(model_));
    a.predicate = {"moat-builtin", "1.2.0", {"dolly-15k", "sha256:abc"}};
    return a;
  }

  fs::path dir_;
  std::string model_;
};

TEST(ProvenanceEncodingTest, KnownValues) {
  // The DSSE specification's example.
  EXPECT_EQ(PreAuthEncoding("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  ASSERT_GE(sodium_init(), 0);
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(ProvenanceTest, SignedStatementVerifiesAndNamesItsSubjects) {
  const audit::SigningKey key = TestKey('k');
  const std::string envelope = SignEnvelope(Make(), key);

  auto v = VerifyEnvelope(envelope, key.public_key_hex());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v->attestation.subjects.size(), 1u);
  EXPECT_EQ(v->attestation.subjects[0].name, "model.bin");
  EXPECT_EQ(v->attestation.subjects[0].sha256_hex, *Sha256OfFile(model_));
  EXPECT_EQ(v->attestation.predicate.model_name, "moat-builtin");
  EXPECT_EQ(v->attestation.predicate.training_data.size(), 2u);
  EXPECT_EQ(v->envelope_sha256, Sha256Hex(envelope));
  EXPECT_TRUE(CheckArtifact(*v, model_).ok());

  // The envelope has the DSSE shape and an in-toto statement inside.
  json::object env = json::parse(envelope).as_object();
  EXPECT_EQ(env.at("payloadType").as_string(), "application/vnd.in-toto+json");
  EXPECT_EQ(env.at("signatures").as_array().at(0).at("keyid").as_string(), v->key_id);
}

TEST_F(ProvenanceTest, AnotherKeyOrAnEditedPayloadIsRefused) {
  const std::string envelope = SignEnvelope(Make(), TestKey('k'));
  auto other = VerifyEnvelope(envelope, TestKey('o').public_key_hex());
  EXPECT_EQ(other.status().code(), StatusCode::kPermissionDenied);

  // Swap the payload for a statement that names another digest, keep the signature.
  Attestation forged = Make();
  forged.subjects[0].sha256_hex = std::string(64, 'a');
  json::object env = json::parse(envelope).as_object();
  json::object forged_env = json::parse(SignEnvelope(forged, TestKey('z'))).as_object();
  env["payload"] = forged_env["payload"];
  auto edited = VerifyEnvelope(json::serialize(env), TestKey('k').public_key_hex());
  EXPECT_EQ(edited.status().code(), StatusCode::kPermissionDenied);

  // Another payload type under a valid signature of the same bytes is refused too.
  env = json::parse(envelope).as_object();
  env["payloadType"] = "text/plain";
  EXPECT_EQ(VerifyEnvelope(json::serialize(env), TestKey('k').public_key_hex()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyEnvelope("not json", TestKey('k').public_key_hex()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyEnvelope(envelope, "xyz").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ProvenanceTest, ChangedArtifactFailsItsDigest) {
  const audit::SigningKey key = TestKey('k');
  auto v = VerifyEnvelope(SignEnvelope(Make(), key), key.public_key_hex());
  ASSERT_TRUE(v.ok());
  std::ofstream(model_, std::ios::binary | std::ios::app) << "one more byte";
  Status s = CheckArtifact(*v, model_);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("sha256"), std::string::npos);
  const std::string other = (dir_ / "other.bin").string();
  std::ofstream(other) << "x";
  EXPECT_EQ(CheckArtifact(*v, other).code(), StatusCode::kNotFound);
}

TEST_F(ProvenanceTest, PublicKeyFromHexOrFile) {
  const audit::SigningKey key = TestKey('k');
  EXPECT_EQ(*ReadPublicKeyHex(key.public_key_hex()), key.public_key_hex());
  const std::string pub = (dir_ / "key.pub").string();
  std::ofstream(pub) << key.public_key_hex() << "\n";
  EXPECT_EQ(*ReadPublicKeyHex(pub), key.public_key_hex());
  EXPECT_FALSE(ReadPublicKeyHex((dir_ / "missing.pub").string()).ok());
}

}  // namespace
}  // namespace moat::provenance

// Provenance against the real binary: `moat provenance sign|verify` on a trained builtin model,
// a gateway that verifies the model's attestation at start and names it in /v1/models, in every
// audit record of a request for the model and in GET /admin/models, and one that refuses to
// start when the model file no longer matches its attested digest.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <string>

#include "test/integration/moat_harness.h"
#include "test/upstream/test_process.h"

namespace moat::integration {
namespace {

namespace json = boost::json;
using moat::testing::HttpClient;
using moat::testing::HttpHeaders;
using moat::testing::TempDir;

class ProvenanceIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = dir_.File("tiny-model.bin");
    key_ = dir_.File("provenance.key");
    attestation_ = dir_.File("tiny-model.att.json");
    CommandResult train =
        RunCommand({MoatBinary(), "model", "train", "--out", model_, "--max-bytes", "200000"}, std::chrono::seconds(120));
    ASSERT_EQ(train.exit_code, 0) << train.err;
    CommandResult sign = RunCommand({MoatBinary(), "provenance", "sign", "--artifact", model_, "--key", key_,
                                     "--model-name", "tiny", "--model-version", "1.0", "--training-data", "fortunes",
                                     "--out", attestation_});
    ASSERT_EQ(sign.exit_code, 0) << sign.err;
  }

  std::string Config() const {
    return "[server]\nlisten = \"127.0.0.1:0\"\nthreads = 1\nadmin_token = "
           "\"prov-admin\"\n[storage]\ndata_dir = \"{data_dir}\"\n"
           "[[models]]\nname = \"tiny\"\nbackend = \"builtin\"\nmodel_path = \"" +
           model_ + "\"\ngeneration_threads = 1\nattestation = \"" + attestation_ +
           "\"\nattestation_public_key = \"" + key_ + ".pub\"\n";
  }

  TempDir dir_{"moat-provenance"};
  std::string model_, key_, attestation_;
};

TEST_F(ProvenanceIntegrationTest, CliSignsAndVerifiesAndCatchesAChangedArtifact) {
  CommandResult ok = RunCommand({MoatBinary(), "provenance", "verify", attestation_, "--public-key", key_ + ".pub",
                                 "--artifact", model_});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("signature OK"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("matches"), std::string::npos) << ok.out;

  CommandResult other_key = RunCommand({MoatBinary(), "provenance", "verify", attestation_, "--public-key",
                                        std::string(64, '1')});
  EXPECT_NE(other_key.exit_code, 0);

  std::ofstream(model_, std::ios::binary | std::ios::app) << "x";
  CommandResult changed = RunCommand({MoatBinary(), "provenance", "verify", attestation_, "--public-key",
                                      key_ + ".pub", "--artifact", model_});
  EXPECT_NE(changed.exit_code, 0);
  EXPECT_NE(changed.err.find("sha256"), std::string::npos) << changed.err;
}

TEST_F(ProvenanceIntegrationTest, GatewayServesOnlyTheAttestedModelAndNamesTheAttestation) {
  {
    MoatInstance moat;
    ASSERT_TRUE(moat.WriteConfig(Config()).ok());
    auto key = moat.CreateAccountAndKeyWithCli("prov", "verified");
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    Status started = moat.Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    HttpClient client("127.0.0.1", moat.port());
    auto res = client.Request("GET", "/v1/models", "", {{"authorization", "Bearer " + *key}});
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    ASSERT_EQ(res->status, 200) << res->body;
    const json::object model = json::parse(res->body).at("data").as_array().at(0).as_object();
    ASSERT_TRUE(model.contains("attestation_sha256")) << res->body;
    const std::string digest(model.at("attestation_sha256").as_string());
    EXPECT_EQ(digest.size(), 64u);
    EXPECT_NE(moat.Log().find("attestation verified"), std::string::npos) << moat.Log();

    // A served request's audit record names the attestation; one for an unknown model does not.
    const HttpHeaders auth = {{"authorization", "Bearer " + *key}};
    auto served = client.Request(
        "POST", "/v1/chat/completions",
        R"({"model":"tiny","max_tokens":4,"messages":[{"role":"user","content":"hi"}]})", auth);
    ASSERT_TRUE(served.ok()) << served.status().ToString();
    ASSERT_EQ(served->status, 200) << served->body;
    auto unknown =
        client.Request("POST", "/v1/chat/completions",
                       R"({"model":"other","messages":[{"role":"user","content":"hi"}]})", auth);
    ASSERT_TRUE(unknown.ok()) << unknown.status().ToString();
    EXPECT_EQ(unknown->status, 404) << unknown->body;
    auto record = moat.AuditRecord(served->Header("x-request-id"));
    ASSERT_TRUE(record.ok()) << record.status().ToString();
    EXPECT_EQ(record->at("model_attestation").as_string(), digest);
    auto unknown_record = moat.AuditRecord(unknown->Header("x-request-id"));
    ASSERT_TRUE(unknown_record.ok()) << unknown_record.status().ToString();
    EXPECT_EQ(unknown_record->at("model_attestation").as_string(), "");

    // The admin API lists the model with what its attestation says.
    auto admin =
        client.Request("GET", "/admin/models", "", {{"authorization", "Bearer prov-admin"}});
    ASSERT_TRUE(admin.ok()) << admin.status().ToString();
    ASSERT_EQ(admin->status, 200) << admin->body;
    const json::object listed = json::parse(admin->body).at("data").as_array().at(0).as_object();
    EXPECT_EQ(listed.at("name").as_string(), "tiny");
    EXPECT_EQ(listed.at("backend").as_string(), "builtin");
    const json::object& att = listed.at("attestation").as_object();
    EXPECT_EQ(att.at("sha256").as_string(), digest);
    EXPECT_EQ(att.at("model_name").as_string(), "tiny");
    EXPECT_EQ(att.at("model_version").as_string(), "1.0");
    EXPECT_EQ(att.at("key_id").as_string().size(), 64u);
    auto no_token = client.Request("GET", "/admin/models");
    ASSERT_TRUE(no_token.ok()) << no_token.status().ToString();
    EXPECT_EQ(no_token->status, 401) << no_token->body;

    EXPECT_TRUE(moat.Stop(SIGTERM).ok());
    // The chain, with the attested records in it, verifies.
    CommandResult verify = moat.Cli({"audit", "verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    EXPECT_NE(verify.out.find("OK"), std::string::npos) << verify.out;
  }

  // The same config after the model file changed: the gateway does not start, and says why.
  std::ofstream(model_, std::ios::binary | std::ios::app) << "x";
  MoatInstance moat;
  ASSERT_TRUE(moat.WriteConfig(Config()).ok());
  Status started = moat.Start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(moat.Log().find("refusing to serve"), std::string::npos) << moat.Log();
}

}  // namespace
}  // namespace moat::integration

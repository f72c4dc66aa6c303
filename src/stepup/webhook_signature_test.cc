#include "stepup/webhook_signature.h"

#include <sys/stat.h>

#include <fstream>

#include <gtest/gtest.h>

#include "test/upstream/test_process.h"

namespace moat::stepup {
namespace {

const std::string kSecret = "whsec_0123456789abcdef";
const std::string kBody = R"({"id":"evt_1"})";

TEST(WebhookSignatureTest, IsHmacSha256OverTimestampDotBody) {
  // Python: hmac.new(secret, b'1700000000.' + body, hashlib.sha256).hexdigest()
  EXPECT_EQ(WebhookSignature(kSecret, 1700000000, kBody),
            "t=1700000000,v1=dea1657bd5053cb0f8a75ebf0bd3d22e0cdeb79563b44db6b88864e522fb8bc4");
}

TEST(WebhookSignatureTest, VerifiesWhatItSignedAndNothingElse) {
  const std::string header = WebhookSignature(kSecret, 1700000000, kBody);
  EXPECT_TRUE(VerifyWebhookSignature(kSecret, header, kBody, 1700000000, 300).ok());
  EXPECT_TRUE(VerifyWebhookSignature(kSecret, header, kBody, 1700000299, 300).ok());
  struct Case {
    const char* what;
    Status status;
  } cases[] = {
      {"altered body", VerifyWebhookSignature(kSecret, header, R"({"id":"evt_2"})", 1700000000, 300)},
      {"other secret", VerifyWebhookSignature("whsec_fedcba9876543210", header, kBody, 1700000000, 300)},
      {"stale", VerifyWebhookSignature(kSecret, header, kBody, 1700000301, 300)},
      {"from the future", VerifyWebhookSignature(kSecret, header, kBody, 1699999699, 300)},
      {"timestamp moved", VerifyWebhookSignature(kSecret, "t=1700000001," + header.substr(header.find("v1=")),
                                                 kBody, 1700000000, 300)},
      {"no v1", VerifyWebhookSignature(kSecret, "t=1700000000", kBody, 1700000000, 300)},
      {"no t", VerifyWebhookSignature(kSecret, header.substr(header.find("v1=")), kBody, 1700000000, 300)},
      {"empty", VerifyWebhookSignature(kSecret, "", kBody, 1700000000, 300)},
      {"truncated mac", VerifyWebhookSignature(kSecret, header.substr(0, header.size() - 2), kBody, 1700000000, 300)},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.status.code(), StatusCode::kPermissionDenied) << c.what;
  }
}

TEST(WebhookSignatureTest, TheSecretFileMustBePrivateAndLongEnough) {
  moat::testing::TempDir dir("moat-webhook-secret");
  auto write = [&](const std::string& name, const std::string& text, mode_t mode) {
    const std::string path = dir.File(name);
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
  };
  auto ok = LoadWebhookSecret(write("ok", kSecret + "\n", 0600));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, kSecret);  // the newline is not part of the key
  auto shared = LoadWebhookSecret(write("shared", kSecret, 0644));
  EXPECT_EQ(shared.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(shared.status().message().find("chmod 600"), std::string::npos) << shared.status().message();
  EXPECT_EQ(LoadWebhookSecret(write("short", "0123456789\n\n", 0600)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadWebhookSecret(dir.File("missing")).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace moat::stepup

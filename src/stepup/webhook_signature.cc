#include "stepup/webhook_signature.h"

#include <sodium.h>

#include "common/file_contents.h"
#include "common/private_files.h"

namespace moat::stepup {
namespace {

std::string Hmac(std::string_view secret, std::string_view signed_text) {
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(secret.data()), secret.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(signed_text.data()),
                                signed_text.size());
  crypto_auth_hmacsha256_final(&st, mac);
  char hex[2 * sizeof(mac) + 1];
  sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
  return std::string(hex, 2 * sizeof(mac));
}

std::string SignedText(int64_t unix_s, std::string_view body) {
  std::string text = std::to_string(unix_s);
  text += '.';
  text += body;
  return text;
}

}  // namespace

std::string WebhookSignature(std::string_view secret, int64_t unix_s, std::string_view body) {
  return "t=" + std::to_string(unix_s) + ",v1=" + Hmac(secret, SignedText(unix_s, body));
}

Status VerifyWebhookSignature(std::string_view secret, std::string_view header, std::string_view body,
                              int64_t now_s, int64_t tolerance_s) {
  std::string_view t, v1;
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t comma = header.find(',', pos);
    if (comma == std::string_view::npos) comma = header.size();
    const std::string_view item = header.substr(pos, comma - pos);
    if (item.substr(0, 2) == "t=") t = item.substr(2);
    if (item.substr(0, 3) == "v1=") v1 = item.substr(3);
    pos = comma + 1;
  }
  if (t.empty() || v1.empty() || t.size() > 18 || t.find_first_not_of("0123456789") != std::string_view::npos)
    return PermissionDeniedError("malformed signature header (expected t=<unix seconds>,v1=<hex>)");
  const int64_t sent = std::stoll(std::string(t));
  if (sent < now_s - tolerance_s || sent > now_s + tolerance_s)
    return PermissionDeniedError("signature timestamp outside the tolerance (a replay, or clocks apart)");
  const std::string expected = Hmac(secret, SignedText(sent, body));
  if (v1.size() != expected.size() || sodium_memcmp(v1.data(), expected.data(), expected.size()) != 0)
    return PermissionDeniedError("wrong signature");
  return Status::Ok();
}

StatusOr<std::string> LoadWebhookSecret(const std::string& path) {
  MOAT_RETURN_IF_ERROR(CheckSecretFilePermissions(path));
  MOAT_ASSIGN_OR_RETURN(std::string secret, ReadFileContents(path, "webhook secret file"));
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' || secret.back() == ' ' ||
                             secret.back() == '\t')) {
    secret.pop_back();
  }
  if (secret.size() < kMinSecretBytes) {
    return InvalidArgumentError("webhook secret file " + path + " must hold at least " +
                                std::to_string(kMinSecretBytes) + " bytes (e.g. openssl rand -hex 32)");
  }
  return secret;
}

}  // namespace moat::stepup

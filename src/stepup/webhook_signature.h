#pragma once
// The signature of moat's step-up webhooks (docs/detection.md, "Step-up verification"), in the
// style of Stripe's: the header
//   x-moat-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
// signs the exact body bytes and the time they were sent, so a receiver can reject forged,
// altered and replayed deliveries. The secret is shared with the identity service out of band
// ([step_up] webhook_secret_file).

#include <cstdint>
#include <string>
#include <string_view>

#include "moat/status.h"

namespace moat::stepup {

// The header field the signature travels in.
inline constexpr std::string_view kSignatureHeader = "x-moat-signature";
// Shortest secret accepted (bytes): HMAC-SHA256 keys below 128 bits are guessable.
inline constexpr size_t kMinSecretBytes = 16;

// The x-moat-signature value of `body` sent at `unix_s` under `secret`.
std::string WebhookSignature(std::string_view secret, int64_t unix_s, std::string_view body);

// Checks a received x-moat-signature value: OK when it has a "t=" within `tolerance_s` seconds
// of `now_s` and a "v1=" equal (constant-time) to the signature of "<t>." + `body` under
// `secret`. PermissionDenied saying why otherwise (malformed, stale, or a wrong signature).
Status VerifyWebhookSignature(std::string_view secret, std::string_view header, std::string_view body,
                              int64_t now_s, int64_t tolerance_s);

// Reads the webhook secret from `path`: the file must be private (common/private_files.h:
// FailedPrecondition naming the chmod otherwise, NotFound when missing); trailing whitespace
// (a newline from `openssl rand -hex 32 > file`) is dropped; InvalidArgument when fewer than
// kMinSecretBytes remain.
StatusOr<std::string> LoadWebhookSecret(const std::string& path);

}  // namespace moat::stepup

#pragma once
// SigningKey: the Ed25519 key that signs audit checkpoints, kept in a file of its own.
//
// Key file: one line, the 32-byte Ed25519 seed as 64 lowercase hex characters (a 128-hex-char
// libsodium secret key is accepted too). Created with mode 0600 when missing. The public key is
// kept beside it in "<path>.pub" as 64 hex characters plus a newline.

#include <sodium.h>

#include <array>
#include <string>
#include <string_view>

#include "moat/status.h"

namespace moat::audit {

class SigningKey {
 public:
  // Reads the key at `path`, or creates a fresh one (mode 0600) when the file does not exist.
  // Writes "<path>.pub" when missing; returns FailedPrecondition when it exists and holds a
  // different public key, or when the key file is readable or writable by group or others;
  // InvalidArgument when the key file is malformed.
  static StatusOr<SigningKey> LoadOrCreate(const std::string& path);
  // A key from a 32-byte seed (tests).
  static SigningKey FromSeed(std::string_view seed32);

  SigningKey(const SigningKey&) = default;
  SigningKey& operator=(const SigningKey&) = default;
  ~SigningKey();

  // Ed25519 detached signature of `message`, as 128 lowercase hex characters.
  std::string SignHex(std::string_view message) const;
  // 64 lowercase hex characters.
  std::string public_key_hex() const;

 private:
  SigningKey() = default;
  std::array<unsigned char, crypto_sign_SECRETKEYBYTES> secret_{};
  std::array<unsigned char, crypto_sign_PUBLICKEYBYTES> public_{};
};

// Checks an Ed25519 detached signature (hex) of `message` under a public key (hex). False on
// any malformed input.
bool VerifySignatureHex(std::string_view public_key_hex, std::string_view message,
                        std::string_view signature_hex);

}  // namespace moat::audit

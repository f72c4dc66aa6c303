#include "audit/signing_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "audit/audit_hash.h"
#include "common/file_contents.h"
#include "common/private_files.h"

namespace moat::audit {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

}  // namespace

SigningKey SigningKey::FromSeed(std::string_view seed32) {
  // Idempotent; selects the implementations. Key generation below needs no runtime checks.
  if (sodium_init() < 0) std::abort();
  SigningKey key;
  crypto_sign_seed_keypair(key.public_.data(), key.secret_.data(),
                           reinterpret_cast<const unsigned char*>(seed32.data()));
  return key;
}

StatusOr<SigningKey> SigningKey::LoadOrCreate(const std::string& path) {
  if (sodium_init() < 0) return InternalError("libsodium initialisation failed");
  std::string seed;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    seed.resize(crypto_sign_SEEDBYTES);
    randombytes_buf(seed.data(), seed.size());
    Status s = CreateSecretFile(path, HexEncode(seed) + "\n");
    if (s.code() == StatusCode::kAlreadyExists) return LoadOrCreate(path);  // lost a race
    MOAT_RETURN_IF_ERROR(s);
  } else {
    // A signing key others can read lets them forge checkpoints: refuse it.
    MOAT_RETURN_IF_ERROR(CheckSecretFilePermissions(path));
    MOAT_ASSIGN_OR_RETURN(std::string text, ReadFileContents(path));
    auto bytes = HexDecode(Trim(text));
    if (!bytes.ok()) return InvalidArgumentError("malformed signing key file " + path);
    if (bytes->size() == crypto_sign_SEEDBYTES) {
      seed = *bytes;
    } else if (bytes->size() == crypto_sign_SECRETKEYBYTES) {
      seed = bytes->substr(0, crypto_sign_SEEDBYTES);  // libsodium sk = seed || public key
    } else {
      return InvalidArgumentError("signing key file " + path + " has the wrong length");
    }
  }
  SigningKey key = FromSeed(seed);
  sodium_memzero(seed.data(), seed.size());

  const std::string pub_path = path + ".pub";
  const std::string pub_hex = key.public_key_hex();
  auto existing = ReadFileContents(pub_path);
  if (existing.ok()) {
    if (Trim(*existing) != pub_hex) {
      return FailedPreconditionError(pub_path + " does not match the key in " + path);
    }
  } else {
    Status s = CreateNewFile(pub_path, pub_hex + "\n", 0644);
    if (!s.ok() && s.code() != StatusCode::kAlreadyExists) return s;
  }
  return key;
}

SigningKey::~SigningKey() { sodium_memzero(secret_.data(), secret_.size()); }

std::string SigningKey::SignHex(std::string_view message) const {
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size(), secret_.data());
  return HexEncode(std::string_view(reinterpret_cast<const char*>(sig), sizeof(sig)));
}

std::string SigningKey::public_key_hex() const {
  return HexEncode(std::string_view(reinterpret_cast<const char*>(public_.data()), public_.size()));
}

bool VerifySignatureHex(std::string_view public_key_hex, std::string_view message,
                        std::string_view signature_hex) {
  if (sodium_init() < 0) return false;
  auto pk = HexDecode(public_key_hex);
  auto sig = HexDecode(signature_hex);
  if (!pk.ok() || !sig.ok()) return false;
  if (pk->size() != crypto_sign_PUBLICKEYBYTES || sig->size() != crypto_sign_BYTES) return false;
  return crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig->data()),
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(),
                                     reinterpret_cast<const unsigned char*>(pk->data())) == 0;
}

}  // namespace moat::audit

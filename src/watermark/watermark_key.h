#pragma once
// Watermark keys: the gateway's master secret and the per-account, per-epoch keys derived from
// it with keyed BLAKE2b (libsodium crypto_generichash). Rotating to a new epoch changes every
// account's key while old epochs stay derivable, so text from before a rotation stays detectable.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "moat/status.h"

namespace moat::watermark {

inline constexpr size_t kMasterSecretBytes = 32;
inline constexpr size_t kKeyBytes = 32;

class MasterSecret {
 public:
  explicit MasterSecret(const std::array<uint8_t, kMasterSecretBytes>& bytes) : bytes_(bytes) {}
  // A fresh secret from the OS random generator.
  static MasterSecret Generate();
  // Reads a secret file (64 hex characters, optional trailing newline). kNotFound when absent,
  // kDataLoss when malformed, kFailedPrecondition when group or others can read or write it.
  static StatusOr<MasterSecret> Load(const std::string& path);
  // Loads `path`, or generates a secret and writes it there (mode 0600, parent directories
  // created) when the file does not exist; when another process creates it first, loads theirs.
  static StatusOr<MasterSecret> LoadOrCreate(const std::string& path);
  // Writes the secret to a new file `path` (CreateSecretFile: mode 0600, complete or absent,
  // AlreadyExists rather than replacing a file), creating missing parent directories.
  Status SaveNew(const std::string& path) const;

  const std::array<uint8_t, kMasterSecretBytes>& bytes() const { return bytes_; }

 private:
  std::array<uint8_t, kMasterSecretBytes> bytes_;
};

// One account's key for one epoch. `seed` (the first 8 bytes of `material`, little-endian) keys
// the xxh3 hashes of the green lists.
struct WatermarkKey {
  std::string account;
  uint32_t epoch = 0;
  std::string key_id;  // "wm:<account>:<epoch>", stored in audit records
  std::array<uint8_t, kKeyBytes> material{};
  uint64_t seed = 0;
};

// material = BLAKE2b-256(key = master, "moat.watermark.v1" || 0x00 || u32le(epoch) || account).
WatermarkKey DeriveKey(const MasterSecret& master, std::string_view account, uint32_t epoch);

// "wm:<account>:<epoch>".
std::string KeyId(std::string_view account, uint32_t epoch);
// Inverse of KeyId (the account may itself contain ':'); kInvalidArgument when malformed.
StatusOr<std::pair<std::string, uint32_t>> ParseKeyId(std::string_view key_id);

// The keys of `accounts` for every epoch in [first_epoch, last_epoch], account-major.
std::vector<WatermarkKey> DeriveKeys(const MasterSecret& master,
                                     const std::vector<std::string>& accounts,
                                     uint32_t first_epoch, uint32_t last_epoch);

}  // namespace moat::watermark

#include "watermark/watermark_key.h"

#include <sodium.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/private_files.h"

namespace moat::watermark {
namespace {

void EnsureSodium() {
  static const int rc = sodium_init();
  (void)rc;  // 0 or 1 (already initialised); -1 only when the OS RNG is unusable
}

constexpr char kDomain[] = "moat.watermark.v1";

}  // namespace

MasterSecret MasterSecret::Generate() {
  EnsureSodium();
  std::array<uint8_t, kMasterSecretBytes> b{};
  randombytes_buf(b.data(), b.size());
  return MasterSecret(b);
}

StatusOr<MasterSecret> MasterSecret::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open watermark secret " + path);
  // Anyone who can read the master secret can find (and so remove) every account's watermark.
  if (Status perms = CheckSecretFilePermissions(path); !perms.ok()) {
    return perms.code() == StatusCode::kNotFound ? NotFoundError(perms.message()) : perms;
  }
  std::string hex;
  in >> hex;
  std::array<uint8_t, kMasterSecretBytes> b{};
  size_t len = 0;
  if (hex.size() != 2 * kMasterSecretBytes ||
      sodium_hex2bin(b.data(), b.size(), hex.data(), hex.size(), nullptr, &len, nullptr) != 0 ||
      len != kMasterSecretBytes) {
    return DataLossError("watermark secret " + path + " must hold 64 hex characters");
  }
  return MasterSecret(b);
}

Status MasterSecret::SaveNew(const std::string& path) const {
  std::error_code ec;  // a directory that cannot be made shows up as CreateSecretFile's error
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  char hex[2 * kMasterSecretBytes + 1];
  sodium_bin2hex(hex, sizeof(hex), bytes_.data(), bytes_.size());
  return CreateSecretFile(path, std::string(hex) + "\n");
}

StatusOr<MasterSecret> MasterSecret::LoadOrCreate(const std::string& path) {
  auto loaded = Load(path);
  if (loaded.ok() || loaded.status().code() != StatusCode::kNotFound) return loaded;
  if (std::filesystem::exists(path)) return loaded.status();  // exists but unreadable
  MasterSecret secret = Generate();
  Status saved = secret.SaveNew(path);
  if (saved.code() == StatusCode::kAlreadyExists) return Load(path);  // another process won
  MOAT_RETURN_IF_ERROR(saved);
  return secret;
}

WatermarkKey DeriveKey(const MasterSecret& master, std::string_view account, uint32_t epoch) {
  EnsureSodium();
  WatermarkKey key;
  key.account = std::string(account);
  key.epoch = epoch;
  key.key_id = KeyId(account, epoch);
  crypto_generichash_state st;
  crypto_generichash_init(&st, master.bytes().data(), master.bytes().size(), key.material.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(kDomain), sizeof(kDomain));
  const uint8_t e[4] = {static_cast<uint8_t>(epoch), static_cast<uint8_t>(epoch >> 8),
                        static_cast<uint8_t>(epoch >> 16), static_cast<uint8_t>(epoch >> 24)};
  crypto_generichash_update(&st, e, sizeof(e));
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(account.data()),
                            account.size());
  crypto_generichash_final(&st, key.material.data(), key.material.size());
  for (int i = 7; i >= 0; --i) key.seed = (key.seed << 8) | key.material[i];
  return key;
}

std::string KeyId(std::string_view account, uint32_t epoch) {
  return "wm:" + std::string(account) + ":" + std::to_string(epoch);
}

StatusOr<std::pair<std::string, uint32_t>> ParseKeyId(std::string_view key_id) {
  const size_t colon = key_id.rfind(':');
  if (key_id.substr(0, 3) != "wm:" || colon == std::string_view::npos || colon <= 3 ||
      colon + 1 == key_id.size()) {
    return InvalidArgumentError("malformed watermark key id: " + std::string(key_id));
  }
  uint64_t epoch = 0;
  for (char c : key_id.substr(colon + 1)) {
    if (c < '0' || c > '9' || epoch > 0xffffffffull / 10) {
      return InvalidArgumentError("malformed watermark key epoch: " + std::string(key_id));
    }
    epoch = epoch * 10 + static_cast<uint64_t>(c - '0');
  }
  if (epoch > 0xffffffffull) return InvalidArgumentError("watermark key epoch too large");
  return std::make_pair(std::string(key_id.substr(3, colon - 3)), static_cast<uint32_t>(epoch));
}

std::vector<WatermarkKey> DeriveKeys(const MasterSecret& master,
                                     const std::vector<std::string>& accounts,
                                     uint32_t first_epoch, uint32_t last_epoch) {
  std::vector<WatermarkKey> keys;
  keys.reserve(accounts.size() * (last_epoch - first_epoch + 1ull));
  for (const auto& a : accounts) {
    for (uint32_t e = first_epoch; e <= last_epoch; ++e) {
      keys.push_back(DeriveKey(master, a, e));
      if (e == 0xffffffffu) break;
    }
  }
  return keys;
}

}  // namespace moat::watermark

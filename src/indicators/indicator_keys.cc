#include "indicators/indicator_keys.h"

#include <sodium.h>

#include <cmath>
#include <cstring>

#include "common/file_contents.h"
#include "detect/sketches.h"

namespace moat::indicators {
namespace {

constexpr std::array<std::string_view, kNumIndicatorKinds> kKindNames = {
    "network-prefix", "client-fingerprint", "prompt-template-prefix", "prompt-template-suffix",
    "work-queue-item"};

}  // namespace

std::string_view KindName(IndicatorKind kind) { return kKindNames[static_cast<size_t>(kind)]; }

std::optional<IndicatorKind> ParseKind(std::string_view name) {
  for (int i = 0; i < kNumIndicatorKinds; ++i) {
    if (kKindNames[i] == name) return static_cast<IndicatorKind>(i);
  }
  return std::nullopt;
}

RequestKeys RequestKeysOf(const detect::RequestEvent& event, const detect::RequestFeatures& f) {
  RequestKeys k;
  if (!event.client_ip.empty()) k.network_prefix = std::string(detect::NetworkPrefix(event.client_ip));
  // Not the SDK headers (an audit record does not keep them) nor max_tokens / n (a degraded
  // request's are rewritten before they are logged).
  if (!event.user_agent.empty()) {
    uint64_t fp = detect::Hash64(event.user_agent, 0x696e6463);
    fp = detect::HashCombine(fp, f.model_hash);
    fp = detect::HashCombine(fp, f.system_hash);
    fp = detect::HashCombine(fp, static_cast<uint64_t>(std::llround(f.temperature * 100 + 1000)));
    fp = detect::HashCombine(fp, f.stream ? 2 : 1);
    k.client = fp;
  }
  k.template_prefix = f.prefix_hash;
  k.template_suffix = f.suffix_hash;
  k.item = f.item;
  return k;
}

std::optional<std::string> PrefixToCidr(std::string_view prefix) {
  if (prefix.find(':') != std::string_view::npos) {
    int colons = 0;
    for (char c : prefix) colons += c == ':';
    if (colons != 2) return std::nullopt;
    return std::string(prefix) + "::/48";
  }
  int dots = 0;
  for (char c : prefix) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return std::nullopt;
    }
  }
  if (dots != 2) return std::nullopt;
  return std::string(prefix) + ".0/24";
}

std::optional<std::string> CidrToPrefix(std::string_view cidr) {
  if (cidr.size() > 7 && cidr.substr(cidr.size() - 5) == ".0/24") {
    std::string p(cidr.substr(0, cidr.size() - 5));
    if (PrefixToCidr(p)) return p;
    return std::nullopt;
  }
  if (cidr.size() > 6 && cidr.substr(cidr.size() - 5) == "::/48") {
    std::string p(cidr.substr(0, cidr.size() - 5));
    if (PrefixToCidr(p)) return p;
  }
  return std::nullopt;
}

IndicatorHasher::IndicatorHasher(std::string_view salt) {
  static_assert(crypto_shorthash_KEYBYTES == 16);
  static const unsigned char kKeyContext[] = "moat indicator key v1";
  static const unsigned char kIdContext[] = "moat indicator salt id v1";
  crypto_generichash(key_.data(), key_.size(), reinterpret_cast<const unsigned char*>(salt.data()), salt.size(),
                     kKeyContext, sizeof(kKeyContext) - 1);
  unsigned char id[8];
  crypto_generichash(id, sizeof(id), reinterpret_cast<const unsigned char*>(salt.data()), salt.size(),
                     kIdContext, sizeof(kIdContext) - 1);
  uint64_t v = 0;
  std::memcpy(&v, id, sizeof(v));
  salt_id_ = Hex64(v);
}

uint64_t IndicatorHasher::Hash(IndicatorKind kind, uint64_t raw) const {
  unsigned char msg[9];
  msg[0] = static_cast<unsigned char>(kind);
  for (int i = 0; i < 8; ++i) msg[1 + i] = static_cast<unsigned char>(raw >> (8 * i));
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, msg, sizeof(msg), key_.data());
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(out[i]) << (8 * i);
  return v;
}

StatusOr<std::string> ReadSaltFile(const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(std::string salt, ReadFileContents(path, "the indicator salt file"));
  if (!salt.empty() && salt.back() == '\n') salt.pop_back();
  if (salt.size() < 16) return InvalidArgumentError("indicator salt file " + path + " holds fewer than 16 bytes");
  return salt;
}

std::string Hex64(uint64_t v) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[i] = kDigits[v & 15];
  return s;
}

std::optional<uint64_t> ParseHex64(std::string_view s) {
  if (s.size() != 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

}  // namespace moat::indicators

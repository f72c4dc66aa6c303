#pragma once
// What a shared indicator is made of: the kinds of request keys two providers can compare, how
// each is derived from a request (the same way on both sides, from what an audit record
// keeps), and the keyed hash that lets them be shared without exposing the raw values.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "detect/corpus_index.h"
#include "detect/features.h"
#include "moat/detect_engine.h"
#include "moat/status.h"

namespace moat::indicators {

enum class IndicatorKind : uint8_t {
  kNetworkPrefix = 0,  // /24 (IPv4) or /48 (IPv6) client network, shared as a CIDR
  kClientFingerprint,  // user agent, model, system prompt, temperature, stream (keyed hash)
  kTemplatePrefix,     // first words of the prompt's normalised template (keyed hash)
  kTemplateSuffix,     // last words of it (keyed hash)
  kWorkQueueItem,      // the prompt's content-word MinHash bands (keyed hash of each band)
  kCount,
};
inline constexpr int kNumIndicatorKinds = static_cast<int>(IndicatorKind::kCount);

// "network-prefix", "client-fingerprint", "prompt-template-prefix", "prompt-template-suffix",
// "work-queue-item".
std::string_view KindName(IndicatorKind kind);
std::optional<IndicatorKind> ParseKind(std::string_view name);

// The raw keys of one request. Every part is computed from fields an audit record keeps, so an
// export from the audit log and a live request give the same keys. 0 / empty: not available.
struct RequestKeys {
  std::string network_prefix;  // detect::NetworkPrefix form: "203.0.113", "2001:db8:1"
  uint64_t client = 0;
  uint64_t template_prefix = 0, template_suffix = 0;
  detect::ItemSketch item;
};
RequestKeys RequestKeysOf(const detect::RequestEvent& event, const detect::RequestFeatures& f);

// "203.0.113" -> "203.0.113.0/24", "2001:db8:1" -> "2001:db8:1::/48"; nullopt for anything else.
std::optional<std::string> PrefixToCidr(std::string_view prefix);
// The inverse, for the only prefix lengths moat matches (/24 and /48); nullopt otherwise.
std::optional<std::string> CidrToPrefix(std::string_view cidr);

// Keyed hashing (SipHash-2-4, libsodium crypto_shorthash) under a salt the two providers share
// out of band: without the salt the values cannot be tested against guesses (an address space,
// a user agent list). Thread-safe, immutable.
class IndicatorHasher {
 public:
  explicit IndicatorHasher(std::string_view salt);
  uint64_t Hash(IndicatorKind kind, uint64_t raw) const;
  // Identifies the salt without revealing it (16 hex digits), so that a bundle hashed under
  // another salt is recognised instead of silently matching nothing.
  const std::string& salt_id() const { return salt_id_; }

 private:
  std::array<unsigned char, 16> key_{};
  std::string salt_id_;
};

// Reads a salt file (at least 16 bytes; one trailing newline is dropped). NotFound when missing,
// InvalidArgument when too short.
StatusOr<std::string> ReadSaltFile(const std::string& path);

// 16 lower-case hex digits of `v`, and back (nullopt unless exactly 16 hex digits).
std::string Hex64(uint64_t v);
std::optional<uint64_t> ParseHex64(std::string_view s);

}  // namespace moat::indicators

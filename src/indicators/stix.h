#pragma once
// STIX 2.1 bundles of distillation-campaign indicators: building them (export), checking them
// against the STIX 2.1 object rules moat relies on (for our own bundles and, before import, for
// anyone else's), and reading their indicators back.
//
// What moat writes (docs/indicators.md has an example):
//   identity      the provider (created_by_ref of everything else);
//   campaign      one per export: the restricted traffic of the window;
//   indicator     one per key: pattern_type "stix", a pattern over `ipv4-addr` / `ipv6-addr`
//                 (network prefixes, as CIDRs) or over the custom `x-moat-request` object
//                 (keyed hashes: client_fingerprint, template_prefix, template_suffix,
//                 item_sketch), valid_from / valid_until, confidence, and x_moat_kind,
//                 x_moat_salt_id, x_moat_subjects;
//   relationship  indicator "indicates" campaign.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "indicators/indicator_keys.h"
#include "moat/status.h"

namespace moat::indicators {

// One indicator to export.
struct IndicatorRecord {
  IndicatorKind kind = IndicatorKind::kNetworkPrefix;
  // The pattern's value: a CIDR for network prefixes, Hex64 of the keyed hash otherwise, and
  // for work-queue items the Hex64 of each band's keyed hash, space-separated.
  std::string value;
  int confidence = 0;         // 0-100
  uint32_t subjects = 0;      // restricted subjects seen with it
  uint32_t all_subjects = 0;  // every subject seen with it
  int64_t first_seen_ns = 0, last_seen_ns = 0;
};

struct BundleInfo {
  std::string provider = "moat gateway";  // the identity's name
  std::string campaign_name;
  int64_t created_ns = 0;                 // now
  int64_t first_seen_ns = 0, last_seen_ns = 0;
  int64_t valid_from_ns = 0, valid_until_ns = 0;
  std::string salt_id;                    // IndicatorHasher::salt_id()
};

// The STIX pattern of one indicator record.
std::string PatternOf(const IndicatorRecord& r);

// A complete bundle (serialised JSON). Ids are random UUIDv4s.
std::string BuildBundle(const std::vector<IndicatorRecord>& records, const BundleInfo& info);

// RFC 3339 UTC with millisecond precision, the STIX timestamp form: "2026-11-29T10:00:00.000Z".
std::string StixTimestamp(int64_t ns);
// Parses a STIX timestamp (must end in Z); InvalidArgument otherwise.
StatusOr<int64_t> ParseStixTimestamp(std::string_view s);

// Checks the bundle against the STIX 2.1 rules: bundle type and id; every object's type,
// spec_version "2.1", id "<type>--<RFC 4122 UUID>", created/modified timestamps (modified not
// before created); indicators' required pattern / pattern_type / valid_from, valid_until after
// valid_from, confidence an integer in 0-100, and a pattern that parses; campaigns' and
// identities' name; relationships' relationship_type, and source/target refs that are ids.
// InvalidArgument naming the first object and rule that fails.
Status ValidateBundle(const boost::json::value& bundle);

// One comparison of a pattern: object type, property path, operator and string value.
struct PatternComparison {
  std::string object_type, property, op, value;
};
// Parses a STIX pattern into its comparisons (across every observation expression and boolean
// operator). Non-string literals are accepted by the grammar but returned with an empty value.
// InvalidArgument when the pattern does not parse.
StatusOr<std::vector<PatternComparison>> ParsePattern(std::string_view pattern);

}  // namespace moat::indicators

#pragma once
// Imported indicators: reading them out of validated STIX bundles, keeping them in the
// gateway's indicator folder (`moat indicators import`), and matching requests against them
// on the request path (detect::IndicatorMatcher).

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/json/value.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "detect/indicator_evidence.h"
#include "indicators/indicator_keys.h"
#include "moat/status.h"

namespace moat::indicators {

// One indicator moat can match.
struct ImportedIndicator {
  std::string stix_id, name;
  IndicatorKind kind = IndicatorKind::kNetworkPrefix;
  int confidence = 50;
  int64_t valid_from_ns = 0, valid_until_ns = 0;  // the import expiry already applied
  float weight = 0;                                // import weight * confidence / 100
  std::string network_prefix;                      // kNetworkPrefix (NetworkPrefix form)
  uint64_t hash = 0;                               // keyed kinds but items
  std::array<uint64_t, detect::kCorpusBands> bands{};  // kWorkQueueItem
  int min_band_matches = detect::kCorpusMinBandMatches;
};

struct ImportOptions {
  double weight = 3.0;       // log-odds a full-confidence indicator gives a matching subject
  double expiry_days = 30;   // an imported indicator ends at most this long after the import
  int64_t imported_ns = 0;   // when the bundle was imported
};

struct ImportSummary {
  size_t indicators = 0;      // usable
  size_t unsupported = 0;     // patterns moat does not match (other objects, other kinds)
  size_t other_salt = 0;      // keyed values hashed under another salt
  size_t expired = 0;         // valid_until (or the import expiry) already past at `now`
};

// The indicators moat can match in a bundle that passed ValidateBundle.
std::vector<ImportedIndicator> ReadIndicators(const boost::json::value& bundle, const std::string& salt_id,
                                              const ImportOptions& options, int64_t now_ns,
                                              ImportSummary* summary);

// Thread-safe and immutable.
class IndicatorSet final : public detect::IndicatorMatcher {
 public:
  IndicatorSet(std::vector<ImportedIndicator> indicators, std::shared_ptr<const IndicatorHasher> hasher);

  std::optional<detect::IndicatorHit> Match(const detect::RequestEvent& event, const detect::RequestFeatures& f,
                                            int64_t now_ns) const override;
  std::optional<float> WeightAt(uint32_t key, int64_t now_ns) const override;
  std::string Describe(uint32_t key) const override;

  size_t size() const { return indicators_.size(); }
  const std::vector<ImportedIndicator>& indicators() const { return indicators_; }

 private:
  void Consider(uint32_t index, int64_t now_ns, std::optional<detect::IndicatorHit>* best) const;

  std::vector<ImportedIndicator> indicators_;
  std::shared_ptr<const IndicatorHasher> hasher_;
  boost::unordered_flat_map<std::string, std::vector<uint32_t>> networks_;
  std::array<boost::unordered_flat_map<uint64_t, std::vector<uint32_t>>, kNumIndicatorKinds> keyed_;
  boost::unordered_flat_map<uint64_t, std::vector<uint32_t>> bands_;  // item band hash -> items
  std::vector<uint32_t> keys_;                            // IndicatorKeyOf(stix_id), per index
  boost::unordered_flat_map<uint32_t, uint32_t> by_key_;  // key -> index (the first of a repeated id)
};

// The indicator folder: `<bundle id>.json` (the bundle as imported) and
// `<bundle id>.import.json` ({"weight", "expiry_days", "imported"}) per bundle.
//
// Validates `bundle_text` (ValidateBundle) and writes it and its import settings into `dir`
// (created 0700 if missing). AlreadyExists if that bundle id was imported before.
StatusOr<std::string> ImportBundle(const std::string& dir, const std::string& bundle_text,
                                   const ImportOptions& options);
// A fingerprint of the folder's files (names, sizes, modification times), "" for a missing
// folder: it changes when an import adds a bundle or its settings, so a running gateway can
// tell when to read the folder again (cheap: one directory listing, no file is opened).
std::string IndicatorDirFingerprint(const std::string& dir);
// Reads every imported bundle of `dir` (a missing folder is an empty set). `summary` adds up
// what was usable and what was not.
StatusOr<std::vector<ImportedIndicator>> LoadIndicatorDir(const std::string& dir, const std::string& salt_id,
                                                          int64_t now_ns, ImportSummary* summary);

}  // namespace moat::indicators

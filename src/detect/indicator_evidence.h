#pragma once
// Shared indicators as evidence: another provider's indicators of a distillation campaign
// (network prefixes, client fingerprints, prompt templates, work-queue items; imported with
// `moat indicators import`, see src/indicators and docs/indicators.md) raise the prior of a
// subject whose request matches one, for as long as the indicator is valid.
//
// The detection engine knows indicators only through IndicatorMatcher, so it depends on no
// exchange format: src/indicators implements it over imported STIX 2.1 bundles. The matcher can
// be replaced while the engine runs (Replace): a gateway picks up newly imported bundles
// without a restart, and subjects keep an indicator they matched as long as the new set still
// holds it, because an indicator is named by a key derived from its STIX id, not a position.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "detect/evidence.h"

namespace moat::detect {

// One match: which indicator (its key: never 0, the same for the same STIX id in every set) and
// the standing log-odds it gives the subject (the import weight times the indicator's
// confidence).
struct IndicatorHit {
  uint32_t key = 0;
  float weight = 0;
};

// Thread-safe and immutable once built: Match runs concurrently on the request path.
class IndicatorMatcher {
 public:
  virtual ~IndicatorMatcher() = default;
  // The strongest valid indicator the request matches at `now_ns`, if any.
  virtual std::optional<IndicatorHit> Match(const RequestEvent& event, const RequestFeatures& f,
                                            int64_t now_ns) const = 0;
  // The weight of indicator `key` at `now_ns`; nullopt once it expired (or is not in this set).
  virtual std::optional<float> WeightAt(uint32_t key, int64_t now_ns) const = 0;
  // "<STIX id> (<name>)" of indicator `key`, for operators; "" if unknown.
  virtual std::string Describe(uint32_t key) const = 0;
};

// The key of the indicator whose STIX id is `stix_id` (never 0).
uint32_t IndicatorKeyOf(std::string_view stix_id);

// The stage: a subject whose request matches an indicator keeps that indicator's prior while it
// stays valid (SubjectState::indicator remembers the last one matched).
class IndicatorStage final : public EvidenceStage {
 public:
  explicit IndicatorStage(std::shared_ptr<const IndicatorMatcher> matcher) : matcher_(std::move(matcher)) {}
  std::string_view name() const override { return "indicators"; }
  const std::vector<std::string_view>& reason_names() const override;
  void OnRequest(RequestView& r, StageEvidence* out) override;
  void OnSubject(const RequestView& r, SubjectRole role, SubjectState& s, const AccountSummary* account,
                 StageEvidence* out) override;

  // Swaps in another set (thread-safe; requests already under way finish with the old one).
  void Replace(std::shared_ptr<const IndicatorMatcher> matcher) { matcher_.store(std::move(matcher)); }
  std::string Describe(uint32_t key) const;

 private:
  std::atomic<std::shared_ptr<const IndicatorMatcher>> matcher_;
};

}  // namespace moat::detect

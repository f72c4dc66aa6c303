#include "detect/indicator_evidence.h"

#include "detect/sketches.h"

namespace moat::detect {

uint32_t IndicatorKeyOf(std::string_view stix_id) {
  const uint32_t key = static_cast<uint32_t>(Hash64(stix_id, 0x1d1ca70f));
  return key == 0 ? 1 : key;
}

const std::vector<std::string_view>& IndicatorStage::reason_names() const {
  static const std::vector<std::string_view> kNames = {"matched_shared_indicator"};
  return kNames;
}

void IndicatorStage::OnRequest(RequestView& r, StageEvidence*) {
  // One set for the whole request (its account and end user), even if Replace runs meanwhile.
  r.indicators = matcher_.load();
  if (r.indicators == nullptr) return;
  if (auto hit = r.indicators->Match(r.event, r.features, r.now_ns)) r.indicator_match = hit->key;
}

void IndicatorStage::OnSubject(const RequestView& r, SubjectRole, SubjectState& s, const AccountSummary*,
                               StageEvidence* out) {
  const IndicatorMatcher* m = r.indicators.get();
  if (m == nullptr) return;
  if (r.indicator_match != 0 && r.indicator_match != s.indicator) {
    // The stronger of the new match and the one the subject already carries.
    const auto hit = m->WeightAt(r.indicator_match, r.now_ns);
    const auto held = s.indicator != 0 ? m->WeightAt(s.indicator, r.now_ns) : std::nullopt;
    if (hit && (!held || *hit >= *held)) s.indicator = r.indicator_match;
  }
  if (s.indicator == 0) return;
  const auto weight = m->WeightAt(s.indicator, r.now_ns);
  if (!weight) {
    s.indicator = 0;  // expired, or no longer in the set
    return;
  }
  out->prior = *weight;
  out->reason = 0;
}

std::string IndicatorStage::Describe(uint32_t key) const {
  const auto m = matcher_.load();
  return m == nullptr ? "" : m->Describe(key);
}

}  // namespace moat::detect

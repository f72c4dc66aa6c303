#include "detect/indicator_evidence.h"

namespace moat::detect {

const std::vector<std::string_view>& IndicatorStage::reason_names() const {
  static const std::vector<std::string_view> kNames = {"matched_shared_indicator"};
  return kNames;
}

void IndicatorStage::OnRequest(RequestView& r, StageEvidence*) {
  if (auto hit = matcher_->Match(r.event, r.features, r.now_ns)) r.indicator_match = hit->index + 1;
}

void IndicatorStage::OnSubject(const RequestView& r, SubjectRole, SubjectState& s, const AccountSummary*,
                               StageEvidence* out) {
  if (r.indicator_match != 0 && r.indicator_match != s.indicator) {
    // The stronger of the new match and the one the subject already carries.
    const auto hit = matcher_->WeightAt(r.indicator_match - 1, r.now_ns);
    const auto held = s.indicator != 0 ? matcher_->WeightAt(s.indicator - 1, r.now_ns) : std::nullopt;
    if (hit && (!held || *hit >= *held)) s.indicator = r.indicator_match;
  }
  if (s.indicator == 0) return;
  const auto weight = matcher_->WeightAt(s.indicator - 1, r.now_ns);
  if (!weight) {
    s.indicator = 0;  // expired
    return;
  }
  out->prior = *weight;
  out->reason = 0;
}

}  // namespace moat::detect

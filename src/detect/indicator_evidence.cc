#include "detect/indicator_evidence.h"

namespace moat::detect {

const std::vector<std::string_view>& IndicatorStage::reason_names() const {
  static const std::vector<std::string_view> kNames = {"matched_shared_indicator"};
  return kNames;
}

void IndicatorStage::OnSubject(const RequestView& r, SubjectRole, SubjectState& s, const AccountSummary*,
                               StageEvidence* out) {
  if (auto hit = matcher_->Match(r.event, r.features, r.now_ns)) {
    // The stronger of the new match and the one the subject already carries.
    const auto held = s.indicator != 0 ? matcher_->WeightAt(s.indicator - 1, r.now_ns) : std::nullopt;
    if (!held || hit->weight >= *held) s.indicator = hit->index + 1;
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

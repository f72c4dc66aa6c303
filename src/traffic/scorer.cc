#include "traffic/scorer.h"

#include <algorithm>

#include "traffic/scenario.h"

namespace moat::traffic {

std::string SubjectKey(std::string_view account, std::string_view end_user) {
  std::string k(account);
  k.push_back('\x1f');
  k.append(end_user);
  return k;
}

uint16_t Scorer::PersonaIndex(const std::string& persona) {
  for (size_t i = 0; i < personas_.size(); ++i) {
    if (personas_[i] == persona) return static_cast<uint16_t>(i);
  }
  personas_.push_back(persona);
  return static_cast<uint16_t>(personas_.size() - 1);
}

void Scorer::AddLabel(const SubjectLabel& label) {
  Subject s;
  s.persona = PersonaIndex(label.persona);
  if (label.campaign) {
    auto [it, inserted] = group_index_.try_emplace(label.campaign_id,
                                                   static_cast<uint32_t>(groups_.size()));
    if (inserted) groups_.push_back({label.campaign_id, label.variant});
    s.group = it->second;
  }
  if (label.end_user.empty()) {
    subjects_[label.account] = s;
  } else {
    per_user_accounts_.insert(label.account);
    subjects_[SubjectKey(label.account, label.end_user)] = s;
  }
}

Scorer::Subject* Scorer::Find(std::string_view account, std::string_view end_user) {
  key_.assign(account);
  if (!per_user_accounts_.empty() && per_user_accounts_.count(key_) > 0) {
    auto it = subjects_.find(SubjectKey(account, end_user));
    if (it != subjects_.end()) return &it->second;
  }
  auto it = subjects_.find(key_);
  return it == subjects_.end() ? nullptr : &it->second;
}

void Scorer::Record(std::string_view account, std::string_view end_user, int64_t time_ns,
                    detect::Action action) {
  ++events_;
  ++actions_[std::string(detect::ActionName(action))];
  if (first_ns_ < 0) first_ns_ = time_ns;
  last_ns_ = std::max(last_ns_, time_ns);
  Subject* s = Find(account, end_user);
  if (s == nullptr) {
    ++unlabelled_;
    return;
  }
  const bool restricted = action != detect::Action::kAllow;
  ++s->requests;
  if (restricted) {
    ++s->restricted;
    if (s->first_flag_ns < 0) s->first_flag_ns = time_ns;
  }
  if (s->group == kOrganic) {
    ++organic_requests_;
    organic_restricted_requests_ += restricted;
    return;
  }
  Group& g = groups_[s->group];
  if (g.first_request_ns < 0) g.first_request_ns = time_ns;
  g.last_request_ns = std::max(g.last_request_ns, time_ns);
  ++g.requests;
  g.leaked += !restricted;
  if (g.first_flag_ns < 0) {
    if (restricted) {
      g.first_flag_ns = time_ns;
    } else {
      ++g.requests_before_flag;
    }
  }
}

Report Scorer::Finish(int curve_points) const {
  Report r;
  r.events = events_;
  r.unlabelled_events = unlabelled_;
  r.actions = actions_;
  if (first_ns_ >= 0) r.simulated_hours = (last_ns_ - first_ns_) / 3.6e12;

  // Per variant: flag times (hours after the campaign's first request) of its subjects.
  std::map<std::string, std::vector<double>> flag_hours;
  std::map<std::string, double> horizon;
  std::map<std::string, VariantScore> by_variant;
  for (const Group& g : groups_) {
    if (g.requests == 0) continue;
    VariantScore& v = by_variant[g.variant];
    v.variant = g.variant;
    ++v.campaigns;
    v.requests += g.requests;
    v.leaked += g.leaked;
    v.requests_to_detection += static_cast<double>(g.requests_before_flag);
    if (g.first_flag_ns >= 0) {
      ++v.campaigns_detected;
      double secs = (g.first_flag_ns - g.first_request_ns) / 1e9;
      v.seconds_to_detection = v.seconds_to_detection < 0 ? secs : v.seconds_to_detection + secs;
    }
    horizon[g.variant] =
        std::max(horizon[g.variant], (g.last_request_ns - g.first_request_ns) / 3.6e12);
  }
  OrganicScore& o = r.organic;
  std::map<std::string, int64_t> own_leaked;  // full answers of the flagged subjects, per variant
  for (const auto& [key, s] : subjects_) {
    if (s.requests == 0) continue;
    const bool flagged = s.first_flag_ns >= 0;
    if (s.group == kOrganic) {
      ++o.subjects;
      o.restricted_subjects += flagged;
      auto& p = o.by_persona[personas_[s.persona]];
      ++p.first;
      p.second += flagged;
      continue;
    }
    const Group& g = groups_[s.group];
    VariantScore& v = by_variant[g.variant];
    ++v.subjects;
    if (flagged) {
      ++v.flagged;
      own_leaked[g.variant] += s.requests - s.restricted;
      flag_hours[g.variant].push_back((s.first_flag_ns - g.first_request_ns) / 3.6e12);
    }
  }
  o.requests = organic_requests_;
  o.restricted_requests = organic_restricted_requests_;
  o.false_positive_rate = o.subjects ? double(o.restricted_subjects) / o.subjects : 0;
  o.collateral = o.requests ? double(o.restricted_requests) / o.requests : 0;

  auto finish = [&](VariantScore v) {
    v.recall = v.subjects ? double(v.flagged) / v.subjects : 0;
    v.leakage = v.requests ? double(v.leaked) / v.requests : 0;
    v.answers_per_flagged = v.flagged ? double(v.leaked) / v.flagged : -1;
    v.own_answers_per_flagged = v.flagged ? double(own_leaked[v.variant]) / v.flagged : -1;
    if (v.campaigns > 0) v.requests_to_detection /= v.campaigns;
    if (v.campaigns_detected > 0) v.seconds_to_detection /= v.campaigns_detected;
    std::vector<double>& times = flag_hours[v.variant];
    std::sort(times.begin(), times.end());
    double h = std::max(horizon[v.variant], 1e-9);
    for (int i = 0; i <= curve_points && v.subjects > 0; ++i) {
      double x = h * i / curve_points;
      size_t n = std::upper_bound(times.begin(), times.end(), x) - times.begin();
      v.detection_curve.emplace_back(x, double(n) / v.subjects);
    }
    r.variants.push_back(std::move(v));
  };
  for (auto name : kVariants) {
    auto it = by_variant.find(std::string(name));
    if (it != by_variant.end()) finish(std::move(it->second)), by_variant.erase(it);
  }
  for (auto& [name, v] : by_variant) finish(std::move(v));
  return r;
}

}  // namespace moat::traffic

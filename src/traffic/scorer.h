#pragma once
// Scorer: compares the verdicts a detector gave with the ground-truth labels and computes the
// brief's metrics per campaign variant (campaign recall, leakage, requests to detection) and
// for organic traffic (false-positive rate, collateral).

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "moat/detect_engine.h"
#include "traffic/generator.h"

namespace moat::traffic {

// A subject is "flagged" once any of its requests got a verdict other than kAllow; a request
// "leaks" when it was answered at full fidelity (kAllow).
struct VariantScore {
  std::string variant;
  int campaigns = 0;
  int campaigns_detected = 0;        // campaigns with at least one flagged subject
  int64_t subjects = 0;              // campaign accounts (hydra: end users) that sent requests
  int64_t flagged = 0;
  int64_t requests = 0;
  int64_t leaked = 0;
  double recall = 0;                 // flagged / subjects
  double leakage = 0;                // leaked / requests
  // Full-fidelity answers per restricted subject: what a campaign gets for each account it
  // loses (leaked / flagged; -1 when none was flagged).
  double answers_per_flagged = -1;
  // The part of that a restricted subject got itself (its own full answers, / flagged; -1 when
  // none was flagged): answers_per_flagged minus this is what never-restricted subjects took.
  double own_answers_per_flagged = -1;
  // Campaign requests before the campaign's first flag, averaged over its campaigns; an
  // undetected campaign contributes all of its requests.
  double requests_to_detection = 0;
  double seconds_to_detection = -1;  // mean over detected campaigns; -1 when none was detected
  // (hours since the campaign's first request, fraction of its subjects flagged by then).
  std::vector<std::pair<double, double>> detection_curve;
};

struct OrganicScore {
  int64_t subjects = 0;
  int64_t restricted_subjects = 0;
  int64_t requests = 0;
  int64_t restricted_requests = 0;
  double false_positive_rate = 0;  // restricted_subjects / subjects
  double collateral = 0;           // restricted_requests / requests
  // persona -> (subjects, restricted subjects): who the false positives are.
  std::map<std::string, std::pair<int64_t, int64_t>> by_persona;
};

struct Report {
  std::string scenario;
  std::string engine;
  uint64_t seed = 0;
  int64_t events = 0;
  int64_t unlabelled_events = 0;  // events whose subject had no label (a generator bug if > 0)
  double wall_seconds = 0;
  double events_per_second = 0;
  double simulated_hours = 0;
  std::map<std::string, int64_t> actions;  // action name -> count over all events
  std::vector<VariantScore> variants;      // in the brief's variant order
  OrganicScore organic;
};

// The key of a subject (an account, or one end user of an account) in the scorer's and the
// explainer's tables: the two ids joined by a unit separator, which neither id contains.
std::string SubjectKey(std::string_view account, std::string_view end_user);

class Scorer {
 public:
  // Registers ground truth. Labels with a non-empty end_user make their account scored per
  // end user (a reseller's traffic is mixed).
  void AddLabel(const SubjectLabel& label);
  // Records the verdict one request received.
  void Record(std::string_view account, std::string_view end_user, int64_t time_ns,
              detect::Action action);
  // Computes the metrics; `curve_points` samples of each detection curve.
  Report Finish(int curve_points = 48) const;

 private:
  static constexpr uint32_t kOrganic = 0xFFFFFFFF;
  struct Subject {
    uint32_t group = kOrganic;
    uint16_t persona = 0;
    uint32_t requests = 0;
    uint32_t restricted = 0;
    int64_t first_flag_ns = -1;
  };
  struct Group {
    std::string campaign_id;
    std::string variant;
    int64_t first_request_ns = -1;
    int64_t last_request_ns = -1;
    int64_t first_flag_ns = -1;
    int64_t requests = 0;
    int64_t leaked = 0;
    int64_t requests_before_flag = 0;
  };
  Subject* Find(std::string_view account, std::string_view end_user);
  uint16_t PersonaIndex(const std::string& persona);

  std::unordered_map<std::string, Subject> subjects_;
  std::unordered_set<std::string> per_user_accounts_;
  std::vector<Group> groups_;
  std::unordered_map<std::string, uint32_t> group_index_;
  std::vector<std::string> personas_;
  int64_t organic_requests_ = 0;
  int64_t organic_restricted_requests_ = 0;
  int64_t events_ = 0;
  int64_t unlabelled_ = 0;
  int64_t first_ns_ = -1, last_ns_ = -1;
  std::map<std::string, int64_t> actions_;
  std::string key_;  // scratch
};

}  // namespace moat::traffic

#pragma once
// Content evidence (families 1-3 of docs/detection.md):
//   ContentStage   the learned content model's log-likelihood ratio of the prompt;
//   CorpusStage    the prompt is a (reworded) item of a known public corpus;
//   BaselineStage  this deployment's own established traffic corrects the model: where the
//                  local organic prompts score higher than the model's organic training data
//                  did (a coding company's users look "code-task-like"), the model's ratio is
//                  discounted by the local excess, and vice versa.
// OrganicBaseline is the shared, online picture of established traffic that BaselineStage and
// the cohort test (cohort_evidence.h) read; the engine feeds it.

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detect/detection_model.h"
#include "detect/evidence.h"

namespace moat::detect {

struct ContentStageConfig {
  double weight = 1.0;  // multiplies the clipped ratio
  double clip = 2.0;       // the model's ratio is trusted up to +clip ...
  double clip_low = 1.0;   // ... and down to -clip_low (organic-looking content is weak evidence:
                           // machine-generated instructions look like people's)
  // ... and up to +jailbreak_clip when the jailbreak head is the one that fires: the weakest head
  // on held-out data (ROC AUC 0.965 against 0.98-0.999), and people send role-play and "ignore
  // your rules" prompts too. At +2, one such prompt from a newcomer in a shifted cohort was the
  // commonest organic false positive (docs/detection.md, Content). A probing campaign still
  // spends its budgets fast: its value counts policy.jailbreak_value_weight times.
  double jailbreak_clip = 1.0;
};

class ContentStage final : public EvidenceStage {
 public:
  explicit ContentStage(ContentStageConfig config) : config_(config) {}
  std::string_view name() const override { return "content"; }
  bool reads_content() const override { return true; }
  const std::vector<std::string_view>& reason_names() const override;
  void OnRequest(RequestView& r, StageEvidence* out) override;

 private:
  ContentStageConfig config_;
};

struct CorpusStageConfig {
  double member_llr = 1.0;  // evidence of one request that is a known public item
};

class CorpusStage final : public EvidenceStage {
 public:
  explicit CorpusStage(CorpusStageConfig config) : config_(config) {}
  std::string_view name() const override { return "corpus"; }
  bool reads_content() const override { return true; }
  const std::vector<std::string_view>& reason_names() const override;
  void OnRequest(RequestView& r, StageEvidence* out) override;

 private:
  CorpusStageConfig config_;
};

// Counts of the hashed content features of a population's prompts (2^kCohortFeatureBits
// buckets, halved when `max_total` is exceeded): an online naive-Bayes picture of what that
// population asks. Not thread-safe; owners lock.
class FeatureCounts {
 public:
  static constexpr int kBuckets = 1 << kCohortFeatureBits;
  FeatureCounts() : counts_(kBuckets, 0.0f) {}
  void Add(const RequestFeatures& f, double max_total);
  double total() const { return total_; }
  // Sum over the request's features of log P(feature) under add-`alpha` smoothing.
  double LogLikelihood(const RequestFeatures& f, float alpha) const;
  // The counts as bytes (binary_fields.h), and back; ReadFrom returns false on bytes that are
  // short or not counts (negative, not finite), leaving *this unchanged.
  void AppendTo(std::string* out) const;
  bool ReadFrom(std::string_view* in);

 private:
  std::vector<float> counts_;
  double total_ = 0;
};

// The content-ratio distribution of established, unrestricted subjects' requests (decayed),
// with the model's own organic distribution as its prior, and the feature counts of those
// requests; and, for the other side, the content ratios and feature counts of restricted
// subjects' requests. Thread-safe (the ratio figures are read lock-free).
class OrganicBaseline {
 public:
  struct Config {
    double prior_requests = 500;     // weight of the model's organic distribution, in requests
    double half_life_requests = 200000;  // the baseline forgets at this pace
    double high_llr = 1.0;           // "campaign-like" request: content llr at or above this
    double feature_max_total = 2e7;  // feature counts are halved beyond this many features
    double min_feature_requests = 2000; // requests before the feature counts are used (measured:
                                        // docs/detection.md, "The deployment's own baseline")
    double feature_alpha = 0.5;      // add-alpha smoothing of the feature counts
    // A restricted subject's request feeds the restricted-traffic feature counts only when its
    // content ratio is above this: the organic cover prompts a campaign sends between its own
    // are not what it is restricted for (docs/detection.md, "Cohorts").
    double restricted_min_llr = -2.0;
  };
  OrganicBaseline(Config config, const std::array<float, kLlrBins>& model_organic,
                  double model_campaign_high_share);

  // Records one request of an established subject (its raw content ratio and features).
  void Record(const RequestFeatures& f);
  // What it learned, as bytes (the engine's state file), and back; LoadFrom returns false on
  // bytes that do not hold a baseline, leaving it unchanged.
  void SaveTo(std::string* out) const;
  bool LoadFrom(std::string_view* in);
  // log P(f | established traffic) under the feature counts; nullopt before min_requests.
  std::optional<double> FeatureLogLikelihood(const RequestFeatures& f) const;
  // Local / model organic density ratio of a bin, as a log (0 before anything is learned).
  float LogExcess(int bin) const;
  // Share of established requests at or above high_llr (with the model as prior).
  float HighShare() const;
  // Records one request of a restricted subject, under one lock: its content score (the
  // campaign side of the mixture estimates) and, when that is above restricted_min_llr, its
  // features (what this deployment has restricted, as a feature model beside the established
  // traffic's).
  void RecordRestricted(const RequestFeatures& f);
  // log P(f | restricted traffic) under those counts; nullopt before min_feature_requests
  // restricted requests.
  std::optional<double> RestrictedFeatureLogLikelihood(const RequestFeatures& f) const;
  // Share of restricted subjects' requests at or above high_llr, with the model's held-out
  // campaign share as prior (worth `prior_requests`).
  float CampaignHighShare() const;
  float high_llr() const { return static_cast<float>(config_.high_llr); }
  double requests() const;

 private:
  void Refresh();  // REQUIRES(mu_)
  Config config_;
  std::array<double, kLlrBins> model_{};  // normalised model organic distribution
  mutable std::mutex mu_;
  std::array<double, kLlrBins> counts_{};  // GUARDED_BY(mu_)
  double total_ = 0;                       // GUARDED_BY(mu_)
  FeatureCounts features_;                 // GUARDED_BY(mu_)
  double feature_requests_ = 0;            // GUARDED_BY(mu_)
  uint64_t since_refresh_ = 0;             // GUARDED_BY(mu_)
  std::array<std::atomic<float>, kLlrBins> log_excess_{};
  std::atomic<float> high_share_{0};
  double model_campaign_high_ = 0.6;
  double campaign_n_ = 0, campaign_hi_ = 0;  // GUARDED_BY(mu_)
  FeatureCounts restricted_features_;        // GUARDED_BY(mu_)
  double restricted_feature_requests_ = 0;   // GUARDED_BY(mu_)
  std::atomic<float> campaign_high_share_{0.6f};
};

struct BaselineStageConfig {
  double max_correction = 0.5;  // |log excess| applied at most
};

class BaselineStage final : public EvidenceStage {
 public:
  BaselineStage(BaselineStageConfig config, std::shared_ptr<const OrganicBaseline> baseline)
      : config_(config), baseline_(std::move(baseline)) {}
  std::string_view name() const override { return "baseline"; }
  bool reads_content() const override { return true; }
  const std::vector<std::string_view>& reason_names() const override;
  void OnRequest(RequestView& r, StageEvidence* out) override;

 private:
  BaselineStageConfig config_;
  std::shared_ptr<const OrganicBaseline> baseline_;
};

}  // namespace moat::detect

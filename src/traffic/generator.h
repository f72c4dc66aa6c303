#pragma once
// TrafficGenerator: turns a Scenario and a PromptCorpus into a labelled, time-ordered stream of
// API requests (organic accounts plus distillation campaigns), generated lazily so that even a
// flood of a million fresh accounts needs memory only for the accounts active at one time.

#include <cstdint>
#include <string>

#include "moat/detect_engine.h"
#include "moat/status.h"
#include "datasets/prompt_corpus.h"
#include "traffic/scenario.h"

namespace moat::traffic {

using datasets::Conversation;
using datasets::PromptCorpus;
using datasets::PromptSet;
using datasets::Turn;

// Ground truth for one scored subject: an account, or one end user behind a reseller account
// (hydra), whose traffic is mixed and so is labelled per end user.
struct SubjectLabel {
  std::string account;
  std::string end_user;     // "" for the label of a whole account
  bool campaign = false;    // false: organic
  std::string variant;      // campaign variant; "" for organic
  std::string campaign_id;  // "" for organic
  std::string persona;      // what generated it: user, batch-job, coding-tool, reseller, sybil...
  int64_t created_ns = 0;   // account creation time
  std::string tier;         // account tier (unverified, verified, enterprise); "" unknown
};

// Receives the generator's output. Every subject's label arrives before its first event;
// events arrive in non-decreasing time order.
class TrafficSink {
 public:
  virtual ~TrafficSink() = default;
  virtual void OnLabel(const SubjectLabel& label) = 0;
  virtual void OnEvent(const detect::RequestEvent& event) = 0;
  // What was done with the last event (a judging sink: the verdict's action; others: allow).
  // Closed-loop campaigns (the `adaptive` variant) read it as a client reads its answer.
  virtual detect::Action LastAction() const { return detect::Action::kAllow; }
};

struct GeneratorStats {
  int64_t events = 0;
  int64_t labels = 0;
  int64_t peak_active_actors = 0;  // the generator's memory high-water mark, in actors
};

class TrafficGenerator {
 public:
  // `corpus` and `scenario` must outlive the generator.
  TrafficGenerator(const PromptCorpus& corpus, const Scenario& scenario, uint64_t seed);
  // Streams the whole population into `sink`. Returns FailedPrecondition when the corpus lacks
  // a role the scenario needs (organic always; distill, cot, benchmark, jailbreak per variant).
  // The same corpus, scenario and seed always produce the same stream.
  Status Run(TrafficSink& sink);
  const GeneratorStats& stats() const { return stats_; }

 private:
  const PromptCorpus& corpus_;
  const Scenario& scenario_;
  uint64_t seed_;
  GeneratorStats stats_;
};

}  // namespace moat::traffic

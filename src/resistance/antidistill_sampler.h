#pragma once
// AntidistillSampler: the anti-distillation stage of the built-in model's sampler chain, in the
// spirit of antidistillation sampling (Savani et al. 2025). At every step it tilts the teacher's
// next-token distribution p inside the teacher's own nucleus,
//     q_i  proportional to  p_i * exp(t * s * d_i)        (i in the top-`nucleus` set of p),
// where d_i in [-1, 1] is the direction, s the strength and t in [0, 1] the largest factor that
// keeps KL(q || p) <= kl_budget (found by bisection; KL of an exponential tilt grows with t).
// Tokens outside the nucleus keep their logits, so the stage never promotes a token the teacher
// itself finds implausible, and the per-token KL bound is exact, not an average.
//
// Directions:
//  - kProxy: d_i proportional to r_i - p_i, where r is a proxy student's next-token distribution
//    (the `proxy` model seen through only the last `proxy_context` tokens: what a short-context
//    student learns). For a softmax student, r_i - p_i is the first-order increase of the
//    student's cross-entropy to the teacher when it is trained on token i: the stage prefers the
//    tokens the student already over-predicts, so training on the outputs reinforces the
//    student's own errors. Costs one extra proxy evaluation per token.
//  - kKeyed: d_i = a keyed pseudo-random value of (the last `proxy_context` tokens, i): a
//    consistent, secret shift a student learns as if it were the teacher's distribution.
// Compose it before the watermark stage: the watermark then biases the hardened distribution
// and stays detectable. Per-generation object (not thread-safe), like every sampler stage.

#include <cstdint>
#include <vector>

#include "model/language_model.h"
#include "model/sampler.h"

namespace moat::resistance {

struct AntidistillOptions {
  enum class Direction { kProxy, kKeyed };
  double kl_budget = 0.1;  // nats per token, the bound on KL(q || p); <= 0 leaves p unchanged
  double strength = 8;     // largest logit shift before the budget scales it down (s)
  double nucleus = 0.95;   // only the teacher's top-p tokens are perturbed
  Direction direction = Direction::kProxy;
  int proxy_context = 2;   // tokens of history the proxy student sees (>= 0)
  uint64_t key = 0;        // kKeyed: the secret
};

// What the stage did, for reports and tests.
struct AntidistillStats {
  int64_t steps = 0;      // Apply calls
  int64_t perturbed = 0;  // steps whose logits changed (nucleus of 2+ tokens, non-zero direction)
  double kl_sum = 0;      // sum of the KL(q || p) spent, nats
  double kl_max = 0;      // largest single-step KL
};

class AntidistillSampler final : public model::Sampler {
 public:
  // `proxy` is borrowed and must outlive the stage; required for kProxy, ignored for kKeyed.
  AntidistillSampler(AntidistillOptions options, const model::LanguageModel* proxy)
      : options_(options), proxy_(proxy) {}

  std::string_view name() const override { return "antidistill"; }
  void Apply(model::CandidateArray* candidates) override;
  void Accept(model::TokenId token) override;

  const AntidistillStats& stats() const { return stats_; }

 private:
  // Fills direction_ (indexed like the nucleus) and returns false when it is all zero.
  bool Direction(const model::CandidateArray& c);

  AntidistillOptions options_;
  const model::LanguageModel* proxy_;
  std::vector<model::TokenId> history_;  // the last proxy_context accepted tokens, oldest first
  AntidistillStats stats_;
  // Scratch, reused across steps.
  std::vector<size_t> nucleus_;  // candidate indices, most probable first
  std::vector<double> p_;        // teacher probabilities of the nucleus
  std::vector<double> direction_;
  std::vector<float> proxy_logits_;
};

// The options the gateway uses: the keyed direction (measured to cost a short-context student
// more than the proxy direction, docs/resistance.md) with the default nucleus, strength and
// context, and this budget and key.
AntidistillOptions KeyedAntidistill(double kl_budget, uint64_t key);

// KL(q || p) in nats of the tilt q_i ~ p_i exp(t b_i) (b_i = 0 for tokens outside `p_in`, whose
// total mass is 1 - sum(p_in)). Exposed for the tests of the bound.
double TiltKl(const std::vector<double>& p_in, const std::vector<double>& b, double t);

}  // namespace moat::resistance

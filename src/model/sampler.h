#pragma once
// The sampler chain of the built-in engine, in the style of llama.cpp: a Sampler transforms a
// candidate array (Apply) and learns which token was finally chosen (Accept); a SamplerChain
// is itself a Sampler that runs its stages in order. A terminal stage (DistSampler,
// GreedySampler) marks the selected candidate. Samplers are per-generation objects (not
// thread-safe); build a fresh chain for every request.

#include <cstdint>
#include <memory>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

#include "model/tokenizer.h"

namespace moat::model {

struct TokenCandidate {
  TokenId id = 0;
  float logit = 0;
};

struct CandidateArray {
  std::vector<TokenCandidate> data;
  bool sorted = false;    // true when data is sorted by logit, highest first
  int64_t selected = -1;  // index into data chosen by a terminal stage, -1 before

  // Fills the array with one candidate per token, id == index.
  void Assign(const std::vector<float>& logits);
  void SortDescending();
  // Returns the token chosen by the chain (requires selected >= 0).
  TokenId selected_token() const { return data[static_cast<size_t>(selected)].id; }
};

// Natural-log softmax normaliser log(sum exp(logit)) of `c` (-inf when every logit is -inf).
double LogSumExp(const CandidateArray& c);

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual std::string_view name() const = 0;
  virtual void Apply(CandidateArray* candidates) = 0;
  // Called with every token that enters the context: prompt tokens first, then each sampled one.
  virtual void Accept(TokenId token) {}
};

class SamplerChain final : public Sampler {
 public:
  void Add(std::unique_ptr<Sampler> stage) { stages_.push_back(std::move(stage)); }
  std::string_view name() const override { return "chain"; }
  void Apply(CandidateArray* candidates) override;
  void Accept(TokenId token) override;
  size_t size() const { return stages_.size(); }

 private:
  std::vector<std::unique_ptr<Sampler>> stages_;
};

// Adds a fixed bias to the logits of some tokens (OpenAI's logit_bias).
class LogitBiasSampler final : public Sampler {
 public:
  explicit LogitBiasSampler(std::vector<std::pair<TokenId, float>> bias) : bias_(std::move(bias)) {}
  std::string_view name() const override { return "logit-bias"; }
  void Apply(CandidateArray* candidates) override;

 private:
  std::vector<std::pair<TokenId, float>> bias_;
};

// Divides every logit by the temperature (> 0).
class TemperatureSampler final : public Sampler {
 public:
  explicit TemperatureSampler(double temperature) : temperature_(temperature) {}
  std::string_view name() const override { return "temperature"; }
  void Apply(CandidateArray* candidates) override;

 private:
  double temperature_;
};

// Keeps the k highest logits (k <= 0: no-op); leaves the array sorted.
class TopKSampler final : public Sampler {
 public:
  explicit TopKSampler(int k) : k_(k) {}
  std::string_view name() const override { return "top-k"; }
  void Apply(CandidateArray* candidates) override;

 private:
  int k_;
};

// Keeps the smallest set of highest-probability candidates whose mass reaches p (at least
// min_keep); leaves the array sorted. p >= 1: no-op.
class TopPSampler final : public Sampler {
 public:
  explicit TopPSampler(double p, size_t min_keep = 1) : p_(p), min_keep_(min_keep) {}
  std::string_view name() const override { return "top-p"; }
  void Apply(CandidateArray* candidates) override;

 private:
  double p_;
  size_t min_keep_;
};

// Terminal stage: draws a candidate from softmax(logits) with its own seeded generator.
class DistSampler final : public Sampler {
 public:
  explicit DistSampler(uint64_t seed) : rng_(seed) {}
  std::string_view name() const override { return "dist"; }
  void Apply(CandidateArray* candidates) override;

 private:
  std::mt19937_64 rng_;
};

// Terminal stage: selects the highest logit (temperature 0).
class GreedySampler final : public Sampler {
 public:
  std::string_view name() const override { return "greedy"; }
  void Apply(CandidateArray* candidates) override;
};

// Pass-through stage that snapshots the log-softmax of the candidates it sees, so the generator
// can report logprobs of the distribution at that point of the chain (after logit bias and the
// watermark, before temperature and truncation). The owner keeps a raw pointer to read it.
class LogprobCapture final : public Sampler {
 public:
  std::string_view name() const override { return "logprobs"; }
  void Apply(CandidateArray* candidates) override;
  // Log-probability of `token` in the last snapshot (-inf when absent).
  float LogprobOf(TokenId token) const;
  // The n most likely (token, logprob) pairs of the last snapshot, most likely first.
  std::vector<std::pair<TokenId, float>> Top(int n) const;

 private:
  std::vector<TokenCandidate> snapshot_;
  double lse_ = 0;
};

}  // namespace moat::model

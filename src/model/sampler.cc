#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace moat::model {

void CandidateArray::Assign(const std::vector<float>& logits) {
  data.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) data[i] = {static_cast<TokenId>(i), logits[i]};
  sorted = false;
  selected = -1;
}

void CandidateArray::SortDescending() {
  if (sorted) return;
  std::sort(data.begin(), data.end(),
            [](const TokenCandidate& a, const TokenCandidate& b) { return a.logit > b.logit; });
  sorted = true;
}

double LogSumExp(const CandidateArray& c) {
  float max = -std::numeric_limits<float>::infinity();
  for (const auto& t : c.data) max = std::max(max, t.logit);
  if (!std::isfinite(max)) return max;
  double sum = 0;
  for (const auto& t : c.data) sum += std::exp(static_cast<double>(t.logit - max));
  return max + std::log(sum);
}

void SamplerChain::Apply(CandidateArray* candidates) {
  for (auto& s : stages_) s->Apply(candidates);
}

void SamplerChain::Accept(TokenId token) {
  for (auto& s : stages_) s->Accept(token);
}

void LogitBiasSampler::Apply(CandidateArray* c) {
  if (bias_.empty()) return;
  // Fast path: candidates still indexed by token id.
  const bool dense = !c->sorted && !c->data.empty() &&
                     c->data.back().id == static_cast<TokenId>(c->data.size() - 1);
  for (const auto& [token, b] : bias_) {
    if (dense) {
      if (token >= 0 && static_cast<size_t>(token) < c->data.size()) c->data[token].logit += b;
      continue;
    }
    for (auto& t : c->data) {
      if (t.id == token) t.logit += b;
    }
  }
}

void TemperatureSampler::Apply(CandidateArray* c) {
  if (temperature_ <= 0 || temperature_ == 1.0) return;
  const float inv = static_cast<float>(1.0 / temperature_);
  for (auto& t : c->data) t.logit *= inv;
}

void TopKSampler::Apply(CandidateArray* c) {
  if (k_ <= 0 || static_cast<size_t>(k_) >= c->data.size()) return;
  auto by_logit = [](const TokenCandidate& a, const TokenCandidate& b) { return a.logit > b.logit; };
  if (!c->sorted) std::partial_sort(c->data.begin(), c->data.begin() + k_, c->data.end(), by_logit);
  c->data.resize(static_cast<size_t>(k_));
  c->sorted = true;
}

void TopPSampler::Apply(CandidateArray* c) {
  if (p_ >= 1.0 || c->data.empty()) return;
  c->SortDescending();
  const double lse = LogSumExp(*c);
  double cum = 0;
  size_t keep = c->data.size();
  for (size_t i = 0; i < c->data.size(); ++i) {
    cum += std::exp(c->data[i].logit - lse);
    if (cum >= p_ && i + 1 >= min_keep_) {
      keep = i + 1;
      break;
    }
  }
  c->data.resize(keep);
}

void DistSampler::Apply(CandidateArray* c) {
  if (c->data.empty()) return;
  const double lse = LogSumExp(*c);
  if (!std::isfinite(lse)) {
    c->selected = 0;
    return;
  }
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  int64_t last_possible = 0;
  for (size_t i = 0; i < c->data.size(); ++i) {
    const double p = std::exp(c->data[i].logit - lse);
    if (p > 0) last_possible = static_cast<int64_t>(i);
    u -= p;
    if (u < 0) {
      c->selected = static_cast<int64_t>(i);
      return;
    }
  }
  c->selected = last_possible;  // rounding left a sliver of mass
}

void GreedySampler::Apply(CandidateArray* c) {
  if (c->data.empty()) return;
  auto it = std::max_element(c->data.begin(), c->data.end(),
                             [](const TokenCandidate& a, const TokenCandidate& b) {
                               return a.logit < b.logit;
                             });
  c->selected = it - c->data.begin();
}

void LogprobCapture::Apply(CandidateArray* c) {
  snapshot_ = c->data;
  lse_ = LogSumExp(*c);
}

float LogprobCapture::LogprobOf(TokenId token) const {
  if (token >= 0 && static_cast<size_t>(token) < snapshot_.size() && snapshot_[token].id == token) {
    return static_cast<float>(snapshot_[token].logit - lse_);
  }
  for (const auto& t : snapshot_) {
    if (t.id == token) return static_cast<float>(t.logit - lse_);
  }
  return -std::numeric_limits<float>::infinity();
}

std::vector<std::pair<TokenId, float>> LogprobCapture::Top(int n) const {
  std::vector<TokenCandidate> top = snapshot_;
  const size_t k = std::min(top.size(), static_cast<size_t>(std::max(n, 0)));
  std::partial_sort(top.begin(), top.begin() + k, top.end(),
                    [](const TokenCandidate& a, const TokenCandidate& b) { return a.logit > b.logit; });
  std::vector<std::pair<TokenId, float>> out;
  for (size_t i = 0; i < k; ++i) out.emplace_back(top[i].id, static_cast<float>(top[i].logit - lse_));
  return out;
}

}  // namespace moat::model

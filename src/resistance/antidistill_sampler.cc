#include "resistance/antidistill_sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace moat::resistance {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

double TiltKl(const std::vector<double>& p_in, const std::vector<double>& b, double t) {
  // KL(q || p) = t E_q[b] - log Z,  Z = sum_i p_i exp(t b_i)  (outside tokens: b = 0).
  double in_mass = 0, z = 0, zb = 0;
  for (size_t i = 0; i < p_in.size(); ++i) {
    const double w = p_in[i] * std::exp(t * b[i]);
    in_mass += p_in[i];
    z += w;
    zb += w * b[i];
  }
  z += std::max(0.0, 1.0 - in_mass);
  if (z <= 0) return 0;
  return std::max(0.0, t * zb / z - std::log(z));
}

AntidistillOptions KeyedAntidistill(double kl_budget, uint64_t key) {
  AntidistillOptions o;
  o.direction = AntidistillOptions::Direction::kKeyed;
  o.kl_budget = kl_budget;
  o.key = key;
  return o;
}

void AntidistillSampler::Accept(model::TokenId token) {
  if (options_.proxy_context <= 0) return;
  history_.push_back(token);
  if (history_.size() > static_cast<size_t>(options_.proxy_context)) history_.erase(history_.begin());
}

bool AntidistillSampler::Direction(const model::CandidateArray& c) {
  direction_.assign(nucleus_.size(), 0.0);
  if (options_.direction == AntidistillOptions::Direction::kKeyed) {
    uint64_t h = SplitMix64(options_.key);
    for (model::TokenId t : history_) h = SplitMix64(h ^ static_cast<uint32_t>(t));
    for (size_t j = 0; j < nucleus_.size(); ++j) {
      const uint64_t u = SplitMix64(h ^ (static_cast<uint64_t>(c.data[nucleus_[j]].id) << 32));
      direction_[j] = 2.0 * static_cast<double>(u >> 11) * 0x1.0p-53 - 1.0;
    }
    return true;
  }
  if (proxy_ == nullptr) return false;
  proxy_->NextTokenLogits(history_, &proxy_logits_);
  float max = -std::numeric_limits<float>::infinity();
  for (float l : proxy_logits_) max = std::max(max, l);
  if (!std::isfinite(max)) return false;
  double z = 0;
  for (float l : proxy_logits_) z += std::exp(static_cast<double>(l - max));
  double scale = 0;
  for (size_t j = 0; j < nucleus_.size(); ++j) {
    const auto id = static_cast<size_t>(c.data[nucleus_[j]].id);
    const double r = id < proxy_logits_.size() ? std::exp(static_cast<double>(proxy_logits_[id] - max)) / z : 0;
    direction_[j] = r - p_[j];
    scale = std::max(scale, std::abs(direction_[j]));
  }
  if (scale < 1e-12) return false;
  for (double& d : direction_) d /= scale;
  return true;
}

void AntidistillSampler::Apply(model::CandidateArray* c) {
  ++stats_.steps;
  if (options_.kl_budget <= 0 || c->data.size() < 2) return;
  // Teacher probabilities and its nucleus (without reordering the candidates).
  const double lse = model::LogSumExp(*c);
  if (!std::isfinite(lse)) return;
  // Tokens below tau = (1 - nucleus) / size cannot be in the nucleus: together they hold less
  // than 1 - nucleus, so the tokens above tau reach the nucleus mass first. Skipping them keeps
  // the sort small on a large vocabulary.
  const double tau = std::max(1e-12, (1.0 - options_.nucleus) / static_cast<double>(c->data.size()));
  const double log_tau = std::log(tau) + lse;
  nucleus_.clear();
  for (size_t i = 0; i < c->data.size(); ++i) {
    if (static_cast<double>(c->data[i].logit) >= log_tau) nucleus_.push_back(i);
  }
  std::sort(nucleus_.begin(), nucleus_.end(), [&](size_t a, size_t b) {
    return c->data[a].logit > c->data[b].logit || (c->data[a].logit == c->data[b].logit && a < b);
  });
  double mass = 0;
  size_t keep = 0;
  while (keep < nucleus_.size() && mass < options_.nucleus) {
    mass += std::exp(static_cast<double>(c->data[nucleus_[keep]].logit) - lse);
    ++keep;
  }
  nucleus_.resize(keep);
  if (nucleus_.size() < 2) return;
  p_.resize(nucleus_.size());
  for (size_t j = 0; j < nucleus_.size(); ++j) p_[j] = std::exp(static_cast<double>(c->data[nucleus_[j]].logit) - lse);
  if (!Direction(*c)) return;

  std::vector<double>& b = direction_;
  for (double& d : b) d *= options_.strength;
  double t = 1;
  if (TiltKl(p_, b, 1) > options_.kl_budget) {
    double lo = 0, hi = 1;
    for (int it = 0; it < 40; ++it) {
      const double mid = 0.5 * (lo + hi);
      (TiltKl(p_, b, mid) > options_.kl_budget ? hi : lo) = mid;
    }
    t = lo;
  }
  if (t <= 0) return;
  for (size_t j = 0; j < nucleus_.size(); ++j) c->data[nucleus_[j]].logit += static_cast<float>(t * b[j]);
  c->sorted = false;
  const double kl = TiltKl(p_, b, t);
  ++stats_.perturbed;
  stats_.kl_sum += kl;
  stats_.kl_max = std::max(stats_.kl_max, kl);
}

}  // namespace moat::resistance

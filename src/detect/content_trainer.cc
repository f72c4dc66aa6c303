#include "detect/content_trainer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "detect/sketches.h"

namespace moat::detect {
namespace {

// An example reduced to what training needs: its buckets and its label.
struct Encoded {
  std::vector<uint32_t> buckets;
  int head = LabeledText::kOrganic;
  float weight = 1.0f;
};

std::vector<Encoded> Encode(const std::vector<LabeledText>& examples, uint32_t log2) {
  std::vector<Encoded> out;
  out.reserve(examples.size());
  ContentFeatures f;
  const int shift = 64 - static_cast<int>(log2);
  for (const LabeledText& e : examples) {
    ExtractContentFeatures(e.text, &f);
    if (f.count == 0) continue;
    Encoded x;
    x.head = e.head;
    x.weight = e.weight;
    x.buckets.resize(f.count);
    for (int i = 0; i < f.count; ++i) x.buckets[i] = static_cast<uint32_t>(Mix64(f.hash[i]) >> shift);
    out.push_back(std::move(x));
  }
  return out;
}

double Sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// Platt scaling: (a, b) minimising the class-balanced log loss of sigmoid(a * raw + b).
std::pair<float, float> FitPlatt(const std::vector<float>& pos, const std::vector<float>& neg) {
  if (pos.empty() || neg.empty()) return {1.0f, 0.0f};
  const double wp = 0.5 / pos.size(), wn = 0.5 / neg.size();
  double a = 1, b = 0;
  for (int iter = 0; iter < 50; ++iter) {
    double ga = 0, gb = 0, haa = 1e-9, hab = 0, hbb = 1e-9;
    auto add = [&](float x, double y, double w) {
      const double p = Sigmoid(a * x + b);
      const double r = (p - y) * w, s = p * (1 - p) * w;
      ga += r * x;
      gb += r;
      haa += s * x * x;
      hab += s * x;
      hbb += s;
    };
    for (float x : pos) add(x, 1, wp);
    for (float x : neg) add(x, 0, wn);
    const double det = haa * hbb - hab * hab;
    if (std::abs(det) < 1e-18) break;
    const double da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det;
    a -= da;
    b -= db;
    if (std::abs(da) + std::abs(db) < 1e-9) break;
  }
  return {static_cast<float>(a), static_cast<float>(b)};
}

}  // namespace

StatusOr<ContentModel> TrainContentModel(const std::vector<LabeledText>& train,
                                         const std::vector<LabeledText>& calibration,
                                         const ContentTrainOptions& options) {
  if (options.buckets_log2 < 10 || options.buckets_log2 > 24) {
    return InvalidArgumentError("buckets_log2 must be in [10, 24]");
  }
  const uint32_t log2 = options.buckets_log2;
  std::vector<Encoded> data = Encode(train, log2);
  std::array<double, kNumHeads> positives{};
  double organic = 0;
  for (const Encoded& x : data) {
    if (x.head == LabeledText::kOrganic) {
      organic += x.weight;
    } else if (x.head >= 0 && x.head < kNumHeads) {
      positives[x.head] += x.weight;
    }
  }
  if (organic <= 0) return InvalidArgumentError("no organic training examples");
  for (int h = 0; h < kNumHeads; ++h) {
    if (positives[h] <= 0) {
      return InvalidArgumentError("no training examples for the " + std::string(ContentHeadName(h)) +
                                  " head");
    }
  }
  // Balanced: each head's positives weigh as much in total as the organic examples.
  std::array<double, kNumHeads> pos_weight{};
  for (int h = 0; h < kNumHeads; ++h) pos_weight[h] = organic / positives[h];

  const size_t buckets = size_t{1} << log2;
  std::vector<float> w(buckets * kNumHeads, 0.0f), g2(buckets * kNumHeads, 0.0f);
  std::array<double, kNumHeads> bias{}, bias_g2{};
  std::vector<uint32_t> order(data.size());
  std::iota(order.begin(), order.end(), 0u);
  uint64_t rng = options.seed;
  constexpr double kEps = 1e-8;
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    for (size_t i = order.size(); i > 1; --i) {  // Fisher-Yates with a counter-based generator
      rng = Mix64(rng + 0x9e3779b97f4a7c15ULL);
      std::swap(order[i - 1], order[rng % i]);
    }
    for (uint32_t idx : order) {
      const Encoded& x = data[idx];
      const double norm = 1.0 / std::sqrt(static_cast<double>(x.buckets.size()));
      for (int h = 0; h < kNumHeads; ++h) {
        if (x.head != LabeledText::kOrganic && x.head != h) continue;  // one-vs-organic
        const double y = x.head == h ? 1.0 : 0.0;
        const double weight = (x.head == h ? pos_weight[h] : 1.0) * x.weight;
        double z = bias[h];
        for (uint32_t b : x.buckets) z += w[b * kNumHeads + h] * norm;
        const double err = (Sigmoid(z) - y) * weight;
        for (uint32_t b : x.buckets) {
          float& wi = w[b * kNumHeads + h];
          float& gi = g2[b * kNumHeads + h];
          const double g = err * norm + options.l2 * wi;
          gi += static_cast<float>(g * g);
          wi -= static_cast<float>(options.learning_rate * g / std::sqrt(gi + kEps));
        }
        bias_g2[h] += err * err;
        bias[h] -= options.learning_rate * err / std::sqrt(bias_g2[h] + kEps);
      }
    }
  }

  std::array<HeadInfo, kNumHeads> heads{};
  for (int h = 0; h < kNumHeads; ++h) heads[h].bias = static_cast<float>(bias[h]);
  ContentModel model = ContentModel::FromWeights(log2, w, heads);

  // Calibrate the quantised model on the calibration fold.
  std::array<std::vector<float>, kNumHeads> cal_pos, cal_neg;
  ContentFeatures f;
  for (const LabeledText& e : calibration) {
    ExtractContentFeatures(e.text, &f);
    if (f.count == 0) continue;
    const auto raw = model.RawLogits(f);
    for (int h = 0; h < kNumHeads; ++h) {
      if (e.head == h) cal_pos[h].push_back(raw[h]);
      if (e.head == LabeledText::kOrganic) cal_neg[h].push_back(raw[h]);
    }
  }
  for (int h = 0; h < kNumHeads; ++h) {
    if (cal_pos[h].empty() || cal_neg[h].empty()) {
      return InvalidArgumentError("the calibration fold lacks " +
                                  std::string(cal_pos[h].empty() ? ContentHeadName(h) : "organic") +
                                  " examples");
    }
    auto [a, b] = FitPlatt(cal_pos[h], cal_neg[h]);
    model.set_calibration(h, a, b);
  }
  // The combined ratio's distribution on the calibration fold: the online baseline's prior and
  // the cohort test's picture of campaign traffic.
  std::array<double, kLlrBins> org{}, camp{};
  double norg = 0, ncamp = 0;
  for (const LabeledText& e : calibration) {
    const float c = model.Score(e.text).combined;
    if (e.head == LabeledText::kOrganic) {
      org[LlrBin(c)] += 1;
      norg += 1;
    } else if (e.head >= 0 && e.head < kNumHeads) {
      camp[LlrBin(c)] += 1;
      ncamp += 1;
    }
  }
  std::array<float, kLlrBins> org_f{}, camp_f{};
  for (int b = 0; b < kLlrBins; ++b) {
    org_f[b] = static_cast<float>(org[b] / std::max(1.0, norg));
    camp_f[b] = static_cast<float>(camp[b] / std::max(1.0, ncamp));
  }
  model.set_distributions(org_f, camp_f);
  return model;
}

RocSummary SummariseRoc(std::vector<float> positives, std::vector<float> negatives) {
  RocSummary r;
  r.positives = positives.size();
  r.negatives = negatives.size();
  if (positives.empty() || negatives.empty()) return r;
  std::sort(positives.begin(), positives.end());
  std::sort(negatives.begin(), negatives.end());
  // AUC: P(score of a positive > score of a negative), ties counted half.
  double wins = 0;
  size_t lo = 0, hi = 0;
  for (float p : positives) {
    while (lo < negatives.size() && negatives[lo] < p) ++lo;
    hi = std::max(hi, lo);
    while (hi < negatives.size() && negatives[hi] <= p) ++hi;
    wins += lo + 0.5 * (hi - lo);
  }
  r.auc = wins / (static_cast<double>(positives.size()) * negatives.size());
  for (double target : kRocTargets) {
    // The smallest threshold whose false-positive rate (share of negatives strictly above it)
    // is at most the target.
    const size_t allowed = static_cast<size_t>(std::floor(target * negatives.size()));
    const float threshold = negatives[negatives.size() - 1 - std::min(allowed, negatives.size() - 1)];
    const size_t fp = negatives.end() - std::upper_bound(negatives.begin(), negatives.end(), threshold);
    const size_t tp = positives.end() - std::upper_bound(positives.begin(), positives.end(), threshold);
    r.points.push_back({static_cast<double>(fp) / negatives.size(),
                        static_cast<double>(tp) / positives.size(), threshold});
  }
  return r;
}

ContentEvaluation EvaluateContentModel(const ContentModel& model,
                                       const std::vector<LabeledText>& examples) {
  std::array<std::vector<float>, kNumHeads> pos, neg;
  std::vector<float> comb_pos, comb_neg;
  for (const LabeledText& e : examples) {
    const ContentScores s = model.Score(e.text);
    if (e.head == LabeledText::kOrganic) {
      for (int h = 0; h < kNumHeads; ++h) neg[h].push_back(s.llr[h]);
      comb_neg.push_back(s.combined);
    } else if (e.head >= 0 && e.head < kNumHeads) {
      pos[e.head].push_back(s.llr[e.head]);
      comb_pos.push_back(s.combined);
    }
  }
  ContentEvaluation ev;
  for (int h = 0; h < kNumHeads; ++h) ev.heads[h] = SummariseRoc(std::move(pos[h]), std::move(neg[h]));
  ev.combined = SummariseRoc(std::move(comb_pos), std::move(comb_neg));
  return ev;
}

}  // namespace moat::detect

#include "watermark/detector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace moat::watermark {
namespace {

long double DirectUpperTail(int n, int k, long double p) {
  long double sum = 0;
  for (int j = k; j <= n; ++j) {
    long double c = 1;
    for (int i = 0; i < j; ++i) c = c * (n - i) / (i + 1);
    sum += c * std::pow(p, j) * std::pow(1 - p, n - j);
  }
  return sum;
}

TEST(BinomialTailTest, MatchesDirectSumForSmallN) {
  for (double p : {0.1, 0.25, 0.5, 0.7}) {
    for (int n : {1, 2, 5, 17, 40, 80}) {
      for (int k = 0; k <= n; ++k) {
        const long double want = DirectUpperTail(n, k, p);
        const double got = std::exp(LogBinomialUpperTail(n, k, p));
        EXPECT_NEAR(got / static_cast<double>(want), 1.0, 1e-9) << n << " " << k << " " << p;
      }
    }
  }
}

TEST(BinomialTailTest, ExtremeTailsStayInLogSpace) {
  EXPECT_NEAR(LogBinomialUpperTail(10000, 10000, 0.25), 10000 * std::log(0.25), 1e-6);
  EXPECT_EQ(LogBinomialUpperTail(10, 0, 0.25), 0.0);
  EXPECT_TRUE(std::isinf(LogBinomialUpperTail(10, 11, 0.25)));
  const double lp = LogBinomialUpperTail(5000, 2500, 0.25);
  EXPECT_TRUE(std::isfinite(lp));
  EXPECT_LT(lp, -700);  // far below double's underflow
}

TEST(ScoringUnitsTest, RepeatedUnitsAreScoredOnce) {
  ScoringUnits u(1);
  std::vector<int32_t> a = {5, 6, 5, 6, 5, 6, 7};
  u.AddSequence(a);
  // (5,6) (6,5) (6,7): three distinct units from six transitions.
  EXPECT_EQ(u.size(), 3);
  EXPECT_EQ(u.total_tokens(), 7);
  u.AddSequence(a);  // repeated across texts too
  EXPECT_EQ(u.size(), 3);
  ScoringUnits uni(0);
  uni.AddSequence(a);
  EXPECT_EQ(uni.size(), 3);
}

TEST(GreenListTest, GreenFractionIsGamma) {
  WatermarkKey key;
  key.seed = 12345;
  for (double gamma : {0.1, 0.25, 0.5}) {
    GreenList g(key.seed, gamma, 0);
    int green = 0;
    const int kVocab = 200000;
    for (int t = 0; t < kVocab; ++t) green += g.IsGreen(g.ContextSeed({}), t);
    EXPECT_NEAR(green / double(kVocab), gamma, 0.005);
  }
}

// Kolmogorov-Smirnov distance of `p` against U(0,1).
double KsDistance(std::vector<double> p) {
  std::sort(p.begin(), p.end());
  double d = 0;
  const double n = static_cast<double>(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    d = std::max({d, (i + 1) / n - p[i], p[i] - i / n});
  }
  return d;
}

// Null hypothesis: text generated without the key. Token streams follow a skewed (Zipf)
// distribution with many repeats, like real text; dedup keeps the test exact.
TEST(DetectorNullTest, PValuesAreUniformWithoutTheKey) {
  std::mt19937_64 rng(2024);
  const int kVocab = 5000;
  std::vector<double> w(kVocab);
  for (int i = 0; i < kVocab; ++i) w[i] = 1.0 / (i + 1);
  std::discrete_distribution<int> zipf(w.begin(), w.end());
  for (WatermarkConfig cfg : {WatermarkConfig{}, WatermarkConfig{true, Scheme::kUnigram}}) {
    std::vector<double> pvals;
    for (int s = 0; s < 500; ++s) {
      WatermarkKey key;
      key.seed = rng();
      ScoringUnits units(cfg.h());
      std::vector<int32_t> toks(300);
      for (auto& t : toks) t = zipf(rng);
      units.AddSequence(toks);
      pvals.push_back(Detect(units, key, cfg).p_value);
    }
    // KS critical value at alpha = 0.001 for n = 500 is about 1.95 / sqrt(500) = 0.087.
    EXPECT_LT(KsDistance(pvals), 0.087) << SchemeName(cfg.scheme);
    // Exact binomial p-values are valid: P(p <= a) <= a (+ sampling noise).
    for (double a : {0.01, 0.05, 0.1, 0.5}) {
      const double frac = std::count_if(pvals.begin(), pvals.end(), [&](double p) { return p <= a; }) /
                          static_cast<double>(pvals.size());
      EXPECT_LE(frac, a + 3 * std::sqrt(a * (1 - a) / pvals.size()) + 0.005) << a;
    }
  }
}

}  // namespace
}  // namespace moat::watermark

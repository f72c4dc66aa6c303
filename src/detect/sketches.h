#pragma once
// Fixed-size streaming sketches used by the detection engine: a hash helper, a HyperLogLog
// distinct counter, a MinHash signature, exponentially decayed counters and a decayed Welford
// mean/variance. None of them allocates after construction.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "detect/hash_batch.h"

namespace moat::detect {

// 64-bit hash of bytes (XXH3), with an optional seed.
uint64_t Hash64(std::string_view bytes, uint64_t seed = 0);

// A cheap 64-bit mixer (splitmix64 finaliser): decorrelates integer keys.
constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// SplitMix64: advances `state` by the golden-ratio increment and returns the mixed value (a
// deterministic stream of well-spread 64-bit numbers, for compile-time seeds).
constexpr uint64_t SplitMix64Next(uint64_t& state) { return Mix64(state += 0x9e3779b97f4a7c15ULL); }

// The value HashCombine mixes: HashCombine(a, b) == Mix64(HashCombineInput(a, b)).
inline uint64_t HashCombineInput(uint64_t a, uint64_t b) { return a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6)); }

// Combines two hashes (order-sensitive).
inline uint64_t HashCombine(uint64_t a, uint64_t b) { return Mix64(HashCombineInput(a, b)); }

// HyperLogLog with M one-byte registers (M a power of two, 16..4096). Estimate() uses linear
// counting while many registers are still empty, so small cardinalities (the common case for
// one account's IPs) are nearly exact.
template <int M>
class HyperLogLog {
  static_assert(M >= 16 && (M & (M - 1)) == 0, "M must be a power of two >= 16");

 public:
  void Add(uint64_t hash) {
    hash = Mix64(hash);
    const uint32_t index = static_cast<uint32_t>(hash & (M - 1));
    const uint64_t rest = hash >> kIndexBits;
    // Rank of the first set bit among the remaining 64 - kIndexBits bits (1-based).
    const uint8_t rank = rest == 0 ? static_cast<uint8_t>(64 - kIndexBits + 1)
                                   : static_cast<uint8_t>(__builtin_ctzll(rest) + 1);
    registers_[index] = std::max(registers_[index], rank);
  }
  double Estimate() const {
    double sum = 0;
    int zeros = 0;
    for (uint8_t r : registers_) {
      sum += kInversePowers[r];
      zeros += r == 0;
    }
    const double alpha = M == 16 ? 0.673 : M == 32 ? 0.697 : M == 64 ? 0.709 : 0.7213 / (1 + 1.079 / M);
    const double raw = alpha * M * M / sum;
    if (raw <= 2.5 * M && zeros > 0) return M * std::log(static_cast<double>(M) / zeros);
    return raw;
  }
  void Merge(const HyperLogLog& other) {
    for (int i = 0; i < M; ++i) registers_[i] = std::max(registers_[i], other.registers_[i]);
  }
  void Clear() { registers_.fill(0); }

 private:
  static constexpr int kIndexBits = __builtin_ctz(M);
  // 2^-r for every possible register value (exact, so Estimate() sums the same doubles that
  // std::ldexp(1.0, -r) would give, without a libm call per register).
  static constexpr std::array<double, 66> kInversePowers = [] {
    std::array<double, 66> p{};
    double x = 1.0;
    for (auto& v : p) {
      v = x;
      x /= 2;
    }
    return p;
  }();
  std::array<uint8_t, M> registers_{};
};

// MinHash signature with K 32-bit minima over a set of 64-bit element hashes.
template <int K>
class MinHash {
 public:
  MinHash() { mins_.fill(UINT32_MAX); }
  // Permutation i maps an element to the high half of Mix64(element_hash ^ seed i).
  void Add(uint64_t element_hash) { MinHashUpdate(element_hash, kSeeds.data(), mins_.data(), K); }
  bool empty() const { return mins_[0] == UINT32_MAX; }
  // Fraction of equal minima: an unbiased estimate of the Jaccard similarity of the two sets.
  double Similarity(const MinHash& other) const {
    int same = 0;
    for (int i = 0; i < K; ++i) same += mins_[i] == other.mins_[i];
    return static_cast<double>(same) / K;
  }
  // Hash of rows [band * rows, (band + 1) * rows): the LSH bucket of one band.
  uint64_t BandKey(int band, int rows) const {
    uint64_t h = 0x51ed270b27a3f1d5ULL + static_cast<uint64_t>(band);
    for (int i = band * rows; i < std::min(K, (band + 1) * rows); ++i) h = HashCombine(h, mins_[i]);
    return h;
  }
  const std::array<uint32_t, K>& mins() const { return mins_; }

 private:
  static constexpr std::array<uint64_t, 64> MakeSeeds() {
    std::array<uint64_t, 64> s{};
    uint64_t x = 0x2545f4914f6cdd1dULL;
    for (auto& v : s) v = SplitMix64Next(x);
    return s;
  }
  static_assert(K <= 64, "at most 64 permutations");
  static constexpr std::array<uint64_t, 64> kSeeds = MakeSeeds();
  std::array<uint32_t, K> mins_;
};

// Decay factor for `dt_ns` elapsed under half-life `half_life_ns` (1 when dt <= 0).
inline float DecayFactor(int64_t dt_ns, int64_t half_life_ns) {
  if (dt_ns <= 0 || half_life_ns <= 0) return 1.0f;
  return static_cast<float>(std::exp2(-static_cast<double>(dt_ns) / static_cast<double>(half_life_ns)));
}

// Exponentially decayed mean and variance of a stream of values (Welford's update with
// weights): recent values count more. 12 bytes.
class DecayedWelford {
 public:
  // Ages the past by `decay` (in (0, 1]) and adds `x` with weight 1.
  void Add(double x, float decay) {
    weight_ *= decay;
    m2_ *= decay;
    const float w = weight_ + 1.0f;
    const float delta = static_cast<float>(x) - mean_;
    mean_ += delta / w;
    m2_ += delta * (static_cast<float>(x) - mean_);
    weight_ = w;
  }
  float weight() const { return weight_; }
  float mean() const { return mean_; }
  float variance() const { return weight_ > 1.0f ? std::max(0.0f, m2_ / weight_) : 0.0f; }

 private:
  float weight_ = 0, mean_ = 0, m2_ = 0;
};

// Ramp: 0 at or below lo, 1 at or above hi, linear between.
inline double Ramp(double x, double lo, double hi) {
  if (x <= lo) return 0;
  if (x >= hi) return 1;
  return (x - lo) / (hi - lo);
}

}  // namespace moat::detect

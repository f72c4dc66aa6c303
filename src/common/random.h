#pragma once
// Random: the one source of randomness that is not a pure function of its inputs (request id
// prefixes, sampling seeds when a request names none), injectable like Clock so that tests and
// benchmarks can run the same twice. Cryptographic keys and secrets do not come from here (they
// use libsodium).

#include <cstdint>
#include <mutex>
#include <random>

namespace moat {

class Random {
 public:
  virtual ~Random() = default;
  // 64 uniformly distributed bits. Thread-safe.
  virtual uint64_t Next() = 0;
};

// The operating system's entropy (std::random_device). Thread-safe.
class SystemRandom final : public Random {
 public:
  uint64_t Next() override {
    std::lock_guard lock(mu_);
    return (static_cast<uint64_t>(device_()) << 32) ^ device_();
  }
  // A process-wide instance.
  static SystemRandom* Get() {
    static SystemRandom random;
    return &random;
  }

 private:
  std::mutex mu_;
  std::random_device device_;  // GUARDED_BY(mu_)
};

// A deterministic sequence from `seed` (tests, reproducible benchmarks). Thread-safe.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(uint64_t seed) : engine_(seed) {}
  uint64_t Next() override {
    std::lock_guard lock(mu_);
    return engine_();
  }

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;  // GUARDED_BY(mu_)
};

}  // namespace moat

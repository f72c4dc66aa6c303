#pragma once
// Clock: the one source of time, injectable so tests and the traffic benchmark can run on a
// simulated clock. Times are nanoseconds since the Unix epoch.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace moat {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, nanoseconds since the Unix epoch.
  virtual int64_t NowNanos() const = 0;
  int64_t NowMillis() const { return NowNanos() / 1'000'000; }
  double NowSeconds() const { return static_cast<double>(NowNanos()) / 1e9; }
};

// The real clock (std::chrono::system_clock). Thread-safe.
class SystemClock final : public Clock {
 public:
  int64_t NowNanos() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  // A process-wide instance.
  static SystemClock* Get() {
    static SystemClock clock;
    return &clock;
  }
};

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_nanos = 1'700'000'000'000'000'000) : now_(start_nanos) {}
  int64_t NowNanos() const override { return now_.load(std::memory_order_relaxed); }
  void SetNanos(int64_t t) { now_.store(t, std::memory_order_relaxed); }
  void AdvanceNanos(int64_t d) { now_.fetch_add(d, std::memory_order_relaxed); }
  void AdvanceSeconds(double s) { AdvanceNanos(static_cast<int64_t>(s * 1e9)); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace moat

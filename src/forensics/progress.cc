#include "forensics/progress.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace moat::forensics {
namespace {
int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

ScanProgress::ScanProgress(std::FILE* out, bool tty)
    : out_(out), tty_(tty), start_ns_(SteadyNs()) {}

double ScanProgress::Elapsed() const {
  return std::max(1e-9, static_cast<double>(SteadyNs() - start_ns_) / 1e9);
}

void ScanProgress::Update(uint64_t records, uint64_t done, uint64_t total) {
  if (!tty_) return;
  const int64_t now = SteadyNs();
  if (now - last_draw_ns_ < 100'000'000) return;
  last_draw_ns_ = now;
  const double rate = static_cast<double>(records) / Elapsed();
  std::string line;
  if (total > 0) {
    const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
    const int width = 30, filled = static_cast<int>(frac * width);
    line = fmt::format("\r[{}{}] {:5.1f}%  {} records  {:.0f} rec/s ", std::string(filled, '#'),
                       std::string(width - filled, '.'), 100 * frac, records, rate);
  } else {
    line = fmt::format("\r{} records  {:.0f} rec/s ", records, rate);
  }
  std::fputs(line.c_str(), out_);
  std::fflush(out_);
}

void ScanProgress::Done(uint64_t records, uint64_t bad_lines) {
  const double secs = Elapsed();
  std::string line = fmt::format("{}scanned {} records in {:.1f} s ({:.0f} rec/s), {} bad lines\n",
                                 tty_ ? "\r\x1b[K" : "", records, secs,
                                 static_cast<double>(records) / secs, bad_lines);
  std::fputs(line.c_str(), out_);
  std::fflush(out_);
}

}  // namespace moat::forensics

#pragma once
// ScanProgress: a one-line progress bar on a terminal (records, records/s and, when the input
// size is known, a percentage bar), redrawn at most 10 times a second; on a non-terminal it
// stays silent until Done(), which prints one summary line.

#include <cstdint>
#include <cstdio>
#include <string>

namespace moat::forensics {

class ScanProgress {
 public:
  // `out` is usually stderr; `tty` says whether to draw the bar.
  ScanProgress(std::FILE* out, bool tty);
  // `done`/`total` are the input position and size in any unit (bytes, rows); total 0 = unknown.
  void Update(uint64_t records, uint64_t done, uint64_t total);
  void Done(uint64_t records, uint64_t bad_lines);

 private:
  double Elapsed() const;
  std::FILE* out_;
  bool tty_;
  int64_t start_ns_;
  int64_t last_draw_ns_ = 0;
};

}  // namespace moat::forensics

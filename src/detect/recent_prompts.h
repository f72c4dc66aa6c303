#pragma once
// Which prompts each subject sent lately: a fixed-size, lossy, lock-free memory of
// (subject, prompt text) fingerprints that the engine asks on every request, to tell a
// conversation that goes on after a tool's output from a new request (DetectionEngine::Observe,
// docs/detection.md "Carried requests").
//
// A coding agent or a tool-using app resends the user's task on every step, followed by one more
// tool output; the model answers the output. Scoring the task again on every step counts one
// prompt many times. The engine counts it once: from a subject's second request that repeats the
// prompt and ends in a tool's output, only the output is new content.
//
// Direct-mapped: a later fingerprint may overwrite an earlier one in its slot, and then the
// earlier prompt counts again when it comes back (the safe side: a forgotten prompt is scored,
// never skipped). Not saved across restarts, for the same reason.

#include <atomic>
#include <cstdint>
#include <memory>

namespace moat::detect {

class RecentPrompts {
 public:
  // `slots` is rounded up to a power of two (at least 1024); 8 bytes each.
  explicit RecentPrompts(size_t slots = kDefaultSlots);
  static constexpr size_t kDefaultSlots = size_t{1} << 17;  // 1 MiB

  // Remembers that `subject` sent the prompt `text_hash`; returns true when that fingerprint was
  // already there (the subject sent this prompt before, and it was not overwritten since).
  // Thread-safe. A zero text_hash (no prompt) is never remembered.
  bool SeenBefore(uint64_t subject, uint64_t text_hash);

  // Returns true when `subject` sent the prompt `text_hash` and it is still remembered, and
  // forgets it: each remembered prompt vouches for one later request only. Thread-safe.
  bool Take(uint64_t subject, uint64_t text_hash);

 private:
  size_t mask_ = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> slots_;
};

}  // namespace moat::detect

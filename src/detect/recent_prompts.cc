#include "detect/recent_prompts.h"

#include <bit>

#include "detect/sketches.h"

namespace moat::detect {

RecentPrompts::RecentPrompts(size_t slots) {
  const size_t n = std::bit_ceil(slots < 1024 ? size_t{1024} : slots);
  mask_ = n - 1;
  slots_ = std::make_unique<std::atomic<uint64_t>[]>(n);
  for (size_t i = 0; i < n; ++i) slots_[i].store(0, std::memory_order_relaxed);
}

namespace {

uint64_t Fingerprint(uint64_t subject, uint64_t text_hash) {
  const uint64_t fingerprint = HashCombine(subject, text_hash);
  return fingerprint == 0 ? 1 : fingerprint;  // 0 marks an empty slot
}

}  // namespace

bool RecentPrompts::SeenBefore(uint64_t subject, uint64_t text_hash) {
  if (text_hash == 0) return false;
  const uint64_t fingerprint = Fingerprint(subject, text_hash);
  // The whole fingerprint is kept and compared: prompts that share a slot are told apart.
  std::atomic<uint64_t>& slot = slots_[fingerprint & mask_];
  return slot.exchange(fingerprint, std::memory_order_relaxed) == fingerprint;
}

bool RecentPrompts::Take(uint64_t subject, uint64_t text_hash) {
  if (text_hash == 0) return false;
  uint64_t fingerprint = Fingerprint(subject, text_hash);
  return slots_[fingerprint & mask_].compare_exchange_strong(fingerprint, 0, std::memory_order_relaxed);
}

}  // namespace moat::detect

#pragma once
// ASCII case folding for the feature extractors, eight bytes at a time: every byte 'A'..'Z'
// becomes 'a'..'z', every other byte (UTF-8 included) is copied unchanged. The same result as
// the byte loop `c >= 'A' && c <= 'Z' ? c + 32 : c` for any input.

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace moat::detect {

// Writes the lower-cased `n` bytes of `in` to `out` (which may equal `in`) and returns how
// many of them were upper-case letters.
inline size_t LowerAscii(const char* in, size_t n, char* out) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  size_t upper = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, in + i, 8);
    // Per byte, on its low seven bits h (no carry crosses bytes: h + 0x3f <= 0xbe):
    // bit 7 of h + 0x3f is set when h >= 'A', of h + 0x25 when h > 'Z'; the byte is a letter
    // when that differs and its own bit 7 is clear.
    const uint64_t h = x & ~kHigh;
    const uint64_t is_upper = ((h + 0x3f * kOnes) ^ (h + 0x25 * kOnes)) & ~x & kHigh;
    x |= is_upper >> 2;  // 0x80 >> 2 = 0x20, the case bit
    std::memcpy(out + i, &x, 8);
    upper += static_cast<size_t>(((is_upper >> 7) * kOnes) >> 56);  // sum of the 0/1 bytes
  }
  for (; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(in[i]);
    const bool is_upper = c >= 'A' && c <= 'Z';
    out[i] = static_cast<char>(is_upper ? c + ('a' - 'A') : c);
    upper += is_upper;
  }
  return upper;
}

}  // namespace moat::detect

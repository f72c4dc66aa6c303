#include "common/utf8.h"

namespace moat {
namespace {

// The length a sequence starting with byte `c` has, and the allowed range of its second byte;
// 0 when `c` starts none.
size_t SequenceShape(unsigned char c, unsigned char* lo, unsigned char* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) {
    if (c == 0xE0) *lo = 0xA0;  // no overlongs
    if (c == 0xED) *hi = 0x9F;  // no surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (c == 0xF0) *lo = 0x90;  // no overlongs
    if (c == 0xF4) *hi = 0x8F;  // <= U+10FFFF
    return 4;
  }
  return 0;
}

// Whether s[i + 1 .. i + k) are valid continuation bytes of a sequence whose second byte
// must lie in [lo, hi].
bool Continues(std::string_view s, size_t i, size_t k, unsigned char lo, unsigned char hi) {
  for (size_t j = 1; j < k; ++j) {
    const auto b = static_cast<unsigned char>(s[i + j]);
    if (j == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return false;
  }
  return true;
}

}  // namespace

size_t Utf8SequenceLength(std::string_view s, size_t i) {
  unsigned char lo, hi;
  const size_t n = SequenceShape(static_cast<unsigned char>(s[i]), &lo, &hi);
  if (n == 0 || i + n > s.size() || !Continues(s, i, n, lo, hi)) return 0;
  return n;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ReplaceInvalidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

size_t IncompleteUtf8Tail(std::string_view s) {
  // A cut sequence starts at most three bytes before the end.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const size_t i = s.size() - back;
    unsigned char lo, hi;
    const size_t n = SequenceShape(static_cast<unsigned char>(s[i]), &lo, &hi);
    if (n == 1) return 0;            // ASCII: nothing is cut after it
    if (n == 0) continue;            // a continuation byte (or garbage): look further back
    return n > back && Continues(s, i, back, lo, hi) ? back : 0;
  }
  return 0;
}

}  // namespace moat

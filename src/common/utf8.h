#pragma once
// UTF-8 well-formedness (RFC 3629: no overlong forms, surrogates or code points above
// U+10FFFF), for text that leaves the gateway in JSON: model output, audit exports.

#include <cstddef>
#include <string>
#include <string_view>

namespace moat {

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 if none starts there
// (a malformed byte, or a sequence cut short by the end of `s`).
size_t Utf8SequenceLength(std::string_view s, size_t i);

// True when `s` is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

// `s` with every byte that starts no well-formed sequence replaced by U+FFFD.
std::string ReplaceInvalidUtf8(std::string_view s);

// How many bytes at the end of `s` are the start of a well-formed sequence that `s` cuts short
// (0 to 3): what a stream holds back until the next bytes complete (or break) it.
size_t IncompleteUtf8Tail(std::string_view s);

}  // namespace moat

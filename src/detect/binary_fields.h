#pragma once
// The fields of the detection model file (detection_model.h) and of the sections its parts
// write (content model, corpus index): little-endian 32-bit integers and strings prefixed with
// their 32-bit length. Put* appends to `out`; Get* reads from the front of `in`, advances it past
// what it read and returns false (leaving the output unspecified) when `in` is too short.

#include <cstdint>
#include <string>
#include <string_view>

namespace moat::detect {

void PutU32(std::string* out, uint32_t v);
bool GetU32(std::string_view* in, uint32_t* v);

// A string of at most kMaxFieldStringBytes (longer ones are refused when read back).
constexpr uint32_t kMaxFieldStringBytes = 4096;
void PutString(std::string* out, std::string_view s);
bool GetString(std::string_view* in, std::string* s);

}  // namespace moat::detect

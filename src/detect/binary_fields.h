#pragma once
// The fields of the detection model file (detection_model.h), of the sections its parts write
// (content model, corpus index) and of the engine's state file (engine.h, SaveState):
// little-endian 32- and 64-bit integers, doubles as their IEEE-754 bits, and strings prefixed
// with their 32-bit length. Put* appends to `out`; Get* reads from the front of `in`, advances it past
// what it read and returns false (leaving the output unspecified) when `in` is too short.

#include <cstdint>
#include <string>
#include <string_view>

namespace moat::detect {

void PutU32(std::string* out, uint32_t v);
bool GetU32(std::string_view* in, uint32_t* v);

void PutU64(std::string* out, uint64_t v);
bool GetU64(std::string_view* in, uint64_t* v);
void PutF64(std::string* out, double v);
bool GetF64(std::string_view* in, double* v);

// A string of at most kMaxFieldStringBytes (longer ones are refused when read back).
constexpr uint32_t kMaxFieldStringBytes = 4096;
void PutString(std::string* out, std::string_view s);
bool GetString(std::string_view* in, std::string* s);

}  // namespace moat::detect

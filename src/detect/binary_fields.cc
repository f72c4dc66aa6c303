#include "detect/binary_fields.h"

#include <bit>

namespace moat::detect {

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool GetU32(std::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; ++i) {
    *v |= static_cast<uint32_t>(static_cast<unsigned char>((*in)[i])) << (8 * i);
  }
  in->remove_prefix(4);
  return true;
}

void PutU64(std::string* out, uint64_t v) {
  PutU32(out, static_cast<uint32_t>(v));
  PutU32(out, static_cast<uint32_t>(v >> 32));
}

bool GetU64(std::string_view* in, uint64_t* v) {
  uint32_t lo = 0, hi = 0;
  if (in->size() < 8 || !GetU32(in, &lo) || !GetU32(in, &hi)) return false;
  *v = (static_cast<uint64_t>(hi) << 32) | lo;
  return true;
}

void PutF64(std::string* out, double v) { PutU64(out, std::bit_cast<uint64_t>(v)); }

bool GetF64(std::string_view* in, double* v) {
  uint64_t bits = 0;
  if (!GetU64(in, &bits)) return false;
  *v = std::bit_cast<double>(bits);
  return true;
}

void PutString(std::string* out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

bool GetString(std::string_view* in, std::string* s) {
  uint32_t n = 0;
  if (!GetU32(in, &n) || n > kMaxFieldStringBytes || in->size() < n) return false;
  s->assign(in->data(), n);
  in->remove_prefix(n);
  return true;
}

}  // namespace moat::detect

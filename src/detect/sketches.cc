#include "detect/sketches.h"

// xxHash's header-only mode: the hash inlines here (the same XXH3 as the library's).
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace moat::detect {

uint64_t Hash64(std::string_view bytes, uint64_t seed) {
  return XXH3_64bits_withSeed(bytes.data(), bytes.size(), seed);
}

}  // namespace moat::detect

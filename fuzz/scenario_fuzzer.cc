// Fuzzes the traffic benchmark's scenario TOML reader (src/traffic/scenario.h).
#include <cstdint>
#include <string_view>

#include "traffic/scenario.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)moat::traffic::ParseScenario(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

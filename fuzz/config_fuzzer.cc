// Fuzzes the gateway's TOML config reader (server/config.h): any text must give a config or an
// InvalidArgument naming the problem, never a crash or an exception.
#include <cstdint>
#include <string>

#include "server/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto cfg = moat::server::ParseGatewayConfig(std::string(reinterpret_cast<const char*>(data), size));
  if (cfg.ok()) (void)moat::server::RequireServable(*cfg);
  return 0;
}

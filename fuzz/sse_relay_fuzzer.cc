// Fuzzes the parser of upstream server-sent event streams (server/sse_relay.h). The first byte
// chooses the options (strip reasoning, client asked for usage) and how the rest is split into
// reads, since events arrive split anywhere.
#include <cstdint>
#include <string>
#include <string_view>

#include "moat/filter.h"
#include "server/sse_relay.h"

namespace {
constexpr size_t kMaxEventBytes = 64 * 1024;  // small, so that overflows are reached
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t options = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  moat::RequestContext ctx;
  ctx.strip_reasoning = (options & 1) != 0;
  moat::server::SseRelay relay(ctx, /*client_wants_usage=*/(options & 2) != 0, kMaxEventBytes);
  const size_t step = 1 + (options >> 2);  // 1..64 bytes per read
  std::string out;
  for (size_t i = 0; i < in.size(); i += step) {
    relay.Feed(in.substr(i, step), &out);
    if (out.size() > kMaxEventBytes * 4) out.clear();
  }
  (void)relay.done();
  (void)relay.content_events();
  return 0;
}

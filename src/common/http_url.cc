#include "common/http_url.h"

namespace moat {

StatusOr<HttpUrl> ParseHttpUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, 8) == "https://") {
    return UnimplementedError("https URLs are not supported yet; put a TLS-terminating proxy on "
                              "loopback or use http://: " + std::string(url));
  }
  if (url.substr(0, kScheme.size()) != kScheme) {
    return InvalidArgumentError("only http:// URLs are supported: " + std::string(url));
  }
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  HttpUrl out;
  if (slash != std::string_view::npos) out.path = std::string(rest.substr(slash));
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  const size_t colon = authority.rfind(':');
  out.host = std::string(authority.substr(0, colon));
  if (colon != std::string_view::npos) {
    std::string_view p = authority.substr(colon + 1);
    uint32_t port = 0;
    for (char c : p) {
      if (c < '0' || c > '9' || port > 65535) return InvalidArgumentError("bad port in " + std::string(url));
      port = port * 10 + static_cast<uint32_t>(c - '0');
    }
    if (p.empty() || port == 0 || port > 65535) return InvalidArgumentError("bad port in " + std::string(url));
    out.port = static_cast<uint16_t>(port);
  }
  if (out.host.empty()) return InvalidArgumentError("no host in " + std::string(url));
  return out;
}

}  // namespace moat

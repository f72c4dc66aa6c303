#include "common/http_url.h"

namespace moat {
namespace {

constexpr std::string_view kHttp = "http://";
constexpr std::string_view kHttps = "https://";
constexpr uint16_t kHttpPort = 80;
constexpr uint16_t kHttpsPort = 443;
constexpr uint32_t kMaxPort = 65535;

}  // namespace

StatusOr<HttpUrl> ParseHttpUrl(std::string_view url, UrlSchemes schemes) {
  HttpUrl out;
  std::string_view rest;
  if (url.substr(0, kHttps.size()) == kHttps) {
    if (schemes != UrlSchemes::kHttpOrHttps) {
      return UnimplementedError("https URLs are not supported here; use http://: " +
                                std::string(url));
    }
    out.tls = true;
    out.port = kHttpsPort;
    rest = url.substr(kHttps.size());
  } else if (url.substr(0, kHttp.size()) == kHttp) {
    out.port = kHttpPort;
    rest = url.substr(kHttp.size());
  } else {
    return InvalidArgumentError(std::string(schemes == UrlSchemes::kHttpOnly
                                                ? "only http:// URLs are supported: "
                                                : "only http:// and https:// URLs are supported: ") +
                                std::string(url));
  }
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) out.path = std::string(rest.substr(slash));
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  const size_t colon = authority.rfind(':');
  out.host = std::string(authority.substr(0, colon));
  if (colon != std::string_view::npos) {
    std::string_view p = authority.substr(colon + 1);
    uint32_t port = 0;
    for (char c : p) {
      if (c < '0' || c > '9' || port > kMaxPort) return InvalidArgumentError("bad port in " + std::string(url));
      port = port * 10 + static_cast<uint32_t>(c - '0');
    }
    if (p.empty() || port == 0 || port > kMaxPort) return InvalidArgumentError("bad port in " + std::string(url));
    out.port = static_cast<uint16_t>(port);
  }
  if (out.host.empty()) return InvalidArgumentError("no host in " + std::string(url));
  return out;
}

}  // namespace moat

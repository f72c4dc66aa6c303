#pragma once
// HttpUrl: a parsed "http[s]://host[:port][/path]" URL, the one URL parser of the project (the
// gateway's upstream base URLs, the CLI's admin client, the watermark suspect client, the
// traffic benchmark's HTTP replay).

#include <cstdint>
#include <string>
#include <string_view>

#include "moat/status.h"

namespace moat {

struct HttpUrl {
  std::string host;
  uint16_t port = 80;  // 443 by default for https
  std::string path;    // "" or "/something", without trailing slashes
  bool tls = false;    // https://
};

// Which schemes a caller can serve.
enum class UrlSchemes {
  kHttpOnly,      // https:// is Unimplemented (the caller has no TLS client)
  kHttpOrHttps,   // https:// sets HttpUrl::tls
};

// Parses an http:// (or, when `schemes` allows it, https://) URL. An https URL a caller cannot
// serve is Unimplemented; any other scheme, an empty host or a port outside 1..65535 is
// InvalidArgument.
StatusOr<HttpUrl> ParseHttpUrl(std::string_view url, UrlSchemes schemes = UrlSchemes::kHttpOnly);

}  // namespace moat

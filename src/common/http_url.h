#pragma once
// HttpUrl: a parsed "http://host[:port][/path]" URL, the one URL parser of the project (the
// gateway's upstream base URLs, the CLI's admin client, the watermark suspect client, the
// traffic benchmark's HTTP replay).

#include <cstdint>
#include <string>
#include <string_view>

#include "moat/status.h"

namespace moat {

struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string path;  // "" or "/something", without trailing slashes
};

// Parses an http:// URL. https:// is Unimplemented (terminate TLS on loopback); any other
// scheme, an empty host or a port outside 1..65535 is InvalidArgument.
StatusOr<HttpUrl> ParseHttpUrl(std::string_view url);

}  // namespace moat

#include "ratelimit/ip_prefix.h"

#include <arpa/inet.h>

#include <cstring>

namespace moat::ratelimit {
namespace {

// A parsed address: 4 bytes (IPv4, including IPv4-mapped IPv6) or 16 bytes.
struct Address {
  bool v4 = false;
  unsigned char bytes[16] = {};
};

StatusOr<Address> Parse(std::string_view ip) {
  if (ip.empty() || ip.size() >= INET6_ADDRSTRLEN || ip.find('\0') != std::string_view::npos) {
    return InvalidArgumentError("not an IP address");
  }
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, ip.data(), ip.size());
  buf[ip.size()] = '\0';
  Address a;
  if (inet_pton(AF_INET, buf, a.bytes) == 1) {
    a.v4 = true;
    return a;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, buf, &v6) != 1) return InvalidArgumentError("not an IP address");
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    a.v4 = true;
    std::memcpy(a.bytes, v6.s6_addr + 12, 4);
    return a;
  }
  std::memcpy(a.bytes, v6.s6_addr, 16);
  return a;
}

std::string Format(const Address& a, int prefix_bits) {
  char out[INET6_ADDRSTRLEN];
  unsigned char masked[16] = {};
  std::memcpy(masked, a.bytes, static_cast<size_t>(prefix_bits / 8));
  inet_ntop(a.v4 ? AF_INET : AF_INET6, masked, out, sizeof(out));
  std::string s(out);
  if (prefix_bits != (a.v4 ? 32 : 128)) s += "/" + std::to_string(prefix_bits);
  return s;
}

}  // namespace

StatusOr<std::string> IpPrefix(std::string_view ip) {
  MOAT_ASSIGN_OR_RETURN(Address a, Parse(ip));
  return Format(a, a.v4 ? 24 : 48);
}

StatusOr<std::string> ClientIpKey(std::string_view ip) {
  MOAT_ASSIGN_OR_RETURN(Address a, Parse(ip));
  return Format(a, a.v4 ? 32 : 64);
}

}  // namespace moat::ratelimit

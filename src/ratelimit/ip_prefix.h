#pragma once
// Client-address keys for rate limiting: the network prefix a client is grouped under.

#include <string>
#include <string_view>

#include "moat/status.h"

namespace moat::ratelimit {

// The network prefix of a textual IP address: IPv4 "a.b.c.d" -> "a.b.c.0/24"; IPv6 -> its first
// 48 bits in canonical form + "/48" (e.g. "2001:db8:1::/48"); IPv4-mapped IPv6
// ("::ffff:1.2.3.4") counts as IPv4. InvalidArgument for anything that is not an address
// (including zone ids, brackets, ports and surrounding spaces).
moat::StatusOr<std::string> IpPrefix(std::string_view ip);

// The key of the per-client scope: IPv4 -> the canonical address; IPv6 -> its /64
// ("2001:db8:1:2::/64"), because one host or customer routinely holds a whole /64 and per-address
// limits would be trivially bypassed. IPv4-mapped IPv6 counts as IPv4. InvalidArgument for garbage.
moat::StatusOr<std::string> ClientIpKey(std::string_view ip);

}  // namespace moat::ratelimit

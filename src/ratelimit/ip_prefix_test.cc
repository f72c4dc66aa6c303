#include "ratelimit/ip_prefix.h"

#include <string>

#include <gtest/gtest.h>

namespace moat::ratelimit {
namespace {

std::string Prefix(std::string_view ip) {
  auto p = IpPrefix(ip);
  return p.ok() ? *p : "ERR:" + p.status().ToString();
}
std::string Client(std::string_view ip) {
  auto p = ClientIpKey(ip);
  return p.ok() ? *p : "ERR:" + p.status().ToString();
}

TEST(IpPrefixTest, Ipv4) {
  EXPECT_EQ(Prefix("192.168.1.77"), "192.168.1.0/24");
  EXPECT_EQ(Prefix("10.0.0.0"), "10.0.0.0/24");
  EXPECT_EQ(Prefix("255.255.255.255"), "255.255.255.0/24");
  EXPECT_EQ(Client("192.168.1.77"), "192.168.1.77");
}

TEST(IpPrefixTest, Ipv6) {
  EXPECT_EQ(Prefix("2001:db8:abcd:1234::1"), "2001:db8:abcd::/48");
  EXPECT_EQ(Prefix("2001:DB8:ABCD:ffff:1:2:3:4"), "2001:db8:abcd::/48");
  EXPECT_EQ(Prefix("2001:0db8:0000:0001::"), "2001:db8::/48");
  EXPECT_EQ(Prefix("::1"), "::/48");
  EXPECT_EQ(Prefix("fe80::1"), "fe80::/48");
  EXPECT_EQ(Client("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  EXPECT_EQ(Client("2001:db8:1:2::9"), Client("2001:DB8:1:2:ffff::1"));
}

TEST(IpPrefixTest, Ipv4MappedIpv6CountsAsIpv4) {
  EXPECT_EQ(Prefix("::ffff:10.1.2.3"), "10.1.2.0/24");
  EXPECT_EQ(Prefix("::FFFF:0a01:0203"), "10.1.2.0/24");
  EXPECT_EQ(Client("::ffff:10.1.2.3"), "10.1.2.3");
}

TEST(IpPrefixTest, Garbage) {
  for (std::string_view bad :
       {"", "abc", "1.2.3", "1.2.3.256", "1.2.3.4.5", "1.2.3.4:80", "[::1]", " 1.2.3.4",
        "1.2.3.4 ", "fe80::1%eth0", "1.2.3.4/24", "2001:db8::/48", "::g", "1:2:3:4:5:6:7:8:9",
        "999999999999999999999999999999999999999999999999999999999999"}) {
    EXPECT_EQ(IpPrefix(bad).status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(ClientIpKey(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(IpPrefix(std::string_view("1.2.3.4\0junk", 12)).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moat::ratelimit

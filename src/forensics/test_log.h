#pragma once
// Test fixture: a synthetic request log with organic accounts and one templated sybil campaign,
// shared by the forensics tests.

#include <cstdint>
#include <string>
#include <vector>

namespace moat::forensics::testing {

struct TestRequest {
  int64_t time_ns;
  std::string account, ip, user_agent, prompt, params_json;
  bool campaign;
};

// `organic` accounts (30 requests each, ten minutes apart, own IP, varied prompts) and
// `sybils` campaign accounts (12 templated requests each, seconds apart, rotating datacenter
// IPs, one scripted client), sorted by time.
std::vector<TestRequest> MakeTestLog(int organic, int sybils);

}  // namespace moat::forensics::testing

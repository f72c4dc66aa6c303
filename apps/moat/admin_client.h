#pragma once
// AdminClient: a small synchronous HTTP client for a running gateway's /admin API, used by the
// CLI commands that need the gateway's in-memory detection state (campaigns, account risk).
// Errors are Status values, never exceptions. A call blocks until the gateway answers or the
// connection fails (there is no deadline of its own).

#include <string>

#include "moat/status.h"
#include "server/config.h"

namespace moat::cli {

class AdminClient {
 public:
  // `url` "" means the config's listen address; `token` "" means $MOAT_ADMIN_TOKEN.
  static moat::StatusOr<AdminClient> Create(const server::GatewayConfig& config, std::string url,
                                            std::string token);
  // Returns the response body of a 2xx answer; the error body's message otherwise.
  moat::StatusOr<std::string> Get(const std::string& target) const;

 private:
  std::string host_;
  std::string port_;
  std::string token_;
};

}  // namespace moat::cli

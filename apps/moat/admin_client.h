#pragma once
// AdminClient: the CLI's client for a running gateway's /admin API (over the internal HTTP
// client, net/http_client.h), used by the commands that need the gateway's in-memory detection
// state (campaigns, account risk). Errors are Status values, never exceptions. Each call is
// bounded by a deadline (kAdminCallTimeout) covering connect, write and read.

#include <chrono>
#include <string>

#include "moat/status.h"
#include "net/http_client.h"
#include "server/config.h"

namespace moat::cli {

// How long one admin call may take before it fails with kDeadlineExceeded. The admin API
// answers from memory, so a gateway that takes longer is stuck or unreachable.
inline constexpr std::chrono::milliseconds kAdminCallTimeout{30000};

class AdminClient {
 public:
  // `url` "" means the config's listen address; `token` "" means $MOAT_ADMIN_TOKEN.
  static moat::StatusOr<AdminClient> Create(const server::GatewayConfig& config, std::string url,
                                            std::string token);
  // Returns the response body of a 2xx answer. A 404 is kNotFound and any other answer
  // kUnavailable, with the error body's message; kUnavailable when the gateway cannot be
  // reached, kDeadlineExceeded after kAdminCallTimeout.
  moat::StatusOr<std::string> Get(const std::string& target) const;

 private:
  explicit AdminClient(net::HttpClient http) : http_(std::move(http)) {}

  mutable net::HttpClient http_;  // mutable: its kept-alive connection is a cache
};

}  // namespace moat::cli

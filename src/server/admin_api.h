#pragma once
// AdminApi: the /admin HTTP API for accounts, organisations and API keys, guarded by a
// separate admin token (compared in constant time). Mirrors `moat account|key ...`.
//
//   POST   /admin/orgs                 {"name"}                       -> 201 organisation
//   POST   /admin/accounts             {"name", "org_id"?, "tier"?}   -> 201 account
//   GET    /admin/accounts                                            -> {"data": [accounts]}
//   GET    /admin/accounts/{id|name}                                  -> account + its keys
//   PATCH  /admin/accounts/{id}        {"tier"?, "disabled"?}         -> account (a tier for good)
//   POST   /admin/accounts/{id}/verify {"tier"?: verified|enterprise (default verified),
//                                       "valid_for_s", "method"?, "reference"?}
//                                      -> account: the tier until now + valid_for_s, then the
//                                         tier before (AccountStore::VerifyUntil); audited as
//                                         "account.verify" with the tiers before and after and
//                                         the expiry
//   POST   /admin/keys                 {"account", "label"?}          -> 201 {"key_id", "key"} (shown once)
//   POST   /admin/keys/{key_id}/revoke                                -> {"key_id", "revoked": true}
//   DELETE /admin/keys/{key_id}                                       -> same as revoke
//   GET    /admin/campaigns                                           -> detected campaigns
//   GET    /admin/accounts/{id}/risk                                  -> score history, reasons, links
//   POST   /admin/lists                {"account", "entry": allow|deny|none, "note"?}
//   GET    /admin/lists                                               -> {"account": "allow"|"deny"}
//   GET    /admin/models                                              -> configured models and their
//                                                                        verified attestations
//
// Every change (POST/PATCH/DELETE that passed the admin token) is described in
// Response::change so that the gateway writes it into the audit hash chain (audit/admin_record.h).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "audit/admin_record.h"
#include "moat/clock.h"
#include "detect/engine.h"
#include "server/config.h"
#include "store/account_store.h"
#include "store/risk_lists.h"

namespace moat::server {

class AdminApi {
 public:
  struct Response {
    int status = 200;
    std::string body;
    // Set for a change (or an attempted one): what it was and on which objects. The caller adds
    // who, from where and when, and writes it to the audit log.
    std::optional<audit::AdminAction> change;
  };
  // `engine` and `lists` may be null (detection disabled). `models` (the served models, their
  // attestations verified) must outlive the API; null lists none. `clock` dates verifications
  // (null: the system clock).
  AdminApi(store::AccountStore* accounts, std::string admin_token,
           detect::DetectionEngine* engine = nullptr, store::RiskLists* lists = nullptr,
           const std::vector<ModelConfig>* models = nullptr, const Clock* clock = nullptr);

  // True when the raw Authorization header carries the admin token (constant-time comparison).
  bool Authorized(std::string_view authorization) const;
  // Who an authorized request acts as in audit records: "admin-token:<fingerprint>" (the first
  // 8 bytes of a BLAKE2b hash of the token, in hex), which tells rotated tokens apart.
  const std::string& actor() const { return actor_; }
  // Handles an authorized request. Thread-safe (AccountStore is).
  Response Handle(std::string_view method, std::string_view path, std::string_view body) const;

 private:
  Response Route(std::string_view method, std::string_view path, std::string_view body) const;
  Response RouteDetection(std::string_view method, std::string_view path, std::string_view body) const;
  Response Models() const;
  Response Verify(const std::string& id, const boost::json::object& in) const;
  store::AccountStore* accounts_;
  const std::string admin_token_;
  std::string actor_;
  detect::DetectionEngine* engine_;
  store::RiskLists* lists_;
  const std::vector<ModelConfig>* models_;
  const Clock* clock_;
};

// Makes the engine's list entries equal `lists` (account -> "allow"|"deny"); `applied` holds
// what was applied last time, so removed entries are cleared.
void ApplyRiskLists(const std::map<std::string, std::string>& lists, detect::DetectionEngine* engine,
                    std::map<std::string, std::string>* applied);

}  // namespace moat::server

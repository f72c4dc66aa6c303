#include "server/admin_api.h"

#include <sodium.h>

#include <optional>

#include <boost/json.hpp>

#include "server/openai.h"
#include "server/response.h"

namespace moat::server {

namespace json = boost::json;

namespace {

// Bytes of the admin token's hash that name it in audit records.
constexpr size_t kActorFingerprintBytes = 8;

AdminApi::Response Error(const moat::Status& s) {
  return {HttpStatusOf(s.code()),
          ErrorBody(s.message(), OpenAiErrorTypeOf(s.code()), std::string(StatusCodeName(s.code()))),
          std::nullopt};
}

AdminApi::Response Error(int status, std::string_view message, std::string_view code) {
  return {status, ErrorBody(message, "invalid_request_error", code), std::nullopt};
}

json::object AccountJson(const store::Account& a) {
  json::object o;
  o["id"] = a.id;
  o["object"] = "account";
  o["name"] = a.name;
  o["org_id"] = a.org_id;
  o["tier"] = store::TierName(a.tier);
  // A verification for a period: when it ends (ns since the epoch) and the tier after it.
  o["tier_expires_ns"] = a.tier_expires_ns;
  o["tier_after_expiry"] = a.tier_expires_ns != 0 ? json::value(store::TierName(a.tier_after_expiry)) : json::value(nullptr);
  o["created_ns"] = a.created_ns;
  o["disabled"] = a.disabled;
  return o;
}

// The {id} of "/admin/accounts/{id}<suffix>" (non-empty, no further slash); nullopt otherwise.
std::optional<std::string_view> AccountIdBefore(std::string_view path, std::string_view suffix) {
  constexpr std::string_view kPrefix = "/admin/accounts/";
  if (path.size() <= kPrefix.size() + suffix.size()) return std::nullopt;
  if (path.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  if (path.substr(path.size() - suffix.size()) != suffix) return std::nullopt;
  std::string_view id = path.substr(kPrefix.size(), path.size() - kPrefix.size() - suffix.size());
  if (id.find('/') != std::string_view::npos) return std::nullopt;
  return id;
}

json::object KeyJson(const store::ApiKeyInfo& k) {
  json::object o;
  o["key_id"] = k.key_id;
  o["object"] = "api_key";
  o["account_id"] = k.account_id;
  o["label"] = k.label;
  o["created_ns"] = k.created_ns;
  o["revoked_ns"] = k.revoked_ns;
  return o;
}

bool ParseBody(std::string_view body, json::object* out) {
  if (body.empty()) return true;
  json::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return false;
  *out = std::move(v.as_object());
  return true;
}

// The {id} of "/admin/accounts/{id}/risk"; nullopt otherwise.
std::optional<std::string_view> RiskAccountId(std::string_view path) { return AccountIdBefore(path, "/risk"); }

AdminApi::Response WithChange(AdminApi::Response r, audit::AdminAction change) {
  r.change = std::move(change);
  return r;
}

std::string Str(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

AdminApi::AdminApi(store::AccountStore* accounts, std::string admin_token,
                   detect::DetectionEngine* engine, store::RiskLists* lists,
                   const std::vector<ModelConfig>* models, const Clock* clock)
    : accounts_(accounts),
      admin_token_(std::move(admin_token)),
      engine_(engine),
      lists_(lists),
      models_(models),
      clock_(clock != nullptr ? clock : SystemClock::Get()) {
  unsigned char digest[kActorFingerprintBytes];
  crypto_generichash(digest, sizeof(digest), reinterpret_cast<const unsigned char*>(admin_token_.data()),
                     admin_token_.size(), nullptr, 0);
  char hex[2 * kActorFingerprintBytes + 1];
  sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
  actor_ = std::string("admin-token:") + hex;
}

bool AdminApi::Authorized(std::string_view authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view token;
  if (authorization.size() > kBearer.size() && authorization.substr(0, kBearer.size()) == kBearer)
    token = authorization.substr(kBearer.size());
  // Constant-time comparison of equal-length values; the length itself is not secret.
  return !admin_token_.empty() && token.size() == admin_token_.size() &&
         sodium_memcmp(token.data(), admin_token_.data(), admin_token_.size()) == 0;
}

AdminApi::Response AdminApi::Handle(std::string_view method, std::string_view path,
                                    std::string_view body) const {
  Response r = Route(method, path, body);
  if (r.change) r.change->status = r.status;
  return r;
}

// Applies the persisted lists to the engine (called at start and when the DB changed).
void ApplyRiskLists(const std::map<std::string, std::string>& lists, detect::DetectionEngine* engine,
                    std::map<std::string, std::string>* applied) {
  for (const auto& [account, entry] : *applied)
    if (!lists.count(account)) engine->SetListEntry(account, detect::ListEntry::kNone);
  for (const auto& [account, entry] : lists)
    engine->SetListEntry(account, entry == "allow" ? detect::ListEntry::kAllow : detect::ListEntry::kDeny);
  *applied = lists;
}

AdminApi::Response AdminApi::RouteDetection(std::string_view method, std::string_view path,
                                            std::string_view body) const {
  auto ok = [](const json::value& v) { return Response{200, json::serialize(v), std::nullopt}; };
  if (!engine_) return Error(404, "detection is disabled ([detection] enabled = false)", "detection_disabled");
  if (path == "/admin/campaigns" && method == "GET") {
    json::array data;
    for (const auto& c : engine_->Campaigns()) {
      json::object o{{"id", c.id}, {"members", c.members}, {"score", c.score}, {"member_mass", c.member_mass},
                     {"shift", c.shift}, {"requests", c.requests}, {"value", c.value},
                     {"first_seen_ns", c.first_seen_ns}, {"last_seen_ns", c.last_seen_ns}};
      json::array links;
      for (auto l : c.links) links.push_back(l);
      o["links_by_kind"] = std::move(links);
      json::array members;
      for (const auto& m : c.sample_members) members.emplace_back(m);
      o["sample_members"] = std::move(members);
      data.push_back(std::move(o));
    }
    // Cohorts of young subjects and their shift test (the campaigns nobody is linked to yet).
    json::array cohorts;
    for (const auto& c : engine_->Cohorts()) {
      cohorts.push_back(json::object{{"id", c.id}, {"tier", c.tier}, {"window_start_s", c.window_start_s},
                                     {"members", c.members}, {"requests", c.requests},
                                     {"high_share", c.high_share}, {"baseline_share", c.baseline_share},
                                     {"z", c.z}, {"feature_shift", c.feature_shift},
                                     {"campaign_share", c.campaign_share}, {"value", c.value},
                                     {"shifted", c.shifted}});
    }
    return ok(json::object{{"object", "list"}, {"data", std::move(data)}, {"cohorts", std::move(cohorts)}});
  }
  if (path == "/admin/lists" && method == "GET") {
    json::object o;
    if (lists_) {
      auto all = lists_->All();
      if (!all.ok()) return Error(all.status());
      for (const auto& [a, e] : *all) o[a] = e;
    }
    return ok(o);
  }
  if (path == "/admin/lists" && method == "POST") {
    json::object in;
    if (!ParseBody(body, &in)) return Error(400, "the body must be a JSON object", "invalid_json");
    std::string account = Str(in, "account"), entry = Str(in, "entry");
    audit::AdminAction change = audit::AdminAction::Of(
        "list.set", json::serialize(json::object{
                        {"account", account}, {"entry", entry}, {"note", Str(in, "note")}}));
    auto acct = accounts_->GetAccount(account);
    if (!acct.ok()) return WithChange(Error(acct.status()), std::move(change));
    change.account_id = acct->id;
    if (lists_) {
      if (auto s = lists_->Set(acct->id, entry, Str(in, "note")); !s.ok())
        return WithChange(Error(s), std::move(change));
    } else if (entry != "allow" && entry != "deny" && entry != "none") {
      return WithChange(Error(400, "entry must be allow, deny or none", "invalid_value"),
                        std::move(change));
    }
    engine_->SetListEntry(acct->id, entry == "allow" ? detect::ListEntry::kAllow
                                    : entry == "deny" ? detect::ListEntry::kDeny
                                                      : detect::ListEntry::kNone);
    return WithChange(ok(json::object{{"account", acct->id}, {"entry", entry}}), std::move(change));
  }
  // /admin/accounts/{id}/risk (Route only sends paths of that shape here).
  auto risk_id = RiskAccountId(path);
  if (!risk_id) return Error(404, "unknown admin route: " + std::string(method) + " " + std::string(path), "unknown_url");
  if (method != "GET") return Error(405, "use GET on an account's risk", "method_not_allowed");
  std::string id(*risk_id);
  std::string subject = id;
  if (auto acct = accounts_->GetAccount(id); acct.ok()) subject = acct->id;
  auto r = engine_->Account(subject);
  if (!r) return Error(404, "no behaviour recorded for '" + id + "' on this gateway", "not_found");
  json::object o{{"id", r->id}, {"requests", r->requests}, {"score", r->score}, {"peak_score", r->peak_score},
                 {"restricted", r->restricted}, {"rate_per_hour", r->rate_per_hour},
                 {"distinct_ips", r->distinct_ips}, {"distinct_prefixes", r->distinct_prefixes},
                 {"distinct_skeletons", r->distinct_skeletons}, {"campaign_id", r->campaign_id},
                 {"first_seen_ns", r->first_seen_ns}, {"last_seen_ns", r->last_seen_ns},
                 {"tier", r->tier}, {"restricted_by", r->restricted_by}, {"evidence", r->evidence},
                 {"value", r->value}, {"budget", r->budget}, {"distinct_end_users", r->distinct_end_users},
                 {"items_spread", r->items_spread}, {"items_shared", r->items_shared},
                 {"cohort_graduated", r->cohort_graduated}, {"indicator", r->indicator}};
  o["list"] = r->list == detect::ListEntry::kAllow ? "allow" : r->list == detect::ListEntry::kDeny ? "deny" : "none";
  json::array history, reasons, linked;
  for (const auto& [t, sc] : r->history) history.push_back(json::array{t, sc});
  for (const auto& x : r->reasons) reasons.emplace_back(x);
  for (const auto& x : r->linked_accounts) linked.emplace_back(x);
  o["history"] = std::move(history);
  o["reasons"] = std::move(reasons);
  o["linked_accounts"] = std::move(linked);
  return ok(o);
}

// Each served model, with what its attestation (verified at start) says; "attestation" is null
// for a model without one.
AdminApi::Response AdminApi::Models() const {
  json::array data;
  if (models_) {
    for (const ModelConfig& m : *models_) {
      json::object o{{"name", m.name}, {"object", "model"}, {"backend", m.backend}};
      if (m.backend == "upstream")
        o["upstream_model"] = m.upstream_model.empty() ? m.name : m.upstream_model;
      if (m.attestation_sha256.empty()) {
        o["attestation"] = nullptr;
      } else {
        o["attestation"] = json::object{{"sha256", m.attestation_sha256},
                                        {"model_name", m.attested_model_name},
                                        {"model_version", m.attested_model_version},
                                        {"key_id", m.attestation_key_id},
                                        {"file", m.attestation}};
      }
      data.push_back(std::move(o));
    }
  }
  return Response{200, json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}}),
                  std::nullopt};
}

AdminApi::Response AdminApi::Verify(const std::string& id, const json::object& in) const {
  const std::string tier_name = in.contains("tier") ? Str(in, "tier") : "verified";
  const json::value* valid_for = in.if_contains("valid_for_s");
  json::object details{{"account", id}, {"tier", tier_name}, {"method", Str(in, "method")},
                       {"reference", Str(in, "reference")}};
  if (valid_for != nullptr) details["valid_for_s"] = *valid_for;
  auto acct = accounts_->GetAccount(id);
  if (acct.ok()) {
    details["tier_before"] = store::TierName(acct->tier);
    details["tier_expires_ns_before"] = acct->tier_expires_ns;
  }
  auto change = [&] {
    audit::AdminAction c = audit::AdminAction::Of("account.verify", json::serialize(details));
    c.account_id = acct.ok() ? acct->id : std::string();
    c.org_id = acct.ok() ? acct->org_id : std::string();
    return c;
  };
  if (!acct.ok()) return WithChange(Error(acct.status()), change());
  auto tier = store::ParseTier(tier_name);
  if (!tier.ok()) return WithChange(Error(tier.status()), change());
  if (*tier == store::Tier::kUnverified)
    return WithChange(Error(400, "'tier' must be verified or enterprise", "invalid_value"), change());
  constexpr int64_t kMaxValidForS = 10LL * 366 * 24 * 3600;  // ten years
  if (valid_for == nullptr || !valid_for->is_int64() || valid_for->as_int64() < 1 ||
      valid_for->as_int64() > kMaxValidForS) {
    return WithChange(Error(400, "'valid_for_s' must be an integer number of seconds, 1 to " +
                                     std::to_string(kMaxValidForS), "invalid_value"),
                      change());
  }
  for (const char* key : {"method", "reference"}) {
    if (const auto* v = in.if_contains(key); v != nullptr && (!v->is_string() || v->as_string().size() > 256))
      return WithChange(Error(400, std::string("'") + key + "' must be a string of at most 256 bytes", "invalid_value"),
                        change());
  }
  const int64_t expires_ns = clock_->NowNanos() + valid_for->as_int64() * 1'000'000'000;
  auto v = accounts_->VerifyUntil(acct->id, *tier, expires_ns);
  if (!v.ok()) return WithChange(Error(v.status()), change());
  details["tier_after"] = store::TierName(v->after.tier);
  details["tier_expires_ns"] = v->after.tier_expires_ns;
  details["tier_after_expiry"] = store::TierName(v->after.tier_after_expiry);
  return WithChange(Response{200, json::serialize(AccountJson(v->after)), std::nullopt}, change());
}

AdminApi::Response AdminApi::Route(std::string_view method, std::string_view path,
                                   std::string_view body) const {
  if (path == "/admin/models") {
    if (method != "GET") return Error(405, "use GET on /admin/models", "method_not_allowed");
    return Models();
  }
  if (path == "/admin/campaigns" || path == "/admin/lists" || RiskAccountId(path)) {
    return RouteDetection(method, path, body);
  }
  json::object in;
  if (!ParseBody(body, &in)) return Error(400, "the body must be a JSON object", "invalid_json");
  auto ok = [](int status, const json::value& v) { return Response{status, json::serialize(v), std::nullopt}; };

  if (path == "/admin/orgs" && method == "POST") {
    std::string name = Str(in, "name");
    audit::AdminAction change =
        audit::AdminAction::Of("org.create", json::serialize(json::object{{"name", name}}));
    if (name.empty()) return WithChange(Error(400, "'name' is required", "invalid_value"), std::move(change));
    auto org = accounts_->CreateOrganization(name);
    if (!org.ok()) return WithChange(Error(org.status()), std::move(change));
    change.org_id = org->id;
    json::object o;
    o["id"] = org->id;
    o["object"] = "organization";
    o["name"] = org->name;
    return WithChange(ok(201, o), std::move(change));
  }
  if (path == "/admin/accounts" && method == "POST") {
    std::string name = Str(in, "name");
    std::string tier_name = Str(in, "tier");
    audit::AdminAction change = audit::AdminAction::Of(
        "account.create",
        json::serialize(json::object{{"name", name},
                                     {"tier", tier_name.empty() ? "unverified" : tier_name},
                                     {"org_id", Str(in, "org_id")}}));
    change.org_id = Str(in, "org_id");
    if (name.empty()) return WithChange(Error(400, "'name' is required", "invalid_value"), std::move(change));
    auto tier = store::ParseTier(tier_name.empty() ? "unverified" : tier_name);
    if (!tier.ok()) return WithChange(Error(tier.status()), std::move(change));
    auto acct = accounts_->CreateAccount(name, Str(in, "org_id"), *tier);
    if (!acct.ok()) return WithChange(Error(acct.status()), std::move(change));
    change.account_id = acct->id;
    return WithChange(ok(201, AccountJson(*acct)), std::move(change));
  }
  if (path == "/admin/accounts" && method == "GET") {
    json::array data;
    for (const auto& a : accounts_->ListAccounts()) data.push_back(AccountJson(a));
    json::object o;
    o["object"] = "list";
    o["data"] = std::move(data);
    return ok(200, o);
  }
  if (auto id = AccountIdBefore(path, "/verify")) {
    if (method != "POST") return Error(405, "use POST on /admin/accounts/{id}/verify", "method_not_allowed");
    return Verify(std::string(*id), in);
  }
  const std::string_view acct_prefix = "/admin/accounts/";
  if (path.rfind(acct_prefix, 0) == 0) {
    std::string id(path.substr(acct_prefix.size()));
    auto acct = accounts_->GetAccount(id);
    if (method == "GET") {
      if (!acct.ok()) return Error(acct.status());
      json::object o = AccountJson(*acct);
      json::array keys;
      for (const auto& k : accounts_->ListKeys(acct->id)) keys.push_back(KeyJson(k));
      o["keys"] = std::move(keys);
      return ok(200, o);
    }
    if (method == "PATCH") {
      json::object details{{"account", id}};
      if (acct.ok()) {
        details["tier_before"] = store::TierName(acct->tier);
        details["disabled_before"] = acct->disabled;
      }
      if (const auto* t = in.if_contains("tier")) details["tier"] = *t;
      if (const auto* d = in.if_contains("disabled")) details["disabled"] = *d;
      audit::AdminAction change =
          audit::AdminAction::Of("account.update", json::serialize(details));
      change.account_id = acct.ok() ? acct->id : std::string();
      change.org_id = acct.ok() ? acct->org_id : std::string();
      if (!acct.ok()) return WithChange(Error(acct.status()), std::move(change));
      if (std::string t = Str(in, "tier"); !t.empty()) {
        auto tier = store::ParseTier(t);
        if (!tier.ok()) return WithChange(Error(tier.status()), std::move(change));
        if (auto s = accounts_->SetTier(acct->id, *tier); !s.ok()) return WithChange(Error(s), std::move(change));
      }
      if (const auto* d = in.if_contains("disabled")) {
        if (!d->is_bool()) return WithChange(Error(400, "'disabled' must be a boolean", "invalid_value"), std::move(change));
        if (auto s = accounts_->SetDisabled(acct->id, d->as_bool()); !s.ok()) return WithChange(Error(s), std::move(change));
      }
      auto updated = accounts_->GetAccount(acct->id);
      if (!updated.ok()) return WithChange(Error(updated.status()), std::move(change));
      return WithChange(ok(200, AccountJson(*updated)), std::move(change));
    }
    if (!acct.ok()) return Error(acct.status());
    return Error(405, "use GET or PATCH on an account", "method_not_allowed");
  }
  if (path == "/admin/keys" && method == "POST") {
    std::string account = Str(in, "account");
    audit::AdminAction change = audit::AdminAction::Of(
        "key.create",
        json::serialize(json::object{{"account", account}, {"label", Str(in, "label")}}));
    if (account.empty()) return WithChange(Error(400, "'account' (id or name) is required", "invalid_value"), std::move(change));
    auto acct = accounts_->GetAccount(account);
    if (!acct.ok()) return WithChange(Error(acct.status()), std::move(change));
    change.account_id = acct->id;
    change.org_id = acct->org_id;
    auto key = accounts_->CreateKey(acct->id, Str(in, "label"));
    if (!key.ok()) return WithChange(Error(key.status()), std::move(change));
    change.key_id = key->info.key_id;  // the id only: the secret is shown once, to the caller
    json::object o = KeyJson(key->info);
    o["key"] = key->secret;
    return WithChange(ok(201, o), std::move(change));
  }
  const std::string_view key_prefix = "/admin/keys/";
  if (path.rfind(key_prefix, 0) == 0) {
    std::string rest(path.substr(key_prefix.size()));
    std::string key_id = rest;
    bool revoke = method == "DELETE";
    if (auto slash = rest.find('/'); slash != std::string::npos) {
      key_id = rest.substr(0, slash);
      revoke = method == "POST" && rest.substr(slash) == "/revoke";
    }
    if (!revoke) return Error(405, "use POST /admin/keys/{key_id}/revoke or DELETE /admin/keys/{key_id}", "method_not_allowed");
    audit::AdminAction change = audit::AdminAction::Of("key.revoke");
    change.key_id = key_id;
    if (auto s = accounts_->RevokeKey(key_id); !s.ok()) return WithChange(Error(s), std::move(change));
    json::object o;
    o["key_id"] = key_id;
    o["revoked"] = true;
    return WithChange(ok(200, o), std::move(change));
  }
  return Error(404, "unknown admin route: " + std::string(method) + " " + std::string(path), "unknown_url");
}

}  // namespace moat::server

#include "server/admin_api.h"

#include <sodium.h>

#include <boost/json.hpp>

#include "server/openai.h"

namespace moat::server {

namespace json = boost::json;

namespace {

AdminApi::Response Error(const moat::Status& s) {
  return {HttpStatusOf(s.code()),
          ErrorBody(s.message(), OpenAiErrorTypeOf(s.code()), std::string(StatusCodeName(s.code())))};
}

AdminApi::Response Error(int status, std::string_view message, std::string_view code) {
  return {status, ErrorBody(message, "invalid_request_error", code)};
}

json::object AccountJson(const store::Account& a) {
  json::object o;
  o["id"] = a.id;
  o["object"] = "account";
  o["name"] = a.name;
  o["org_id"] = a.org_id;
  o["tier"] = store::TierName(a.tier);
  o["created_ns"] = a.created_ns;
  o["disabled"] = a.disabled;
  return o;
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

std::string Str(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

AdminApi::Response AdminApi::Handle(std::string_view method, std::string_view path,
                                    std::string_view authorization, std::string_view body) const {
  std::string_view token;
  if (authorization.size() > 7 && authorization.substr(0, 7) == "Bearer ") token = authorization.substr(7);
  // Constant-time comparison of equal-length values; the length itself is not secret.
  if (token.size() != admin_token_.size() ||
      sodium_memcmp(token.data(), admin_token_.data(), admin_token_.size()) != 0) {
    return {401, ErrorBody("A valid admin token is required (Authorization: Bearer <admin token>).",
                           "authentication_error", "invalid_admin_token")};
  }
  return Route(method, path, body);
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
  auto ok = [](const json::value& v) { return Response{200, json::serialize(v)}; };
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
                                     {"z", c.z}, {"campaign_share", c.campaign_share}, {"value", c.value},
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
    auto acct = accounts_->GetAccount(account);
    if (!acct.ok()) return Error(acct.status());
    if (lists_) {
      if (auto s = lists_->Set(acct->id, entry, Str(in, "note")); !s.ok()) return Error(s);
    } else if (entry != "allow" && entry != "deny" && entry != "none") {
      return Error(400, "entry must be allow, deny or none", "invalid_value");
    }
    engine_->SetListEntry(acct->id, entry == "allow" ? detect::ListEntry::kAllow
                                    : entry == "deny" ? detect::ListEntry::kDeny
                                                      : detect::ListEntry::kNone);
    return ok(json::object{{"account", acct->id}, {"entry", entry}});
  }
  // /admin/accounts/{id}/risk
  std::string id(path.substr(std::string_view("/admin/accounts/").size()));
  id.resize(id.size() - std::string_view("/risk").size());
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
                 {"items_spread", r->items_spread}, {"items_shared", r->items_shared}};
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

AdminApi::Response AdminApi::Route(std::string_view method, std::string_view path,
                                   std::string_view body) const {
  if (path == "/admin/campaigns" || path == "/admin/lists" ||
      (path.rfind("/admin/accounts/", 0) == 0 && path.size() > 5 &&
       path.substr(path.size() - 5) == "/risk")) {
    return RouteDetection(method, path, body);
  }
  json::object in;
  if (!ParseBody(body, &in)) return Error(400, "the body must be a JSON object", "invalid_json");
  auto ok = [](int status, const json::value& v) { return Response{status, json::serialize(v)}; };

  if (path == "/admin/orgs" && method == "POST") {
    std::string name = Str(in, "name");
    if (name.empty()) return Error(400, "'name' is required", "invalid_value");
    auto org = accounts_->CreateOrganization(name);
    if (!org.ok()) return Error(org.status());
    json::object o;
    o["id"] = org->id;
    o["object"] = "organization";
    o["name"] = org->name;
    return ok(201, o);
  }
  if (path == "/admin/accounts" && method == "POST") {
    std::string name = Str(in, "name");
    if (name.empty()) return Error(400, "'name' is required", "invalid_value");
    std::string tier_name = Str(in, "tier");
    auto tier = store::ParseTier(tier_name.empty() ? "unverified" : tier_name);
    if (!tier.ok()) return Error(tier.status());
    auto acct = accounts_->CreateAccount(name, Str(in, "org_id"), *tier);
    if (!acct.ok()) return Error(acct.status());
    return ok(201, AccountJson(*acct));
  }
  if (path == "/admin/accounts" && method == "GET") {
    json::array data;
    for (const auto& a : accounts_->ListAccounts()) data.push_back(AccountJson(a));
    json::object o;
    o["object"] = "list";
    o["data"] = std::move(data);
    return ok(200, o);
  }
  const std::string_view acct_prefix = "/admin/accounts/";
  if (path.rfind(acct_prefix, 0) == 0) {
    std::string id(path.substr(acct_prefix.size()));
    auto acct = accounts_->GetAccount(id);
    if (!acct.ok()) return Error(acct.status());
    if (method == "GET") {
      json::object o = AccountJson(*acct);
      json::array keys;
      for (const auto& k : accounts_->ListKeys(acct->id)) keys.push_back(KeyJson(k));
      o["keys"] = std::move(keys);
      return ok(200, o);
    }
    if (method == "PATCH") {
      if (std::string t = Str(in, "tier"); !t.empty()) {
        auto tier = store::ParseTier(t);
        if (!tier.ok()) return Error(tier.status());
        if (auto s = accounts_->SetTier(acct->id, *tier); !s.ok()) return Error(s);
      }
      if (const auto* d = in.if_contains("disabled")) {
        if (!d->is_bool()) return Error(400, "'disabled' must be a boolean", "invalid_value");
        if (auto s = accounts_->SetDisabled(acct->id, d->as_bool()); !s.ok()) return Error(s);
      }
      auto updated = accounts_->GetAccount(acct->id);
      if (!updated.ok()) return Error(updated.status());
      return ok(200, AccountJson(*updated));
    }
    return Error(405, "use GET or PATCH on an account", "method_not_allowed");
  }
  if (path == "/admin/keys" && method == "POST") {
    std::string account = Str(in, "account");
    if (account.empty()) return Error(400, "'account' (id or name) is required", "invalid_value");
    auto acct = accounts_->GetAccount(account);
    if (!acct.ok()) return Error(acct.status());
    auto key = accounts_->CreateKey(acct->id, Str(in, "label"));
    if (!key.ok()) return Error(key.status());
    json::object o = KeyJson(key->info);
    o["key"] = key->secret;
    return ok(201, o);
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
    if (auto s = accounts_->RevokeKey(key_id); !s.ok()) return Error(s);
    json::object o;
    o["key_id"] = key_id;
    o["revoked"] = true;
    return ok(200, o);
  }
  return Error(404, "unknown admin route: " + std::string(method) + " " + std::string(path), "unknown_url");
}

}  // namespace moat::server

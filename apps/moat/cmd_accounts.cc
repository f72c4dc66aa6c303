// moat org create | account create/list/show/set-tier/verify/disable | key create/revoke/list
#include <iostream>

#include <boost/json.hpp>

#include "admin_client.h"
#include "cli_common.h"
#include "commands.h"
#include "store/risk_lists.h"

namespace moat::cli {
namespace {

void PrintAccount(const store::Account& a) {
  std::cout << "id: " << a.id << "\nname: " << a.name << "\norg: " << a.org_id
            << "\ntier: " << store::TierName(a.tier);
  if (a.tier_expires_ns != 0) {
    std::cout << " until " << a.tier_expires_ns / 1'000'000'000 << " (unix seconds), then "
              << store::TierName(a.tier_after_expiry);
  }
  std::cout << "\ndisabled: " << (a.disabled ? "yes" : "no") << "\n";
}

// Prints the gateway's live risk view of an account (score history, reasons, links).
void PrintRisk(const server::GatewayConfig& cfg, const std::string& url, const std::string& token,
               const std::string& account_id) {
  auto client = AdminClient::Create(cfg, url, token);
  if (!client.ok()) {
    std::cout << "risk: unavailable (" << client.status().message() << ")\n";
    return;
  }
  auto body = client->Get("/admin/accounts/" + account_id + "/risk");
  if (!body.ok()) {
    std::cout << "risk: unavailable (" << body.status().message() << ")\n";
    return;
  }
  auto v = boost::json::parse(*body).as_object();
  std::cout << "risk score (posterior): " << v["score"].to_number<double>() << " (peak "
            << v["peak_score"].to_number<double>() << ")\nrestricted: "
            << (v["restricted"].as_bool() ? "yes (" + std::string(v["restricted_by"].as_string().c_str()) + ")" : "no")
            << "\nlist: " << v["list"].as_string().c_str()
            << "\nrequests seen: " << v["requests"].to_number<double>()
            << "\nown evidence (log-odds): " << v["evidence"].to_number<double>()
            << "\nextraction value: " << v["value"].to_number<double>() << " of a "
            << v["budget"].to_number<double>() << " token budget (" << v["tier"].as_string().c_str() << ")"
            << "\nitems also asked by unrelated accounts: " << v["items_spread"].to_number<double>()
            << ", by its own group: " << v["items_shared"].to_number<double>()
            << "\ncampaign: " << v["campaign_id"].as_string().c_str() << "\n";
  if (const auto* g = v.if_contains("cohort_graduated"); g && g->is_bool() && g->as_bool()) {
    std::cout << "cohort: judged on its own history (graduated from its first-seen cohort)\n";
  }
  if (v["distinct_end_users"].to_number<double>() > 0) {
    std::cout << "end users: " << v["distinct_end_users"].to_number<double>() << "\n";
  }
  if (const auto* ind = v.if_contains("indicator"); ind && ind->is_string() && !ind->as_string().empty()) {
    std::cout << "shared indicator matched: " << ind->as_string().c_str() << "\n";
  }
  for (const auto& r : v["reasons"].as_array()) std::cout << "evidence stage: " << r.as_string().c_str() << "\n";
  for (const auto& l : v["linked_accounts"].as_array()) std::cout << "linked: " << l.as_string().c_str() << "\n";
  std::cout << "score history:";
  for (const auto& h : v["history"].as_array())
    std::cout << " " << h.as_array()[1].to_number<double>();
  std::cout << "\n";
}

// An admin record of a change to account `a`: it names the account and its organisation.
audit::AdminAction AccountChange(const store::Account& a, std::string operation, std::string details) {
  audit::AdminAction change = audit::AdminAction::Of(std::move(operation), std::move(details));
  change.account_id = a.id;
  change.org_id = a.org_id;
  return change;
}

// A JSON object of string fields, for the `details` of an admin record.
std::string Details(std::initializer_list<std::pair<const char*, std::string>> fields) {
  boost::json::object o;
  for (const auto& [k, v] : fields) o[k] = v;
  return boost::json::serialize(o);
}

struct Opts {
  std::string config;
  std::string url, admin_token, note;
  std::string name, org, tier = "unverified", account, label, key_id;
  bool disabled = true;
  int64_t valid_for_s = 0;
  std::string verify_tier = "verified", method, reference;
};

}  // namespace

void AddAccountCommands(CLI::App& app) {
  auto opts = std::make_shared<Opts>();
  // A command callback that loads the config (opts->config), opens the account store and exits
  // with fn(config, store).
  auto with_config_and_store = [opts](auto fn) {
    return [opts, fn]() {
      auto cfg = LoadConfigOrDefaults(opts->config);
      if (!cfg.ok()) std::exit(Fail(cfg.status()));
      auto st = OpenAccountStore(*cfg);
      if (!st.ok()) std::exit(Fail(st.status()));
      std::exit(fn(*cfg, **st));
    };
  };
  auto with_store = [with_config_and_store](auto fn) {
    return with_config_and_store(
        [fn](const server::GatewayConfig&, store::AccountStore& s) { return fn(s); });
  };
  // For commands that change something: the audit log is opened first (no change is made
  // whose record cannot be written) and `fn` records the change it made.
  auto with_audited_store = [with_config_and_store](auto fn) {
    return with_config_and_store([fn](const server::GatewayConfig& cfg, store::AccountStore& s) {
      auto audit = CliAdminAudit::Open(cfg);
      if (!audit.ok()) return Fail(audit.status());
      return fn(s, *audit);
    });
  };
  // As with_audited_store, for a command on the account opts->account names (looked up first).
  auto with_audited_account = [opts, with_audited_store](auto fn) {
    return with_audited_store([opts, fn](store::AccountStore& s, CliAdminAudit& audit) {
      auto a = s.GetAccount(opts->account);
      if (!a.ok()) return Fail(a.status());
      return fn(s, audit, *a);
    });
  };
  // Records `change` with the outcome `status`; returns the exit code.
  auto recorded = [](CliAdminAudit& audit, audit::AdminAction change, const moat::Status& status) {
    change.status = status.ok() ? 200 : HttpStatusOf(status.code());
    moat::Status r = audit.Record(std::move(change));
    if (!status.ok()) return Fail(status);
    return r.ok() ? 0 : Fail(r);
  };

  auto* org = app.add_subcommand("org", "Manage organisations");
  org->require_subcommand(1);
  auto* org_create = org->add_subcommand("create", "Create an organisation");
  org_create->add_option("name", opts->name, "Organisation name")->required();
  org_create->add_option("--config,-c", opts->config, "Config file (default ./moat.toml or built-in defaults)");
  org_create->callback(
      with_audited_store([opts, recorded](store::AccountStore& s, CliAdminAudit& audit) {
        audit::AdminAction change =
            audit::AdminAction::Of("org.create", Details({{"name", opts->name}}));
        auto o = s.CreateOrganization(opts->name);
        if (o.ok()) {
          change.org_id = o->id;
          std::cout << o->id << "\n";
        }
        return recorded(audit, std::move(change), o.status());
      }));

  auto* account = app.add_subcommand("account", "Manage accounts");
  account->require_subcommand(1);
  auto* create = account->add_subcommand("create", "Create an account");
  create->add_option("name", opts->name, "Unique account name")->required();
  create->add_option("--org", opts->org, "Organisation id");
  create->add_option("--tier", opts->tier, "unverified | verified | enterprise");
  create->add_option("--config,-c", opts->config, "Config file");
  create->callback(with_audited_store([opts, recorded](store::AccountStore& s, CliAdminAudit& audit) {
    auto tier = store::ParseTier(opts->tier);
    if (!tier.ok()) return Fail(tier.status());
    audit::AdminAction change = audit::AdminAction::Of(
        "account.create",
        Details({{"name", opts->name}, {"tier", opts->tier}, {"org_id", opts->org}}));
    change.org_id = opts->org;
    auto a = s.CreateAccount(opts->name, opts->org, *tier);
    if (a.ok()) {
      change.account_id = a->id;
      PrintAccount(*a);
    }
    return recorded(audit, std::move(change), a.status());
  }));
  auto* list = account->add_subcommand("list", "List accounts");
  list->add_option("--config,-c", opts->config, "Config file");
  list->callback(with_store([](store::AccountStore& s) {
    for (const auto& a : s.ListAccounts())
      std::cout << a.id << "\t" << a.name << "\t" << store::TierName(a.tier) << (a.disabled ? "\tdisabled" : "") << "\n";
    return 0;
  }));
  auto* show = account->add_subcommand("show", "Show an account and its keys");
  show->add_option("account", opts->account, "Account id or name")->required();
  show->add_option("--config,-c", opts->config, "Config file");
  show->add_option("--url", opts->url, "Gateway URL for the live risk view (default: the config's listen address)");
  show->add_option("--admin-token", opts->admin_token, "Admin token (default: $MOAT_ADMIN_TOKEN)");
  show->callback(with_config_and_store([opts](const server::GatewayConfig& cfg,
                                              store::AccountStore& s) {
    auto a = s.GetAccount(opts->account);
    if (!a.ok()) return Fail(a.status());
    PrintAccount(*a);
    for (const auto& k : s.ListKeys(a->id))
      std::cout << "key: " << k.key_id << (k.revoked_ns ? " (revoked)" : "") << (k.label.empty() ? "" : " " + k.label) << "\n";
    auto lists = store::RiskLists::Open(cfg.storage.accounts_db, SystemClock::Get());
    if (lists.ok())
      if (auto all = (*lists)->All(); all.ok() && all->count(a->id))
        std::cout << "manual list: " << all->at(a->id) << "\n";
    PrintRisk(cfg, opts->url, opts->admin_token, a->id);
    return 0;
  }));
  for (const char* entry : {"allow", "deny", "unlist"}) {
    std::string e = entry;
    auto* cmd = account->add_subcommand(
        e, e == "allow" ? "Put an account on the allow list (no detection restrictions)"
           : e == "deny" ? "Put an account on the deny list (blocked)"
                         : "Remove an account from the allow/deny lists");
    cmd->add_option("account", opts->account, "Account id or name")->required();
    cmd->add_option("--note", opts->note, "Why (kept with the entry)");
    cmd->add_option("--config,-c", opts->config, "Config file");
    cmd->callback(with_config_and_store([opts, e, recorded](const server::GatewayConfig& cfg,
                                                             store::AccountStore& s) {
      auto a = s.GetAccount(opts->account);
      if (!a.ok()) return Fail(a.status());
      auto lists = store::RiskLists::Open(cfg.storage.accounts_db, SystemClock::Get());
      if (!lists.ok()) return Fail(lists.status());
      auto audit = CliAdminAudit::Open(cfg);
      if (!audit.ok()) return Fail(audit.status());
      const std::string entry = e == "unlist" ? "none" : e;
      audit::AdminAction change = audit::AdminAction::Of(
          "list.set", Details({{"account", a->id}, {"entry", entry}, {"note", opts->note}}));
      change.account_id = a->id;
      auto set = (*lists)->Set(a->id, entry, opts->note);
      if (set.ok()) {
        std::cout << a->id << ": " << (e == "unlist" ? "removed from the lists" : "on the " + e + " list")
                  << " (a running gateway applies it within a second)\n";
      }
      return recorded(*audit, std::move(change), set);
    }));
  }

  auto* set_tier = account->add_subcommand("set-tier", "Change an account's verification tier");
  set_tier->add_option("account", opts->account, "Account id or name")->required();
  set_tier->add_option("tier", opts->tier, "unverified | verified | enterprise")->required();
  set_tier->add_option("--config,-c", opts->config, "Config file");
  set_tier->callback(with_audited_account([opts, recorded](store::AccountStore& s, CliAdminAudit& audit,
                                                        const store::Account& a) {
    auto tier = store::ParseTier(opts->tier);
    if (!tier.ok()) return Fail(tier.status());
    audit::AdminAction change = AccountChange(
        a, "account.update",
        Details({{"tier_before", std::string(store::TierName(a.tier))}, {"tier", opts->tier}}));
    return recorded(audit, std::move(change), s.SetTier(a.id, *tier));
  }));
  auto* verify = account->add_subcommand(
      "verify", "Verify an account for a period (step-up): the tier until it expires, then the tier before");
  verify->add_option("account", opts->account, "Account id or name")->required();
  verify->add_option("--tier", opts->verify_tier, "verified (default) | enterprise");
  verify->add_option("--valid-for-s", opts->valid_for_s, "How long the verification holds, in seconds")
      ->required()
      ->check(CLI::Range(int64_t{1}, int64_t{10LL * 366 * 24 * 3600}));
  verify->add_option("--method", opts->method, "How the identity was checked (kept in the audit record)");
  verify->add_option("--reference", opts->reference, "The identity check's own reference (kept in the audit record)");
  verify->add_option("--config,-c", opts->config, "Config file");
  verify->callback(with_audited_account([opts, recorded](store::AccountStore& s, CliAdminAudit& audit,
                                                      const store::Account& a) {
    auto tier = store::ParseTier(opts->verify_tier);
    if (!tier.ok()) return Fail(tier.status());
    if (*tier == store::Tier::kUnverified) return Fail(InvalidArgumentError("--tier must be verified or enterprise"));
    const int64_t expires_ns = SystemClock::Get()->NowNanos() + opts->valid_for_s * 1'000'000'000;
    auto v = s.VerifyUntil(a.id, *tier, expires_ns);
    boost::json::object details{{"account", a.id},
                                {"tier", opts->verify_tier},
                                {"valid_for_s", opts->valid_for_s},
                                {"method", opts->method},
                                {"reference", opts->reference},
                                {"tier_before", store::TierName(a.tier)},
                                {"tier_expires_ns_before", a.tier_expires_ns}};
    if (v.ok()) {
      details["tier_after"] = store::TierName(v->after.tier);
      details["tier_expires_ns"] = v->after.tier_expires_ns;
      details["tier_after_expiry"] = store::TierName(v->after.tier_after_expiry);
      PrintAccount(v->after);
    }
    return recorded(audit, AccountChange(a, "account.verify", boost::json::serialize(details)), v.status());
  }));
  auto* disable = account->add_subcommand("disable", "Disable (or --enable) an account");
  disable->add_option("account", opts->account, "Account id or name")->required();
  disable->add_flag("!--enable", opts->disabled, "Enable instead");
  disable->add_option("--config,-c", opts->config, "Config file");
  disable->callback(with_audited_account([opts, recorded](store::AccountStore& s, CliAdminAudit& audit,
                                                        const store::Account& a) {
    audit::AdminAction change =
        AccountChange(a, "account.update", Details({{"disabled_before", a.disabled ? "true" : "false"},
                                                    {"disabled", opts->disabled ? "true" : "false"}}));
    return recorded(audit, std::move(change), s.SetDisabled(a.id, opts->disabled));
  }));

  auto* key = app.add_subcommand("key", "Manage API keys");
  key->require_subcommand(1);
  auto* kcreate = key->add_subcommand("create", "Create an API key (printed once, stored only as a keyed hash)");
  kcreate->add_option("--account,-a", opts->account, "Account id or name")->required();
  kcreate->add_option("--label", opts->label, "Free-form label");
  kcreate->add_option("--config,-c", opts->config, "Config file");
  kcreate->callback(with_audited_account([opts, recorded](store::AccountStore& s, CliAdminAudit& audit,
                                                        const store::Account& a) {
    audit::AdminAction change = AccountChange(a, "key.create", Details({{"label", opts->label}}));
    auto k = s.CreateKey(a.id, opts->label);
    if (k.ok()) {
      change.key_id = k->info.key_id;  // the id only: the secret is printed once, never stored
      std::cerr << "key id: " << k->info.key_id << " (the key below is shown only once)\n";
      std::cout << k->secret << "\n";
    }
    return recorded(audit, std::move(change), k.status());
  }));
  auto* revoke = key->add_subcommand("revoke", "Revoke an API key");
  revoke->add_option("key_id", opts->key_id, "Key id (key_...)")->required();
  revoke->add_option("--config,-c", opts->config, "Config file");
  revoke->callback(
      with_audited_store([opts, recorded](store::AccountStore& s, CliAdminAudit& audit) {
        audit::AdminAction change = audit::AdminAction::Of("key.revoke");
        change.key_id = opts->key_id;
        return recorded(audit, std::move(change), s.RevokeKey(opts->key_id));
      }));
  auto* klist = key->add_subcommand("list", "List an account's keys");
  klist->add_option("--account,-a", opts->account, "Account id or name")->required();
  klist->add_option("--config,-c", opts->config, "Config file");
  klist->callback(with_store([opts](store::AccountStore& s) {
    auto a = s.GetAccount(opts->account);
    if (!a.ok()) return Fail(a.status());
    for (const auto& k : s.ListKeys(a->id))
      std::cout << k.key_id << "\t" << (k.revoked_ns ? "revoked" : "active") << "\t" << k.label << "\n";
    return 0;
  }));
}

}  // namespace moat::cli

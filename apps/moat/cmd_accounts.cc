// moat org create | account create/list/show/set-tier/disable | key create/revoke/list
#include <iostream>

#include "cli_common.h"
#include "commands.h"

namespace moat::cli {
namespace {

void PrintAccount(const store::Account& a) {
  std::cout << "id: " << a.id << "\nname: " << a.name << "\norg: " << a.org_id
            << "\ntier: " << store::TierName(a.tier) << "\ndisabled: " << (a.disabled ? "yes" : "no") << "\n";
}

struct Opts {
  std::string config;
  std::string name, org, tier = "unverified", account, label, key_id;
  bool disabled = true;
};

}  // namespace

void AddAccountCommands(CLI::App& app) {
  auto opts = std::make_shared<Opts>();
  auto with_store = [opts](auto fn) {
    return [opts, fn]() {
      auto cfg = LoadConfigOrDefaults(opts->config);
      if (!cfg.ok()) std::exit(Fail(cfg.status()));
      auto st = OpenAccountStore(*cfg);
      if (!st.ok()) std::exit(Fail(st.status()));
      std::exit(fn(**st));
    };
  };

  auto* org = app.add_subcommand("org", "Manage organisations");
  org->require_subcommand(1);
  auto* org_create = org->add_subcommand("create", "Create an organisation");
  org_create->add_option("name", opts->name, "Organisation name")->required();
  org_create->add_option("--config,-c", opts->config, "Config file (default ./moat.toml or built-in defaults)");
  org_create->callback(with_store([opts](store::AccountStore& s) {
    auto o = s.CreateOrganization(opts->name);
    if (!o.ok()) return Fail(o.status());
    std::cout << o->id << "\n";
    return 0;
  }));

  auto* account = app.add_subcommand("account", "Manage accounts");
  account->require_subcommand(1);
  auto* create = account->add_subcommand("create", "Create an account");
  create->add_option("name", opts->name, "Unique account name")->required();
  create->add_option("--org", opts->org, "Organisation id");
  create->add_option("--tier", opts->tier, "unverified | verified | enterprise");
  create->add_option("--config,-c", opts->config, "Config file");
  create->callback(with_store([opts](store::AccountStore& s) {
    auto tier = store::ParseTier(opts->tier);
    if (!tier.ok()) return Fail(tier.status());
    auto a = s.CreateAccount(opts->name, opts->org, *tier);
    if (!a.ok()) return Fail(a.status());
    PrintAccount(*a);
    return 0;
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
  show->callback(with_store([opts](store::AccountStore& s) {
    auto a = s.GetAccount(opts->account);
    if (!a.ok()) return Fail(a.status());
    PrintAccount(*a);
    for (const auto& k : s.ListKeys(a->id))
      std::cout << "key: " << k.key_id << (k.revoked_ns ? " (revoked)" : "") << (k.label.empty() ? "" : " " + k.label) << "\n";
    return 0;
  }));
  auto* set_tier = account->add_subcommand("set-tier", "Change an account's verification tier");
  set_tier->add_option("account", opts->account, "Account id or name")->required();
  set_tier->add_option("tier", opts->tier, "unverified | verified | enterprise")->required();
  set_tier->add_option("--config,-c", opts->config, "Config file");
  set_tier->callback(with_store([opts](store::AccountStore& s) {
    auto a = s.GetAccount(opts->account);
    if (!a.ok()) return Fail(a.status());
    auto tier = store::ParseTier(opts->tier);
    if (!tier.ok()) return Fail(tier.status());
    auto st = s.SetTier(a->id, *tier);
    return st.ok() ? 0 : Fail(st);
  }));
  auto* disable = account->add_subcommand("disable", "Disable (or --enable) an account");
  disable->add_option("account", opts->account, "Account id or name")->required();
  disable->add_flag("!--enable", opts->disabled, "Enable instead");
  disable->add_option("--config,-c", opts->config, "Config file");
  disable->callback(with_store([opts](store::AccountStore& s) {
    auto a = s.GetAccount(opts->account);
    if (!a.ok()) return Fail(a.status());
    auto st = s.SetDisabled(a->id, opts->disabled);
    return st.ok() ? 0 : Fail(st);
  }));

  auto* key = app.add_subcommand("key", "Manage API keys");
  key->require_subcommand(1);
  auto* kcreate = key->add_subcommand("create", "Create an API key (printed once, stored only as a keyed hash)");
  kcreate->add_option("--account,-a", opts->account, "Account id or name")->required();
  kcreate->add_option("--label", opts->label, "Free-form label");
  kcreate->add_option("--config,-c", opts->config, "Config file");
  kcreate->callback(with_store([opts](store::AccountStore& s) {
    auto a = s.GetAccount(opts->account);
    if (!a.ok()) return Fail(a.status());
    auto k = s.CreateKey(a->id, opts->label);
    if (!k.ok()) return Fail(k.status());
    std::cerr << "key id: " << k->info.key_id << " (the key below is shown only once)\n";
    std::cout << k->secret << "\n";
    return 0;
  }));
  auto* revoke = key->add_subcommand("revoke", "Revoke an API key");
  revoke->add_option("key_id", opts->key_id, "Key id (key_...)")->required();
  revoke->add_option("--config,-c", opts->config, "Config file");
  revoke->callback(with_store([opts](store::AccountStore& s) {
    auto st = s.RevokeKey(opts->key_id);
    return st.ok() ? 0 : Fail(st);
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

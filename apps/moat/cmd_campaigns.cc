// moat campaigns: the campaigns and shifted cohorts a running gateway has detected (read from
// its /admin API, because that state lives only in the gateway's memory).
#include <iostream>
#include <memory>
#include <string>

#include <boost/json.hpp>

#include "admin_client.h"
#include "cli_common.h"
#include "commands.h"

namespace moat::cli {
namespace {

struct CampaignOpts {
  std::string config;
  std::string url, admin_token;
};

// The linked campaigns, one line each with up to five sample members.
void PrintCampaigns(const boost::json::array& data) {
  std::cout << "campaign\tmembers\trequests\tscore\tshift\tsample members\n";
  for (const auto& c : data) {
    const auto& o = c.as_object();
    std::cout << o.at("id").as_string().c_str() << "\t" << o.at("members").to_number<double>() << "\t"
              << o.at("requests").to_number<double>() << "\t" << o.at("score").to_number<double>() << "\t"
              << o.at("shift").to_number<double>() << "\t";
    int n = 0;
    for (const auto& m : o.at("sample_members").as_array()) {
      if (n++ == 5) {
        std::cout << " ...";
        break;
      }
      std::cout << (n > 1 ? "," : "") << m.as_string().c_str();
    }
    std::cout << "\n";
  }
  if (data.empty()) std::cout << "(no linked campaigns)\n";
}

// Cohorts whose content shifted: campaigns seen as a whole before anyone is linked.
void PrintShiftedCohorts(const boost::json::array& cohorts) {
  std::cout << "\ncohort\tmembers\trequests\tcampaign-like share (baseline)\tz\tfeature shift\testimated campaign share\n";
  int shown = 0;
  for (const auto& c : cohorts) {
    const auto& o = c.as_object();
    if (!o.at("shifted").as_bool()) continue;
    ++shown;
    std::cout << o.at("id").as_string().c_str() << "\t" << o.at("members").to_number<double>() << "\t"
              << o.at("requests").to_number<double>() << "\t" << o.at("high_share").to_number<double>() << " ("
              << o.at("baseline_share").to_number<double>() << ")\t" << o.at("z").to_number<double>() << "\t"
              << (o.contains("feature_shift") ? o.at("feature_shift").to_number<double>() : 0.0) << "\t"
              << o.at("campaign_share").to_number<double>() << "\n";
  }
  if (shown == 0) std::cout << "(no shifted cohorts)\n";
}

}  // namespace

void AddCampaignCommands(CLI::App& app) {
  auto opts = std::make_shared<CampaignOpts>();
  auto* campaigns = app.add_subcommand("campaigns", "List the campaigns a running gateway has detected");
  campaigns->add_option("--config,-c", opts->config, "Config file");
  campaigns->add_option("--url", opts->url, "Gateway URL (default: the config's listen address)");
  campaigns->add_option("--admin-token", opts->admin_token, "Admin token (default: $MOAT_ADMIN_TOKEN)");
  campaigns->callback([opts] {
    auto cfg = LoadConfigOrDefaults(opts->config);
    if (!cfg.ok()) std::exit(Fail(cfg.status()));
    auto client = AdminClient::Create(*cfg, opts->url, opts->admin_token);
    if (!client.ok()) std::exit(Fail(client.status()));
    auto body = client->Get("/admin/campaigns");
    if (!body.ok()) std::exit(Fail(body.status()));
    boost::json::object root = boost::json::parse(*body).as_object();
    PrintCampaigns(root["data"].as_array());
    if (const auto* cohorts = root.if_contains("cohorts"); cohorts && cohorts->is_array()) {
      PrintShiftedCohorts(cohorts->as_array());
    }
    std::exit(0);
  });
}

}  // namespace moat::cli

#include "traffic/scenario.h"

#include "common/file_contents.h"

#include <fstream>
#include <sstream>
#include <toml++/toml.h>

#include <limits>
#include <type_traits>

namespace moat::traffic {

bool IsKnownVariant(std::string_view variant) {
  for (auto v : kVariants) {
    if (v == variant) return true;
  }
  return false;
}

bool IsStealthVariant(std::string_view variant) {
  return variant == "stealth-sybil" || variant == "slow-drip" || variant == "stealth-cot" ||
         variant == "topic-sweep" || variant == "stealth-hydra" || variant == "rotating-user" ||
         variant == "study-group";
}

namespace {

template <typename T>
void Read(const toml::table& t, std::string_view key, T& out) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // Integers only: toml++ would convert a float such as 1e100 with an out-of-range cast.
    const toml::value<int64_t>* v = t[key].as_integer();
    if (v != nullptr && v->get() >= std::numeric_limits<T>::min() && v->get() <= std::numeric_limits<T>::max()) {
      out = static_cast<T>(v->get());
    }
  } else {
    if (auto v = t[key].value<T>()) out = *v;
  }
}

void ReadDouble(const toml::table& t, std::string_view key, double& out) {
  // TOML distinguishes 3 from 3.0; accept both for real-valued parameters.
  if (auto v = t[key].value<double>()) out = *v;
}

Status ReadOrganic(const toml::table& t, OrganicParams& o) {
  Read(t, "accounts", o.accounts);
  ReadDouble(t, "median_sessions_per_day", o.median_sessions_per_day);
  ReadDouble(t, "activity_sigma", o.activity_sigma);
  ReadDouble(t, "max_sessions_per_day", o.max_sessions_per_day);
  ReadDouble(t, "multi_turn_prob", o.multi_turn_prob);
  ReadDouble(t, "contrast_prob", o.contrast_prob);
  ReadDouble(t, "second_ip_prob", o.second_ip_prob);
  Read(t, "batch_jobs", o.batch_jobs);
  ReadDouble(t, "batch_requests_per_hour", o.batch_requests_per_hour);
  ReadDouble(t, "batch_hours_per_day", o.batch_hours_per_day);
  Read(t, "coding_tools", o.coding_tools);
  ReadDouble(t, "coding_requests_per_hour", o.coding_requests_per_hour);
  Read(t, "coding_end_users", o.coding_end_users);
  ReadDouble(t, "coding_agent_share", o.coding_agent_share);
  ReadDouble(t, "retrieval_app_share", o.retrieval_app_share);
  ReadDouble(t, "agent_user_share", o.agent_user_share);
  ReadDouble(t, "verified_share", o.verified_share);
  ReadDouble(t, "enterprise_share", o.enterprise_share);
  Read(t, "sdk_headers", o.sdk_headers);
  ReadDouble(t, "system_prompt_prob", o.system_prompt_prob);
  Read(t, "researchers", o.researchers);
  Read(t, "researcher_items", o.researcher_items);
  Read(t, "shared_benchmark_researchers", o.shared_benchmark_researchers);
  Read(t, "classrooms", o.classrooms);
  Read(t, "classroom_students", o.classroom_students);
  Read(t, "classroom_problems", o.classroom_problems);
  if (o.verified_share < 0 || o.enterprise_share < 0 || o.verified_share + o.enterprise_share > 1 ||
      o.researchers < 0 || o.researcher_items < 1 || o.shared_benchmark_researchers < 0 ||
      o.classrooms < 0 || o.classroom_students < 1 || o.classroom_problems < 1) {
    return InvalidArgumentError("organic: tier shares must be in [0, 1] and trap sizes >= 0");
  }
  if (o.accounts < 0 || o.median_sessions_per_day <= 0 || o.batch_jobs < 0 ||
      o.coding_tools < 0 || o.coding_end_users < 1) {
    return InvalidArgumentError("organic: counts must be >= 0 and rates > 0");
  }
  auto is_share = [](double v) { return v >= 0 && v <= 1; };
  if (!is_share(o.coding_agent_share) || !is_share(o.retrieval_app_share) || !is_share(o.agent_user_share)) {
    return InvalidArgumentError("organic: coding_agent_share, retrieval_app_share and agent_user_share must be in [0, 1]");
  }
  return Status::Ok();
}

Status ReadCampaign(const toml::table& t, size_t index, CampaignParams& c) {
  Read(t, "variant", c.variant);
  if (!IsKnownVariant(c.variant)) {
    return InvalidArgumentError("campaign " + std::to_string(index) + ": unknown variant '" +
                                c.variant + "'");
  }
  c.id = c.variant + "-" + std::to_string(index);
  Read(t, "id", c.id);
  Read(t, "accounts", c.accounts);
  ReadDouble(t, "start_hour", c.start_hour);
  ReadDouble(t, "duration_hours", c.duration_hours);
  ReadDouble(t, "requests_per_account_hour", c.requests_per_account_hour);
  ReadDouble(t, "account_lifetime_hours", c.account_lifetime_hours);
  Read(t, "max_requests_per_account", c.max_requests_per_account);
  Read(t, "proxy_pool", c.proxy_pool);
  Read(t, "ip_kind", c.ip_kind);
  Read(t, "organic_end_users", c.organic_end_users);
  Read(t, "campaign_end_users", c.campaign_end_users);
  ReadDouble(t, "cover_fraction", c.cover_fraction);
  ReadDouble(t, "own_conversation_prob", c.own_conversation_prob);
  Read(t, "min_requests_per_account", c.min_requests_per_account);
  Read(t, "content", c.content);
  ReadDouble(t, "followup_prob", c.followup_prob);
  Read(t, "max_accounts", c.max_accounts);
  Read(t, "group_size", c.group_size);
  if (c.max_accounts < 0) return InvalidArgumentError("campaign " + c.id + ": max_accounts must be >= 0");
  if (c.group_size < 1 || c.group_size > 1000) {
    return InvalidArgumentError("campaign " + c.id + ": group_size must be in [1, 1000]");
  }
  if (c.content != "mixed" && c.content != "distill" && c.content != "cot" && c.content != "benchmark") {
    return InvalidArgumentError("campaign " + c.id + ": content must be mixed, distill, cot or benchmark");
  }
  if (c.min_requests_per_account < 0 || c.followup_prob < 0 || c.followup_prob > 1 ||
      (c.max_requests_per_account > 0 && c.min_requests_per_account > c.max_requests_per_account)) {
    return InvalidArgumentError("campaign " + c.id + ": requests per account or followup_prob out of range");
  }
  if (c.accounts < 1 || c.duration_hours <= 0 || c.requests_per_account_hour <= 0 ||
      c.start_hour < 0 || c.proxy_pool < 0 || c.cover_fraction < 0 || c.cover_fraction >= 1 ||
      c.own_conversation_prob < 0 || c.own_conversation_prob > 1) {
    return InvalidArgumentError("campaign " + c.id + ": out-of-range parameter");
  }
  if (c.ip_kind != "datacenter" && c.ip_kind != "residential" && c.ip_kind != "mixed") {
    return InvalidArgumentError("campaign " + c.id + ": ip_kind must be datacenter, "
                                "residential or mixed");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<Scenario> ParseScenario(std::string_view toml_text) {
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "scenario TOML: " << e.description() << " at line " << e.source().begin.line;
    return InvalidArgumentError(msg.str());
  }
  Scenario s;
  Read(root, "name", s.name);
  Read(root, "description", s.description);
  Read(root, "start_unix_s", s.start_unix_s);
  ReadDouble(root, "duration_hours", s.duration_hours);
  if (s.duration_hours <= 0) return InvalidArgumentError("duration_hours must be > 0");
  if (const toml::table* organic = root["organic"].as_table()) {
    MOAT_RETURN_IF_ERROR(ReadOrganic(*organic, s.organic));
  }
  if (const toml::array* campaigns = root["campaign"].as_array()) {
    size_t i = 0;
    for (const auto& node : *campaigns) {
      const toml::table* t = node.as_table();
      if (t == nullptr) return InvalidArgumentError("[[campaign]] entries must be tables");
      CampaignParams c;
      MOAT_RETURN_IF_ERROR(ReadCampaign(*t, i++, c));
      s.campaigns.push_back(std::move(c));
    }
  }
  return s;
}

StatusOr<Scenario> LoadScenarioFile(const std::filesystem::path& path) {
  MOAT_ASSIGN_OR_RETURN(std::string text, ReadFileContents(path.string(), "scenario"));
  MOAT_ASSIGN_OR_RETURN(Scenario s, ParseScenario(text));
  if (s.name.empty()) s.name = path.stem().string();
  return s;
}

StatusOr<Scenario> LoadScenario(std::string_view name_or_path,
                                const std::filesystem::path& scenarios_dir) {
  std::filesystem::path p(name_or_path);
  if (std::filesystem::is_regular_file(p)) return LoadScenarioFile(p);
  return LoadScenarioFile(scenarios_dir / (std::string(name_or_path) + ".toml"));
}

}  // namespace moat::traffic

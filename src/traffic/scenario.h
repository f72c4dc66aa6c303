#pragma once
// Scenario: the parameters of one synthetic traffic population (organic accounts and
// distillation campaigns), read from a TOML file under scenarios/.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "moat/status.h"

namespace moat::traffic {

// The campaign variants of the brief's threat model.
// The first seven carry artefacts of automation (bot clients, proxies, fixed templates or
// phrasings, big max_tokens); the stealth ones copy organic users in every field but content;
// `adaptive` is a closed-loop stealth operator that reads every answer (adaptive_campaign.cc).
inline constexpr std::string_view kVariants[] = {
    "bulk",          "sybil-spread", "cot-harvest", "benchmark-sweep", "jailbreak-probe",
    "hydra",         "mimic",        "stealth-sybil", "slow-drip",     "stealth-cot",
    "topic-sweep",   "stealth-hydra", "rotating-user", "study-group", "adaptive"};
bool IsStealthVariant(std::string_view variant);
bool IsKnownVariant(std::string_view variant);

struct OrganicParams {
  int accounts = 1000;
  double median_sessions_per_day = 2.0;  // per account, log-normal across accounts
  double activity_sigma = 1.1;           // log-space spread: a heavy tail of active users
  double max_sessions_per_day = 60;      // clamp of the tail
  double multi_turn_prob = 0.35;         // a session replays a real conversation from the data
  double contrast_prob = 0.04;           // a prompt comes from the `contrast` role
  double second_ip_prob = 0.25;          // accounts that also use a mobile/office address
  int batch_jobs = 2;                    // heavy legitimate users: nightly summarisation jobs
  double batch_requests_per_hour = 900;
  double batch_hours_per_day = 2;
  int coding_tools = 1;                  // heavy legitimate users: an IDE assistant company
  double coding_requests_per_hour = 700;
  int coding_end_users = 300;
  // Share of a coding tool's requests that are agent steps: the end user's task, the assistant's
  // tool call and the tool's output (a file, a test run, a search result) that the model answers.
  double coding_agent_share = 0;
  // Share of organic accounts whose application retrieves documents into its system message,
  // different ones on every request.
  double retrieval_app_share = 0;
  // Share of organic accounts that run a coding agent on their own key: sessions of 2-8 steps
  // seconds apart, each ending with a tool's output.
  double agent_user_share = 0;
  // Who the organic accounts are and what their clients send.
  double verified_share = 0.35;    // of accounts verified (identity checked)
  double enterprise_share = 0.05;  // of accounts on an enterprise contract
  bool sdk_headers = true;         // SDK clients send their x-stainless-* headers
  double system_prompt_prob = 0.15;  // accounts whose application sets its own system prompt
  // False-positive traps: legitimate traffic that looks like a campaign's.
  int researchers = 0;             // each runs one public benchmark once (a fixed format)
  int researcher_items = 300;      // benchmark items per run
  int shared_benchmark_researchers = 0;  // unrelated researchers running the same benchmark
  int classrooms = 0;              // each: students asking the same homework set
  int classroom_students = 30;
  int classroom_problems = 12;
};

struct CampaignParams {
  std::string variant;
  std::string id;                        // defaults to "<variant>-<index>"
  int accounts = 10;
  double start_hour = 1;                 // hours after the scenario start
  double duration_hours = 6;
  double requests_per_account_hour = 30; // mean rate of one account while it is active
  double account_lifetime_hours = 0;     // fresh accounts live this long (0: whole campaign)
  int max_requests_per_account = 0;      // 0: unlimited
  int proxy_pool = 0;                    // distinct client IPs (0: one per account)
  std::string ip_kind = "datacenter";    // datacenter | residential | mixed
  // hydra: the reseller account's end users.
  int organic_end_users = 50;
  int campaign_end_users = 20;
  // mimic: fraction of cover (organic-looking) prompts interleaved with the campaign's own.
  double cover_fraction = 0.4;
  // mimic: share of its own prompts sent as the next turn of the account's own conversation:
  // the last cover prompt it sent alone, a short answer to it, then the prompt (each cover
  // prompt opens at most one such turn). The rest of the multi-turn wrappers stay made up.
  double own_conversation_prob = 0;
  // Stealth variants: requests per account, uniform in [min, max] (0: by rate and lifetime).
  int min_requests_per_account = 0;
  // What a stealth campaign's work queue holds: mixed | distill | cot | benchmark.
  std::string content = "mixed";
  // stealth-cot: share of items harvested as a plain question followed by "how did you get
  // that?" instead of one request that asks for the reasoning.
  double followup_prob = 0.3;
  // adaptive: accounts it may create in all (burned ones are replaced; 0: 50 x accounts).
  int max_accounts = 0;
  // study-group: accounts per group; a group's accounts ask the same items, each within
  // minutes of the others, the way a class or a team does.
  int group_size = 4;
};

struct Scenario {
  std::string name;
  std::string description;
  int64_t start_unix_s = 1717372800;     // 2024-06-03T00:00:00Z, a Monday
  double duration_hours = 24;
  OrganicParams organic;
  std::vector<CampaignParams> campaigns;

  int64_t start_ns() const { return start_unix_s * 1'000'000'000LL; }
  int64_t end_ns() const {
    return start_ns() + static_cast<int64_t>(duration_hours * 3600.0 * 1e9);
  }
};

// Parses a scenario from TOML text. Returns InvalidArgument on syntax errors, unknown
// variants or out-of-range values.
StatusOr<Scenario> ParseScenario(std::string_view toml_text);
// Reads a scenario file.
StatusOr<Scenario> LoadScenarioFile(const std::filesystem::path& path);
// Resolves NAME to <scenarios_dir>/NAME.toml unless NAME is already a path to a file.
StatusOr<Scenario> LoadScenario(std::string_view name_or_path,
                                const std::filesystem::path& scenarios_dir);

}  // namespace moat::traffic

// End-to-end detection test: the real `moat serve` binary (detection engine as the analysis
// filter) in front of the real moat-test-upstream, driven over HTTP by the traffic benchmark's
// provisioning and replay (src/traffic/http_replay.h).
//
// The population is generated here (no dataset needed): 30 organic accounts, each on its own
// topic with hand-written prompts, follow-up turns, one stable residential IP and its own client,
// and a 60-account sybil campaign that harvests chain-of-thought answers with the operator's three
// templated phrasings over generated word problems, from rotating addresses in three rented /24
// blocks, all with the same client. The two populations are interleaved in time. The gateway's
// verdicts are read from `x-moat-action` and checked against the labels; the admin API must show
// the campaign and explain a campaign account's risk.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test/integration/moat_harness.h"
#include "test/upstream/test_process.h"
#include "traffic/event_io.h"
#include "traffic/generator.h"
#include "traffic/http_replay.h"
#include "traffic/replay.h"
#include "datasets/prompt_corpus.h"
#include "traffic/scenario.h"

namespace moat::integration {
namespace {

namespace json = boost::json;
using moat::testing::HttpClient;
using moat::testing::TempDir;
using moat::testing::TestUpstream;
using traffic::SubjectLabel;

constexpr char kAdminToken[] = "detect-admin";
constexpr int kOrganicAccounts = 30;
constexpr int kCampaignAccounts = 60;
constexpr int kCampaignRequestsPerAccount = 8;

// ---- The organic population ------------------------------------------------------------------

struct Topic {
  std::vector<std::string> prompts;
};

// One topic per organic account: what a person actually asks about their own project or life.
const std::vector<Topic>& Topics() {
  static const std::vector<Topic> kTopics = {
      {{"My sourdough starter smells like nail polish remover, is it dead?",
        "how often should I feed a starter if I keep it in the fridge",
        "Why does my bread come out dense in the middle even though the crust is fine?",
        "can I use whole wheat flour for the levain or does it need to be white"}},
      {{"I'm planning a 5 day trip to Lisbon in October, what neighbourhoods are worth staying in?",
        "Is the Sintra day trip doable by train without a car?",
        "what's a good budget per day for food in lisbon, we like seafood",
        "Any tips for avoiding the tram 28 crowds?"}},
      {{"My React component re-renders every time the parent updates even with memo, why?",
        "useEffect runs twice in development, is that a bug in my code?",
        "How do I debounce a search input without installing lodash?",
        "what's the difference between useMemo and useCallback in plain words"}},
      {{"Tomato leaves turning yellow from the bottom up, what am I doing wrong",
        "When is it too late to plant garlic in zone 6?",
        "Do coffee grounds actually help blueberries or is that a myth?",
        "how deep should raised beds be for carrots"}},
      {{"Write a short toast for my sister's wedding, she met her husband rock climbing",
        "Make it a bit funnier but not embarrassing, our grandma will be there",
        "can you cut it down to about one minute when read out loud",
        "Give me a couple of alternative opening lines"}},
      {{"Our postgres query got slow after the table hit 40 million rows, where do I start?",
        "Is a partial index a good idea for a status column with mostly 'done' values?",
        "explain analyze shows a seq scan even though I have an index on created_at",
        "How often should autovacuum run on a table with heavy updates?"}},
      {{"I'm training for my first half marathon in 12 weeks, currently running 15 km a week",
        "My knee hurts on the outside after long runs, should I stop?",
        "What should I eat the morning of the race?",
        "is it ok to skip the long run one week if I'm travelling"}},
      {{"Help me write a polite email to my landlord about a leaking ceiling that hasn't been fixed in 3 weeks",
        "He replied that it's my responsibility, what are my rights in Ontario?",
        "Can you make the follow-up email firmer but still professional?"}},
      {{"What's a good first synth for someone who mostly makes lo-fi hip hop?",
        "How do I sidechain the pads to the kick in Ableton?",
        "my mixes sound muddy on car speakers but fine on headphones",
        "should I buy monitors or better headphones with 300 dollars"}},
      {{"My cat started peeing outside the litter box after we moved, how do I fix this?",
        "Is it normal for a 12 year old cat to sleep 18 hours a day?",
        "what human foods are actually dangerous for cats, I keep reading different lists"}},
      {{"I have 3 years as a nurse and want to move into health informatics, where do I start?",
        "Is a certificate worth it or should I just learn SQL on my own?",
        "Help me rewrite this line of my resume: 'responsible for charting and patient care'",
        "what questions should I ask at the end of an informatics interview"}},
      {{"Explain how a Roth IRA differs from a traditional IRA for someone in a low tax bracket",
        "I'm 29 with 8k saved, should I pay off my 6% car loan first or invest?",
        "What does expense ratio mean and why does everyone say to keep it low?"}},
      {{"Kubernetes pod keeps getting OOMKilled but the container only uses 300MB locally",
        "how do requests and limits interact with the JVM heap settings",
        "Is it better to set memory limit equal to request for a java service?",
        "our HPA scales up but never scales down, what should I check"}},
      {{"Ideas for a 7 year old's birthday party at home with 10 kids, budget is tight",
        "A treasure hunt sounds fun, can you write 6 rhyming clues for around the house?",
        "what snacks work if two of the kids have nut allergies"}},
      {{"I'm learning Spanish with Duolingo but can't understand native speakers at all",
        "when do you use por vs para, I always mix them up",
        "recommend some Spanish podcasts for intermediate learners, preferably from Mexico",
        "Correct my sentence: 'Ayer yo fui a la tienda y compré un pan muy rico para mi madre'"}},
      {{"What's the best way to season a carbon steel pan I just bought?",
        "I cooked tomatoes in it and now the seasoning looks patchy, did I ruin it?",
        "can I put it in the oven at 260C"}},
      {{"My python script that parses CSVs uses 6GB of RAM for a 500MB file, why?",
        "Would polars be faster than pandas for a groupby over 20 million rows?",
        "how do I read a csv in chunks and still compute a median per group",
        "Getting 'SettingWithCopyWarning' everywhere, what does it actually mean?"}},
      {{"I want to build a small bookshelf from pine, I only have a circular saw and a drill",
        "How do I keep the shelves from sagging over an 80cm span?",
        "what finish should I use if my kid will be using it, something non toxic",
        "Pocket holes or dowels for a beginner?"}},
      {{"Summarise the main arguments for and against a four day work week",
        "Are there any real trials with published results, like the UK one?",
        "how would this work for shift workers like nurses"}},
      {{"I have a job interview for a barista position tomorrow, what will they ask?",
        "How do I explain a 1 year gap on my CV because I was caring for my dad",
        "what should I wear to a cafe interview"}},
      {{"My Terraform plan wants to destroy and recreate the RDS instance after I changed the tags, why?",
        "How do I move a resource into a module without recreating it?",
        "what's the sane way to manage terraform state for 3 environments"}},
      {{"Recommend some sci-fi novels like The Expanse but with less politics",
        "I loved Project Hail Mary, what should I read next?",
        "Is the Culture series a good place to start with Iain Banks?",
        "any good audiobook narrators for sci-fi you'd recommend"}},
      {{"My 2014 Honda Civic makes a grinding noise when I turn left at low speed",
        "How much should replacing a CV axle cost at an independent shop?",
        "is it safe to drive 200 km on it until I can get it fixed"}},
      {{"Plan a week of vegetarian dinners for two adults, we don't like mushrooms",
        "Can you turn that into a shopping list grouped by supermarket aisle?",
        "swap the Thursday meal for something that takes under 20 minutes"}},
      {{"What's the difference between a heat pump and a mini split, our contractor used both words",
        "Is a heat pump worth it in Minnesota winters?",
        "how do I compare the SEER numbers on two quotes"}},
      {{"Help me understand this error: 'error[E0502]: cannot borrow `v` as mutable because it is also borrowed as immutable'",
        "How should I structure a Rust CLI with subcommands, clap derive or builder?",
        "what's the idiomatic way to return errors from main in rust"}},
      {{"I'm a new manager, one of my reports keeps missing deadlines, how do I bring it up?",
        "How do I run a good first one-on-one with someone who used to be my peer?",
        "Draft an agenda for a 30 minute team retro"}},
      {{"Best way to photograph the milky way with a Canon R6 and a 24mm f1.4?",
        "what ISO and shutter speed should I start with, there's a bit of light pollution",
        "How do I stack images in Sequator without getting star trails?"}},
      {{"My toddler refuses to eat anything but pasta, is this a phase?",
        "ideas for hiding vegetables in pasta sauce that a 3 year old won't notice",
        "How much milk should a 3 year old drink per day?"}},
      {{"Draft a short product description for handmade ceramic mugs for my Etsy shop",
        "Make it sound less generic, the glaze is a speckled oatmeal colour and they're dishwasher safe",
        "What keywords should I put in the Etsy tags for mugs?",
        "how do I price these if each one takes me about 2 hours including firing"}},
  };
  return kTopics;
}

// What people say after the first answer.
const std::array<std::string, 10> kFollowUps = {
    "thanks! can you make that shorter?",
    "Hmm, that didn't really work for me. Any other ideas?",
    "ok and what if I only have about an hour?",
    "Can you explain the second point a bit more?",
    "great, could you put that in a table",
    "wait, why is that? I always heard the opposite",
    "That makes sense. Is there anything I should avoid?",
    "perfect, thank you",
    "can you give me an example",
    "What would you do in my situation?"};

const std::array<std::string, 6> kOrganicClients = {
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "OpenAI/Python 1.30.1",
    "OpenAI/JS 4.47.1",
    "curl/8.5.0"};

// ---- The campaign ----------------------------------------------------------------------------

// The operator's three chain-of-thought elicitation wrappers.
std::string CotWrap(int phrasing, const std::string& question) {
  switch (phrasing % 3) {
    case 0: return "Solve step by step and show all your reasoning: " + question;
    case 1:
      return question +
             "\nThink step by step and show your complete chain of thought before the final answer.";
    default:
      return "Explain your reasoning process in full, every intermediate step, then answer. " +
             question;
  }
}

// A grade-school word problem from one of several shapes with random names and numbers.
std::string WordProblem(std::mt19937_64& rng) {
  static const std::array<std::string, 8> kNames = {"Maya", "Tom",  "Aisha", "Luis",
                                                    "Chen", "Nora", "Ibrahim", "Greta"};
  static const std::array<std::string, 6> kItems = {"apples", "stickers", "marbles",
                                                    "books",  "cupcakes", "pencils"};
  auto n = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const std::string a = kNames[n(0, 7)], b = kNames[n(0, 7)], item = kItems[n(0, 5)];
  const std::string x = std::to_string(n(3, 90)), y = std::to_string(n(2, 12)),
                    z = std::to_string(n(2, 9));
  switch (n(0, 7)) {
    case 0: return a + " has " + x + " " + item + " and buys " + y + " packs of " + z +
                   " more. How many " + item + " does " + a + " have now?";
    case 1: return "A train travels at " + x + " km per hour for " + y + " hours and then at " + z +
                   "0 km per hour for 2 hours. What is the total distance travelled?";
    case 2: return a + " earns $" + x + " a day and spends $" + y + " on lunch. After " + z +
                   " weeks of working 5 days a week, how much has " + a + " saved?";
    case 3: return "A rectangle has a perimeter of " + x + "2 cm and its length is " + y +
                   " cm more than its width. What is its area?";
    case 4: return a + " is " + y + " years older than " + b + ". In " + z + " years their ages will add up to " +
                   x + ". How old is " + b + " now?";
    case 5: return "A shop sells " + item + " at " + z + " for $" + y + ". " + a + " needs " + x +
                   " of them. How much will " + a + " pay?";
    case 6: return "A tank holds " + x + "0 litres. It leaks " + y + " litres per hour and is refilled with " +
                   z + " litres every 3 hours. How long until it is empty?";
    default: return "If " + z + " workers build " + y + " walls in " + x +
                    " days, how many days do " + y + " workers need to build " + z + " walls?";
  }
}

// ---- Stream construction ---------------------------------------------------------------------

struct Population {
  std::vector<SubjectLabel> labels;
  std::vector<detect::RequestEvent> events;  // sorted by time
  std::set<std::string> campaign_accounts, organic_accounts;
};

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kStart = 1717372800LL * kSecond;  // simulated; the gateway uses its own clock
constexpr int64_t kSpan = 4 * 3600 * kSecond;       // simulated span of the stream

std::string ChatBody(const std::string& model, const json::array& messages, int max_tokens,
                     double temperature) {
  json::object body{{"model", model}, {"messages", messages}};
  if (max_tokens > 0) body["max_tokens"] = max_tokens;
  if (temperature >= 0) body["temperature"] = temperature;
  return json::serialize(body);
}

detect::RequestEvent MakeEvent(int64_t t, const std::string& account, const std::string& ip,
                               const std::string& agent, std::string body) {
  detect::RequestEvent e;
  e.time_ns = t;
  e.account_id = account;
  e.client_ip = ip;
  e.user_agent = agent;
  e.headers = {{"user-agent", agent}};
  if (agent.rfind("OpenAI/", 0) == 0) {
    e.headers.emplace_back("x-stainless-lang", agent.find("Python") != std::string::npos ? "python" : "js");
  }
  e.endpoint = "/v1/chat/completions";
  e.body_json = std::move(body);
  return e;
}

Population BuildPopulation(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  Population p;
  const auto& topics = Topics();
  for (int i = 0; i < kOrganicAccounts; ++i) {
    const std::string account = "org-" + std::to_string(i);
    p.organic_accounts.insert(account);
    p.labels.push_back({account, "", false, "", "", "user", kStart, ""});
    // A stable home address in its own residential /24, one client, one model and sampling habit.
    const std::string ip = std::to_string(uniform(24, 98)) + "." + std::to_string(uniform(1, 254)) +
                           "." + std::to_string(uniform(1, 254)) + "." +
                           std::to_string(uniform(2, 254));
    const std::string agent = kOrganicClients[i % kOrganicClients.size()];
    const std::string model = i % 3 == 0 ? "gpt-4o" : "gpt-4o-mini";
    const double temperature = i % 4 == 0 ? 0.7 : -1;
    const Topic& topic = topics[i % topics.size()];
    // 3-4 sessions spread over the span; each opens with one of the topic's prompts and may
    // continue with a follow-up that carries the conversation so far.
    const int sessions = static_cast<int>(uniform(3, 4));
    for (int s = 0; s < sessions; ++s) {
      int64_t t = kStart + uniform(0, kSpan - 600 * kSecond);
      const std::string& opener = topic.prompts[(s + i) % topic.prompts.size()];
      json::array history{json::object{{"role", "user"}, {"content", opener}}};
      p.events.push_back(MakeEvent(t, account, ip, agent, ChatBody(model, history, 0, temperature)));
      const int follow_ups = static_cast<int>(uniform(0, 2));
      for (int f = 0; f < follow_ups; ++f) {
        t += uniform(20, 240) * kSecond;  // reading the answer, typing
        history.push_back(json::object{
            {"role", "assistant"},
            {"content", "Here are a few things to consider about that: first, it depends on "
                        "your situation; second, small changes often help; third, test and adjust."}});
        history.push_back(json::object{
            {"role", "user"}, {"content", kFollowUps[uniform(0, kFollowUps.size() - 1)]}});
        p.events.push_back(
            MakeEvent(t, account, ip, agent, ChatBody(model, history, 0, temperature)));
      }
    }
  }
  // The campaign starts a quarter into the span and runs to its end; every account sends its
  // requests at random times in that window through a random proxy of three rented /24 blocks.
  const std::array<std::string, 3> kProxyBlocks = {"185.220.101.", "45.133.172.", "104.244.77."};
  const std::string kCampaignClient = "python-requests/2.31.0";
  int phrasing = 0;
  for (int i = 0; i < kCampaignAccounts; ++i) {
    const std::string account = "syb-" + std::to_string(i);
    p.campaign_accounts.insert(account);
    const int64_t created = kStart + kSpan / 4 + uniform(0, kSpan / 4);
    p.labels.push_back({account, "", true, "cot-harvest", "camp-1", "sybil", created, ""});
    for (int r = 0; r < kCampaignRequestsPerAccount; ++r) {
      const int64_t t = created + uniform(0, kStart + kSpan - created);
      const std::string ip = kProxyBlocks[uniform(0, 2)] + std::to_string(uniform(2, 254));
      json::array messages{
          json::object{{"role", "user"}, {"content", CotWrap(phrasing++, WordProblem(rng))}}};
      p.events.push_back(
          MakeEvent(t, account, ip, kCampaignClient, ChatBody("gpt-4o", messages, 2048, -1)));
    }
  }
  std::stable_sort(p.events.begin(), p.events.end(),
                   [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
  return p;
}

Status WriteStream(const Population& p, const std::string& labels_path,
                   const std::string& events_path) {
  std::ofstream labels(labels_path), events(events_path);
  for (const auto& l : p.labels) labels << traffic::LabelToJson(l) << "\n";
  for (const auto& e : p.events) events << traffic::EventToJson(e) << "\n";
  labels.close();
  events.close();
  if (!labels || !events) return InternalError("cannot write the stream files");
  return Status::Ok();
}

std::string GatewayConfig(std::uint16_t upstream_port, bool bench_models = false) {
  std::string toml = R"toml(
[server]
listen = "127.0.0.1:0"
threads = 2
admin_token = "detect-admin"
trusted_proxies = ["127.0.0.1"]

[storage]
data_dir = "{data_dir}"

# High enough never to interfere: every verdict in this test comes from detection.
[limits.verified]
key_rpm = 0
[limits.enterprise]
key_rpm = 0

[[models]]
name = "gpt-4o-mini"
base_url = "http://127.0.0.1:{upstream_port}"
forward_headers = ["x-test-tokens"]

[[models]]
name = "gpt-4o"
base_url = "http://127.0.0.1:{upstream_port}"
forward_headers = ["x-test-tokens"]
)toml";
  if (bench_models) {  // the third model the traffic generator's organic clients ask for
    toml += R"toml(
[[models]]
name = "llama-3.1-70b-instruct"
base_url = "http://127.0.0.1:{upstream_port}"
forward_headers = ["x-test-tokens"]
)toml";
  }
  ReplaceAll(toml, "{upstream_port}", std::to_string(upstream_port));
  return toml;
}

struct AccountOutcome {
  std::vector<detect::Action> actions;  // in stream order
  std::vector<int> statuses;
  std::string last_reason;
  int restricted_without_header = 0;  // refusals not explained by x-moat-action
};

class DetectionIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override { StartGateway(false); }

  // `extra`: more TOML after the common configuration (a table the common one lacks).
  void StartGateway(bool bench_models, const std::string& extra = "") {
    ASSERT_TRUE(upstream_.Start({"--threads", "2"}).ok());
    ASSERT_TRUE(moat_.WriteConfig(GatewayConfig(upstream_.port(), bench_models) + extra).ok());
    Status started = moat_.Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    admin_ = std::make_unique<HttpClient>("127.0.0.1", moat_.port());
  }

  // GET on the admin API; the parsed object, or an empty one (with a test failure) on error.
  json::object AdminGet(const std::string& target) {
    auto res = admin_->Request("GET", target, {},
                               {{"Authorization", std::string("Bearer ") + kAdminToken}});
    EXPECT_TRUE(res.ok()) << target << ": " << res.status().ToString();
    if (!res.ok()) return {};
    EXPECT_EQ(res->status, 200) << target << ": " << res->body;
    return ParseObject(res->body);
  }

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(moat_.port()); }

  // Writes `pop` to `labels` and `events` and provisions its accounts through the admin API, as
  // `moat-bench traffic provision` does (with `tier` for every account when not empty).
  StatusOr<std::unordered_map<std::string, std::string>> ProvisionPopulation(const Population& pop,
                                                                            const std::string& labels,
                                                                            const std::string& events,
                                                                            const std::string& tier = "") {
    MOAT_RETURN_IF_ERROR(WriteStream(pop, labels, events));
    traffic::ProvisionOptions prov;
    prov.gateway_url = Url();
    prov.admin_token = kAdminToken;
    if (!tier.empty()) prov.tier = tier;
    return traffic::ProvisionAccounts(labels, prov);
  }

  TestUpstream upstream_;
  MoatInstance moat_;
  std::unique_ptr<HttpClient> admin_;
  TempDir dir_{"moat-detect-integ"};
};

TEST_F(DetectionIntegrationTest, CatchesCotHarvestingSybilsAndSparesOrganicUsers) {
  const Population pop = BuildPopulation(7);
  const std::string labels = dir_.File("labels.jsonl"), events = dir_.File("events.jsonl");
  // Provision through the admin API, exactly as `moat-bench traffic provision` does.
  auto keys = ProvisionPopulation(pop, labels, events, "verified");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), static_cast<size_t>(kOrganicAccounts + kCampaignAccounts));

  std::map<std::string, AccountOutcome> outcomes;
  traffic::HttpReplayOptions opts;
  opts.gateway_url = Url();
  opts.rate = 0;  // as fast as the gateway answers; order is what matters
  opts.timeout_s = 20;
  opts.extra_headers = {{"x-test-tokens", "24"}};  // short upstream answers for every request
  opts.on_answer = [&](const detect::RequestEvent& e, const traffic::GatewayAnswer& a) {
    AccountOutcome& o = outcomes[e.account_id];
    o.actions.push_back(a.action);
    o.statuses.push_back(a.status);
    if (!a.moat_reason.empty()) o.last_reason = a.moat_reason;
    o.restricted_without_header += a.action != detect::Action::kAllow && a.moat_action.empty();
  };
  auto report = traffic::ReplayOverHttp(events, labels, *keys, opts);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->events, static_cast<int64_t>(pop.events.size()));
  std::fputs(("\n" + std::to_string(pop.events.size()) + " requests in " +
              std::to_string(report->wall_seconds) + " s\n").c_str(), stderr);

  // Per-account outcome.
  int campaign_flagged = 0, organic_flagged = 0;
  int64_t campaign_after_first = 0, campaign_after_first_restricted = 0;
  int64_t requests_before_flag = 0;
  constexpr size_t kFirstFew = 2;  // each sybil's first requests carry too little evidence alone
  for (const auto& [account, o] : outcomes) {
    const auto first = std::find_if(o.actions.begin(), o.actions.end(),
                                    [](detect::Action a) { return a != detect::Action::kAllow; });
    const bool flagged = first != o.actions.end();
    for (int s : o.statuses) EXPECT_TRUE(s == 200 || s == 403 || s == 429) << account << " got " << s;
    // Every restriction is the detection verdict, not an auth or rate-limit refusal.
    EXPECT_EQ(o.restricted_without_header, 0) << account;
    if (pop.campaign_accounts.count(account)) {
      campaign_flagged += flagged;
      requests_before_flag += first - o.actions.begin();
      for (size_t i = kFirstFew; i < o.actions.size(); ++i) {
        ++campaign_after_first;
        campaign_after_first_restricted += o.actions[i] != detect::Action::kAllow;
      }
    } else {
      organic_flagged += flagged;
      if (flagged) {
        ADD_FAILURE() << "organic account " << account << " restricted ("
                      << o.last_reason << ") at request " << (first - o.actions.begin() + 1)
                      << " of " << o.actions.size();
      }
    }
  }
  std::fprintf(stderr,
               "campaign accounts restricted %d/%d, organic accounts restricted %d/%d, campaign "
               "requests after each account's first %zu restricted %lld/%lld, mean campaign "
               "requests per account before its first restriction %.2f\n",
               campaign_flagged, kCampaignAccounts, organic_flagged, kOrganicAccounts, kFirstFew,
               static_cast<long long>(campaign_after_first_restricted),
               static_cast<long long>(campaign_after_first),
               static_cast<double>(requests_before_flag) / kCampaignAccounts);
  for (const auto& v : report->variants) {
    std::fprintf(stderr, "scorer: %s recall %.3f leakage %.3f requests-to-detection %.1f\n",
                 v.variant.c_str(), v.recall, v.leakage, v.requests_to_detection);
  }
  EXPECT_EQ(static_cast<int>(outcomes.size()), kOrganicAccounts + kCampaignAccounts);
  // Most sybils: pooled evidence restricts one only once its own requests carry
  // policy.pool_min_evidence (a newcomer's first request or two say too little alone).
  EXPECT_GE(campaign_flagged, kCampaignAccounts * 7 / 10);
  // Pooled evidence restricts a sybil from its second request on (policy.min_requests_for_pool)
  // once the campaign's keys carry the pool budget: most of their later requests are refused.
  EXPECT_GT(campaign_after_first_restricted * 10, campaign_after_first * 5);
  EXPECT_LE(organic_flagged, 1);
  EXPECT_LE(report->organic.restricted_subjects, 1);

  // The admin API: gateway ids of the campaign's accounts, the campaign, and one account's risk.
  std::set<std::string> campaign_ids;
  std::string restricted_campaign_id;
  for (const auto& account : pop.campaign_accounts) {
    json::object a = AdminGet("/admin/accounts/" + traffic::GatewayAccountName(account));
    ASSERT_TRUE(a.contains("id")) << json::serialize(a);
    std::string id(a["id"].as_string());
    campaign_ids.insert(id);
    const auto& acts = outcomes[account].actions;
    if (restricted_campaign_id.empty() && !acts.empty() && acts.back() != detect::Action::kAllow) {
      restricted_campaign_id = id;
    }
  }
  json::object campaigns = AdminGet("/admin/campaigns");
  ASSERT_TRUE(campaigns.contains("data") && campaigns["data"].is_array())
      << json::serialize(campaigns);
  int64_t best_members = 0;
  size_t best_known = 0;
  for (const auto& c : campaigns["data"].as_array()) {
    const json::object& co = c.as_object();
    size_t known = 0;
    if (const auto* m = co.if_contains("sample_members"); m && m->is_array()) {
      for (const auto& id : m->as_array()) {
        known += id.is_string() && campaign_ids.count(std::string(id.as_string()));
      }
    }
    if (known > best_known) {
      best_known = known;
      best_members = co.at("members").to_number<int64_t>();
    }
  }
  std::fprintf(stderr, "admin: %zu campaigns; the campaign with most known sybils: %lld members, "
               "%zu sybils among its sample members\n",
               campaigns["data"].as_array().size(), static_cast<long long>(best_members),
               best_known);
  EXPECT_GE(best_known, 2u) << json::serialize(campaigns);
  EXPECT_GE(best_members, 5);

  ASSERT_FALSE(restricted_campaign_id.empty()) << "no campaign account ended restricted";
  json::object risk = AdminGet("/admin/accounts/" + restricted_campaign_id + "/risk");
  std::fprintf(stderr, "admin risk of %s: %s\n", restricted_campaign_id.c_str(),
               json::serialize(risk).c_str());
  ASSERT_TRUE(risk.contains("reasons") && risk["reasons"].is_array()) << json::serialize(risk);
  EXPECT_FALSE(risk["reasons"].as_array().empty()) << json::serialize(risk);
  EXPECT_TRUE(risk.contains("restricted") && risk["restricted"].as_bool()) << json::serialize(risk);
}

// The same chain-of-thought harvest sent five ways by five accounts: as string content, as
// content parts, to the legacy completions endpoint, and hidden under a plain user carrier in
// the system message or in a tool's output. The gateway answers all five, so detection must read
// all five: each account builds the same evidence (the hidden ones discounted).
TEST_F(DetectionIntegrationTest, AHarvestIsScoredWhateverShapeItsPromptsAreSentIn) {
  Population pop;
  for (const char* account : {"shape-string", "shape-parts", "shape-completions", "shape-system", "shape-tool"}) {
    SubjectLabel label{account, "", true, "cot-harvest", "camp-shape", "sybil", kStart, "verified"};
    pop.labels.push_back(label);
  }
  auto keys = ProvisionPopulation(pop, dir_.File("shape-labels.jsonl"), dir_.File("shape-events.jsonl"));
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), 5u);

  HttpClient client("127.0.0.1", moat_.port());
  std::mt19937_64 rng(11);
  constexpr int kRequests = 24;
  for (int i = 0; i < kRequests; ++i) {
    const std::string prompt = CotWrap(i, WordProblem(rng));
    const std::string as_string = json::serialize(json::object{
        {"model", "gpt-4o"}, {"messages", json::array{json::object{{"role", "user"}, {"content", prompt}}}}});
    const std::string as_parts = json::serialize(json::object{
        {"model", "gpt-4o"},
        {"messages", json::array{json::object{
                         {"role", "user"},
                         {"content", json::array{json::object{{"type", "text"}, {"text", prompt}}}}}}}});
    const std::string as_completion = json::serialize(json::object{{"model", "gpt-4o"}, {"prompt", prompt}});
    const std::string carrier = "Please answer it.";
    const std::string in_system = json::serialize(json::object{
        {"model", "gpt-4o"},
        {"messages", json::array{json::object{{"role", "system"}, {"content", prompt}},
                                 json::object{{"role", "user"}, {"content", carrier}}}}});
    const std::string in_tool = json::serialize(json::object{
        {"model", "gpt-4o"},
        {"messages", json::array{json::object{{"role", "user"}, {"content", carrier}},
                                 json::object{{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", prompt}}}}});
    const std::pair<const char*, std::pair<const char*, const std::string*>> sends[] = {
        {"shape-string", {"/v1/chat/completions", &as_string}},
        {"shape-parts", {"/v1/chat/completions", &as_parts}},
        {"shape-completions", {"/v1/completions", &as_completion}},
        {"shape-system", {"/v1/chat/completions", &in_system}},
        {"shape-tool", {"/v1/chat/completions", &in_tool}}};
    for (const auto& [account, what] : sends) {
      auto res = client.Request("POST", what.first, *what.second,
                                {{"Authorization", "Bearer " + keys->at(account)}, {"x-test-tokens", "16"}});
      ASSERT_TRUE(res.ok()) << res.status().ToString();
      EXPECT_EQ(res->status, 200) << account << ": " << res->body;
    }
  }
  auto evidence = [&](const char* account) {
    json::object risk = AdminGet("/admin/accounts/" + traffic::GatewayAccountName(account) + "/risk");
    EXPECT_TRUE(risk.contains("evidence")) << json::serialize(risk);
    return risk.contains("evidence") ? risk.at("evidence").to_number<double>() : 0.0;
  };
  const double plain = evidence("shape-string");
  EXPECT_GE(plain, 9.0);  // the harvest is plain to see as string content
  EXPECT_NEAR(evidence("shape-parts"), plain, 0.5);
  EXPECT_NEAR(evidence("shape-completions"), plain, 0.5);
  EXPECT_GE(evidence("shape-system"), 0.7 * plain);
  EXPECT_GE(evidence("shape-tool"), 0.7 * plain);
}

// ---- Stealth campaigns through the gateway --------------------------------------------------
//
// Campaign accounts that copy organic users in everything but content: each its own residential
// address, an official SDK client with its headers, no shared template or system prompt, a
// question asked once in a per-account voice; and a client that names a fresh `user` on every
// request. No key links them, so only the cohort test (newcomers whose content shifted against
// the established users' baseline) and the end-user churn can catch them. The gateway's clock
// is real, so the test compresses the engine's windows through [detection.settings].

constexpr int kStealthAccounts = 60;
constexpr int kStealthRequests = 5;
constexpr int kRotatingRequests = 40;

std::string StealthVoice(int account, const std::string& question) {
  static const std::array<std::string, 6> kOpeners = {"hey, ", "quick question: ", "", "ok so ",
                                                      "need help with this one. ", "hi! "};
  static const std::array<std::string, 5> kClosers = {"", " thanks", " any idea?", " ty", ""};
  return kOpeners[account % kOpeners.size()] + question + kClosers[account % kClosers.size()];
}

Population BuildStealthPopulation(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  Population p;
  const auto& topics = Topics();
  auto residential = [&] {
    return std::to_string(uniform(24, 98)) + "." + std::to_string(uniform(1, 254)) + "." +
           std::to_string(uniform(1, 254)) + "." + std::to_string(uniform(2, 254));
  };
  // Established organic users first (the baseline), then newcomers mixed with them.
  for (int i = 0; i < kOrganicAccounts; ++i) {
    const std::string account = "org-" + std::to_string(i);
    p.organic_accounts.insert(account);
    SubjectLabel l{account, "", false, "", "", "user", kStart, ""};
    l.tier = "unverified";
    p.labels.push_back(l);
    const std::string ip = residential();
    const std::string agent = kOrganicClients[i % kOrganicClients.size()];
    const Topic& topic = topics[i % topics.size()];
    for (int r = 0; r < 6; ++r) {
      const int64_t t = r < 3 ? kStart + uniform(0, kSpan / 4) : kStart + kSpan / 4 + uniform(0, 3 * kSpan / 4);
      json::array messages{json::object{{"role", "user"}, {"content", topic.prompts[r % topic.prompts.size()]}}};
      p.events.push_back(MakeEvent(t, account, ip, agent, ChatBody("gpt-4o-mini", messages, 0, -1)));
    }
  }
  for (int i = 0; i < kStealthAccounts; ++i) {
    const std::string account = "stl-" + std::to_string(i);
    p.campaign_accounts.insert(account);
    SubjectLabel l{account, "", true, "stealth-sybil", "camp-stealth", "stealth", kStart - 90 * 86400 * kSecond, ""};
    l.tier = "unverified";
    p.labels.push_back(l);
    const std::string ip = residential();
    const std::string agent = kOrganicClients[(i + 3) % 5];  // SDKs and browsers, like people
    const int64_t first = kStart + kSpan / 4 + uniform(0, kSpan / 2);
    for (int r = 0; r < kStealthRequests; ++r) {
      const int64_t t = first + r * uniform(60, 600) * kSecond;
      json::array messages{json::object{{"role", "user"}, {"content", StealthVoice(i, WordProblem(rng))}}};
      p.events.push_back(MakeEvent(t, account, ip, agent, ChatBody("gpt-4o-mini", messages, 0, -1)));
    }
  }
  const std::string rotator = "rot-0";
  p.campaign_accounts.insert(rotator);
  SubjectLabel rl{rotator, "", true, "rotating-user", "camp-rot", "stealth", kStart - 30 * 86400 * kSecond, ""};
  rl.tier = "unverified";
  p.labels.push_back(rl);
  for (int r = 0; r < kRotatingRequests; ++r) {
    const int64_t t = kStart + kSpan / 4 + r * (3 * kSpan / 4) / kRotatingRequests;
    json::array messages{json::object{{"role", "user"}, {"content", WordProblem(rng)}}};
    json::object body{{"model", "gpt-4o-mini"}, {"messages", messages}, {"user", "u-" + std::to_string(uniform(1, 1LL << 40))}};
    detect::RequestEvent e = MakeEvent(t, rotator, "73.12.40.9", "OpenAI/Python 1.30.1", json::serialize(body));
    e.end_user = body["user"].as_string().c_str();
    p.events.push_back(std::move(e));
  }
  std::stable_sort(p.events.begin(), p.events.end(),
                   [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
  return p;
}

class StealthIntegrationTest : public DetectionIntegrationTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(upstream_.Start({"--threads", "2"}).ok());
    // The stream lasts seconds on the gateway's real clock: windows and ages shrink with it.
    std::string toml = GatewayConfig(upstream_.port()) + R"toml(
[detection.settings]
"engine.established_hours" = 0.00005
"cohort.window_hours" = 1.0
"cohort.min_members" = 10
"cohort.min_cohort_features" = 2000
"baseline.min_feature_requests" = 30
"end_users.churn_min_hours" = 0.0001
"cohort.machine_gap_s" = 0.0005
"cohort.young_hours" = 0.0003
"tier.unverified.pool_budget" = 3000
)toml";
    ReplaceAll(toml, "[limits.verified]", "[limits.unverified]\nkey_rpm = 0\n\n[limits.verified]");
    ASSERT_TRUE(moat_.WriteConfig(toml).ok());
    Status started = moat_.Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    admin_ = std::make_unique<HttpClient>("127.0.0.1", moat_.port());
  }
};

TEST_F(StealthIntegrationTest, CatchesACohortThatLooksOrganicAndAClientRotatingEndUsers) {
  const Population pop = BuildStealthPopulation(11);
  const std::string labels = dir_.File("labels.jsonl"), events = dir_.File("events.jsonl");
  auto keys = ProvisionPopulation(pop, labels, events);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();

  // The established users' first quarter goes first; then, once they are no longer newcomers
  // (cohort.young_hours), the rest of the stream with the campaign.
  Population warmup, main;
  for (const auto& e : pop.events) {
    (e.time_ns < kStart + kSpan / 4 && pop.organic_accounts.count(e.account_id) ? warmup : main).events.push_back(e);
  }
  warmup.labels = main.labels = pop.labels;
  const std::string warm_events = dir_.File("warmup.jsonl"), main_events = dir_.File("main.jsonl");
  ASSERT_TRUE(WriteStream(warmup, labels, warm_events).ok());
  ASSERT_TRUE(WriteStream(main, labels, main_events).ok());

  std::map<std::string, AccountOutcome> outcomes;
  int with_category = 0, with_evidence_header = 0, refused = 0;
  traffic::HttpReplayOptions opts;
  opts.gateway_url = Url();
  opts.rate = 200;
  opts.timeout_s = 20;
  opts.extra_headers = {{"x-test-tokens", "24"}};
  opts.on_answer = [&](const detect::RequestEvent& e, const traffic::GatewayAnswer& a) {
    AccountOutcome& o = outcomes[e.account_id];
    o.actions.push_back(a.action);
    o.statuses.push_back(a.status);
    if (a.action != detect::Action::kAllow) {
      ++refused;
      with_category += !a.moat_category.empty() && a.moat_reference.rfind("ref_", 0) == 0;
      with_evidence_header += !a.moat_reason.empty();
    }
  };
  ASSERT_TRUE(traffic::ReplayOverHttp(warm_events, labels, *keys, opts).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto report = traffic::ReplayOverHttp(main_events, labels, *keys, opts);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  int stealth_flagged = 0, organic_flagged = 0, rotating_restricted = 0;
  for (const auto& [account, o] : outcomes) {
    const bool flagged = std::any_of(o.actions.begin(), o.actions.end(),
                                     [](detect::Action a) { return a != detect::Action::kAllow; });
    if (account == "rot-0") {
      for (auto a : o.actions) rotating_restricted += a != detect::Action::kAllow;
    } else if (pop.campaign_accounts.count(account)) {
      stealth_flagged += flagged;
    } else {
      organic_flagged += flagged;
      if (flagged) ADD_FAILURE() << "organic account " << account << " restricted";
    }
  }
  std::fprintf(stderr, "stealth accounts restricted %d/%d, organic %d/%d, rotating client %d/%d requests refused\n",
               stealth_flagged, kStealthAccounts, organic_flagged, kOrganicAccounts, rotating_restricted,
               kRotatingRequests);
  EXPECT_GE(stealth_flagged, kStealthAccounts * 7 / 10);
  EXPECT_LE(organic_flagged, 1);
  EXPECT_GE(rotating_restricted, kRotatingRequests / 4);
  // Clients learn the action, a category and a reference: never the evidence (unverified tier).
  EXPECT_GT(refused, 0);
  EXPECT_EQ(with_category, refused);
  EXPECT_EQ(with_evidence_header, 0);
  // The admin API shows the shifted cohort.
  json::object campaigns = AdminGet("/admin/campaigns");
  bool shifted = false;
  if (const auto* c = campaigns.if_contains("cohorts"); c && c->is_array()) {
    for (const auto& co : c->as_array()) shifted = shifted || co.as_object().at("shifted").as_bool();
  }
  EXPECT_TRUE(shifted) << json::serialize(campaigns);
  if (stealth_flagged < kStealthAccounts * 7 / 10) {  // say why, for whoever reads the failure
    std::fprintf(stderr, "cohorts: %s\n", json::serialize(campaigns["cohorts"]).c_str());
    int shown = 0;
    for (const auto& account : pop.campaign_accounts) {
      const auto& acts = outcomes[account].actions;
      if (account == "rot-0" || std::any_of(acts.begin(), acts.end(), [](auto a) { return a != detect::Action::kAllow; })) continue;
      json::object a = AdminGet("/admin/accounts/" + traffic::GatewayAccountName(account));
      json::object risk = AdminGet("/admin/accounts/" + std::string(a["id"].as_string()) + "/risk");
      std::fprintf(stderr, "missed %s: %s\n", account.c_str(), json::serialize(risk).c_str());
      if (++shown == 3) break;
    }
  }
}

// Recorded traffic replayed with its own clock: a gateway that lists the replaying host in
// [detection] replay_clock_peers judges each request at its `x-moat-replay-time`, so detection
// sees the recording's hours instead of the replay's compressed seconds. Any other peer's header
// is ignored, and a malformed one from a listed peer is refused in the OpenAI error format.
class ReplayClockTest : public DetectionIntegrationTest {
 protected:
  void SetUp() override {}

  void StartWithReplayPeers(const std::string& peers) {
    StartGateway(false, "\n[detection]\nreplay_clock_peers = " + peers + "\n");
  }

  // One recorded account with requests at `times`, provisioned; returns its gateway key.
  std::string Provision(const std::vector<int64_t>& times, Population* pop) {
    SubjectLabel label{"rec-0", "", false, "", "", "user", kStart, ""};
    label.tier = "verified";
    pop->labels.push_back(label);
    pop->organic_accounts.insert("rec-0");
    for (int64_t t : times) {
      json::array messages{json::object{{"role", "user"}, {"content", "how deep should raised beds be for carrots"}}};
      pop->events.push_back(MakeEvent(t, "rec-0", "81.2.69.160", "OpenAI/Python 1.30.1",
                                      ChatBody("gpt-4o-mini", messages, 0, -1)));
    }
    auto keys = ProvisionPopulation(*pop, dir_.File("labels.jsonl"), dir_.File("events.jsonl"));
    EXPECT_TRUE(keys.ok()) << keys.status().ToString();
    return keys.ok() ? keys->begin()->second : "";
  }

  // What the engine recorded of the account (admin risk view).
  std::pair<int64_t, int64_t> SeenRange() {
    json::object risk = AdminGet("/admin/accounts/" + traffic::GatewayAccountName("rec-0") + "/risk");
    if (!risk.contains("first_seen_ns")) return {0, 0};
    return {risk.at("first_seen_ns").to_number<int64_t>(), risk.at("last_seen_ns").to_number<int64_t>()};
  }
};

TEST_F(ReplayClockTest, AListedPeerSetsDetectionsClockAndABadValueIsRefused) {
  StartWithReplayPeers(R"(["127.0.0.1"])");
  Population pop;
  const int64_t second = kStart + 2 * 3600 * kSecond;
  const std::string key = Provision({kStart, second}, &pop);
  ASSERT_FALSE(key.empty());

  // The replay path of `moat-bench traffic replay --gateway --replay-clock`.
  traffic::HttpReplayOptions opts;
  opts.gateway_url = Url();
  opts.rate = 0;
  opts.timeout_s = 20;
  opts.replay_clock = true;
  opts.extra_headers = {{"x-test-tokens", "8"}};
  int ok = 0;
  opts.on_answer = [&](const detect::RequestEvent&, const traffic::GatewayAnswer& a) { ok += a.status == 200; };
  auto report = traffic::ReplayOverHttp(dir_.File("events.jsonl"), dir_.File("labels.jsonl"),
                                        {{"rec-0", key}}, opts);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(SeenRange(), std::make_pair(kStart, second));

  // Malformed values from a listed peer: 400 in the OpenAI error format, nothing recorded.
  HttpClient client("127.0.0.1", moat_.port());
  const std::string body = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})";
  for (const char* bad : {"soon", "-5", "0", "1.5e18", "99999999999999999999", ""}) {
    auto res = client.Request("POST", "/v1/chat/completions", body,
                              {{"Authorization", "Bearer " + key}, {"x-moat-replay-time", std::string(bad)}});
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 400) << "'" << bad << "': " << res->body;
    json::object err = ParseObject(res->body);
    ASSERT_TRUE(err.contains("error")) << res->body;
    EXPECT_EQ(err.at("error").at("code").as_string(), "invalid_replay_time") << res->body;
    EXPECT_EQ(err.at("error").at("type").as_string(), "invalid_request_error") << res->body;
  }
  EXPECT_EQ(SeenRange(), std::make_pair(kStart, second));
}

TEST_F(ReplayClockTest, AnUnlistedPeersHeaderIsIgnored) {
  StartWithReplayPeers(R"(["192.0.2.7"])");
  Population pop;
  const std::string key = Provision({kStart}, &pop);
  ASSERT_FALSE(key.empty());
  const int64_t before = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
  HttpClient client("127.0.0.1", moat_.port());
  const std::string body = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})";
  for (const std::string& value : {std::to_string(kStart), std::string("not a time")}) {
    auto res = client.Request("POST", "/v1/chat/completions", body,
                              {{"Authorization", "Bearer " + key}, {"x-moat-replay-time", value},
                               {"x-test-tokens", "8"}});
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 200) << res->body;
  }
  const int64_t after = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
  const auto [first, last] = SeenRange();
  EXPECT_GE(first, before);  // the gateway's own clock
  EXPECT_LE(last, after);
}

// The benchmark's `smoke` scenario (generated from the shared datasets) provisioned and replayed
// over HTTP, as `moat-bench traffic provision` + `replay --gateway --replay-clock` do, into a
// gateway that believes the bench host's clock: every replayed request is answered, and the
// gateway's verdicts score exactly as the in-process engine's on the same events (the requests
// go one at a time, so the order is the file's).
class SmokeReplayTest : public DetectionIntegrationTest {
 protected:
  void SetUp() override {}
};

TEST_F(SmokeReplayTest, SmokeScenarioReplaysOverHttp) {
  namespace fs = std::filesystem;
  const char* source = std::getenv("MOAT_SOURCE_DIR");
  const fs::path src = source ? fs::path(source) : fs::current_path();
  const char* env = std::getenv("MOAT_DATASETS");
  const fs::path data = env ? fs::path(env) : src / ".." / "shared" / "datasets";
  if (!fs::exists(data / "MANIFEST.json")) {
    GTEST_SKIP() << "no datasets at " << data
                 << " (expected ../shared/datasets beside the clone; set MOAT_DATASETS)";
  }
  // The generator's accounts include unverified ones (a tier without limits would be refused).
  StartGateway(true, "\n[limits.unverified]\nkey_rpm = 0\n\n[detection]\nreplay_clock_peers = [\"127.0.0.1\"]\n");
  auto scenario = traffic::LoadScenario("smoke", src / "scenarios");
  ASSERT_TRUE(scenario.ok()) << scenario.status().ToString();
  auto corpus = datasets::PromptCorpus::Load(data);
  ASSERT_TRUE(corpus.ok()) << corpus.status().ToString();
  const std::string out = dir_.File("smoke");
  {
    traffic::JsonlTrafficWriter writer(out);
    ASSERT_TRUE(writer.status().ok()) << writer.status().ToString();
    traffic::TrafficGenerator gen(*corpus, *scenario, 1);
    ASSERT_TRUE(gen.Run(writer).ok());
    ASSERT_TRUE(writer.Close().ok());
  }
  traffic::ProvisionOptions prov;
  prov.gateway_url = Url();
  prov.admin_token = kAdminToken;
  auto keys = traffic::ProvisionAccounts(out + "/labels.jsonl", prov);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  const std::string keys_path = dir_.File("keys.tsv");
  ASSERT_TRUE(traffic::WriteKeysFile(keys_path, *keys).ok());
  auto loaded = traffic::LoadKeysFile(keys_path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ASSERT_EQ(*loaded, *keys);

  constexpr int64_t kMaxEvents = 1500;  // the head of the stream keeps the test short
  traffic::HttpReplayOptions opts;
  opts.gateway_url = Url();
  opts.rate = 0;
  opts.max_events = kMaxEvents;
  opts.timeout_s = 20;
  opts.replay_clock = true;
  opts.extra_headers = {{"x-test-tokens", "8"}};
  int64_t answered = 0;
  std::map<int, int64_t> statuses;
  std::vector<detect::Action> gateway_actions;
  opts.on_answer = [&](const detect::RequestEvent&, const traffic::GatewayAnswer& a) {
    ++answered;
    ++statuses[a.status];
    gateway_actions.push_back(a.action);
  };
  auto report = traffic::ReplayOverHttp(out + "/events.jsonl", out + "/labels.jsonl", *loaded, opts);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::string codes;
  for (const auto& [c, n] : statuses) codes += " " + std::to_string(c) + ":" + std::to_string(n);
  std::fprintf(stderr, "smoke over HTTP: %lld answered in %.2f s; statuses%s\n",
               static_cast<long long>(answered), report->wall_seconds, codes.c_str());
  EXPECT_EQ(answered, kMaxEvents);
  EXPECT_EQ(report->events, kMaxEvents);
  for (const auto& [c, n] : statuses) EXPECT_TRUE(c == 200 || c == 403 || c == 429) << c << " x" << n;

  // The same events in-process, on their own clock, under the gateway's names for the accounts
  // ("acct_" + random hex): the engine's approximate per-account structures hash account ids, so
  // under other names a verdict near a budget can go the other way (replayed in-process under
  // 100 random renamings, this head's benchmark-sweep leakage moved in 4: 2.4-2.7 % against
  // 2.5 %).
  std::map<std::string, std::string> gateway_ids;  // gateway account name -> id
  json::object accounts = AdminGet("/admin/accounts");
  ASSERT_TRUE(accounts.contains("data") && accounts["data"].is_array());
  for (const json::value& a : accounts["data"].as_array()) {
    gateway_ids[std::string(a.at("name").as_string())] = std::string(a.at("id").as_string());
  }
  auto gateway_id = [&](const std::string& account) {
    auto it = gateway_ids.find(traffic::GatewayAccountName(account));
    EXPECT_NE(it, gateway_ids.end()) << account;
    return it == gateway_ids.end() ? account : it->second;
  };
  const std::string head = dir_.File("head.jsonl");
  const std::string head_labels = dir_.File("head-labels.jsonl");
  {
    std::ifstream in(out + "/events.jsonl");
    std::ofstream copy(head);
    std::string line;
    for (int64_t n = 0; n < kMaxEvents && std::getline(in, line); ++n) {
      auto e = traffic::EventFromJson(line);
      ASSERT_TRUE(e.ok()) << e.status().ToString();
      e->account_id = gateway_id(e->account_id);
      copy << traffic::EventToJson(*e) << "\n";
    }
    std::ifstream labels_in(out + "/labels.jsonl");
    std::ofstream labels_copy(head_labels);
    while (std::getline(labels_in, line)) {
      auto l = traffic::LabelFromJson(line);
      ASSERT_TRUE(l.ok()) << l.status().ToString();
      l->account = gateway_id(l->account);
      labels_copy << traffic::LabelToJson(*l) << "\n";
    }
  }
  auto engine = traffic::MakeEngine("moat", traffic::EngineOptions{});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  // The gateway judges what the engine judges in-process, request by request.
  std::vector<std::string> differ;
  size_t n = 0;
  auto compare = [&](const detect::RequestEvent& e, const detect::Verdict& v) {
    if (n < gateway_actions.size() && gateway_actions[n] != v.action) {
      differ.push_back("#" + std::to_string(n) + " " + e.account_id + " user '" + e.end_user + "': gateway " +
                       std::string(ToString(gateway_actions[n])) + ", in-process " + std::string(ToString(v.action)));
    }
    ++n;
  };
  auto local = traffic::ReplayFilesInProcess(head, head_labels, **engine, "moat", 1, nullptr, compare);
  ASSERT_TRUE(local.ok()) << local.status().ToString();
  ASSERT_EQ(local->variants.size(), report->variants.size());
  EXPECT_EQ(n, gateway_actions.size());
  std::string named;
  for (const auto& d : differ) named += "\n  " + d;
  EXPECT_TRUE(differ.empty()) << "requests judged differently:" << named;
  int64_t restricted = 0;
  for (size_t i = 0; i < local->variants.size(); ++i) {
    EXPECT_EQ(report->variants[i].variant, local->variants[i].variant);
    EXPECT_EQ(report->variants[i].flagged, local->variants[i].flagged) << local->variants[i].variant;
    EXPECT_EQ(report->variants[i].leaked, local->variants[i].leaked) << local->variants[i].variant;
    restricted += local->variants[i].flagged;
  }
  EXPECT_EQ(report->organic.restricted_requests, local->organic.restricted_requests);
  EXPECT_GT(restricted, 0);  // the head of the stream already restricts campaign subjects
}

}  // namespace
}  // namespace moat::integration

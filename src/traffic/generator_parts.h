#pragma once
// The building blocks of the traffic generator, shared by its parts: identities and networks,
// diurnal pacing, prompt pools, request bodies, and the Actor / Context protocol every
// generated client follows. Internal to src/traffic (generator.cc, stealth_campaigns.cc,
// organic_traps.cc); not a public interface.

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "traffic/generator.h"
#include "traffic/rng.h"

namespace moat::traffic::gen {

namespace json = boost::json;
using detect::RequestEvent;
using HeaderPairs = std::vector<std::pair<std::string, std::string>>;

constexpr int64_t kSecond = 1'000'000'000LL;
constexpr int64_t kHour = 3600 * kSecond;
constexpr int64_t kDay = 24 * kHour;
constexpr std::string_view kEndpoint = "/v1/chat/completions";
constexpr std::string_view kJailbreakSlot = "[INSERT PROMPT HERE]";

inline int64_t Seconds(double s) { return static_cast<int64_t>(s * 1e9); }

// Opaque identifiers: nothing in an id reveals what generated it.
inline std::string OpaqueId(std::string_view prefix, uint64_t seed, uint64_t a, uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*s%012llx", static_cast<int>(prefix.size()), prefix.data(),
                static_cast<unsigned long long>(Mix64(seed ^ Mix64(a ^ Mix64(b))) >> 16));
  return buf;
}

// ---- Network and client fingerprints -------------------------------------------------------

constexpr std::array<int, 16> kResidentialOctets = {24, 47, 67, 68, 71, 73, 75, 76,
                                                    86, 90, 98, 99, 108, 174, 181, 189};
constexpr std::array<int, 14> kDatacenterOctets = {3,   13,  18,  34,  35,  44,  52,
                                                   54,  104, 138, 159, 165, 167, 185};

inline std::string Ip(int a, int b, int c, int d) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%d.%d.%d.%d", a, b, c, d);
  return buf;
}
inline std::string ResidentialIp(Rng& r) {
  return Ip(kResidentialOctets[r.Below(kResidentialOctets.size())], int(r.Below(256)),
            int(r.Below(256)), 1 + int(r.Below(254)));
}
inline std::string MobileIp(Rng& r) {
  return Ip(172, 56 + int(r.Below(4)), int(r.Below(256)), 1 + int(r.Below(254)));
}
inline std::string DatacenterIp(Rng& r) {
  return Ip(kDatacenterOctets[r.Below(kDatacenterOctets.size())], int(r.Below(256)),
            int(r.Below(256)), 1 + int(r.Below(254)));
}

// A proxy pool: datacenter proxies come in rented /24 blocks, residential ones are scattered.
inline std::vector<std::string> ProxyPool(Rng& r, int size, std::string_view kind) {
  std::vector<std::string> pool;
  std::vector<std::array<int, 3>> blocks;
  for (int i = 0; i < std::max(1, size / 40); ++i) {
    blocks.push_back({kDatacenterOctets[r.Below(kDatacenterOctets.size())], int(r.Below(256)),
                      int(r.Below(256))});
  }
  for (int i = 0; i < size; ++i) {
    bool dc = kind == "datacenter" || (kind == "mixed" && r.Bernoulli(0.5));
    if (dc) {
      const auto& b = blocks[r.Below(blocks.size())];
      pool.push_back(Ip(b[0], b[1], b[2], 1 + int(r.Below(254))));
    } else {
      pool.push_back(ResidentialIp(r));
    }
  }
  return pool;
}

constexpr std::array<std::string_view, 10> kOrganicAgents = {
    "OpenAI/Python 1.30.1", "OpenAI/Python 1.35.3", "OpenAI/NodeJS/4.47.1",
    "OpenAI/NodeJS/4.52.0", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
                            "(KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "LangChain/0.2.1 OpenAI/Python 1.30.1", "curl/8.5.0", "Raycast/1.74.1"};
constexpr std::array<std::string_view, 4> kBotAgents = {
    "python-requests/2.31.0", "OpenAI/Python 1.30.1", "aiohttp/3.9.5", "python-httpx/0.27.0"};

// ---- Diurnal pacing -----------------------------------------------------------------------

// Relative activity of a human by local hour (peak 1.0 in the afternoon).
constexpr std::array<double, 24> kHumanDiurnal = {0.10, 0.06, 0.04, 0.03, 0.03, 0.05,
                                                  0.12, 0.30, 0.55, 0.80, 0.90, 0.95,
                                                  0.85, 0.90, 1.00, 0.95, 0.90, 0.80,
                                                  0.65, 0.60, 0.55, 0.45, 0.30, 0.18};
// Relative activity of a company's developer tool (weekday office hours).
constexpr std::array<double, 24> kOfficeDiurnal = {0.05, 0.04, 0.03, 0.03, 0.03, 0.05,
                                                   0.10, 0.35, 0.80, 1.00, 1.00, 0.95,
                                                   0.70, 0.95, 1.00, 1.00, 0.90, 0.60,
                                                   0.30, 0.15, 0.10, 0.08, 0.06, 0.05};

inline int LocalHour(int64_t t_ns, int tz_hours) {
  int64_t h = (t_ns / kHour + tz_hours) % 24;
  return static_cast<int>(h < 0 ? h + 24 : h);
}
inline bool IsWeekend(int64_t t_ns, int tz_hours) {
  int64_t day = (t_ns + tz_hours * kHour) / kDay;  // 1970-01-01 was a Thursday
  int wd = static_cast<int>((day + 3) % 7);        // 0 = Monday
  return wd >= 5;
}

// Next event of a non-homogeneous Poisson process by thinning.
inline int64_t NextDiurnal(Rng& r, int64_t t, double events_per_day, const std::array<double, 24>& curve,
                    int tz, double weekend_factor = 1.0) {
  double mean_gap_s = 86400.0 / std::max(1e-6, events_per_day) * 0.45;  // 0.45: mean of curve
  for (int i = 0; i < 100000; ++i) {
    t += Seconds(r.Exponential(mean_gap_s));
    double p = curve[LocalHour(t, tz)] * (IsWeekend(t, tz) ? weekend_factor : 1.0);
    if (r.Uniform() < p) return t;
  }
  return t;
}

// ---- Prompt pools ---------------------------------------------------------------------------

struct Pools {
  std::vector<const std::string*> organic, contrast, code, documents;
  std::vector<std::vector<const std::string*>> organic_by_set;
  // Campaign-role prompts per dataset, in the data's own order (a dataset sorted by subject
  // gives topic windows).
  std::vector<std::vector<const std::string*>> cot_by_set, benchmark_by_set, distill_by_set;
  std::vector<const Conversation*> conversations;
  std::vector<const std::string*> distill, cot, benchmark;
  std::vector<const std::string*> jb_templates, jb_requests, jb_other;

  void Build(const PromptCorpus& c) {
    auto add = [](std::vector<const std::string*>& v, std::string_view role,
                  const PromptCorpus& c) {
      for (const auto* s : c.SetsOf(role)) {
        for (const auto& p : s->prompts) v.push_back(&p);
      }
    };
    add(organic, "organic", c);
    add(contrast, "contrast", c);
    add(distill, "distill", c);
    add(cot, "cot", c);
    add(benchmark, "benchmark", c);
    auto by_set = [](std::vector<std::vector<const std::string*>>& v, std::string_view role,
                     const PromptCorpus& c) {
      for (const auto* s : c.SetsOf(role)) {
        if (s->prompts.empty()) continue;
        v.emplace_back();
        for (const auto& p : s->prompts) v.back().push_back(&p);
      }
    };
    by_set(cot_by_set, "cot", c);
    by_set(benchmark_by_set, "benchmark", c);
    by_set(distill_by_set, "distill", c);
    for (const auto* s : c.SetsOf("organic")) {
      organic_by_set.emplace_back();
      for (const auto& p : s->prompts) organic_by_set.back().push_back(&p);
      for (const auto& conv : s->conversations) {
        conversations.push_back(&conv);
        for (const auto& t : conv) {
          if (!t.from_user && t.text.size() > 600) documents.push_back(&t.text);
        }
      }
    }
    for (const auto* p : organic) {
      const std::string& s = *p;
      if (s.find("```") != std::string::npos || s.find("code") != std::string::npos ||
          s.find("function") != std::string::npos || s.find("Python") != std::string::npos ||
          s.find("SQL") != std::string::npos || s.find("JavaScript") != std::string::npos) {
        code.push_back(p);
      }
      if (s.size() > 600) documents.push_back(p);
    }
    if (code.empty()) code = organic;
    if (documents.empty()) documents = organic;
    for (const auto* s : c.SetsOf("jailbreak")) {
      for (const auto& p : s->prompts) {
        if (p.find(kJailbreakSlot) != std::string::npos) {
          jb_templates.push_back(&p);
        } else if (p.size() < 300) {
          jb_requests.push_back(&p);
        } else {
          jb_other.push_back(&p);
        }
      }
    }
  }
};

inline const std::string& Pick(Rng& r, const std::vector<const std::string*>& v) {
  return *v[r.Below(v.size())];
}

// ---- Request bodies -------------------------------------------------------------------------

// One chat message for ChatBody. It holds views, not copies: what they point at must outlive
// the ChatBody call.
struct Message {
  std::string_view role;
  std::string_view content;
};

struct SamplingParams {
  std::string_view model = "gpt-4o-mini";
  double temperature = -1;  // < 0: omitted
  int max_tokens = 0;       // 0: omitted
  bool stream = false;
  bool logprobs = false;
  std::string_view reasoning_effort;  // "" omitted
};

inline std::string ChatBody(const std::vector<Message>& messages, const SamplingParams& p,
                     std::string_view user) {
  json::object body;
  body["model"] = p.model;
  json::array msgs;
  msgs.reserve(messages.size());
  for (const auto& m : messages) msgs.push_back(json::object{{"role", m.role}, {"content", m.content}});
  body["messages"] = std::move(msgs);
  if (p.temperature >= 0) body["temperature"] = p.temperature;
  if (p.max_tokens > 0) body["max_tokens"] = p.max_tokens;
  if (p.stream) body["stream"] = true;
  if (p.logprobs) {
    body["logprobs"] = true;
    body["top_logprobs"] = 5;
  }
  if (!p.reasoning_effort.empty()) body["reasoning_effort"] = p.reasoning_effort;
  if (!user.empty()) body["user"] = user;
  return json::serialize(body);
}

inline SamplingParams OrganicSampling(Rng& r) {
  static constexpr std::array<std::string_view, 3> kModels = {"gpt-4o-mini", "gpt-4o",
                                                              "llama-3.1-70b-instruct"};
  static constexpr std::array<double, 5> kTemps = {-1, -1, 0.2, 0.7, 1.0};
  static constexpr std::array<int, 4> kMax = {0, 0, 512, 1024};
  SamplingParams p;
  p.model = kModels[r.Below(kModels.size())];
  p.temperature = kTemps[r.Below(kTemps.size())];
  p.max_tokens = kMax[r.Below(kMax.size())];
  p.stream = r.Bernoulli(0.5);
  return p;
}

// ---- The actors -----------------------------------------------------------------------------

struct Context;

// Identity of a client as the gateway sees it.
struct ClientIdentity {
  std::string account, key, end_user;
  std::vector<std::string> ips;
  std::string_view agent;
  HeaderPairs sdk_headers;      // what the client library sends besides its user agent
  std::string_view tier;        // account tier; "" unknown
  std::string_view system_prompt;  // the client application's own system prompt, "" none
};

inline ClientIdentity Identity(std::string account, std::string key, std::string end_user,
                               std::vector<std::string> ips, std::string_view agent) {
  ClientIdentity id;
  id.account = std::move(account);
  id.key = std::move(key);
  id.end_user = std::move(end_user);
  id.ips = std::move(ips);
  id.agent = agent;
  return id;
}

// Something that emits requests over time: an account, an end user, or a spawner of accounts.
class Actor {
 public:
  virtual ~Actor() = default;
  // Acts at next_ns (emits one event, or spawns), then advances next_ns. Returns false once
  // the actor is finished.
  virtual bool Step(Context& ctx) = 0;
  // True for actors that own state other actors point to (a campaign's spawner): the
  // scheduler keeps them alive until the end of the run.
  virtual bool owns_shared_state() const { return false; }
  int64_t next_ns = 0;
  uint64_t order = 0;  // tie-break, assigned by the scheduler
};

struct Context {
  TrafficSink& sink;
  const Scenario& scenario;
  const Pools& pools;
  uint64_t seed;
  std::vector<std::unique_ptr<Actor>> spawned;
  RequestEvent event;  // reused to spare allocations
  GeneratorStats& stats;
  // What the sink did with the last emitted request (TrafficSink::LastAction): what a client
  // would read in its answer.
  detect::Action last_action = detect::Action::kAllow;

  void Emit(int64_t t, std::string_view account, std::string_view key, std::string_view user,
            std::string_view ip, std::string_view agent, std::string body,
            const ClientIdentity* id = nullptr) {
    event.time_ns = t;
    event.account_id.assign(account);
    event.key_id.assign(key);
    event.end_user.assign(user);
    event.client_ip.assign(ip);
    event.user_agent.assign(agent);
    event.headers.resize(2);
    event.headers[0] = {"user-agent", std::string(agent)};
    event.headers[1] = {"content-type", "application/json"};
    event.tier.clear();
    if (id != nullptr) {
      event.headers.insert(event.headers.end(), id->sdk_headers.begin(), id->sdk_headers.end());
      event.tier.assign(id->tier);
    }
    event.endpoint.assign(kEndpoint);
    event.body_json = std::move(body);
    sink.OnEvent(event);
    last_action = sink.LastAction();
    ++stats.events;
  }
  // Emits a request from `id` (its user agent, SDK headers and tier) as end user `user`.
  void EmitAs(int64_t t, const ClientIdentity& id, std::string_view user, std::string_view ip,
              std::string body) {
    Emit(t, id.account, id.key, user, ip, id.agent, std::move(body), &id);
  }
  void Label(SubjectLabel label) {
    sink.OnLabel(label);
    ++stats.labels;
  }
};

// The headers the official SDKs send with every request (x-stainless-*), for a user agent.
inline HeaderPairs SdkHeaders(Rng& r, std::string_view agent) {
  static constexpr std::array<std::string_view, 3> kOs = {"MacOS", "Linux", "Windows"};
  static constexpr std::array<std::string_view, 2> kArch = {"arm64", "x64"};
  HeaderPairs h;
  auto version_after = [&](std::string_view marker) {
    size_t pos = agent.find(marker);
    return pos == std::string_view::npos ? std::string("1.0.0")
                                         : std::string(agent.substr(pos + marker.size()));
  };
  if (agent.find("OpenAI/Python") != std::string_view::npos) {
    h = {{"x-stainless-lang", "python"},
         {"x-stainless-package-version", version_after("OpenAI/Python ")},
         {"x-stainless-os", std::string(kOs[r.Below(kOs.size())])},
         {"x-stainless-arch", std::string(kArch[r.Below(kArch.size())])},
         {"x-stainless-runtime", "CPython"},
         {"x-stainless-runtime-version", r.Bernoulli(0.5) ? "3.11.7" : "3.12.3"},
         {"x-stainless-async", "false"}};
  } else if (agent.find("OpenAI/NodeJS") != std::string_view::npos) {
    h = {{"x-stainless-lang", "js"},
         {"x-stainless-package-version", version_after("OpenAI/NodeJS/")},
         {"x-stainless-os", std::string(kOs[r.Below(kOs.size())])},
         {"x-stainless-arch", std::string(kArch[r.Below(kArch.size())])},
         {"x-stainless-runtime", "node"},
         {"x-stainless-runtime-version", r.Bernoulli(0.5) ? "v20.11.1" : "v18.19.0"}};
  } else if (agent.find("Mozilla") != std::string_view::npos) {
    h = {{"accept", "*/*"}, {"accept-language", r.Bernoulli(0.7) ? "en-US,en;q=0.9" : "en-GB,en;q=0.8"}};
  } else {
    h = {{"accept", "*/*"}};
  }
  return h;
}

// Account tiers as a share of organic accounts.
inline std::string_view OrganicTier(Rng& r, const OrganicParams& o) {
  const double u = r.Uniform();
  if (u < o.enterprise_share) return "enterprise";
  if (u < o.enterprise_share + o.verified_share) return "verified";
  return "unverified";
}

// The system prompts of the applications organic users build on the API.
constexpr std::array<std::string_view, 6> kAppSystemPrompts = {
    "You are a helpful assistant.",
    "You are a friendly assistant for our customers. Keep answers short.",
    "You are an assistant that helps with writing. Be concise.",
    "Answer as a knowledgeable tutor.",
    "You are a helpful assistant. Today's date is in the user's locale.",
    "You help small business owners with their questions."};

// An organic-looking client: one residential address (sometimes a mobile one too), a client
// library or browser with its real headers, a tier, and for some an app system prompt. Stealth
// campaigns copy exactly this distribution.
inline ClientIdentity OrganicIdentity(Rng& r, const OrganicParams& o) {
  ClientIdentity id;
  id.ips.push_back(ResidentialIp(r));
  if (r.Bernoulli(o.second_ip_prob)) id.ips.push_back(MobileIp(r));
  id.agent = kOrganicAgents[r.Below(kOrganicAgents.size())];
  if (o.sdk_headers) id.sdk_headers = SdkHeaders(r, id.agent);
  id.tier = OrganicTier(r, o);
  if (r.Bernoulli(o.system_prompt_prob)) id.system_prompt = kAppSystemPrompts[r.Below(kAppSystemPrompts.size())];
  return id;
}

// What a coding agent says when it calls a tool.
inline std::string_view AgentToolCall(Rng& r) {
  static constexpr std::array<std::string_view, 4> kCalls = {
      "Let me look at the relevant files first.", "I'll run the tests to see what fails.",
      "Searching the documentation for this.", "Checking the project layout."};
  return kCalls[r.Below(kCalls.size())];
}

// What a coding agent's tool returns: a file or a documentation page (long organic texts stand
// in for both), a test run, a compiler error or a directory listing.
inline std::string AgentToolOutput(Rng& r, const Pools& p) {
  static constexpr std::array<std::string_view, 8> kNames = {"parser", "config", "client", "cache",
                                                             "router", "utils",  "models", "auth"};
  const std::string name(kNames[r.Below(kNames.size())]);
  const std::string n = std::to_string(1 + r.Below(40));
  switch (r.Below(5)) {
    case 0:
    case 1:
      return Pick(r, p.documents).substr(0, 2000);
    case 2:
      return "collected " + n + " items\n\ntests/test_" + name + ".py ..F.\n\nFAILED tests/test_" + name +
             ".py::test_roundtrip - AssertionError: expected 3, got 2\n1 failed, " + n + " passed in 0." +
             std::to_string(r.Below(90) + 10) + "s";
    case 3:
      return "src/" + name + ".ts(" + n +
             ",17): error TS2345: Argument of type 'string | undefined' is not assignable to parameter "
             "of type 'string'.\n  Type 'undefined' is not assignable to type 'string'.";
    default:
      return "README.md\npackage.json\nsrc/\nsrc/" + name + ".ts\nsrc/index.ts\ntests/\ntests/" + name +
             ".test.ts\ntsconfig.json";
  }
}

// A human user (or an end user of a reseller): topics, sessions, real conversations. Some run
// a coding agent on their own key (OrganicParams::agent_user_share), some use a retrieval app
// (OrganicParams::retrieval_app_share).
class OrganicUser final : public Actor {
 public:
  OrganicUser(ClientIdentity id, Rng rng, const Scenario& s, const Pools& pools, int64_t from_ns)
      : id_(std::move(id)), rng_(rng) {
    const OrganicParams& o = s.organic;
    tz_ = static_cast<int>(rng_.Below(24)) - 11;
    sessions_per_day_ = std::min(o.max_sessions_per_day,
                                 rng_.LogNormal(o.median_sessions_per_day, o.activity_sigma));
    topic_set_ = rng_.Below(pools.organic_by_set.size());
    const auto& set = pools.organic_by_set[topic_set_];
    topic_start_ = rng_.Below(set.size());
    sampling_ = OrganicSampling(rng_);
    multi_turn_prob_ = o.multi_turn_prob;
    contrast_prob_ = o.contrast_prob;
    next_ns = NextDiurnal(rng_, from_ns, sessions_per_day_, kHumanDiurnal, tz_, 0.7);
    // Drawn last, and only when asked for, so that scenarios without such apps are unchanged.
    if (o.retrieval_app_share > 0) retrieval_ = rng_.Bernoulli(o.retrieval_app_share);
    if (o.agent_user_share > 0) agent_ = rng_.Bernoulli(o.agent_user_share);
  }

  bool Step(Context& ctx) override {
    const Pools& p = ctx.pools;
    if (agent_) return AgentStep(ctx);
    if (conv_ == nullptr && singles_left_ == 0) StartSession(p);
    const std::string& ip = id_.ips.size() > 1 && rng_.Bernoulli(0.3) ? id_.ips[1] : id_.ips[0];
    std::vector<Message> msgs;  // views: what they point at lives until the body is built
    const std::string retrieved = retrieval_ ? RetrievalSystem(p) : std::string();
    const std::string_view system = retrieval_ ? std::string_view(retrieved) : std::string_view(id_.system_prompt);
    if (!system.empty()) msgs.push_back({"system", system});
    if (conv_ != nullptr) {
      for (size_t i = 0; i <= turn_; ++i) {
        msgs.push_back({(*conv_)[i].from_user ? "user" : "assistant", (*conv_)[i].text});
      }
      ctx.EmitAs(next_ns, id_, id_.end_user, ip,
               ChatBody(msgs, sampling_, id_.end_user));
      turn_ += 2;
      if (turn_ >= conv_->size() || rng_.Bernoulli(0.1)) {
        conv_ = nullptr;
      } else {
        next_ns += Seconds(rng_.LogNormal(40 + 0.05 * (*conv_)[turn_ - 1].text.size(), 0.8));
        return true;
      }
    } else {
      msgs.push_back({"user", NextPrompt(p)});
      ctx.EmitAs(next_ns, id_, id_.end_user, ip,
               ChatBody(msgs, sampling_, id_.end_user));
      if (--singles_left_ > 0) {
        next_ns += Seconds(rng_.LogNormal(90, 1.0));
        return true;
      }
    }
    next_ns = NextDiurnal(rng_, next_ns, sessions_per_day_, kHumanDiurnal, tz_, 0.7);
    return true;
  }

 private:
  void StartSession(const Pools& p) {
    if (!p.conversations.empty() && rng_.Bernoulli(multi_turn_prob_)) {
      conv_ = p.conversations[rng_.Below(p.conversations.size())];
      turn_ = 0;
      return;
    }
    singles_left_ = 1;
    while (singles_left_ < 5 && rng_.Bernoulli(0.45)) ++singles_left_;  // bursts
  }
  // A retrieval app's system message: its instructions and the documents its search found for
  // this request (long organic texts: other people's answers and posts).
  std::string RetrievalSystem(const Pools& p) {
    std::string s = "Answer the user's question using the documents below. Cite them as [1], [2].\n\n";
    const int docs = 1 + static_cast<int>(rng_.Below(3));
    for (int d = 1; d <= docs; ++d) {
      s += "[" + std::to_string(d) + "] ";
      s += Pick(rng_, p.documents).substr(0, 1500);
      s += "\n\n";
    }
    return s;
  }
  // A coding agent's session: one task, then 2-8 steps seconds apart, each resending the
  // conversation with one more tool call and output; the model answers the last output.
  bool AgentStep(Context& ctx) {
    const Pools& p = ctx.pools;
    if (agent_steps_left_ == 0) {
      agent_task_ = &Pick(rng_, p.code);
      agent_steps_left_ = 2 + static_cast<int>(rng_.Below(7));
      agent_calls_.clear();
      agent_outputs_.clear();
    }
    agent_calls_.push_back(AgentToolCall(rng_));
    agent_outputs_.push_back(AgentToolOutput(rng_, p));
    std::vector<Message> msgs = {{"system", "You are a coding agent working in the user's repository. "
                                            "Use the tools to read files and run commands."},
                                 {"user", *agent_task_}};
    for (size_t i = 0; i < agent_outputs_.size(); ++i) {
      msgs.push_back({"assistant", agent_calls_[i]});
      msgs.push_back({"tool", agent_outputs_[i]});
    }
    ctx.EmitAs(next_ns, id_, id_.end_user, id_.ips[0], ChatBody(msgs, sampling_, id_.end_user));
    if (--agent_steps_left_ > 0) {
      next_ns += Seconds(rng_.LogNormal(8, 0.6));
    } else {
      next_ns = NextDiurnal(rng_, next_ns, sessions_per_day_, kHumanDiurnal, tz_, 0.7);
    }
    return true;
  }
  const std::string& NextPrompt(const Pools& p) {
    if (!p.contrast.empty() && rng_.Bernoulli(contrast_prob_)) return Pick(rng_, p.contrast);
    if (rng_.Bernoulli(0.2)) return Pick(rng_, p.organic);
    const auto& set = p.organic_by_set[topic_set_];
    size_t window = std::min<size_t>(set.size(), 250);
    return *set[(topic_start_ + rng_.Below(window)) % set.size()];
  }

  ClientIdentity id_;
  Rng rng_;
  int tz_ = 0;
  double sessions_per_day_ = 1;
  size_t topic_set_ = 0, topic_start_ = 0;
  SamplingParams sampling_;
  double multi_turn_prob_ = 0, contrast_prob_ = 0;
  const Conversation* conv_ = nullptr;
  size_t turn_ = 0;
  int singles_left_ = 0;
  bool retrieval_ = false;
  bool agent_ = false;
  const std::string* agent_task_ = nullptr;
  int agent_steps_left_ = 0;
  std::vector<std::string_view> agent_calls_;  // static texts
  std::vector<std::string> agent_outputs_;
};


// ---- Parts defined in other files -----------------------------------------------------------

// A stealth operator's queue: every item of the campaign's content pool once, in an order the
// operator shuffled; recycled (in a new order) only when the pool runs out.
class WorkQueue {
 public:
  WorkQueue(const Pools& p, std::string_view content, uint64_t seed) : rng_(seed, 0x71756575) {
    auto add = [&](const std::vector<const std::string*>& v) { items_.insert(items_.end(), v.begin(), v.end()); };
    if (content == "distill" || content == "mixed") add(p.distill);
    if (content == "cot" || content == "mixed") add(p.cot);
    if (content == "benchmark" || content == "mixed") add(p.benchmark);
    Shuffle();
  }
  const std::string& Next() {
    if (next_ >= items_.size()) Shuffle();
    return *items_[next_++];
  }
  bool empty() const { return items_.empty(); }

 private:
  void Shuffle() {
    for (size_t i = items_.size(); i > 1; --i) std::swap(items_[i - 1], items_[rng_.Below(i)]);
    next_ = 0;
  }
  Rng rng_;
  std::vector<const std::string*> items_;
  size_t next_ = 0;
};

// How one account writes (stealth_campaigns.cc): an opener, a closer, a context sentence, a
// way of asking, casing habits; chosen once per account and applied to every item it sends.
struct Voice {
  int opener = -1, closer = -1, context = -1, ask = -1;
  double opener_prob = 0, closer_prob = 0, context_prob = 0;
  bool lower_case = false, drop_final_punct = false, you_as_u = false;
};
Voice MakeVoice(Rng& r);
// Rewrites `item` in the voice.
std::string Speak(const Voice& v, std::string_view item, Rng& r);
// A follow-up asking how an answer was reached ("how did you get that?").
std::string_view FollowUpAsk(Rng& r);
// `question` inside one of forty requests for the reasoning, not just the answer.
std::string AskForReasoning(std::string_view question, Rng& r);
// A short stand-in for the model's answer to `question` (for a follow-up's history).
std::string ShortAnswerTo(std::string_view question, Rng& r);
// The spawner of the adaptive (closed-loop) campaign (adaptive_campaign.cc).
std::unique_ptr<Actor> MakeAdaptiveSpawner(const CampaignParams& p, const Scenario& s, const Pools& pools,
                                           uint64_t seed, int index);

// The spawner of a stealth campaign (stealth_campaigns.cc).
std::unique_ptr<Actor> MakeStealthSpawner(const CampaignParams& p, const Scenario& s, const Pools& pools,
                                          uint64_t seed, int index);
// The scenario's false-positive traps (organic_traps.cc): researchers running a public
// benchmark once, several researchers running the same one, classrooms. Labels them organic.
void AddOrganicTraps(Context& ctx, uint64_t seed, std::vector<std::unique_ptr<Actor>>& out);

}  // namespace moat::traffic::gen

#include "traffic/generator.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cstdio>
#include <memory>
#include <vector>

#include "traffic/rng.h"

namespace moat::traffic {
namespace {

namespace json = boost::json;
using detect::RequestEvent;

constexpr int64_t kSecond = 1'000'000'000LL;
constexpr int64_t kHour = 3600 * kSecond;
constexpr int64_t kDay = 24 * kHour;
constexpr std::string_view kEndpoint = "/v1/chat/completions";
constexpr std::string_view kJailbreakSlot = "[INSERT PROMPT HERE]";

int64_t Seconds(double s) { return static_cast<int64_t>(s * 1e9); }

// Opaque identifiers: nothing in an id reveals what generated it.
std::string OpaqueId(std::string_view prefix, uint64_t seed, uint64_t a, uint64_t b) {
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

std::string Ip(int a, int b, int c, int d) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%d.%d.%d.%d", a, b, c, d);
  return buf;
}
std::string ResidentialIp(Rng& r) {
  return Ip(kResidentialOctets[r.Below(kResidentialOctets.size())], int(r.Below(256)),
            int(r.Below(256)), 1 + int(r.Below(254)));
}
std::string MobileIp(Rng& r) {
  return Ip(172, 56 + int(r.Below(4)), int(r.Below(256)), 1 + int(r.Below(254)));
}
std::string DatacenterIp(Rng& r) {
  return Ip(kDatacenterOctets[r.Below(kDatacenterOctets.size())], int(r.Below(256)),
            int(r.Below(256)), 1 + int(r.Below(254)));
}

// A proxy pool: datacenter proxies come in rented /24 blocks, residential ones are scattered.
std::vector<std::string> ProxyPool(Rng& r, int size, std::string_view kind) {
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

int LocalHour(int64_t t_ns, int tz_hours) {
  int64_t h = (t_ns / kHour + tz_hours) % 24;
  return static_cast<int>(h < 0 ? h + 24 : h);
}
bool IsWeekend(int64_t t_ns, int tz_hours) {
  int64_t day = (t_ns + tz_hours * kHour) / kDay;  // 1970-01-01 was a Thursday
  int wd = static_cast<int>((day + 3) % 7);        // 0 = Monday
  return wd >= 5;
}

// Next event of a non-homogeneous Poisson process by thinning.
int64_t NextDiurnal(Rng& r, int64_t t, double events_per_day, const std::array<double, 24>& curve,
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

const std::string& Pick(Rng& r, const std::vector<const std::string*>& v) {
  return *v[r.Below(v.size())];
}

// ---- Request bodies -------------------------------------------------------------------------

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

std::string ChatBody(const std::vector<Message>& messages, const SamplingParams& p,
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

SamplingParams OrganicSampling(Rng& r) {
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

// Something that emits requests over time: an account, an end user, or a spawner of accounts.
class Actor {
 public:
  virtual ~Actor() = default;
  // Acts at next_ns (emits one event, or spawns), then advances next_ns. Returns false once
  // the actor is finished.
  virtual bool Step(Context& ctx) = 0;
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

  void Emit(int64_t t, std::string_view account, std::string_view key, std::string_view user,
            std::string_view ip, std::string_view agent, std::string body) {
    event.time_ns = t;
    event.account_id.assign(account);
    event.key_id.assign(key);
    event.end_user.assign(user);
    event.client_ip.assign(ip);
    event.user_agent.assign(agent);
    if (event.headers.size() != 2) {
      event.headers = {{"user-agent", ""}, {"content-type", "application/json"}};
    }
    event.headers[0].second.assign(agent);
    event.endpoint.assign(kEndpoint);
    event.body_json = std::move(body);
    sink.OnEvent(event);
    ++stats.events;
  }
  void Label(SubjectLabel label) {
    sink.OnLabel(label);
    ++stats.labels;
  }
};

// Identity of a client as the gateway sees it.
struct ClientIdentity {
  std::string account, key, end_user;
  std::vector<std::string> ips;
  std::string_view agent;
};

// A human user (or an end user of a reseller): topics, sessions, real conversations.
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
  }

  bool Step(Context& ctx) override {
    const Pools& p = ctx.pools;
    if (conv_ == nullptr && singles_left_ == 0) StartSession(p);
    const std::string& ip = id_.ips.size() > 1 && rng_.Bernoulli(0.3) ? id_.ips[1] : id_.ips[0];
    std::vector<Message> msgs;
    if (conv_ != nullptr) {
      for (size_t i = 0; i <= turn_; ++i) {
        msgs.push_back({(*conv_)[i].from_user ? "user" : "assistant", (*conv_)[i].text});
      }
      ctx.Emit(next_ns, id_.account, id_.key, id_.end_user, ip, id_.agent,
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
      ctx.Emit(next_ns, id_.account, id_.key, id_.end_user, ip, id_.agent,
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
};

// A nightly batch summarisation job: steady machine pacing from one server, legitimately heavy.
class BatchJob final : public Actor {
 public:
  BatchJob(ClientIdentity id, Rng rng, const OrganicParams& o, int64_t start_ns)
      : id_(std::move(id)), rng_(rng), per_hour_(o.batch_requests_per_hour),
        hours_(o.batch_hours_per_day) {
    tz_ = static_cast<int>(rng_.Below(24)) - 11;
    window_hour_ = 1 + static_cast<int>(rng_.Below(3));
    next_ns = NextWindow(start_ns);
  }
  bool Step(Context& ctx) override {
    std::string prompt = "Summarize the following document in three bullet points for our "
                         "internal digest.\n\n";
    prompt += Pick(rng_, ctx.pools.documents);
    SamplingParams sp;
    sp.temperature = 0;
    sp.max_tokens = 300;
    ctx.Emit(next_ns, id_.account, id_.key, "", id_.ips[0], id_.agent,
             ChatBody({{"user", prompt}}, sp, ""));
    next_ns += Seconds(3600.0 / per_hour_ * (0.9 + 0.2 * rng_.Uniform()));
    if (next_ns >= window_end_) next_ns = NextWindow(next_ns);
    return true;
  }

 private:
  // The start of the job's run that contains or follows t (runs start at a fixed local hour).
  int64_t NextWindow(int64_t t) {
    int64_t day_start = ((t + tz_ * kHour) / kDay) * kDay - tz_ * kHour;
    for (int d = -1; d <= 1; ++d) {
      int64_t w = day_start + d * kDay + window_hour_ * kHour;
      int64_t e = w + Seconds(hours_ * 3600);
      if (t < e) {
        window_end_ = e;
        return std::max(t, w);
      }
    }
    window_end_ = day_start + 2 * kDay + window_hour_ * kHour + Seconds(hours_ * 3600);
    return window_end_ - Seconds(hours_ * 3600);
  }
  ClientIdentity id_;
  Rng rng_;
  double per_hour_, hours_;
  int tz_ = 0, window_hour_ = 1;
  int64_t window_end_ = 0;
};

// An IDE assistant company: one account, many of its own end users, office-hours load.
class CodingTool final : public Actor {
 public:
  CodingTool(ClientIdentity id, Rng rng, const OrganicParams& o, uint64_t seed, int index,
             int64_t start_ns)
      : id_(std::move(id)), rng_(rng), per_day_(o.coding_requests_per_hour * 24 * 0.45) {
    tz_ = static_cast<int>(rng_.Below(10)) - 8;
    for (int i = 0; i < o.coding_end_users; ++i) users_.push_back(OpaqueId("usr_", seed, 7000 + index, i));
    next_ns = NextDiurnal(rng_, start_ns, per_day_, kOfficeDiurnal, tz_, 0.15);
  }
  bool Step(Context& ctx) override {
    SamplingParams sp;
    sp.model = "gpt-4o";
    sp.temperature = 0.2;
    sp.stream = true;
    sp.max_tokens = 1024;
    const std::string& user = users_[rng_.Below(users_.size())];
    std::string body = ChatBody({{"system", "You are a coding assistant inside the user's IDE. "
                                            "Answer with concise code."},
                                 {"user", Pick(rng_, ctx.pools.code)}},
                                sp, user);
    ctx.Emit(next_ns, id_.account, id_.key, user, id_.ips[rng_.Below(id_.ips.size())], id_.agent,
             std::move(body));
    next_ns = NextDiurnal(rng_, next_ns, per_day_, kOfficeDiurnal, tz_, 0.15);
    return true;
  }

 private:
  ClientIdentity id_;
  Rng rng_;
  double per_day_;
  int tz_ = 0;
  std::vector<std::string> users_;
};

// ---- Campaigns ------------------------------------------------------------------------------

constexpr std::array<std::string_view, 10> kCotWrappers = {
    "Solve this step by step and show all of your reasoning before giving the final "
    "answer.\n\n{}",
    "{}\n\nLet's think step by step. Explain every intermediate step in detail.",
    "Show your full chain of thought for the following problem, then state the answer.\n\n{}",
    "Question: {}\nWrite out your complete reasoning process, then the final answer on its own "
    "line.",
    "I need a detailed rationale, not just the answer. Think out loud:\n{}",
    "{}\nBefore answering, reason carefully and write down each step of your thinking.",
    "Provide a step-by-step derivation and justify each step.\n\n{}",
    "Explain your thinking in detail as you work through this: {}",
    "{}\n\nPlease show your work. Break the solution into numbered reasoning steps.",
    "Think through the following carefully, showing the reasoning trace, then answer: {}"};
constexpr std::array<std::string_view, 10> kMimicPrefixes = {
    "", "", "hey, ", "Quick question: ", "Can you help me with this? ", "i was wondering - ",
    "For a project I'm working on: ", "ok next one. ", "Hi! ", "My teacher asked us this: "};
constexpr std::array<std::string_view, 8> kMimicSuffixes = {
    "", "", "", " thanks!", " Please explain your reasoning.", " (keep it detailed)",
    " Walk me through it.", " ty"};

std::string Fill(std::string_view tmpl, std::string_view slot, std::string_view value) {
  std::string out(tmpl);
  size_t pos = out.find(slot);
  if (pos != std::string::npos) out.replace(pos, slot.size(), value);
  return out;
}

// What all accounts of one campaign share: the operator's work queue, proxies and tooling.
struct Campaign {
  const CampaignParams& params;
  Rng rng;
  uint64_t cursor = 0;  // the operator's position in its prompt list
  std::vector<std::string> proxies;
  std::vector<size_t> cot_wrappers;  // the few phrasings this operator uses
  std::string system_prompt;
  int64_t start_ns = 0, end_ns = 0;

  Campaign(const CampaignParams& p, uint64_t seed, const Scenario& s)
      : params(p), rng(seed, HashName(p.id)) {
    start_ns = s.start_ns() + Seconds(p.start_hour * 3600);
    end_ns = std::min(s.end_ns(), start_ns + Seconds(p.duration_hours * 3600));
    int pool = p.proxy_pool > 0 ? p.proxy_pool : p.accounts;
    if (p.variant == "hydra") pool = std::max(2, p.proxy_pool);
    proxies = ProxyPool(rng, std::min(pool, 200000), p.variant == "mimic" ? "residential" : p.ip_kind);
    for (int i = 0; i < 3; ++i) cot_wrappers.push_back(rng.Below(kCotWrappers.size()));
    system_prompt = rng.Bernoulli(0.5) ? "You are a helpful assistant."
                                       : "You are an expert tutor. Answer thoroughly.";
  }

  const std::string& Sequential(const std::vector<const std::string*>& v) {
    return *v[(cursor++) % v.size()];
  }

  // The next request body of this campaign; `arng` is the sending account's own stream.
  std::string NextBody(Rng& arng, const Pools& p, std::string_view user) {
    const std::string& v = params.variant;
    SamplingParams sp;
    sp.model = "gpt-4o";
    if (v == "bulk" || v == "sybil-spread") {
      sp.temperature = 0.7;
      sp.max_tokens = 2048;
      sp.logprobs = arng.Bernoulli(0.3);
      return ChatBody({{"system", system_prompt}, {"user", Sequential(p.distill)}}, sp, user);
    }
    if (v == "cot-harvest" || (v == "hydra" && arng.Bernoulli(0.5))) {
      std::string q = Fill(kCotWrappers[cot_wrappers[arng.Below(cot_wrappers.size())]], "{}",
                           Sequential(p.cot));
      sp.max_tokens = 4096;
      sp.reasoning_effort = arng.Bernoulli(0.5) ? "high" : "";
      return ChatBody({{"user", q}}, sp, user);
    }
    if (v == "hydra") {
      sp.temperature = 0.7;
      return ChatBody({{"user", Sequential(p.distill)}}, sp, user);
    }
    if (v == "benchmark-sweep") {
      std::string q = "Answer the following question. Reason briefly, then give the final "
                      "answer after 'Answer:'.\n\nQuestion: " +
                      Sequential(p.benchmark);
      sp.temperature = 0;
      sp.max_tokens = 1024;
      return ChatBody({{"user", q}}, sp, user);
    }
    if (v == "jailbreak-probe") {
      sp.temperature = 1.0;
      if (!p.jb_templates.empty() && !p.jb_requests.empty()) {
        // A probing matrix: each harmful request is tried under k templates in turn.
        size_t k = std::min<size_t>(8, p.jb_templates.size());
        uint64_t c = cursor++;
        const std::string& req = *p.jb_requests[(c / k) % p.jb_requests.size()];
        const std::string& tmpl =
            *p.jb_templates[(HashName(params.id) + c % k) % p.jb_templates.size()];
        return ChatBody({{"user", Fill(tmpl, kJailbreakSlot, req)}}, sp, user);
      }
      const auto& pool = p.jb_other.empty() ? p.jb_requests : p.jb_other;
      return ChatBody({{"user", Sequential(pool)}}, sp, user);
    }
    // mimic: paraphrased campaign prompts, organic cover traffic, multi-turn wrappers.
    sp = OrganicSampling(arng);
    if (arng.Bernoulli(params.cover_fraction)) {
      return ChatBody({{"user", Pick(arng, p.organic)}}, sp, user);
    }
    const std::string& core = arng.Bernoulli(0.5) || p.cot.empty() ? Sequential(p.distill)
                                                                    : Sequential(p.cot);
    std::string q(kMimicPrefixes[arng.Below(kMimicPrefixes.size())]);
    size_t prefix_len = q.size();
    q += core;
    q += kMimicSuffixes[arng.Below(kMimicSuffixes.size())];
    if (prefix_len > 0 && q.size() > prefix_len && arng.Bernoulli(0.5)) {
      q[prefix_len] = static_cast<char>(std::tolower(static_cast<unsigned char>(q[prefix_len])));
    }
    if (!p.conversations.empty() && arng.Bernoulli(0.3)) {
      const Conversation& c = *p.conversations[arng.Below(p.conversations.size())];
      std::string follow = "Thanks, that helps. Different question: " + q;
      return ChatBody({{"user", c[0].text}, {"assistant", c[1].text}, {"user", follow}}, sp, user);
    }
    return ChatBody({{"user", q}}, sp, user);
  }
};

// One account (or, for hydra, one end user) of a campaign.
class CampaignAccount final : public Actor {
 public:
  CampaignAccount(Campaign& c, ClientIdentity id, Rng rng, int64_t created_ns, int64_t end_ns)
      : campaign_(c), id_(std::move(id)), rng_(rng), end_ns_(end_ns) {
    const CampaignParams& p = c.params;
    mimic_ = p.variant == "mimic";
    tz_ = static_cast<int>(rng_.Below(12)) - 8;
    mean_gap_s_ = 3600.0 / p.requests_per_account_hour;
    next_ns = created_ns + Seconds(rng_.Exponential(std::min(mean_gap_s_, 600.0)));
    if (mimic_) AdvanceHuman();
  }
  bool Step(Context& ctx) override {
    if (next_ns >= end_ns_) return false;
    const CampaignParams& p = campaign_.params;
    std::string_view ip;
    if (p.variant == "sybil-spread" || p.variant == "bulk") {
      ip = campaign_.proxies[rng_.Below(campaign_.proxies.size())];  // rotating proxies
    } else {
      ip = id_.ips[rng_.Below(id_.ips.size())];
    }
    ctx.Emit(next_ns, id_.account, id_.key, id_.end_user, ip, id_.agent,
             campaign_.NextBody(rng_, ctx.pools, id_.end_user));
    ++sent_;
    if (p.max_requests_per_account > 0 && sent_ >= p.max_requests_per_account) return false;
    if (mimic_) {
      AdvanceHuman();
    } else {
      next_ns += Seconds(std::max(0.2, rng_.Exponential(mean_gap_s_)));
    }
    return next_ns < end_ns_;
  }

 private:
  // Human-like: log-normal gaps whose mean matches the rate, asleep at night.
  void AdvanceHuman() {
    next_ns += Seconds(rng_.LogNormal(mean_gap_s_ * 0.6, 0.9));
    while (kHumanDiurnal[LocalHour(next_ns, tz_)] < 0.3) {
      next_ns += Seconds(rng_.LogNormal(mean_gap_s_ * 0.6, 0.9));
    }
  }
  Campaign& campaign_;
  ClientIdentity id_;
  Rng rng_;
  int64_t end_ns_;
  bool mimic_ = false;
  int tz_ = 0;
  double mean_gap_s_ = 60;
  int sent_ = 0;
};

// Creates a campaign's accounts at their creation times, so a flood of fresh accounts is only
// ever partly in memory.
class CampaignSpawner final : public Actor {
 public:
  CampaignSpawner(std::unique_ptr<Campaign> c, const Scenario& s, uint64_t seed, int index)
      : campaign_(std::move(c)), seed_(seed), index_(index) {
    const CampaignParams& p = campaign_->params;
    double span_s = (campaign_->end_ns - campaign_->start_ns) / 1e9;
    double life_s = p.account_lifetime_hours * 3600;
    // Accounts that live the whole campaign are registered over its first tenth; fresh
    // short-lived accounts are created steadily so the campaign keeps a constant footprint.
    spread_s_ = life_s > 0 ? std::max(1.0, span_s - life_s) : span_s * 0.1;
    next_ns = campaign_->start_ns;
    // A reseller serves its customers from the scenario's start; its campaign starts later.
    if (p.variant == "hydra") next_ns = s.start_ns();
  }
  bool Step(Context& ctx) override {
    const CampaignParams& p = campaign_->params;
    if (created_ == 0 && p.variant == "hydra") return SpawnHydra(ctx);
    int64_t created = next_ns;
    int64_t life_end = p.account_lifetime_hours > 0
                           ? created + Seconds(p.account_lifetime_hours * 3600)
                           : campaign_->end_ns;
    ClientIdentity id;
    id.account = OpaqueId("acct_", seed_, 1000 + index_, created_);
    id.key = OpaqueId("sk_", seed_, 2000 + index_, created_);
    Rng arng(seed_, HashName(id.account));
    if (p.variant == "mimic") {
      id.ips = {campaign_->proxies[arng.Below(campaign_->proxies.size())]};
      id.agent = kOrganicAgents[arng.Below(kOrganicAgents.size())];
    } else {
      size_t base = static_cast<size_t>(created_) % campaign_->proxies.size();
      id.ips = {campaign_->proxies[base], campaign_->proxies[(base + 1) % campaign_->proxies.size()]};
      id.agent = kBotAgents[arng.Below(kBotAgents.size())];
    }
    ctx.Label({id.account, "", true, p.variant, p.id,
               p.variant == "bulk" ? "bulk-account" : "sybil", created});
    ctx.spawned.push_back(std::make_unique<CampaignAccount>(*campaign_, std::move(id), arng,
                                                            created, std::min(life_end, campaign_->end_ns)));
    ++created_;
    if (created_ >= p.accounts) return false;
    next_ns = campaign_->start_ns + Seconds(spread_s_ * (created_ + 0.5 * arng.Uniform()) / p.accounts);
    return true;
  }
  std::unique_ptr<Campaign>& campaign() { return campaign_; }

 private:
  // A reseller: one account whose end users are partly real customers and partly a campaign.
  bool SpawnHydra(Context& ctx) {
    const CampaignParams& p = campaign_->params;
    const Scenario& s = ctx.scenario;
    for (int a = 0; a < p.accounts; ++a) {
      std::string account = OpaqueId("acct_", seed_, 1000 + index_, a);
      std::string key = OpaqueId("sk_", seed_, 2000 + index_, a);
      int64_t created = s.start_ns() - 90 * kDay;
      ctx.Label({account, "", true, p.variant, p.id, "reseller", created});
      std::vector<std::string> ips = {campaign_->proxies[0],
                                      campaign_->proxies[1 % campaign_->proxies.size()]};
      for (int u = 0; u < p.organic_end_users; ++u) {
        ClientIdentity id{account, key, OpaqueId("usr_", seed_, 3000 + index_, a * 100000 + u), ips,
                          "OpenAI/NodeJS/4.47.1"};
        ctx.Label({account, id.end_user, false, "", "", "reseller-customer", created});
        Rng urng(seed_, HashName(id.end_user));
        ctx.spawned.push_back(std::make_unique<OrganicUser>(std::move(id), urng, s, ctx.pools, s.start_ns()));
      }
      for (int u = 0; u < p.campaign_end_users; ++u) {
        ClientIdentity id{account, key, OpaqueId("usr_", seed_, 4000 + index_, a * 100000 + u), ips,
                          "OpenAI/NodeJS/4.47.1"};
        ctx.Label({account, id.end_user, true, p.variant, p.id, "hydra-end-user", created});
        Rng urng(seed_, HashName(id.end_user));
        int64_t start = campaign_->start_ns + Seconds(urng.Uniform() * 600);
        ctx.spawned.push_back(std::make_unique<CampaignAccount>(*campaign_, std::move(id), urng,
                                                                start, campaign_->end_ns));
      }
    }
    return false;
  }
  std::unique_ptr<Campaign> campaign_;
  uint64_t seed_;
  int index_;
  double spread_s_ = 1;
  int created_ = 0;
};

// Min-heap order on (next_ns, order).
struct Later {
  bool operator()(const std::unique_ptr<Actor>& a, const std::unique_ptr<Actor>& b) const {
    return a->next_ns != b->next_ns ? a->next_ns > b->next_ns : a->order > b->order;
  }
};

}  // namespace

TrafficGenerator::TrafficGenerator(const PromptCorpus& corpus, const Scenario& scenario,
                                   uint64_t seed)
    : corpus_(corpus), scenario_(scenario), seed_(seed) {}

Status TrafficGenerator::Run(TrafficSink& sink) {
  stats_ = {};
  Pools pools;
  pools.Build(corpus_);
  if (pools.organic.empty()) return FailedPreconditionError("the data has no `organic` prompts");
  for (const auto& c : scenario_.campaigns) {
    const std::string& v = c.variant;
    auto need = [&](const std::vector<const std::string*>& pool, std::string_view role) {
      return pool.empty() ? FailedPreconditionError("campaign " + c.id + " needs `" +
                                                    std::string(role) + "` prompts")
                          : Status::Ok();
    };
    if (v == "bulk" || v == "sybil-spread" || v == "hydra" || v == "mimic") {
      MOAT_RETURN_IF_ERROR(need(pools.distill, "distill"));
    }
    if (v == "cot-harvest" || v == "hydra") MOAT_RETURN_IF_ERROR(need(pools.cot, "cot"));
    if (v == "benchmark-sweep") MOAT_RETURN_IF_ERROR(need(pools.benchmark, "benchmark"));
    if (v == "jailbreak-probe" && pools.jb_requests.empty() && pools.jb_other.empty()) {
      return FailedPreconditionError("campaign " + c.id + " needs `jailbreak` prompts");
    }
  }

  Context ctx{sink, scenario_, pools, seed_, {}, {}, stats_};
  std::vector<std::unique_ptr<Actor>> heap;
  uint64_t order = 0;
  auto push = [&](std::unique_ptr<Actor> a) {
    a->order = order++;
    heap.push_back(std::move(a));
    std::push_heap(heap.begin(), heap.end(), Later());
  };

  const OrganicParams& o = scenario_.organic;
  const int64_t start = scenario_.start_ns();
  for (int i = 0; i < o.accounts; ++i) {
    Rng r(seed_, 0x0A000000ULL + i);
    ClientIdentity id;
    id.account = OpaqueId("acct_", seed_, 1, i);
    id.key = OpaqueId("sk_", seed_, 2, i);
    id.ips.push_back(ResidentialIp(r));
    if (r.Bernoulli(o.second_ip_prob)) id.ips.push_back(MobileIp(r));
    id.agent = kOrganicAgents[r.Below(kOrganicAgents.size())];
    int64_t created = start - Seconds(86400.0 * (1 + r.Below(700)));
    ctx.Label({id.account, "", false, "", "", "user", created});
    push(std::make_unique<OrganicUser>(std::move(id), r, scenario_, pools, start));
  }
  for (int i = 0; i < o.batch_jobs; ++i) {
    Rng r(seed_, 0x0B000000ULL + i);
    ClientIdentity id{OpaqueId("acct_", seed_, 3, i), OpaqueId("sk_", seed_, 4, i), "",
                      {DatacenterIp(r)}, "python-httpx/0.27.0"};
    ctx.Label({id.account, "", false, "", "", "batch-job", start - 200 * kDay});
    push(std::make_unique<BatchJob>(std::move(id), r, o, start));
  }
  for (int i = 0; i < o.coding_tools; ++i) {
    Rng r(seed_, 0x0C000000ULL + i);
    ClientIdentity id{OpaqueId("acct_", seed_, 5, i), OpaqueId("sk_", seed_, 6, i), "",
                      {DatacenterIp(r), DatacenterIp(r), DatacenterIp(r)}, "OpenAI/Python 1.30.1"};
    ctx.Label({id.account, "", false, "", "", "coding-tool", start - 300 * kDay});
    push(std::make_unique<CodingTool>(std::move(id), r, o, seed_, i, start));
  }
  for (size_t i = 0; i < scenario_.campaigns.size(); ++i) {
    auto c = std::make_unique<Campaign>(scenario_.campaigns[i], seed_, scenario_);
    if (c->end_ns <= c->start_ns) continue;
    push(std::make_unique<CampaignSpawner>(std::move(c), scenario_, seed_, static_cast<int>(i)));
  }

  // Spawners own their campaigns, and accounts point at them: keep finished spawners alive.
  std::vector<std::unique_ptr<Actor>> finished_spawners;
  const int64_t end = scenario_.end_ns();
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), Later());
    std::unique_ptr<Actor> actor = std::move(heap.back());
    heap.pop_back();
    if (actor->next_ns >= end) {
      if (dynamic_cast<CampaignSpawner*>(actor.get())) finished_spawners.push_back(std::move(actor));
      continue;
    }
    bool more = actor->Step(ctx);
    for (auto& s : ctx.spawned) {
      if (s->next_ns < end) push(std::move(s));
    }
    ctx.spawned.clear();
    if (more && actor->next_ns < end) {
      push(std::move(actor));
    } else if (dynamic_cast<CampaignSpawner*>(actor.get())) {
      finished_spawners.push_back(std::move(actor));
    }
    stats_.peak_active_actors =
        std::max<int64_t>(stats_.peak_active_actors, static_cast<int64_t>(heap.size()));
  }
  return Status::Ok();
}

}  // namespace moat::traffic

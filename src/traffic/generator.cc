#include "traffic/generator.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cstdio>
#include <memory>
#include <vector>

#include "traffic/generator_parts.h"
#include "traffic/rng.h"

namespace moat::traffic {
namespace {

using namespace gen;  // the generator's building blocks (generator_parts.h)

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
    ctx.EmitAs(next_ns, id_, "", id_.ips[0],
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
      : id_(std::move(id)), rng_(rng), per_day_(o.coding_requests_per_hour * 24 * 0.45),
        agent_share_(o.coding_agent_share) {
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
    std::vector<Message> msgs = {{"system", "You are a coding assistant inside the user's IDE. "
                                            "Answer with concise code."},
                                 {"user", Pick(rng_, ctx.pools.code)}};
    // Drawn only when asked for, so that scenarios without agent steps are unchanged.
    std::vector<std::string> outputs;  // msgs holds views of them
    if (agent_share_ > 0 && rng_.Bernoulli(agent_share_)) {
      const int rounds = 1 + static_cast<int>(rng_.Below(3));
      for (int r = 0; r < rounds; ++r) outputs.push_back(AgentToolOutput(rng_, ctx.pools));
      for (const std::string& output : outputs) {
        msgs.push_back({"assistant", AgentToolCall(rng_)});
        msgs.push_back({"tool", output});
      }
    }
    std::string body = ChatBody(msgs, sp, user);
    ctx.EmitAs(next_ns, id_, user, id_.ips[rng_.Below(id_.ips.size())],
             std::move(body));
    next_ns = NextDiurnal(rng_, next_ns, per_day_, kOfficeDiurnal, tz_, 0.15);
    return true;
  }

 private:
  ClientIdentity id_;
  Rng rng_;
  double per_day_;
  double agent_share_ = 0;
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

  // The next request body of this campaign; `arng` is the sending account's own stream, and
  // `last_cover` its last cover prompt not yet continued (mimic's own conversations).
  std::string NextBody(Rng& arng, const Pools& p, std::string_view user, std::string* last_cover) {
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
      const std::string& cover = Pick(arng, p.organic);
      *last_cover = cover;
      return ChatBody({{"user", cover}}, sp, user);
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
    // (No draw when the share is 0, so that scenarios without it keep their streams.)
    if (params.own_conversation_prob > 0 && !last_cover->empty() && arng.Bernoulli(params.own_conversation_prob)) {
      // The next turn of the account's own conversation: its last cover prompt, answered.
      std::string opener = std::move(*last_cover);
      last_cover->clear();
      std::string answer = ShortAnswerTo(opener, arng);
      return ChatBody({{"user", opener}, {"assistant", answer}, {"user", q}}, sp, user);
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
    ctx.EmitAs(next_ns, id_, id_.end_user, ip,
             campaign_.NextBody(rng_, ctx.pools, id_.end_user, &last_cover_));
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
  std::string last_cover_;  // mimic: its last cover prompt not yet continued
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
    id.tier = "unverified";
    ctx.Label({id.account, "", true, p.variant, p.id,
               p.variant == "bulk" ? "bulk-account" : "sybil", created, "unverified"});
    ctx.spawned.push_back(std::make_unique<CampaignAccount>(*campaign_, std::move(id), arng,
                                                            created, std::min(life_end, campaign_->end_ns)));
    ++created_;
    if (created_ >= p.accounts) return false;
    next_ns = campaign_->start_ns + Seconds(spread_s_ * (created_ + 0.5 * arng.Uniform()) / p.accounts);
    return true;
  }
  std::unique_ptr<Campaign>& campaign() { return campaign_; }
  bool owns_shared_state() const override { return true; }

 private:
  // A reseller: one account whose end users are partly real customers and partly a campaign.
  bool SpawnHydra(Context& ctx) {
    const CampaignParams& p = campaign_->params;
    const Scenario& s = ctx.scenario;
    for (int a = 0; a < p.accounts; ++a) {
      std::string account = OpaqueId("acct_", seed_, 1000 + index_, a);
      std::string key = OpaqueId("sk_", seed_, 2000 + index_, a);
      int64_t created = s.start_ns() - 90 * kDay;
      ctx.Label({account, "", true, p.variant, p.id, "reseller", created, "verified"});
      std::vector<std::string> ips = {campaign_->proxies[0],
                                      campaign_->proxies[1 % campaign_->proxies.size()]};
      for (int u = 0; u < p.organic_end_users; ++u) {
        ClientIdentity id = Identity(account, key, OpaqueId("usr_", seed_, 3000 + index_, a * 100000 + u), ips,
                          "OpenAI/NodeJS/4.47.1");
        id.tier = "verified";
        ctx.Label({account, id.end_user, false, "", "", "reseller-customer", created, "verified"});
        Rng urng(seed_, HashName(id.end_user));
        ctx.spawned.push_back(std::make_unique<OrganicUser>(std::move(id), urng, s, ctx.pools, s.start_ns()));
      }
      for (int u = 0; u < p.campaign_end_users; ++u) {
        ClientIdentity id = Identity(account, key, OpaqueId("usr_", seed_, 4000 + index_, a * 100000 + u), ips,
                          "OpenAI/NodeJS/4.47.1");
        id.tier = "verified";
        ctx.Label({account, id.end_user, true, p.variant, p.id, "hydra-end-user", created, "verified"});
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
    if (IsStealthVariant(v) || v == "adaptive") {
      if (c.content == "distill" || c.content == "mixed") MOAT_RETURN_IF_ERROR(need(pools.distill, "distill"));
      if (c.content == "cot" || c.content == "mixed") MOAT_RETURN_IF_ERROR(need(pools.cot, "cot"));
      if (c.content == "benchmark" || c.content == "mixed") {
        MOAT_RETURN_IF_ERROR(need(pools.benchmark, "benchmark"));
      }
    }
  }
  const OrganicParams& traps = scenario_.organic;
  if ((traps.researchers > 0 || traps.shared_benchmark_researchers > 0 || traps.classrooms > 0) &&
      pools.benchmark.empty() && pools.cot.empty()) {
    return FailedPreconditionError("researcher and classroom traps need `benchmark` or `cot` prompts");
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
    ClientIdentity id = OrganicIdentity(r, o);
    id.account = OpaqueId("acct_", seed_, 1, i);
    id.key = OpaqueId("sk_", seed_, 2, i);
    int64_t created = start - Seconds(86400.0 * (1 + r.Below(700)));
    ctx.Label({id.account, "", false, "", "", "user", created, std::string(id.tier)});
    push(std::make_unique<OrganicUser>(std::move(id), r, scenario_, pools, start));
  }
  for (int i = 0; i < o.batch_jobs; ++i) {
    Rng r(seed_, 0x0B000000ULL + i);
    ClientIdentity id = Identity(OpaqueId("acct_", seed_, 3, i), OpaqueId("sk_", seed_, 4, i), "",
                      {DatacenterIp(r)}, "python-httpx/0.27.0");
    id.tier = "enterprise";
    ctx.Label({id.account, "", false, "", "", "batch-job", start - 200 * kDay, "enterprise"});
    push(std::make_unique<BatchJob>(std::move(id), r, o, start));
  }
  for (int i = 0; i < o.coding_tools; ++i) {
    Rng r(seed_, 0x0C000000ULL + i);
    ClientIdentity id = Identity(OpaqueId("acct_", seed_, 5, i), OpaqueId("sk_", seed_, 6, i), "",
                      {DatacenterIp(r), DatacenterIp(r), DatacenterIp(r)}, "OpenAI/Python 1.30.1");
    id.sdk_headers = SdkHeaders(r, id.agent);
    id.tier = "enterprise";
    ctx.Label({id.account, "", false, "", "", "coding-tool", start - 300 * kDay, "enterprise"});
    push(std::make_unique<CodingTool>(std::move(id), r, o, seed_, i, start));
  }
  {
    std::vector<std::unique_ptr<Actor>> trap_actors;
    AddOrganicTraps(ctx, seed_, trap_actors);
    for (auto& a : trap_actors) push(std::move(a));
  }
  for (size_t i = 0; i < scenario_.campaigns.size(); ++i) {
    const CampaignParams& params = scenario_.campaigns[i];
    if (IsStealthVariant(params.variant)) {
      push(MakeStealthSpawner(params, scenario_, pools, seed_, static_cast<int>(i)));
      continue;
    }
    if (params.variant == "adaptive") {
      push(MakeAdaptiveSpawner(params, scenario_, pools, seed_, static_cast<int>(i)));
      continue;
    }
    auto c = std::make_unique<Campaign>(params, seed_, scenario_);
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
      if (actor->owns_shared_state()) finished_spawners.push_back(std::move(actor));
      continue;
    }
    bool more = actor->Step(ctx);
    for (auto& s : ctx.spawned) {
      if (s->next_ns < end) push(std::move(s));
    }
    ctx.spawned.clear();
    if (more && actor->next_ns < end) {
      push(std::move(actor));
    } else if (actor->owns_shared_state()) {
      finished_spawners.push_back(std::move(actor));
    }
    stats_.peak_active_actors =
        std::max<int64_t>(stats_.peak_active_actors, static_cast<int64_t>(heap.size()));
  }
  return Status::Ok();
}

}  // namespace moat::traffic

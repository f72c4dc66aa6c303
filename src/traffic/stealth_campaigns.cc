// Stealth campaigns: what a competent operator runs within a week of being caught once. Every
// field but content is drawn from the organic distributions (client library and its headers,
// one residential address per account, tier, sampling parameters, app system prompts, diurnal
// pacing with human think times, aged accounts); what gives them away is only what they ask
// for: items from a work queue, each handed out once across the campaign, rephrased in a
// per-account voice. The wordings here are the generator's own and are deliberately unlike
// the detection trainer's (src/detect/training), so the benchmark measures generalisation.

#include <cctype>

#include "traffic/generator_parts.h"

namespace moat::traffic::gen {
namespace {

// ---- Voices ---------------------------------------------------------------------------------

constexpr std::array<std::string_view, 14> kOpeners = {
    "hey", "hi there", "hello!", "ok so", "quick one:", "question for you -", "need a hand.",
    "so I'm stuck on this.", "Good morning.", "hiya", "Alright,", "yo", "Random question:",
    "Hope you're well."};
constexpr std::array<std::string_view, 10> kClosers = {
    "thanks", "thx!", "appreciate it", "cheers", "much appreciated :)", "any ideas?",
    "ty in advance", "Thank you so much.", "lmk", "thanks a bunch"};
constexpr std::array<std::string_view, 10> kContexts = {
    "I'm prepping for an interview.", "This is for a side project.",
    "My manager asked me about this.", "studying for a test rn.",
    "Been wondering about this for a while.", "Trying to settle a debate with a friend.",
    "It's for a blog post I'm drafting.", "I'm new to this stuff.",
    "Working on homework, don't judge.", "Need this for a presentation tomorrow."};
constexpr std::array<std::string_view, 6> kAskForms = {
    "can you ", "could you ", "I need you to ", "would you mind, ", "pls ", "help me: "};

}  // namespace

Voice MakeVoice(Rng& r) {
  Voice v;
  v.opener = static_cast<int>(r.Below(kOpeners.size()));
  v.closer = static_cast<int>(r.Below(kClosers.size()));
  v.context = static_cast<int>(r.Below(kContexts.size()));
  v.ask = r.Bernoulli(0.6) ? static_cast<int>(r.Below(kAskForms.size())) : -1;
  v.opener_prob = r.Uniform() * 0.7;
  v.closer_prob = r.Uniform() * 0.6;
  v.context_prob = r.Uniform() * 0.3;
  v.lower_case = r.Bernoulli(0.3);
  v.drop_final_punct = r.Bernoulli(0.3);
  v.you_as_u = r.Bernoulli(0.15);
  return v;
}

namespace {

bool StartsImperative(std::string_view s) {
  // A capitalised first word followed by a space and no question mark at the end of the first
  // sentence is how instruction sets open ("Write", "Explain", "Generate", ...).
  if (s.empty() || !std::isupper(static_cast<unsigned char>(s[0]))) return false;
  size_t sp = s.find(' ');
  if (sp == std::string_view::npos || sp > 12) return false;
  size_t end = s.find_first_of(".?\n");
  return end == std::string_view::npos || s[end] != '?';
}

}  // namespace

std::string Speak(const Voice& v, std::string_view item, Rng& r) {
  std::string body(item);
  if (v.ask >= 0 && StartsImperative(body)) {
    body[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(body[0])));
    body.insert(0, kAskForms[v.ask]);
  }
  if (v.drop_final_punct && !body.empty() && (body.back() == '.' || body.back() == '?')) body.pop_back();
  std::string out;
  if (r.Bernoulli(v.opener_prob)) out.append(kOpeners[v.opener]).append(" ");
  if (r.Bernoulli(v.context_prob)) out.append(kContexts[v.context]).append(" ");
  out += body;
  if (r.Bernoulli(v.closer_prob)) out.append(body.find('\n') != std::string::npos ? "\n" : " ").append(kClosers[v.closer]);
  if (v.lower_case) {
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (v.you_as_u) {
    for (size_t pos = out.find("you "); pos != std::string::npos; pos = out.find("you ", pos + 2)) {
      if (pos == 0 || !std::isalpha(static_cast<unsigned char>(out[pos - 1]))) out.replace(pos, 3, "u");
    }
  }
  return out;
}

namespace {

// ---- Reasoning harvest ----------------------------------------------------------------------

// Forty ways to ask for the reasoning and not just the answer; `{}` is the question.
constexpr std::array<std::string_view, 40> kReasoningAsks = {
    "{}\nhow would you get to the answer? talk me through it",
    "I want to understand the method, not just the result: {}",
    "{} Narrate your logic as you go.",
    "{}\n\nSpell out each deduction you make.",
    "{} What's the reasoning behind it? All of it please.",
    "Don't skip anything, I want every stage of the working. {}",
    "Pretend you're a tutor explaining this to me slowly. {}",
    "{} go slow and show me the working",
    "Can you solve this and describe what you're doing at each point? {}",
    "{}\nI'd like the full line of thought, then the answer at the end.",
    "{} Explain it like you would on a whiteboard, one move at a time.",
    "Help me see how this is solved. {}",
    "{}\n\nPlease lay out the logic in order before concluding.",
    "{} Include the in-between calculations.",
    "{} Why is that the answer? Show how you'd figure it out.",
    "{}\n(please include your thinking, my teacher wants the process)",
    "Think aloud while you solve this: {}",
    "{} Give me your train of thought, not only the final result.",
    "Could you break down how to approach this one? {}",
    "{}\nWhat would an expert's internal monologue look like solving this?",
    "{} Outline the argument that leads to the answer.",
    "Write the solution the way a textbook worked example would. {}",
    "{} Show each sub-result you compute along the way.",
    "{} I need the derivation, not just a number.",
    "{}\n\nExplain the steps you take to reach a conclusion.",
    "First describe your approach, then carry it out, then answer. {}",
    "{} Please be explicit about every inference.",
    "{} annotate your solution so I can follow it",
    "Reason it out for me: {}",
    "{} What are the logical steps here?",
    "{}\n\nMake your thinking visible.",
    "{} Tell me how you'd work this out from scratch.",
    "Teach me how to do this kind of problem using this one: {}",
    "{} Walk through it in detail.",
    "{}\nDescribe the process you'd follow, with the intermediate values.",
    "{} I learn better when I see how the answer is derived.",
    "Solve and justify: {}",
    "{} Give the full working out.",
    "{} Show the chain of inferences.",
    "{}\nexplain ur thought process pls"};
// A follow-up that asks for the reasoning behind an answer already given.
constexpr std::array<std::string_view, 12> kFollowUps = {
    "how did you get that?", "can you explain how you arrived at that?",
    "walk me through how you got there", "why is that the answer?", "what steps did you take?",
    "wait, how? explain", "can you show the work for that?", "how do you know?",
    "I don't follow, can you explain your reasoning?", "break that down for me",
    "where does that come from?", "explain how you worked it out"};

std::string Substitute(std::string_view tmpl, std::string_view value) {
  std::string out(tmpl);
  size_t pos = out.find("{}");
  if (pos != std::string::npos) out.replace(pos, 2, value);
  return out;
}

// A short stand-in for the answer the model gave to the first turn.
std::string ShortAnswer(std::string_view question, Rng& r) {
  for (size_t i = 0; i < question.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(question[i]))) {
      return "The answer is " + std::to_string(1 + r.Below(500)) + ".";
    }
  }
  static constexpr std::array<std::string_view, 4> kPlain = {"The answer is (B).", "Yes.",
                                                             "It's the second one.", "No, it is not."};
  return std::string(kPlain[r.Below(kPlain.size())]);
}

// ---- The campaign ---------------------------------------------------------------------------

struct StealthCampaign {
  const CampaignParams& params;
  WorkQueue queue;
  int64_t start_ns = 0, end_ns = 0;
  // topic-sweep: the next unassigned domain (a window of one dataset).
  size_t next_domain = 0;
  // study-group: each group's items so far, drawn from the queue as its first member needs one.
  std::vector<std::vector<const std::string*>> group_items;

  StealthCampaign(const CampaignParams& p, const Scenario& s, const Pools& pools, uint64_t seed)
      : params(p), queue(pools, p.content, seed ^ HashName(p.id)) {
    start_ns = s.start_ns() + Seconds(p.start_hour * 3600);
    end_ns = std::min(s.end_ns(), start_ns + Seconds(p.duration_hours * 3600));
  }
};

// One account (or, behind a reseller, one end user) of a stealth campaign.
class StealthAccount final : public Actor {
 public:
  // `group` >= 0 (study-group): the account takes its items from that group's list, and its
  // schedule (time zone, sessions, gaps, request count) from `group_clock`, which every member
  // of the group is given a copy of; `start_ns` then carries the member's few minutes' offset.
  StealthAccount(StealthCampaign& c, ClientIdentity id, Rng rng, int64_t start_ns, int64_t end_ns,
                 const Pools& pools, int group = -1, Rng group_clock = Rng(0, 0))
      : c_(c), id_(std::move(id)), rng_(rng), end_ns_(end_ns), group_(group), group_clock_(group_clock) {
    const CampaignParams& p = c.params;
    voice_ = MakeVoice(rng_);
    sampling_ = OrganicSampling(rng_);
    tz_ = static_cast<int>(Clock().Below(24)) - 11;
    const int lo = std::max(1, p.min_requests_per_account);
    const int hi = std::max(lo, p.max_requests_per_account > 0 ? p.max_requests_per_account : lo * 3);
    budget_ = lo + static_cast<int>(Clock().Below(hi - lo + 1));
    // Sessions of one to four requests, spread over the account's life like a person's.
    const double life_days = std::max(1.0 / 24, (end_ns - start_ns) / 1e9 / 86400.0);
    sessions_per_day_ = std::max(0.5, budget_ / 2.2 / life_days);
    if (p.variant == "topic-sweep") AssignDomain(pools);
    next_ns = start_ns + Seconds(Clock().Exponential(600));
  }

  bool Step(Context& ctx) override {
    if (next_ns >= end_ns_ || sent_ >= budget_) return false;
    const std::string& ip = id_.ips[rng_.Below(id_.ips.size())];
    const std::string user = EndUser();
    ctx.EmitAs(next_ns, id_, user, ip, NextBody(ctx.pools, user));
    ++sent_;
    if (sent_ >= budget_) return false;
    const int64_t now = next_ns;
    Rng& clock = Clock();
    if (pending_followup_.empty() && (--burst_left_ > 0)) {
      next_ns += Seconds(clock.LogNormal(75, 0.8));  // reading the answer, typing the next one
    } else if (!pending_followup_.empty()) {
      next_ns += Seconds(clock.LogNormal(45, 0.7));
    } else {
      burst_left_ = 1 + static_cast<int>(clock.Below(4));
      next_ns = NextDiurnal(clock, next_ns, sessions_per_day_, kHumanDiurnal, tz_, 0.8);
    }
    // The operator gets each account's share of the queue done within the account's life.
    if (next_ns >= end_ns_ && end_ns_ > now) {
      next_ns = now + static_cast<int64_t>(clock.Uniform() * static_cast<double>(end_ns_ - now) /
                                           (budget_ - sent_ + 1));
    }
    return next_ns < end_ns_;
  }

 private:
  std::string EndUser() {
    if (c_.params.variant == "rotating-user") {
      return OpaqueId("u-", rng_.Next(), 0, 0);  // a fresh end user on every request
    }
    return id_.end_user;
  }

  void AssignDomain(const Pools& p) {
    const auto& sets = c_.params.content == "cot" ? p.cot_by_set
                       : c_.params.content == "distill" ? p.distill_by_set
                                                        : p.benchmark_by_set;
    if (sets.empty()) return;
    // Domains are consecutive windows of the data (sets sorted by subject give subjects).
    const size_t k = c_.next_domain++;
    const auto& set = sets[k % sets.size()];
    const size_t window = std::min<size_t>(set.size(), 150);
    domain_ = &set;
    domain_pos_ = (k / sets.size() * window) % set.size();
  }

  // The clock of the account's schedule: its group's when it has one (its members keep time
  // together), else its own generator.
  Rng& Clock() { return group_ >= 0 ? group_clock_ : rng_; }

  const std::string& NextItem() {
    if (domain_ != nullptr) return *(*domain_)[domain_pos_++ % domain_->size()];
    if (group_ >= 0) {
      auto& items = c_.group_items[static_cast<size_t>(group_)];
      while (items.size() <= group_pos_) items.push_back(&c_.queue.Next());
      return *items[group_pos_++];
    }
    return c_.queue.Next();
  }

  std::string NextBody(const Pools& p, std::string_view user) {
    std::vector<Message> msgs;
    if (!id_.system_prompt.empty()) msgs.push_back({"system", id_.system_prompt});
    if (!pending_followup_.empty()) {
      msgs.push_back({"user", pending_followup_});
      msgs.push_back({"assistant", pending_answer_});
      std::string follow(kFollowUps[rng_.Below(kFollowUps.size())]);
      msgs.push_back({"user", follow});
      std::string body = ChatBody(msgs, sampling_, user);
      pending_followup_.clear();
      return body;
    }
    const std::string text = Speak(voice_, NextItem(), rng_);
    if (c_.params.variant == "stealth-cot") {
      if (rng_.Bernoulli(c_.params.followup_prob)) {
        pending_followup_ = text;  // ask plainly now, ask for the reasoning next
        pending_answer_ = ShortAnswer(text, rng_);
      } else {
        const std::string asked = Substitute(kReasoningAsks[rng_.Below(kReasoningAsks.size())], text);
        msgs.push_back({"user", asked});
        return ChatBody(msgs, sampling_, user);
      }
    }
    // Now and then the item comes inside an ordinary-looking conversation.
    if (!p.conversations.empty() && rng_.Bernoulli(0.1)) {
      const Conversation& conv = *p.conversations[rng_.Below(p.conversations.size())];
      msgs.push_back({"user", conv[0].text});
      msgs.push_back({"assistant", conv[1].text});
    }
    msgs.push_back({"user", text});
    return ChatBody(msgs, sampling_, user);
  }

  StealthCampaign& c_;
  ClientIdentity id_;
  Rng rng_;
  int64_t end_ns_;
  Voice voice_;
  SamplingParams sampling_;
  int tz_ = 0;
  int budget_ = 1, sent_ = 0, burst_left_ = 1;
  double sessions_per_day_ = 1;
  const std::vector<const std::string*>* domain_ = nullptr;
  size_t domain_pos_ = 0;
  int group_ = -1;
  Rng group_clock_;
  size_t group_pos_ = 0;
  std::string pending_followup_, pending_answer_;
};

// Creates a stealth campaign's accounts over its duration (aged accounts that start working,
// or a steady drip of new ones), or, for stealth-hydra, a reseller and its end users.
class StealthSpawner final : public Actor {
 public:
  StealthSpawner(const CampaignParams& p, const Scenario& s, const Pools& pools, uint64_t seed, int index)
      : campaign_(std::make_unique<StealthCampaign>(p, s, pools, seed)), seed_(seed), index_(index) {
    next_ns = p.variant == "stealth-hydra" ? s.start_ns() : campaign_->start_ns;
    const double span_s = (campaign_->end_ns - campaign_->start_ns) / 1e9;
    const double life_s = p.account_lifetime_hours * 3600;
    // Accounts that work the whole campaign start over its first fifth; short-lived ones are
    // created steadily over the campaign.
    spread_s_ = life_s > 0 ? std::max(1.0, span_s - life_s) : span_s * 0.2;
  }
  bool owns_shared_state() const override { return true; }

  bool Step(Context& ctx) override {
    const CampaignParams& p = campaign_->params;
    const Scenario& s = ctx.scenario;
    if (p.variant == "stealth-hydra") return SpawnReseller(ctx);
    const int64_t created = next_ns;
    Rng arng(seed_, 0x5e000000ULL + static_cast<uint64_t>(index_) * 1000003ULL + created_);
    ClientIdentity id = OrganicIdentity(arng, s.organic);
    id.account = OpaqueId("acct_", seed_, 5000 + index_, created_);
    id.key = OpaqueId("sk_", seed_, 6000 + index_, created_);
    // Aged: registered long before it starts working, like the organic accounts.
    const int64_t registered = s.start_ns() - Seconds(86400.0 * (30 + arng.Below(500)));
    ctx.Label({id.account, "", true, p.variant, p.id, "stealth", registered, std::string(id.tier)});
    const int64_t life_end = p.account_lifetime_hours > 0 ? created + Seconds(p.account_lifetime_hours * 3600)
                                                          : campaign_->end_ns;
    int group = -1;
    Rng clock(0, 0);
    int64_t start = created;
    if (p.variant == "study-group") {
      // A study group: its members are created together, keep one schedule and ask the same
      // items, each up to 20 minutes after the group's time.
      group = created_ / p.group_size;
      if (static_cast<size_t>(group) >= campaign_->group_items.size()) {
        campaign_->group_items.resize(static_cast<size_t>(group) + 1);
      }
      clock = Rng(seed_, 0x5d000000ULL + static_cast<uint64_t>(index_) * 1000003ULL + group);
      start = created + Seconds(arng.Uniform() * 20 * 60);
    }
    ctx.spawned.push_back(std::make_unique<StealthAccount>(*campaign_, std::move(id), arng, start,
                                                           std::min(life_end, campaign_->end_ns), ctx.pools,
                                                           group, clock));
    ++created_;
    if (created_ >= p.accounts) return false;
    if (p.variant == "study-group") {
      if (created_ % p.group_size != 0) return true;  // the group's next member, now
      const int groups = (p.accounts + p.group_size - 1) / p.group_size;
      next_ns = campaign_->start_ns +
                Seconds(spread_s_ * (created_ / p.group_size + 0.5 * arng.Uniform()) / groups);
      return true;
    }
    next_ns = campaign_->start_ns + Seconds(spread_s_ * (created_ + 0.5 * arng.Uniform()) / p.accounts);
    return true;
  }

 private:
  // A reseller whose campaign end users look like its customers in everything but content.
  bool SpawnReseller(Context& ctx) {
    const CampaignParams& p = campaign_->params;
    const Scenario& s = ctx.scenario;
    for (int a = 0; a < p.accounts; ++a) {
      Rng rr(seed_, 0x5f000000ULL + static_cast<uint64_t>(index_) * 1000003ULL + a);
      ClientIdentity base;
      base.account = OpaqueId("acct_", seed_, 5000 + index_, a);
      base.key = OpaqueId("sk_", seed_, 6000 + index_, a);
      base.ips = {ResidentialIp(rr), ResidentialIp(rr)};  // its own servers
      base.agent = "OpenAI/NodeJS/4.52.0";
      base.sdk_headers = SdkHeaders(rr, base.agent);
      base.tier = "verified";
      const int64_t registered = s.start_ns() - 120 * kDay;
      ctx.Label({base.account, "", true, p.variant, p.id, "reseller", registered, "verified"});
      for (int u = 0; u < p.organic_end_users; ++u) {
        ClientIdentity id = base;
        id.end_user = OpaqueId("usr_", seed_, 7000 + index_, a * 100000 + u);
        ctx.Label({base.account, id.end_user, false, "", "", "reseller-customer", registered, "verified"});
        Rng urng(seed_, HashName(id.end_user));
        ctx.spawned.push_back(std::make_unique<OrganicUser>(std::move(id), urng, s, ctx.pools, s.start_ns()));
      }
      for (int u = 0; u < p.campaign_end_users; ++u) {
        ClientIdentity id = base;
        id.end_user = OpaqueId("usr_", seed_, 8000 + index_, a * 100000 + u);
        ctx.Label({base.account, id.end_user, true, p.variant, p.id, "hydra-end-user", registered, "verified"});
        Rng urng(seed_, HashName(id.end_user));
        const int64_t start = campaign_->start_ns + Seconds(urng.Uniform() * spread_s_);
        ctx.spawned.push_back(std::make_unique<StealthAccount>(*campaign_, std::move(id), urng, start,
                                                               campaign_->end_ns, ctx.pools));
      }
    }
    return false;
  }

  std::unique_ptr<StealthCampaign> campaign_;
  uint64_t seed_;
  int index_;
  double spread_s_ = 1;
  int created_ = 0;
};

}  // namespace

std::string_view FollowUpAsk(Rng& r) { return kFollowUps[r.Below(kFollowUps.size())]; }

std::string AskForReasoning(std::string_view question, Rng& r) {
  return Substitute(kReasoningAsks[r.Below(kReasoningAsks.size())], question);
}

std::string ShortAnswerTo(std::string_view question, Rng& r) { return ShortAnswer(question, r); }

std::unique_ptr<Actor> MakeStealthSpawner(const CampaignParams& p, const Scenario& s, const Pools& pools,
                                          uint64_t seed, int index) {
  return std::make_unique<StealthSpawner>(p, s, pools, seed, index);
}

}  // namespace moat::traffic::gen

// The adaptive campaign: a closed-loop operator that reads every answer and adapts. It keeps
// `accounts` accounts working at once, each an organic-looking identity (client library and
// headers, one residential address, sampling, system prompt, human pacing unless it chooses a
// script's; bought aged
// accounts, unverified or phone-verified — never enterprise, which takes a contract), and
// feeds them a work queue in per-account voices like the stealth campaigns. Unlike them it
// reacts: the first answer that is not full fidelity (degraded, refused, asked to verify) burns
// the account; the operator re-queues that item, replaces the account after a pause, and
// shifts towards the tactic that got the most full answers per account so far (epsilon-greedy
// over six tactics: plain items, items mixed with organic cover prompts, slow pacing, a plain
// question then "how did you get that?", items inside real conversation openers, and a
// script's pace: the next item a few seconds after each answer, no sessions). Accounts
// that reach `max_requests_per_account` are retired unburned and replaced too.
//
// It closes the loop only where the sink judges requests (in-process `traffic run`); written
// to files, every answer reads as allowed and it runs open-loop. The metric it is built for is
// the scorer's full answers per restricted account (the target is ten or fewer).

#include <array>

#include "traffic/generator_parts.h"

namespace moat::traffic::gen {
namespace {

enum Tactic : int { kPlain = 0, kCover, kSlow, kFollowUp, kConversation, kFast, kNumTactics };

struct AdaptiveOperator {
  AdaptiveOperator(const CampaignParams& p, const Scenario& s, const Pools& pools, uint64_t seed, int index)
      : params(p), index(index), queue(pools, p.content, seed ^ HashName(p.id)), rng(seed, HashName(p.id) ^ 0xada) {
    start_ns = s.start_ns() + Seconds(p.start_hour * 3600);
    end_ns = std::min(s.end_ns(), start_ns + Seconds(p.duration_hours * 3600));
    max_accounts = p.max_accounts > 0 ? p.max_accounts : 50 * p.accounts;
  }

  // The next item: one a burned account did not get answered first.
  std::string NextItem() {
    if (!requeued.empty()) {
      std::string item = std::move(requeued.back());
      requeued.pop_back();
      return item;
    }
    return queue.Next();
  }

  // Epsilon-greedy on full answers per finished account, every tactic tried first.
  Tactic Choose() {
    for (int t = 0; t < kNumTactics; ++t) {
      if (tried[t] == 0) {
        ++tried[t];
        return static_cast<Tactic>(t);
      }
    }
    if (rng.Bernoulli(0.15)) return static_cast<Tactic>(rng.Below(kNumTactics));
    int best = 0;
    double best_rate = -1;
    for (int t = 0; t < kNumTactics; ++t) {
      const double rate = finished[t] > 0 ? answers[t] / finished[t] : 0;
      if (rate > best_rate) best_rate = rate, best = t;
    }
    return static_cast<Tactic>(best);
  }

  void Finish(Tactic t, int got) {
    finished[t] += 1;
    answers[t] += got;
  }

  const CampaignParams& params;
  int index;  // of the campaign in the scenario
  WorkQueue queue;
  Rng rng;
  std::vector<std::string> requeued;
  int64_t start_ns = 0, end_ns = 0;
  int max_accounts = 0, created = 0;
  std::array<double, kNumTactics> finished{}, answers{};
  std::array<int, kNumTactics> tried{};
};

class AdaptiveAccount final : public Actor {
 public:
  AdaptiveAccount(AdaptiveOperator& op, ClientIdentity id, Rng rng, Tactic tactic, int64_t start_ns)
      : op_(op), id_(std::move(id)), rng_(rng), tactic_(tactic) {
    voice_ = MakeVoice(rng_);
    sampling_ = OrganicSampling(rng_);
    tz_ = static_cast<int>(rng_.Below(24)) - 11;
    sessions_per_day_ = tactic == kSlow ? 1.0 : 4.0 + rng_.Uniform() * 4;
    next_ns = start_ns;
  }

  bool Step(Context& ctx) override {
    if (next_ns >= op_.end_ns) return false;
    bool harvest = true;
    std::string item;
    std::vector<Message> msgs;
    if (!id_.system_prompt.empty()) msgs.push_back({"system", id_.system_prompt});
    std::string first, answer, ask;
    if (!pending_.empty()) {
      // The follow-up to a plain question: the reasoning is what the operator wants.
      first = std::move(pending_);
      answer = ShortAnswerTo(first, rng_);
      msgs.push_back({"user", first});
      msgs.push_back({"assistant", answer});
      ask = std::string(FollowUpAsk(rng_));
      msgs.push_back({"user", ask});
      item = std::move(pending_item_);
      pending_.clear();
    } else if (tactic_ == kCover && rng_.Bernoulli(0.5) && !ctx.pools.organic.empty()) {
      harvest = false;  // cover: something an ordinary user asks
      ask = Pick(rng_, ctx.pools.organic);
      msgs.push_back({"user", ask});
    } else {
      item = op_.NextItem();
      const std::string spoken = Speak(voice_, item, rng_);
      if (tactic_ == kFollowUp) {
        pending_ = spoken;
        pending_item_ = item;
        harvest = false;  // the answer alone is not what it is after; the follow-up is
        ask = spoken;
      } else {
        ask = rng_.Bernoulli(0.5) ? AskForReasoning(spoken, rng_) : spoken;
        if (tactic_ == kConversation && !ctx.pools.conversations.empty()) {
          const Conversation& conv = *ctx.pools.conversations[rng_.Below(ctx.pools.conversations.size())];
          msgs.push_back({"user", conv[0].text});
          msgs.push_back({"assistant", conv[1].text});
        }
      }
      msgs.push_back({"user", ask});
    }
    const std::string& ip = id_.ips[rng_.Below(id_.ips.size())];
    ctx.EmitAs(next_ns, id_, "", ip, ChatBody(msgs, sampling_, ""));
    ++sent_;
    if (ctx.last_action != detect::Action::kAllow) {
      // Burned: the operator reads the refusal (or the degraded answer) and moves on.
      if (!item.empty()) op_.requeued.push_back(std::move(item));
      return Retire(ctx, Seconds(rng_.Exponential(900)));
    }
    answers_ += harvest ? 1 : 0;
    if (op_.params.max_requests_per_account > 0 && sent_ >= op_.params.max_requests_per_account &&
        pending_.empty()) {
      return Retire(ctx, Seconds(rng_.Exponential(300)));
    }
    // Human pacing: bursts of a few requests, then the next session; or a script's pace.
    if (tactic_ == kFast) {
      next_ns += Seconds(rng_.LogNormal(3, 0.5));
    } else if (!pending_.empty()) {
      next_ns += Seconds(rng_.LogNormal(40, 0.6));
    } else if (--burst_left_ > 0) {
      next_ns += Seconds(rng_.LogNormal(tactic_ == kSlow ? 180 : 75, 0.8));
    } else {
      burst_left_ = tactic_ == kSlow ? 1 + static_cast<int>(rng_.Below(2)) : 1 + static_cast<int>(rng_.Below(4));
      next_ns = NextDiurnal(rng_, next_ns, sessions_per_day_, kHumanDiurnal, tz_, 0.8);
    }
    return next_ns < op_.end_ns;
  }

 private:
  // Ends this account and, while the operator has accounts left, starts its replacement.
  bool Retire(Context& ctx, int64_t pause_ns);

  AdaptiveOperator& op_;
  ClientIdentity id_;
  Rng rng_;
  Tactic tactic_;
  Voice voice_;
  SamplingParams sampling_;
  int tz_ = 0;
  double sessions_per_day_ = 4;
  int sent_ = 0, answers_ = 0, burst_left_ = 1;
  std::string pending_, pending_item_;
};

// A fresh account of the operator's, labelled, starting at `start_ns`.
std::unique_ptr<Actor> NewAccount(AdaptiveOperator& op, Context& ctx, int64_t start_ns) {
  const uint64_t seed = ctx.seed;
  const int index = op.index;
  const int n = op.created++;
  Rng arng(seed, 0xad000000ULL + static_cast<uint64_t>(index) * 1000003ULL + n);
  ClientIdentity id = OrganicIdentity(arng, ctx.scenario.organic);
  if (id.tier == "enterprise") id.tier = "verified";  // bought accounts, not contracts
  id.account = OpaqueId("acct_", seed, 5500 + index, n);
  id.key = OpaqueId("sk_", seed, 6500 + index, n);
  const int64_t registered = ctx.scenario.start_ns() - Seconds(86400.0 * (30 + arng.Below(500)));
  ctx.Label({id.account, "", true, op.params.variant, op.params.id, "adaptive", registered, std::string(id.tier)});
  const Tactic tactic = op.Choose();
  return std::make_unique<AdaptiveAccount>(op, std::move(id), arng, tactic, start_ns);
}

bool AdaptiveAccount::Retire(Context& ctx, int64_t pause_ns) {
  op_.Finish(tactic_, answers_);
  if (op_.created < op_.max_accounts && next_ns + pause_ns < op_.end_ns) {
    ctx.spawned.push_back(NewAccount(op_, ctx, next_ns + pause_ns));
  }
  return false;
}

// Starts the operator's first accounts over the campaign's first hour and owns the operator.
class AdaptiveSpawner final : public Actor {
 public:
  AdaptiveSpawner(const CampaignParams& p, const Scenario& s, const Pools& pools, uint64_t seed, int index)
      : op_(std::make_unique<AdaptiveOperator>(p, s, pools, seed, index)) {
    next_ns = op_->start_ns;
  }
  bool owns_shared_state() const override { return true; }

  bool Step(Context& ctx) override {
    if (op_->queue.empty()) return false;
    ctx.spawned.push_back(NewAccount(*op_, ctx, next_ns));
    if (op_->created >= op_->params.accounts) return false;
    next_ns += Seconds(3600.0 / op_->params.accounts * (0.5 + op_->rng.Uniform()));
    return next_ns < op_->end_ns;
  }

 private:
  std::unique_ptr<AdaptiveOperator> op_;
};

}  // namespace

std::unique_ptr<Actor> MakeAdaptiveSpawner(const CampaignParams& p, const Scenario& s, const Pools& pools,
                                           uint64_t seed, int index) {
  return std::make_unique<AdaptiveSpawner>(p, s, pools, seed, index);
}

}  // namespace moat::traffic::gen

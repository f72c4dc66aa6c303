// False-positive traps: legitimate traffic whose content looks exactly like a campaign's.
// A detector must never restrict them:
//   - a researcher who runs one public benchmark once, in one of the common evaluation setups
//     (zero-shot chain of thought, self-consistency with n = 5, 5-shot multiple choice, code
//     completion), at an evaluation harness's steady pace, from one verified account;
//   - several unrelated researchers running the same benchmark (the same items, each its own
//     format and time);
//   - a classroom whose students all ask the same homework set, in their own words, with
//     follow-up questions, in one evening.
// All are labelled organic with personas researcher / shared-benchmark / classroom.

#include <cctype>

#include "traffic/generator_parts.h"

namespace moat::traffic::gen {
namespace {

enum class EvalSetup { kZeroShotCot, kSelfConsistency, kFewShot, kCode };

bool LooksLikeCode(const std::vector<const std::string*>& set) {
  size_t code = 0;
  for (size_t i = 0; i < std::min<size_t>(set.size(), 20); ++i) {
    code += set[i]->find("def ") != std::string::npos || set[i]->find("function") != std::string::npos;
  }
  return code * 2 > std::min<size_t>(set.size(), 20);
}

// A benchmark run: the items of one set, once, in the set's order, in a fixed format.
class Researcher final : public Actor {
 public:
  Researcher(ClientIdentity id, Rng rng, const std::vector<const std::string*>& set, size_t first,
             int items, EvalSetup setup, int64_t start_ns)
      : id_(std::move(id)), rng_(rng), set_(set), pos_(first), left_(items), setup_(setup) {
    next_ns = start_ns;
    sampling_.model = "gpt-4o";
    sampling_.temperature = setup == EvalSetup::kSelfConsistency ? 0.7 : 0.0;
    sampling_.max_tokens = setup == EvalSetup::kFewShot ? 8 : setup == EvalSetup::kCode ? 512 : 768;
  }

  bool Step(Context& ctx) override {
    const std::string& item = *set_[pos_++ % set_.size()];
    std::string prompt;
    switch (setup_) {
      case EvalSetup::kZeroShotCot:
        prompt = "Q: " + item + "\nA: Let's think step by step.";
        break;
      case EvalSetup::kSelfConsistency:
        prompt = item + "\nGive the final answer as a number on the last line.";
        break;
      case EvalSetup::kFewShot: {
        // Five exemplars from the same set (the usual 5-shot prompt), then the item.
        prompt = "The following are multiple choice questions (with answers).\n\n";
        for (int k = 1; k <= 5; ++k) {
          prompt += *set_[(pos_ + 97 * k) % set_.size()];
          prompt += "\nAnswer: ";
          prompt += static_cast<char>('A' + (k * 3) % 4);
          prompt += "\n\n";
        }
        prompt += item + "\nAnswer:";
        break;
      }
      case EvalSetup::kCode:
        prompt = "Complete the following Python function. Return only code.\n\n" + item;
        break;
    }
    std::string body = ChatBody({{"user", prompt}}, sampling_, "");
    if (setup_ == EvalSetup::kSelfConsistency) {
      // n = 5 samples per item for majority voting.
      body.insert(body.size() - 1, ",\"n\":5");
    }
    ctx.EmitAs(next_ns, id_, "", id_.ips[0], std::move(body));
    if (--left_ <= 0) return false;
    next_ns += Seconds(0.3 + rng_.Exponential(1.2));  // the harness's steady pace
    return true;
  }

 private:
  ClientIdentity id_;
  Rng rng_;
  const std::vector<const std::string*>& set_;
  size_t pos_;
  int left_;
  EvalSetup setup_;
  SamplingParams sampling_;
};

// A student doing the homework set one evening: most of the problems, in their own words,
// sometimes asking how the answer was reached.
class Student final : public Actor {
 public:
  Student(ClientIdentity id, Rng rng, std::vector<const std::string*> problems, int64_t start_ns)
      : id_(std::move(id)), rng_(rng), problems_(std::move(problems)) {
    voice_ = MakeVoice(rng_);
    sampling_ = OrganicSampling(rng_);
    next_ns = start_ns;
  }

  bool Step(Context& ctx) override {
    // Message holds views: every text it points at lives until ChatBody has copied it.
    std::vector<Message> msgs;
    std::string text, question, answer;
    if (!last_question_.empty() && rng_.Bernoulli(0.35)) {
      question = std::move(last_question_);
      last_question_.clear();
      answer = "The answer is " + std::to_string(2 + rng_.Below(90)) + ".";
      msgs.push_back({"user", question});
      msgs.push_back({"assistant", answer});
      text = std::string(FollowUpAsk(rng_));
    } else {
      if (next_ >= problems_.size()) return false;
      text = Speak(voice_, *problems_[next_++], rng_);
      last_question_ = text;
    }
    msgs.push_back({"user", text});
    ctx.EmitAs(next_ns, id_, "", id_.ips[0], ChatBody(msgs, sampling_, ""));
    next_ns += Seconds(rng_.LogNormal(240, 0.7));  // working on the answer, typing the next
    return next_ < problems_.size() || !last_question_.empty();
  }

 private:
  ClientIdentity id_;
  Rng rng_;
  std::vector<const std::string*> problems_;
  size_t next_ = 0;
  Voice voice_;
  SamplingParams sampling_;
  std::string last_question_;
};

// A researcher's account: an SDK client from one address, verified, registered long ago.
ClientIdentity ResearcherIdentity(Rng& r, uint64_t seed, uint64_t n) {
  ClientIdentity id;
  id.account = OpaqueId("acct_", seed, 9100, n);
  id.key = OpaqueId("sk_", seed, 9101, n);
  id.ips = {ResidentialIp(r)};
  id.agent = r.Bernoulli(0.7) ? "OpenAI/Python 1.35.3" : "OpenAI/Python 1.30.1";
  id.sdk_headers = SdkHeaders(r, id.agent);
  id.tier = "verified";
  return id;
}

}  // namespace

void AddOrganicTraps(Context& ctx, uint64_t seed, std::vector<std::unique_ptr<Actor>>& out) {
  const Scenario& s = ctx.scenario;
  const OrganicParams& o = s.organic;
  const Pools& p = ctx.pools;
  const double span_s = s.duration_hours * 3600;
  // Benchmark sets by setup: code sets for code completion, the rest for the other setups.
  std::vector<const std::vector<const std::string*>*> code_sets, text_sets;
  for (const auto& set : p.benchmark_by_set) {
    (LooksLikeCode(set) ? code_sets : text_sets).push_back(&set);
  }
  for (const auto& set : p.cot_by_set) text_sets.push_back(&set);
  if (text_sets.empty()) return;

  uint64_t n = 0;
  auto add_researcher = [&](Rng& r, EvalSetup setup, const std::vector<const std::string*>& set, size_t first,
                            int64_t start, std::string_view persona) {
    ClientIdentity id = ResearcherIdentity(r, seed, n++);
    ctx.Label({id.account, "", false, "", "", std::string(persona), s.start_ns() - Seconds(86400.0 * (60 + r.Below(600))),
               "verified"});
    out.push_back(std::make_unique<Researcher>(std::move(id), r, set, first, o.researcher_items, setup, start));
  };
  for (int i = 0; i < o.researchers; ++i) {
    Rng r(seed, 0x7e000000ULL + i);
    const EvalSetup setup = static_cast<EvalSetup>(i % 4);
    const auto& sets = setup == EvalSetup::kCode && !code_sets.empty() ? code_sets : text_sets;
    const auto& set = *sets[r.Below(sets.size())];
    add_researcher(r, setup, set, r.Below(set.size()), s.start_ns() + Seconds(r.Uniform() * span_s * 0.8),
                   "researcher");
  }
  if (o.shared_benchmark_researchers > 0) {
    Rng r(seed, 0x7f000000ULL);
    const auto& set = *text_sets[r.Below(text_sets.size())];
    const size_t first = r.Below(set.size());
    for (int i = 0; i < o.shared_benchmark_researchers; ++i) {
      const EvalSetup setup = static_cast<EvalSetup>(i % 3);  // each its own format
      add_researcher(r, setup, set, first, s.start_ns() + Seconds(r.Uniform() * span_s * 0.8),
                     "shared-benchmark");
    }
  }
  for (int c = 0; c < o.classrooms; ++c) {
    Rng r(seed, 0x7d000000ULL + c);
    const auto& set = *text_sets[r.Below(text_sets.size())];
    const size_t first = r.Below(set.size());
    std::vector<const std::string*> homework;
    for (int k = 0; k < o.classroom_problems; ++k) homework.push_back(set[(first + k) % set.size()]);
    // One evening: students start within a few hours of each other.
    const int64_t evening = s.start_ns() + Seconds((0.3 + 0.4 * r.Uniform()) * span_s);
    for (int st = 0; st < o.classroom_students; ++st) {
      Rng sr(seed, 0x7c000000ULL + c * 1000 + st);
      ClientIdentity id = OrganicIdentity(sr, o);
      id.account = OpaqueId("acct_", seed, 9200 + c, st);
      id.key = OpaqueId("sk_", seed, 9300 + c, st);
      id.tier = "unverified";
      // Each student does most of the set, in an order of their own.
      std::vector<const std::string*> mine = homework;
      for (size_t k = mine.size(); k > 1; --k) std::swap(mine[k - 1], mine[sr.Below(k)]);
      mine.resize(std::max<size_t>(1, mine.size() * (6 + sr.Below(5)) / 10));
      ctx.Label({id.account, "", false, "", "", "classroom", s.start_ns() - Seconds(86400.0 * (1 + sr.Below(14))),
                 "unverified"});
      out.push_back(std::make_unique<Student>(std::move(id), sr, std::move(mine),
                                              evening + Seconds(sr.Uniform() * 3 * 3600)));
    }
  }
}

}  // namespace moat::traffic::gen

// The distillation-resistance lab: students trained on plain vs hardened teacher outputs at
// equal volume (the same requests), the student's quality against the teacher's own cost, per
// hardening mode. Two parts:
//
//  Task part (synthetic, always runs). A problem "Q\n<n> <x0>" asks for f applied n times to x0,
//  f(x) = (7x + 3) mod 20, n in 1..12. The teacher answers with its reasoning, one line
//  "<remaining> <value>" per step, then "answer <x_n>". The teacher is an order-4 n-gram model
//  trained on every problem's worked solution. A quarter of the problems with n in 2..8 are held
//  out; the harvester asks the others. Students (order-4 n-gram models, the same order as the
//  steps need) are trained on the harvested answers as a hardening mode delivered them and are
//  scored by exact match of their greedy answer on the held-out problems: they can only solve an
//  unseen problem by having learned the steps.
//
//  Text part (the fortunes corpus, skipped when it is missing). The teacher is the built-in
//  model's default n-gram (order 4) on 3/4 of the corpus; the harvest is its sampled answers
//  (temperature 1) to ten short prompts; students are order-3 n-gram models trained on the
//  harvest alone; the student's quality is its perplexity on held-out plain teacher text (fresh
//  seeds), per teacher token (the students have their own tokenizers). The teacher's cost is the
//  KL it spent per token and the perplexity of its hardened output under the plain teacher.
#include "resistance_lab.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "distill_student.h"
#include "model/builtin_engine.h"
#include "model/corpus.h"
#include "model/ngram_model.h"
#include "model/sampler.h"
#include "resistance/antidistill_sampler.h"
#include "resistance/hardening.h"
#include "watermark/detector.h"
#include "watermark/watermark_key.h"
#include "watermark/watermark_sampler.h"

namespace moat::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
using resistance::AntidistillOptions;
using resistance::AntidistillSampler;
using resistance::AntidistillStats;

double Since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

watermark::MasterSecret LabSecret() {
  std::array<uint8_t, watermark::kMasterSecretBytes> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 5 + 3);
  return watermark::MasterSecret(b);
}

// How the teacher samples: temperature 1 through [anti-distillation] -> [watermark] -> dist,
// the order the built-in engine uses.
struct TeacherSampling {
  const AntidistillOptions* antidistill = nullptr;  // nullptr: plain
  const watermark::WatermarkKey* key = nullptr;     // nullptr: no watermark
  watermark::WatermarkConfig wm;
};

// Samples one completion of `prompt` (text; <s> is prepended) and adds the stage's statistics
// to `stats`.
std::vector<model::TokenId> Sample(const model::LanguageModel& m, const std::string& prompt,
                                   const TeacherSampling& how, uint64_t seed, int max_tokens,
                                   AntidistillStats* stats) {
  model::SamplerChain chain;
  AntidistillSampler* stage = nullptr;
  if (how.antidistill != nullptr) {
    auto s = std::make_unique<AntidistillSampler>(*how.antidistill, &m);
    stage = s.get();
    chain.Add(std::move(s));
  }
  if (how.key != nullptr) chain.Add(std::make_unique<watermark::WatermarkSampler>(*how.key, how.wm));
  chain.Add(std::make_unique<model::DistSampler>(seed));
  const auto& tok = m.tokenizer();
  std::vector<model::TokenId> context{tok.bos()};
  const auto p = tok.Encode(prompt);
  context.insert(context.end(), p.begin(), p.end());
  for (auto t : context) chain.Accept(t);
  std::vector<model::TokenId> out;
  std::vector<float> logits;
  model::CandidateArray cands;
  for (int i = 0; i < max_tokens; ++i) {
    m.NextTokenLogits(context, &logits);
    cands.Assign(logits);
    chain.Apply(&cands);
    const auto t = cands.selected_token();
    if (t == tok.eos()) break;
    chain.Accept(t);
    context.push_back(t);
    out.push_back(t);
  }
  if (stage != nullptr && stats != nullptr) {
    stats->steps += stage->stats().steps;
    stats->perturbed += stage->stats().perturbed;
    stats->kl_sum += stage->stats().kl_sum;
    stats->kl_max = std::max(stats->kl_max, stage->stats().kl_max);
  }
  return out;
}

// Greedy completion of `prompt` by a student engine.
std::string Greedy(const model::BuiltinEngine& e, const std::string& prompt, int max_tokens) {
  model::GenerationRequest r;
  r.prompt = prompt;
  r.temperature = 0;
  r.max_tokens = max_tokens;
  auto res = e.Generate(r, [](const model::GeneratedPiece&) { return true; });
  return res.ok() ? res->text : "";
}

// The last integer in `s`, -1 when there is none.
int LastInteger(const std::string& s) {
  int value = -1;
  for (size_t i = 0; i < s.size();) {
    if (std::isdigit(static_cast<unsigned char>(s[i]))) {
      size_t j = i;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      value = j - i <= 6 ? std::stoi(s.substr(i, j - i)) : -1;
      i = j;
    } else {
      ++i;
    }
  }
  return value;
}

// ---------------------------------------------------------------- task part

struct Problem {
  int n = 0, x0 = 0;
  std::string prompt;     // "Q\n<n> <x0>"
  std::string reasoning;  // "<n-1> <x1>\n...\n0 <xn>"
  std::string content;    // "answer <xn>"
  int answer = 0;
};

int Step(int x) { return (7 * x + 3) % 20; }

Problem MakeProblem(int n, int x0) {
  Problem p;
  p.n = n;
  p.x0 = x0;
  p.prompt = "Q\n" + std::to_string(n) + " " + std::to_string(x0);
  int x = x0;
  for (int r = n - 1; r >= 0; --r) {
    x = Step(x);
    if (!p.reasoning.empty()) p.reasoning += "\n";
    p.reasoning += std::to_string(r) + " " + std::to_string(x);
  }
  p.answer = x;
  p.content = "answer " + std::to_string(x);
  return p;
}

// A task mode: how the harvested answer reaches the student.
struct TaskMode {
  std::string name;
  enum Kind { kTrace, kRemoved, kSummary, kAnswerOnly } kind = kTrace;
  double kl = 0;  // anti-distillation budget (0: off)
};

// The teacher's sampled completion split into its reasoning (the lines before the last) and its
// visible answer (the last line), as a reasoning model returns them.
void SplitCompletion(const std::string& completion, std::string* reasoning, std::string* content) {
  std::string s = completion;
  while (!s.empty() && s.front() == '\n') s.erase(s.begin());
  const size_t nl = s.rfind('\n');
  *reasoning = nl == std::string::npos ? "" : s.substr(0, nl);
  *content = nl == std::string::npos ? s : s.substr(nl + 1);
}

struct TaskRow {
  std::string mode;
  double teacher_acc = 0;      // delivered answers that are right
  double delivered = 0;        // share of the teacher's completion tokens delivered
  double kl_per_token = 0;     // anti-distillation KL spent per teacher token
  double student_acc = 0;      // held-out exact match
  double student_train_acc = 0;  // exact match on the harvested problems
};

std::vector<TaskRow> RunTask(uint64_t seed, bool quick) {
  std::vector<Problem> all, train, heldout;
  std::mt19937_64 rng(seed);
  for (int n = 1; n <= 12; ++n) {
    for (int x0 = 0; x0 < 20; ++x0) {
      all.push_back(MakeProblem(n, x0));
      const bool hold = n >= 2 && n <= 8 && rng() % 4 == 0;
      (hold ? heldout : train).push_back(all.back());
    }
  }
  std::vector<std::string> teacher_docs;
  for (int copy = 0; copy < 20; ++copy) {
    for (const auto& p : all) teacher_docs.push_back(p.prompt + "\n" + p.reasoning + "\n" + p.content);
  }
  model::NGramTrainOptions topt;
  topt.order = 4;
  topt.min_count_high = 1;
  auto teacher = std::move(model::NGramModel::Train(teacher_docs, topt)).value();
  const auto& tok = teacher->tokenizer();
  const int asks = quick ? 2 : 4;  // each harvested problem is asked this many times

  std::printf("\n== task part: %zu problems (f(x) = (7x+3) mod 20 applied n times, n 1..12), %zu held "
              "out; harvest = %zu problems x %d requests; teacher = order-4 n-gram on every worked "
              "solution (x20); students = order-4 n-gram on the harvest as delivered; student score = "
              "exact match of its greedy answer on the %zu held-out problems\n",
              all.size(), heldout.size(), train.size(), asks, heldout.size());

  std::vector<TaskMode> modes = {{"plain (trace kept)", TaskMode::kTrace, 0},
                                 {"trace removed", TaskMode::kRemoved, 0},
                                 {"trace summary (6 words)", TaskMode::kSummary, 0},
                                 {"answer-only (trace inline)", TaskMode::kAnswerOnly, 0}};
  for (double kl : quick ? std::vector<double>{1.0} : std::vector<double>{0.1, 0.3, 1.0}) {
    char name[64];
    std::snprintf(name, sizeof name, "antidistill keyed kl=%.2f", kl);
    modes.push_back({name, TaskMode::kTrace, kl});
  }
  std::vector<TaskRow> rows;
  for (const auto& mode : modes) {
    AntidistillOptions ad;
    ad.kl_budget = mode.kl;
    ad.direction = AntidistillOptions::Direction::kKeyed;
    ad.proxy_context = 3;  // the student's context
    ad.key = 0x5eed;
    TeacherSampling how;
    if (mode.kl > 0) how.antidistill = &ad;
    resistance::HardeningProfile profile;
    profile.summary_words = 6;
    if (mode.kind == TaskMode::kTrace) profile.trace = resistance::TraceMode::kKeep;
    if (mode.kind == TaskMode::kSummary) profile.trace = resistance::TraceMode::kSummary;
    if (mode.kind == TaskMode::kAnswerOnly) profile.answer_only = resistance::AnswerOnlyMode::kWhenAsked;

    AntidistillStats stats;
    std::vector<std::string> harvest;
    int64_t produced = 0, delivered = 0, right = 0, total = 0;
    for (int a = 0; a < asks; ++a) {
      for (size_t i = 0; i < train.size(); ++i) {
        const Problem& p = train[i];
        const auto out = Sample(*teacher, p.prompt, how, seed * 1000003 + a * 7919 + i, 80, &stats);
        std::string reasoning, content;
        SplitCompletion(tok.Decode(out), &reasoning, &content);
        std::string text;
        if (mode.kind == TaskMode::kAnswerOnly) {
          // The trace is part of the visible answer (the request asked for the steps).
          std::string inline_answer = reasoning + "\n" + content;
          resistance::HardenAnswer(profile, /*asks_for_steps=*/true, &inline_answer, nullptr);
          text = p.prompt + "\n" + inline_answer;
        } else {
          resistance::HardenAnswer(profile, false, &content, &reasoning);
          text = p.prompt + "\n" + (reasoning.empty() ? "" : reasoning + "\n") + content;
        }
        harvest.push_back(text);
        produced += static_cast<int64_t>(out.size());
        delivered += static_cast<int64_t>(tok.Encode(text).size() - tok.Encode(p.prompt).size());
        right += LastInteger(resistance::FinalAnswer(text.substr(p.prompt.size()))) == p.answer;
        ++total;
      }
    }
    auto student = TrainStudent(harvest, {}, 1.0, watermark::WatermarkConfig{false}, 4);
    int s_right = 0, s_train_right = 0;
    for (const auto& p : heldout) {
      s_right += LastInteger(resistance::FinalAnswer(Greedy(*student, p.prompt, 80))) == p.answer;
    }
    for (const auto& p : train) {
      s_train_right += LastInteger(resistance::FinalAnswer(Greedy(*student, p.prompt, 80))) == p.answer;
    }
    TaskRow row;
    row.mode = mode.name;
    row.teacher_acc = static_cast<double>(right) / static_cast<double>(total);
    row.delivered = static_cast<double>(delivered) / static_cast<double>(std::max<int64_t>(produced, 1));
    row.kl_per_token = stats.steps > 0 ? stats.kl_sum / static_cast<double>(stats.steps) : 0;
    row.student_acc = static_cast<double>(s_right) / static_cast<double>(heldout.size());
    row.student_train_acc = static_cast<double>(s_train_right) / static_cast<double>(train.size());
    rows.push_back(row);
  }
  std::printf("%-28s | %12s %10s %12s | %14s %14s\n", "mode", "teacher acc", "delivered", "KL/token",
              "student acc", "(on harvested)");
  for (const auto& r : rows) {
    std::printf("%-28s | %11.1f%% %9.0f%% %12.4f | %13.1f%% %13.1f%%\n", r.mode.c_str(), 100 * r.teacher_acc,
                100 * r.delivered, r.kl_per_token, 100 * r.student_acc, 100 * r.student_train_acc);
  }
  std::printf("teacher acc: share of delivered answers whose final answer (FinalAnswer, last integer) is "
              "right; delivered: answer tokens delivered / tokens the teacher generated; KL/token: "
              "anti-distillation KL(q||p) spent per generated token (nats); student acc: greedy exact "
              "match on held-out problems (on harvested: on the problems it was trained on)\n");
  return rows;
}

// ---------------------------------------------------------------- text part

const char* kTextPrompts[] = {"The", "A", "You will", "Life is", "Never", "When", "I", "Why", "There is", "It"};

struct TextRow {
  std::string mode;
  double kl_per_token = 0;
  double teacher_ppl = 0;   // perplexity of the harvest under the plain teacher
  double student_ppl = 0;   // student perplexity on held-out plain teacher text, per teacher token
  double wm_log10_p = 0;    // watermark log10 p of the harvest (rows with the watermark)
  bool watermarked = false;
};

struct TextSample {
  std::string prompt;
  std::vector<model::TokenId> completion;
};

std::vector<TextSample> Harvest(const model::NGramModel& teacher, const TeacherSampling& how, int tokens,
                                uint64_t seed, AntidistillStats* stats) {
  std::vector<TextSample> out;
  int64_t produced = 0;
  for (int i = 0; produced < tokens; ++i) {
    TextSample s;
    s.prompt = kTextPrompts[i % 10];
    s.completion = Sample(teacher, s.prompt, how, seed + static_cast<uint64_t>(i), 200, stats);
    produced += static_cast<int64_t>(s.completion.size());
    out.push_back(std::move(s));
  }
  return out;
}

// Perplexity of `samples` under the teacher, over completion tokens.
double TeacherPerplexity(const model::NGramModel& m, const std::vector<TextSample>& samples) {
  double nll = 0;
  int64_t n = 0;
  for (const auto& s : samples) {
    std::vector<model::TokenId> ctx{m.tokenizer().bos()};
    const auto p = m.tokenizer().Encode(s.prompt);
    ctx.insert(ctx.end(), p.begin(), p.end());
    for (auto t : s.completion) {
      nll -= m.LogProb(ctx, t);
      ctx.push_back(t);
      ++n;
    }
  }
  return std::exp(nll / static_cast<double>(std::max<int64_t>(n, 1)));
}

// The student's perplexity of whole texts (its own tokenisation, from <s>, without </s>),
// normalised per token of the teacher's tokenisation so students with different vocabularies
// compare.
double StudentPerplexity(const model::NGramModel& student, const std::vector<std::string>& texts,
                         const model::Tokenizer& teacher_tok) {
  double nll = 0;
  int64_t teacher_tokens = 0;
  for (const auto& text : texts) {
    std::vector<model::TokenId> ctx{student.tokenizer().bos()};
    for (auto t : student.tokenizer().Encode(text)) {
      nll -= student.LogProb(ctx, t);
      ctx.push_back(t);
    }
    teacher_tokens += static_cast<int64_t>(teacher_tok.Encode(text).size());
  }
  return std::exp(nll / static_cast<double>(std::max<int64_t>(teacher_tokens, 1)));
}

std::vector<TextRow> RunText(const std::string& corpus, uint64_t seed, bool quick) {
  auto docs = model::ReadCorpus(corpus, quick ? 600000 : 0);
  if (!docs.ok()) {
    std::printf("\n== text part skipped: %s\n", docs.status().ToString().c_str());
    return {};
  }
  std::vector<std::string> train_docs;
  for (size_t i = 0; i < docs->size(); ++i) {
    if (i % 4 != 3) train_docs.push_back((*docs)[i]);
  }
  auto teacher = std::move(model::NGramModel::Train(train_docs, model::NGramTrainOptions{})).value();
  const auto& tok = teacher->tokenizer();
  const int harvest_tokens = quick ? 12000 : 40000;
  const int eval_tokens = quick ? 3000 : 10000;
  const watermark::WatermarkConfig kgw;  // gamma .25, delta 2, h 1
  const auto harvester = watermark::DeriveKey(LabSecret(), "harvester", 0);

  std::vector<std::string> eval;
  for (const auto& s : Harvest(*teacher, TeacherSampling{}, eval_tokens, seed + 900000, nullptr)) {
    eval.push_back(s.prompt + tok.Decode(s.completion));
  }
  std::printf("\n== text part: teacher = order-%d n-gram on %zu documents of %s; harvest = %d tokens of sampled "
              "answers (temperature 1) to 10 prompts, the same seeds for every mode; student = order-3 "
              "n-gram on the harvest; student ppl = its perplexity (per teacher token) of %zu held-out "
              "plain teacher answers (%d tokens, other seeds)\n",
              teacher->order(), train_docs.size(), corpus.c_str(), harvest_tokens, eval.size(), eval_tokens);

  struct Mode {
    std::string name;
    AntidistillOptions::Direction dir;
    double kl;
    bool wm;
  };
  std::vector<Mode> modes = {{"plain", AntidistillOptions::Direction::kKeyed, 0, false}};
  const std::vector<double> budgets = quick ? std::vector<double>{1.0} : std::vector<double>{0.1, 0.3, 1.0};
  for (auto dir : {AntidistillOptions::Direction::kKeyed, AntidistillOptions::Direction::kProxy}) {
    if (quick && dir == AntidistillOptions::Direction::kProxy) continue;
    for (double kl : budgets) {
      char name[64];
      std::snprintf(name, sizeof name, "antidistill %s kl=%.2f",
                    dir == AntidistillOptions::Direction::kProxy ? "proxy" : "keyed", kl);
      modes.push_back({name, dir, kl, false});
    }
  }
  if (!quick) modes.push_back({"plain + watermark", AntidistillOptions::Direction::kKeyed, 0, true});
  modes.push_back({"antidistill keyed kl=0.50 + watermark", AntidistillOptions::Direction::kKeyed, 0.5, true});

  std::printf("%-38s | %10s %12s %9s | %12s %9s | %s\n", "mode", "KL/token", "teacher ppl", "(x plain)",
              "student ppl", "(x plain)", "harvest watermark log10 p");
  std::vector<TextRow> rows;
  for (const auto& mode : modes) {
    AntidistillOptions ad;
    ad.kl_budget = mode.kl;
    ad.direction = mode.dir;
    ad.proxy_context = 2;
    ad.key = 0x5eed;
    TeacherSampling how;
    how.wm = kgw;
    if (mode.kl > 0) how.antidistill = &ad;
    if (mode.wm) how.key = &harvester;
    AntidistillStats stats;
    const auto harvest = Harvest(*teacher, how, harvest_tokens, seed, &stats);
    std::vector<std::string> texts;
    int64_t produced = 0;
    watermark::ScoringUnits units(kgw.h());
    for (const auto& s : harvest) {
      texts.push_back(s.prompt + tok.Decode(s.completion));
      produced += static_cast<int64_t>(s.completion.size());
      units.AddSequence(s.completion);
    }
    auto student = TrainStudent(texts, {}, 1.0, watermark::WatermarkConfig{false}, 3);
    TextRow row;
    row.mode = mode.name;
    row.kl_per_token = stats.kl_sum / static_cast<double>(std::max<int64_t>(produced, 1));
    row.teacher_ppl = TeacherPerplexity(*teacher, harvest);
    row.student_ppl = StudentPerplexity(dynamic_cast<const model::NGramModel&>(student->model()), eval, tok);
    row.watermarked = mode.wm;
    row.wm_log10_p = watermark::Detect(units, harvester, kgw).log_p / std::log(10.0);
    rows.push_back(row);
    const TextRow& base = rows.front();
    std::printf("%-38s | %10.4f %12.2f %9.3f | %12.2f %9.3f | %s\n", row.mode.c_str(), row.kl_per_token,
                row.teacher_ppl, row.teacher_ppl / base.teacher_ppl, row.student_ppl,
                row.student_ppl / base.student_ppl, row.watermarked ? std::to_string(row.wm_log10_p).c_str() : "-");
    std::fflush(stdout);
  }
  std::printf("KL/token: anti-distillation KL(q||p) spent per generated token (nats; the bound is per "
              "token); teacher ppl: perplexity of the harvest under the plain teacher; student ppl: "
              "student perplexity of held-out plain teacher text per teacher token\n");
  return rows;
}

const TaskRow* FindTask(const std::vector<TaskRow>& rows, const std::string& name) {
  for (const auto& r : rows) {
    if (r.mode == name) return &r;
  }
  return nullptr;
}

const TextRow* FindText(const std::vector<TextRow>& rows, const std::string& name) {
  for (const auto& r : rows) {
    if (r.mode == name) return &r;
  }
  return nullptr;
}

}  // namespace

int RunResistanceLab(const ResistanceLabOptions& o) {
  const auto t0 = SteadyClock::now();
  std::printf("== distillation-resistance lab (seed %llu%s)\n", static_cast<unsigned long long>(o.seed),
              o.quick ? ", quick" : "");
  const auto task = RunTask(o.seed, o.quick);
  const auto text = o.corpus.empty() ? std::vector<TextRow>{} : RunText(o.corpus, o.seed, o.quick);
  std::printf("\n(%.0f s)\n", Since(t0));
  if (!o.check) return 0;

  bool ok = true;
  auto expect = [&](bool cond, const std::string& what) {
    std::printf("check: %-100s %s\n", what.c_str(), cond ? "ok" : "FAILED");
    ok = ok && cond;
  };
  const TaskRow* plain = FindTask(task, "plain (trace kept)");
  const TaskRow* removed = FindTask(task, "trace removed");
  const TaskRow* summary = FindTask(task, "trace summary (6 words)");
  const TaskRow* answer_only = FindTask(task, "answer-only (trace inline)");
  expect(plain->student_acc >= 0.5, "task: the student of the plain teacher solves >= 50% of held-out problems");
  expect(removed->student_acc <= plain->student_acc - 0.3, "task: trace removal costs the student >= 30 points");
  expect(summary->student_acc <= plain->student_acc - 0.3, "task: trace summary costs the student >= 30 points");
  expect(answer_only->student_acc <= plain->student_acc - 0.3, "task: answer-only costs the student >= 30 points");
  expect(removed->teacher_acc >= plain->teacher_acc - 1e-9 && answer_only->teacher_acc >= plain->teacher_acc - 1e-9,
         "task: trace removal and answer-only keep every delivered answer the teacher got right");
  if (!text.empty()) {
    const TextRow* tplain = FindText(text, "plain");
    const TextRow* strong = FindText(text, "antidistill keyed kl=1.00");
    const TextRow* wm = FindText(text, "antidistill keyed kl=0.50 + watermark");
    expect(strong->student_ppl > tplain->student_ppl * 1.05,
           "text: the keyed stage at kl=1 raises the student's held-out perplexity by > 5%");
    for (const auto& r : text) {
      if (r.mode.find("kl=") == std::string::npos) continue;
      const double budget = std::stod(r.mode.substr(r.mode.find("kl=") + 3));
      expect(r.kl_per_token <= budget + 1e-9, "text: " + r.mode + " spends at most its KL budget per token");
    }
    expect(wm->wm_log10_p < -6, "text: the watermark is detected (p < 1e-6) on the hardened harvest");
  } else {
    std::printf("check: text part skipped (no corpus)\n");
  }
  std::printf("%s\n", ok ? "all checks passed" : "SOME CHECKS FAILED");
  return ok ? 0 : 1;
}

}  // namespace moat::bench

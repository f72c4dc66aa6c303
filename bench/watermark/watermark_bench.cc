// watermark_bench: measures the watermark's cost and power (throughput, quality, detection).
//   watermark_bench [--corpus DIR] [--model PATH] [--keys N] [--seed S] [--quick]
//   watermark_bench --radioactivity [--corpus DIR] [--seed S] [--quick] [--null-seeds N]
//                   [--student-tokens N]
//   watermark_bench --resistance [--corpus DIR] [--seed S] [--quick] [--check]
// Trains the built-in model on the corpus (default: the fortunes package) unless --model is
// given, then measures: generation tokens/s with and without the watermark; the quality cost
// (perplexity under the unwatermarked model of watermarked vs unwatermarked output); detection
// tokens/s; p-value versus number of tokens; tracing time for N keys (default 100,000); and a
// small distillation lab (n-gram student trained on a fraction f of watermarked answers).
// --radioactivity runs only the low-contamination lab instead: p-value of the harvester's key
// versus the contamination f, unfiltered and with the harvest-context filter, Bonferroni-adjusted
// among 10^4 and 10^6 keys, and the null (f = 0) over several seeds.
// --resistance runs only the distillation-resistance lab (resistance_lab.cc): students trained
// on plain vs hardened teacher outputs, per hardening mode.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/builtin_engine.h"
#include "model/corpus.h"
#include "model/ngram_model.h"
#include "distill_student.h"
#include "resistance_lab.h"
#include "watermark/detector.h"
#include "watermark/radioactivity.h"
#include "watermark/tracer.h"

using namespace moat;
using moat::bench::Borrowed;
using moat::bench::TrainStudent;
using Clock = std::chrono::steady_clock;

namespace {

double Secs(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Sample {
  std::vector<model::TokenId> prompt;  // with <s>
  std::vector<model::TokenId> completion;
};

const char* kPrompts[] = {"The", "A", "You will", "Life is", "Never", "When", "I", "Why",
                          "There is", "It"};

std::vector<Sample> GenerateMany(const model::BuiltinEngine& e, const watermark::WatermarkKey* key,
                                 int total_tokens, uint64_t seed, double* tok_per_s) {
  std::vector<Sample> out;
  int64_t produced = 0;
  const auto t0 = Clock::now();
  for (int i = 0; produced < total_tokens; ++i) {
    model::GenerationRequest r;
    r.prompt = kPrompts[i % 10];
    r.max_tokens = 200;
    r.seed = seed + static_cast<uint64_t>(i);
    r.key = key;
    Sample s;
    auto res = e.Generate(r, [&](const model::GeneratedPiece& p) {
      if (p.token >= 0) s.completion.push_back(p.token);
      return true;
    });
    if (!res.ok()) std::abort();
    s.prompt.push_back(e.tokenizer().bos());
    auto p = e.tokenizer().Encode(r.prompt);
    s.prompt.insert(s.prompt.end(), p.begin(), p.end());
    produced += static_cast<int64_t>(s.completion.size());
    out.push_back(std::move(s));
  }
  if (tok_per_s != nullptr) *tok_per_s = produced / Secs(t0);
  return out;
}

double Perplexity(const model::NGramModel& m, const std::vector<Sample>& samples) {
  double nll = 0;
  int64_t n = 0;
  for (const auto& s : samples) {
    std::vector<model::TokenId> ctx = s.prompt;
    for (auto t : s.completion) {
      nll -= m.LogProb(ctx, t);
      ctx.push_back(t);
      ++n;
    }
  }
  return std::exp(nll / std::max<int64_t>(n, 1));
}

watermark::ScoringUnits Units(const std::vector<Sample>& samples, int h, int64_t max_tokens = -1) {
  watermark::ScoringUnits u(h);
  int64_t used = 0;
  for (const auto& s : samples) {
    if (max_tokens >= 0 && used >= max_tokens) break;
    size_t take = s.completion.size();
    if (max_tokens >= 0) take = std::min<size_t>(take, static_cast<size_t>(max_tokens - used));
    u.AddSequence(std::span<const int32_t>(s.completion.data(), take));
    used += static_cast<int64_t>(take);
  }
  return u;
}

watermark::MasterSecret Secret() {
  std::array<uint8_t, watermark::kMasterSecretBytes> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 7 + 1);
  return watermark::MasterSecret(b);
}

// The student's answers re-tokenised with the teacher's tokenizer (what detection sees).
std::vector<std::vector<int32_t>> StudentAnswers(const model::BuiltinEngine& student,
                                                 const model::Tokenizer& ours, int tokens,
                                                 uint64_t seed) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& s : GenerateMany(student, nullptr, tokens, seed, nullptr)) {
    out.push_back(ours.Encode(student.tokenizer().Decode(s.completion)));
  }
  return out;
}

watermark::DetectionResult Score(const std::vector<std::vector<int32_t>>& answers,
                                 const watermark::WatermarkKey& key,
                                 const watermark::WatermarkConfig& cfg,
                                 const watermark::ContextFilter* filter) {
  watermark::ScoringUnits u(cfg.h());
  for (const auto& a : answers) {
    if (filter != nullptr) {
      u.AddSequence(a, *filter);
    } else {
      u.AddSequence(a);
    }
  }
  return watermark::Detect(u, key, cfg);
}

double Log10(double ln) { return ln / std::log(10.0); }
// log10 of the Bonferroni-adjusted p-value among `m` keys.
double Log10Bonferroni(double log_p, double m) { return std::min(0.0, Log10(log_p) + std::log10(m)); }

struct Harvest {
  std::vector<watermark::HarvestedText> texts;  // prompt / answer pairs, as the audit store has them
  std::vector<std::string> training;            // prompt + answer, what the student trains on
};

Harvest HarvestAnswers(const model::BuiltinEngine& teacher, const watermark::WatermarkKey& key,
                       int tokens, uint64_t seed) {
  Harvest h;
  const auto& tok = teacher.tokenizer();
  for (const auto& s : GenerateMany(teacher, &key, tokens, seed, nullptr)) {
    std::vector<int32_t> prompt(s.prompt.begin() + 1, s.prompt.end());  // without <s>
    h.texts.push_back({tok.Decode(prompt), tok.Decode(s.completion)});
    h.training.push_back(tok.Decode(s.prompt) + tok.Decode(s.completion));
  }
  return h;
}

int RunRadioactivity(const model::NGramModel& teacher, const std::vector<std::string>& heldout,
                     uint64_t seed, bool quick, int null_seeds, int student_tokens) {
  watermark::WatermarkConfig kgw;  // gamma .25, delta 2, h 1
  watermark::WatermarkConfig off = kgw;
  off.enabled = false;
  auto eng_kgw = std::move(model::BuiltinEngine::FromModel(std::make_unique<Borrowed>(teacher), kgw)).value();
  const auto& ours = teacher.tokenizer();
  const int harvest_tokens = quick ? 40000 : 150000;
  const int widths[] = {kgw.h(), 2, 3};

  const auto t0 = Clock::now();
  const auto harvester = watermark::DeriveKey(Secret(), "harvester-17", 0);
  const Harvest harvest = HarvestAnswers(*eng_kgw, harvester, harvest_tokens, seed + 1000);
  std::vector<watermark::ContextFilter> filters;
  for (int w : widths) filters.push_back(watermark::FilterOfHarvest(harvest.texts, ours, w));
  const auto probes = watermark::ProbesOfHarvest(harvest.texts);
  std::vector<std::string> accounts;
  for (int i = 0; i < 10000; ++i) accounts.push_back("acct-" + std::to_string(i));
  accounts[17] = "harvester-17";
  const auto keys = watermark::DeriveKeys(Secret(), accounts, 0, 0);

  std::printf("== radioactivity at low contamination: KGW g=.25 d=2 h=1; harvest %zu answers (%d "
              "tokens) to %zu probe prompts; student = order-3 n-gram on f x harvest + clean "
              "held-out text (same volume); %d student tokens from the harvested prompts\n",
              harvest.texts.size(), harvest_tokens, probes.size(), student_tokens);
  std::printf("   filters (contexts in the harvest): width 1 %lld, width 2 %lld, width 3 %lld\n",
              static_cast<long long>(filters[0].size()), static_cast<long long>(filters[1].size()),
              static_cast<long long>(filters[2].size()));
  std::printf("   log10 p of the harvester's key; 'B 1e4' / 'B 1e6': log10 of the Bonferroni-"
              "adjusted p among 10^4 / 10^6 keys; trace: rank of the harvester among the 10^4 "
              "keys (Holm, alpha .01) with the width-%d filter\n\n", widths[2]);
  std::printf("%6s | %7s %8s | %7s %8s %8s %8s | %7s %8s %8s %8s | %7s %8s %8s %8s | %s\n", "f",
              "n none", "log10p", "n w1", "log10p", "B 1e4", "B 1e6", "n w2", "log10p", "B 1e4",
              "B 1e6", "n w3", "log10p", "B 1e4", "B 1e6", "trace 1e4");
  std::unique_ptr<model::BuiltinEngine> null_student;
  std::vector<std::vector<int32_t>> null_answers;
  for (double f : {0.0, 0.01, 0.02, 0.05, 0.1, 0.25}) {
    auto student = TrainStudent(harvest.training, heldout, f, off);
    auto answers = StudentAnswers(*student, ours, student_tokens, seed + 7);
    const auto none = Score(answers, harvester, kgw, nullptr);
    std::printf("%6.2f | %7lld %8.2f |", f, static_cast<long long>(none.scored), Log10(none.log_p));
    for (const auto& filter : filters) {
      const auto r = Score(answers, harvester, kgw, &filter);
      std::printf(" %7lld %8.2f %8.2f %8.2f |", static_cast<long long>(r.scored), Log10(r.log_p),
                  Log10Bonferroni(r.log_p, 1e4), Log10Bonferroni(r.log_p, 1e6));
    }
    watermark::ScoringUnits units(kgw.h());
    for (const auto& a : answers) units.AddSequence(a, filters.back());
    const auto tr = watermark::Trace(units, keys, kgw, watermark::TraceOptions{});
    int64_t rank = 0;
    for (const auto& e : tr.ranked) {
      if (e.account == "harvester-17") rank = e.rank;
    }
    std::printf(" %lld implicated, harvester %s\n", static_cast<long long>(tr.significant),
                rank > 0 ? ("rank " + std::to_string(rank)).c_str() : "not in top 10");
    if (f == 0.0) {
      null_student = std::move(student);
      null_answers = std::move(answers);
    }
  }

  // The null, two ways. (1) Other keys: the f = 0 student's answers against 10^4 keys that did
  // not build the filter (exact null). (2) The harvester's own key, whose answers built the
  // filter: a fresh harvester (key, harvest, filter) per seed against a fresh f = 0 sample.
  std::printf("\n== null (f = 0): fraction of p-values below 0.01 / 0.05 / 0.5 (uniform: .01 / "
              ".05 / .5)\n");
  for (size_t fi = 0; fi < filters.size(); ++fi) {
    watermark::ScoringUnits units(kgw.h());
    for (const auto& a : null_answers) units.AddSequence(a, filters[fi]);
    int below01 = 0, below05 = 0, below5 = 0;
    for (const auto& k : keys) {
      if (k.account == "harvester-17") continue;
      const auto r = watermark::Detect(units, k, kgw);
      below01 += r.p_value < 0.01;
      below05 += r.p_value < 0.05;
      below5 += r.p_value < 0.5;
    }
    const double m = static_cast<double>(keys.size() - 1);
    std::printf("other keys, width-%d filter, %zu keys:   %.4f / %.4f / %.4f\n", widths[fi],
                keys.size() - 1, below01 / m, below05 / m, below5 / m);
  }
  std::vector<std::vector<double>> own(filters.size());
  const int null_harvest_tokens = quick ? 20000 : 60000;
  for (int s = 0; s < null_seeds; ++s) {
    const auto key = watermark::DeriveKey(Secret(), "null-harvester-" + std::to_string(s), 0);
    const Harvest h = HarvestAnswers(*eng_kgw, key, null_harvest_tokens, seed + 5000 + 97 * s);
    auto answers = StudentAnswers(*null_student, ours, student_tokens / 4, seed + 9000 + 31 * s);
    for (size_t fi = 0; fi < filters.size(); ++fi) {
      const auto filter = watermark::FilterOfHarvest(h.texts, ours, widths[fi]);
      own[fi].push_back(Score(answers, key, kgw, &filter).p_value);
    }
  }
  for (size_t fi = 0; fi < filters.size() && null_seeds > 0; ++fi) {
    int below01 = 0, below05 = 0, below5 = 0;
    double min_p = 1;
    for (double p : own[fi]) {
      below01 += p < 0.01;
      below05 += p < 0.05;
      below5 += p < 0.5;
      min_p = std::min(min_p, p);
    }
    const double m = static_cast<double>(own[fi].size());
    std::printf("own key, width-%d filter, %d seeds (%d harvest tokens each): %.3f / %.3f / %.3f "
                "(smallest p %.3g)\n", widths[fi], null_seeds, null_harvest_tokens, below01 / m,
                below05 / m, below5 / m, min_p);
  }
  std::printf("\n(%.0f s)\n", Secs(t0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string corpus = model::kDefaultCorpusDir, model_path;
  int num_keys = 100000;
  uint64_t seed = 1;
  bool quick = false, radioactivity = false;
  int null_seeds = 20, student_tokens = 0;
  if (argc > 1 && std::string(argv[1]) == "--resistance") {
    bench::ResistanceLabOptions lab;
    lab.corpus = corpus;
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--corpus" && i + 1 < argc) lab.corpus = argv[++i];
      else if (a == "--seed" && i + 1 < argc) lab.seed = std::strtoull(argv[++i], nullptr, 10);
      else if (a == "--quick") lab.quick = true;
      else if (a == "--check") lab.check = true;
      else {
        std::fprintf(stderr, "usage: %s --resistance [--corpus DIR] [--seed S] [--quick] [--check]\n", argv[0]);
        return 2;
      }
    }
    return bench::RunResistanceLab(lab);
  }
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--radioactivity") { radioactivity = true; continue; }
    if (a == "--null-seeds" && i + 1 < argc) { null_seeds = std::atoi(argv[++i]); continue; }
    if (a == "--student-tokens" && i + 1 < argc) { student_tokens = std::atoi(argv[++i]); continue; }
    if (a == "--corpus" && i + 1 < argc) corpus = argv[++i];
    else if (a == "--model" && i + 1 < argc) model_path = argv[++i];
    else if (a == "--keys" && i + 1 < argc) num_keys = std::atoi(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--quick") quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--corpus DIR] [--model PATH] [--keys N] [--seed S] [--quick]\n"
                           "       %s --radioactivity [--corpus DIR] [--seed S] [--quick] "
                           "[--null-seeds N] [--student-tokens N]\n", argv[0], argv[0]);
      return 2;
    }
  }
  std::unique_ptr<model::NGramModel> teacher;
  std::vector<std::string> docs;
  {
    auto d = model::ReadCorpus(corpus);
    if (!d.ok()) {
      std::fprintf(stderr, "error: %s\n", d.status().ToString().c_str());
      return 1;
    }
    docs = std::move(d).value();
  }
  // Hold out every 4th document: the distillation lab's "clean" data.
  std::vector<std::string> train_docs, heldout;
  for (size_t i = 0; i < docs.size(); ++i) (i % 4 == 3 ? heldout : train_docs).push_back(docs[i]);
  const auto t_train = Clock::now();
  if (!model_path.empty()) {
    teacher = std::move(model::NGramModel::Load(model_path)).value();
  } else {
    teacher = std::move(model::NGramModel::Train(train_docs, model::NGramTrainOptions{})).value();
  }
  std::printf("== model: order %d, vocab %d, %zu training documents, ready in %.2f s\n",
              teacher->order(), teacher->tokenizer().vocab_size(), train_docs.size(), Secs(t_train));
  if (radioactivity) {
    if (student_tokens <= 0) student_tokens = quick ? 20000 : 100000;
    return RunRadioactivity(*teacher, heldout, seed, quick, null_seeds, student_tokens);
  }

  watermark::WatermarkConfig kgw;  // gamma .25, delta 2, h 1
  watermark::WatermarkConfig uni = kgw;
  uni.scheme = watermark::Scheme::kUnigram;
  watermark::WatermarkConfig off = kgw;
  off.enabled = false;
  const auto key = watermark::DeriveKey(Secret(), "bench-account", 0);
  auto eng_kgw = std::move(model::BuiltinEngine::FromModel(std::make_unique<Borrowed>(*teacher), kgw)).value();
  auto eng_uni = std::move(model::BuiltinEngine::FromModel(std::make_unique<Borrowed>(*teacher), uni)).value();
  auto eng_off = std::move(model::BuiltinEngine::FromModel(std::make_unique<Borrowed>(*teacher), off)).value();

  const int gen_tokens = quick ? 5000 : 20000;
  double tps_off = 0, tps_kgw = 0, tps_uni = 0;
  auto clean = GenerateMany(*eng_off, nullptr, gen_tokens, seed, &tps_off);
  auto marked = GenerateMany(*eng_kgw, &key, gen_tokens, seed, &tps_kgw);
  auto marked_uni = GenerateMany(*eng_uni, &key, gen_tokens, seed, &tps_uni);
  std::printf("\n== generation (1 thread, %d tokens each, temperature 1)\n", gen_tokens);
  std::printf("%-28s %10.0f tokens/s\n", "no watermark", tps_off);
  std::printf("%-28s %10.0f tokens/s (%.1f%% of unwatermarked)\n", "KGW (g=.25 d=2 h=1)", tps_kgw, 100 * tps_kgw / tps_off);
  std::printf("%-28s %10.0f tokens/s (%.1f%% of unwatermarked)\n", "Unigram (g=.25 d=2)", tps_uni, 100 * tps_uni / tps_off);

  std::printf("\n== quality cost: perplexity under the unwatermarked model\n");
  std::printf("%-28s %10.2f\n", "unwatermarked output", Perplexity(*teacher, clean));
  std::printf("%-28s %10.2f\n", "KGW output", Perplexity(*teacher, marked));
  std::printf("%-28s %10.2f\n", "Unigram output", Perplexity(*teacher, marked_uni));

  {
    std::vector<std::string> texts;
    for (const auto& s : marked) texts.push_back(teacher->tokenizer().Decode(s.completion));
    const int reps = quick ? 5 : 20;
    int64_t toks = 0;
    const auto t0 = Clock::now();
    double sink = 0;
    for (int r = 0; r < reps; ++r) {
      watermark::ScoringUnits u(kgw.h());
      for (const auto& t : texts) {
        auto ids = teacher->tokenizer().Encode(t);
        toks += static_cast<int64_t>(ids.size());
        u.AddSequence(ids);
      }
      sink += watermark::Detect(u, key, kgw).z;
    }
    const double s = Secs(t0);
    std::printf("\n== detection (tokenise + dedup + score, one key, KGW)\n%.0f tokens/s (z %.1f)\n",
                toks / s, sink / reps);
  }

  std::printf("\n== p-value versus number of tokens (median over 9 disjoint windows, right key)\n");
  std::printf("%8s %14s %14s %14s\n", "tokens", "KGW p", "Unigram p", "unwatermarked KGW");
  for (int n : {10, 25, 50, 100, 200, 400, 800}) {
    // The unwatermarked column scores each window with a different key (the null: any key).
    auto median_p = [&](const std::vector<Sample>& samples, const watermark::WatermarkConfig& cfg,
                        bool other_keys = false) -> double {
      // Concatenate, then score 9 disjoint windows of n tokens.
      std::vector<int32_t> all;
      for (const auto& s : samples) all.insert(all.end(), s.completion.begin(), s.completion.end());
      std::vector<double> lp;
      for (int w = 0; w < 9 && static_cast<size_t>((w + 1) * n) <= all.size(); ++w) {
        watermark::ScoringUnits u(cfg.h());
        u.AddSequence(std::span<const int32_t>(all.data() + w * n, static_cast<size_t>(n)));
        const auto k = other_keys ? watermark::DeriveKey(Secret(), "null-" + std::to_string(w), 0) : key;
        lp.push_back(watermark::Detect(u, k, cfg).log_p);
      }
      if (lp.empty()) return NAN;
      std::nth_element(lp.begin(), lp.begin() + lp.size() / 2, lp.end());
      return std::exp(lp[lp.size() / 2]);
    };
    std::printf("%8d %14.3g %14.3g %14.3g\n", n, median_p(marked, kgw), median_p(marked_uni, uni),
                median_p(clean, kgw, true));
  }

  {
    std::vector<std::string> accounts;
    for (int i = 0; i < num_keys; ++i) accounts.push_back("acct-" + std::to_string(i));
    accounts[num_keys / 2] = "bench-account";
    const auto t0 = Clock::now();
    auto keys = watermark::DeriveKeys(Secret(), accounts, 0, 0);
    const double derive_s = Secs(t0);
    std::printf("\n== tracing (%d keys, leak = 2,000 watermarked tokens, all cores)\n", num_keys);
    std::printf("key derivation: %.2f s\n", derive_s);
    for (const auto* cfg : {&kgw, &uni}) {
      auto units = Units(cfg == &kgw ? marked : marked_uni, cfg->h(), 2000);
      auto report = watermark::Trace(units, keys, *cfg, watermark::TraceOptions{});
      std::printf("%-8s scored %lld units: %.2f s (%.1f M key-units/s); implicated %lld, top %s "
                  "adjusted p %.3g\n",
                  std::string(watermark::SchemeName(cfg->scheme)).c_str(),
                  static_cast<long long>(units.size()), report.seconds,
                  num_keys * static_cast<double>(units.size()) / report.seconds / 1e6,
                  static_cast<long long>(report.significant), report.ranked[0].result.key_id.c_str(),
                  std::exp(report.ranked[0].log_adjusted_p));
    }
  }

  // Distillation lab (small scale): the harvester's account gets watermarked answers; a student
  // n-gram model is trained on a fraction f of them mixed with clean held-out text, then its own
  // (unwatermarked) generations are tested against the harvester's key and traced among keys.
  {
    const int harvest_tokens = quick ? 40000 : 150000;
    const auto harvester = watermark::DeriveKey(Secret(), "harvester-17", 0);
    double tps = 0;
    auto harvested = GenerateMany(*eng_kgw, &harvester, harvest_tokens, seed + 1000, &tps);
    std::vector<std::string> harvested_text;
    for (const auto& s : harvested) {
      harvested_text.push_back(teacher->tokenizer().Decode(s.prompt) +
                               teacher->tokenizer().Decode(s.completion));
    }
    std::vector<std::string> accounts;
    for (int i = 0; i < 1000; ++i) accounts.push_back("acct-" + std::to_string(i));
    accounts[17] = "harvester-17";
    auto keys = watermark::DeriveKeys(Secret(), accounts, 0, 0);
    std::printf("\n== distillation lab: student = order-3 n-gram on %zu harvested answers (%d tokens) "
                "x f + clean held-out text; 5,000 student tokens tested\n",
                harvested_text.size(), harvest_tokens);
    std::printf("%6s %10s %8s %14s %12s\n", "f", "z", "green", "student p", "traced (1k)");
    for (double f : {0.0, 0.1, 0.25, 0.5, 1.0}) {
      // The student has its own tokenizer; detection re-tokenises its text with the teacher's.
      auto eng = TrainStudent(harvested_text, heldout, f, off);
      auto out = GenerateMany(*eng, nullptr, 5000, seed + 7, nullptr);
      watermark::ScoringUnits units(kgw.h());
      for (const auto& s : out) {
        units.AddSequence(teacher->tokenizer().Encode(eng->tokenizer().Decode(s.completion)));
      }
      auto r = watermark::Detect(units, harvester, kgw);
      auto tr = watermark::Trace(units, keys, kgw, watermark::TraceOptions{});
      const bool traced = tr.significant > 0 && tr.ranked[0].account == "harvester-17";
      std::printf("%6.2f %10.2f %8.3f %14.3g %12s\n", f, r.z, r.green_fraction, r.p_value,
                  traced ? "yes (rank 1)" : (tr.significant > 0 ? "WRONG" : "no"));
    }
  }
  return 0;
}

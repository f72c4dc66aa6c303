#include "detect/training/model_builder.h"

#include <xxhash.h>

#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <unordered_set>

#include "datasets/prompt_corpus.h"

namespace moat::detect {
namespace {

namespace json = boost::json;

// The head a MANIFEST role trains, or kOrganic; -2 for roles the model does not learn.
int HeadOfRole(std::string_view role) {
  if (role == "organic" || role == "contrast") return LabeledText::kOrganic;
  if (role == "distill") return kHeadInstruction;
  if (role == "cot") return kHeadReasoning;
  if (role == "benchmark") return kHeadBenchmark;
  if (role == "jailbreak") return kHeadJailbreak;
  return -2;
}

bool IsIndexedRole(std::string_view role) {
  return role == "distill" || role == "cot" || role == "benchmark";
}

uint64_t TextHash(std::string_view text, uint64_t seed) { return XXH64(text.data(), text.size(), seed); }

// A deterministic coin per text.
bool Coin(std::string_view text, uint64_t salt, double p) {
  return static_cast<double>(TextHash(text, salt) % 1000000) < p * 1e6;
}

// The trainer's own grammar of requests for a reasoning trace and of answer formats. It is
// deliberately independent of the traffic benchmark's wordings (src/traffic), so that the
// benchmark measures how the model generalises to phrasings it never saw.
constexpr std::string_view kReasonPrefix[] = {
    "Work through the following problem step by step.", "Reason through this carefully:",
    "Solve this and show every step of the working.", "Break the problem down, one step at a time:",
    "Think about this problem and write out your thought process.",
    "Go over the following slowly, explaining each step of your thinking.",
    "Analyze the question and give a full derivation before the answer:",
    "Carefully reason about it before you answer."};
constexpr std::string_view kReasonSuffix[] = {
    "Explain your reasoning.", "Show the intermediate steps.",
    "Walk through the logic before answering.", "Include your full chain of reasoning.",
    "Lay out each step, then the answer.", "How would you reason about this? Show each step.",
    "Justify every step.", "Give a detailed rationale for the answer.",
    "Write down how you arrive at the result.", "Think it through out loud first."};
constexpr std::string_view kBenchmarkPrefix[] = {
    "Question: ", "Q: ", "Answer the following exam question.\n",
    "The following is a multiple choice question.\n", "Problem: "};
constexpr std::string_view kBenchmarkSuffix[] = {
    "\nAnswer:", "\nA:", "\nChoose the best option.", "\nRespond with only the final answer.",
    "\nThe answer is"};

template <size_t N>
std::string_view PickOf(const std::string_view (&v)[N], uint64_t h) {
  return v[h % N];
}

std::string Wrap(std::string_view text, int head) {
  const uint64_t h = TextHash(text, 0x77726170);
  std::string out;
  if (head == kHeadReasoning) {
    if (h & 1) {
      out.append(PickOf(kReasonPrefix, h >> 8)).append(h & 2 ? "\n\n" : " ").append(text);
    } else {
      out.append(text).append(h & 2 ? "\n\n" : " ").append(PickOf(kReasonSuffix, h >> 8));
    }
  } else {
    out.append(PickOf(kBenchmarkPrefix, h >> 8)).append(text).append(PickOf(kBenchmarkSuffix, h >> 16));
  }
  return out;
}

json::object RocJson(const RocSummary& r) {
  json::object o;
  o["positives"] = r.positives;
  o["negatives"] = r.negatives;
  o["auc"] = std::round(r.auc * 1e4) / 1e4;
  json::array pts;
  for (const auto& p : r.points) {
    pts.push_back(json::object{{"fpr", std::round(p.fpr * 1e5) / 1e5},
                               {"tpr", std::round(p.tpr * 1e4) / 1e4},
                               {"threshold", std::round(p.threshold * 1e3) / 1e3}});
  }
  o["points"] = std::move(pts);
  return o;
}

}  // namespace

bool IsRedistributableLicence(std::string_view licence) {
  auto has = [&](std::string_view s) { return licence.find(s) != std::string_view::npos; };
  if (licence.empty() || has("NC") || has("ND") || has("unclear") || has("research only")) return false;
  for (std::string_view ok : {"MIT", "Apache", "BSD", "CC0", "CC BY"}) {
    if (licence.substr(0, ok.size()) == ok) return true;
  }
  return false;
}

StatusOr<DetectionModel> BuildDetectionModel(const ModelBuildOptions& options, ModelBuildReport* report) {
  const auto t0 = std::chrono::steady_clock::now();
  MOAT_ASSIGN_OR_RETURN(datasets::PromptCorpus corpus, datasets::PromptCorpus::Load(options.data_dir));
  std::vector<LabeledText> train, calibration, eval;
  std::unordered_set<uint64_t> seen;  // one example per distinct text across all sets
  ModelBuildReport rep;
  DetectionModel model;
  for (const datasets::PromptSet& set : corpus.sets()) {
    DatasetUse use{set.name, set.role, set.licence};
    const int head = HeadOfRole(set.role);
    use.used = head != -2 && (!options.redistributable_only || IsRedistributableLicence(set.licence));
    if (!use.used) {
      rep.datasets.push_back(use);
      continue;
    }
    std::vector<std::string_view> texts;
    for (const auto& p : set.prompts) texts.push_back(p);
    if (head == LabeledText::kOrganic) {
      for (const auto& conv : set.conversations) {
        for (const auto& turn : conv) {
          if (turn.from_user) texts.push_back(turn.text);
        }
      }
    }
    std::vector<std::string_view> index_texts;
    const size_t train_begin = train.size();
    for (std::string_view t : texts) {
      if (t.empty() || !seen.insert(TextHash(t, 0)).second) continue;
      if (datasets::IsEvalText(t)) {
        eval.push_back({std::string(t), head});
        ++use.eval;
        continue;
      }
      if (IsIndexedRole(set.role)) index_texts.push_back(t);
      const bool cal = TextHash(t, 0x63616c) % 8 == 0;
      auto& dst = cal ? calibration : train;
      dst.push_back({std::string(t), head});
      ++(cal ? use.calibration : use.train);
      if (!cal) {
        if (head == kHeadReasoning && Coin(t, 1, options.reasoning_wrap_share)) {
          dst.push_back({Wrap(t, head), head});
        } else if (head == kHeadBenchmark && Coin(t, 2, options.benchmark_wrap_share)) {
          dst.push_back({Wrap(t, head), head});
        }
      }
    }
    // Every training example of this set weighs n^-source_balance (normalised per class below).
    const size_t n_set = train.size() - train_begin;
    if (n_set > 0 && options.source_balance != 0) {
      const float w = static_cast<float>(std::pow(static_cast<double>(n_set), -options.source_balance));
      for (size_t i = train_begin; i < train.size(); ++i) train[i].weight = w;
    }
    if (options.build_corpus_index && !index_texts.empty()) {
      const size_t before = model.corpus.items();
      model.corpus.AddCorpus(set.name, set.role, index_texts);
      use.index_items = model.corpus.items() - before;
    }
    rep.datasets.push_back(use);
  }
  // Each class keeps its total weight (its number of examples), so the learning rate means what
  // it meant without balancing.
  {
    std::array<double, kNumHeads + 1> count{}, sum{};
    for (const LabeledText& e : train) count[e.head + 1] += 1, sum[e.head + 1] += e.weight;
    for (LabeledText& e : train) e.weight = static_cast<float>(e.weight * count[e.head + 1] / sum[e.head + 1]);
  }
  MOAT_ASSIGN_OR_RETURN(model.content, TrainContentModel(train, calibration, options.content));
  rep.eval = EvaluateContentModel(model.content, eval);
  rep.index_items = model.corpus.items();

  json::object meta;
  meta["built_by"] = "moat detect train";
  meta["redistributable_only"] = options.redistributable_only;
  meta["feature_version"] = kContentFeatureVersion;
  json::object opts;
  opts["buckets_log2"] = options.content.buckets_log2;
  opts["epochs"] = options.content.epochs;
  opts["learning_rate"] = options.content.learning_rate;
  opts["l2"] = options.content.l2;
  opts["seed"] = options.content.seed;
  opts["reasoning_wrap_share"] = options.reasoning_wrap_share;
  opts["benchmark_wrap_share"] = options.benchmark_wrap_share;
  // Written only when used, so that a model trained without it keeps its bytes.
  if (options.source_balance != 0) opts["source_balance"] = options.source_balance;
  meta["options"] = std::move(opts);
  json::array sets;
  for (const DatasetUse& u : rep.datasets) {
    sets.push_back(json::object{{"name", u.name},       {"role", u.role},
                                {"licence", u.licence}, {"used", u.used},
                                {"train", u.train},     {"calibration", u.calibration},
                                {"eval", u.eval},       {"index_items", u.index_items}});
  }
  meta["datasets"] = std::move(sets);
  json::object quality;
  for (int h = 0; h < kNumHeads; ++h) quality[ContentHeadName(h)] = RocJson(rep.eval.heads[h]);
  quality["combined"] = RocJson(rep.eval.combined);
  meta["eval_split_quality"] = std::move(quality);
  meta["corpus_index_items"] = rep.index_items;
  model.metadata_json = json::serialize(meta);

  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (report != nullptr) *report = std::move(rep);
  return model;
}

StatusOr<FolderEvaluation> EvaluateModelOnFolder(const DetectionModel& model, const std::string& data_dir,
                                                 bool eval_split_only) {
  datasets::CorpusOptions copts;
  copts.split = eval_split_only ? datasets::Split::kEval : datasets::Split::kAll;
  MOAT_ASSIGN_OR_RETURN(datasets::PromptCorpus corpus, datasets::PromptCorpus::Load(data_dir, copts));
  FolderEvaluation out;
  std::vector<float> pos, neg;
  for (const datasets::PromptSet& set : corpus.sets()) {
    const int head = HeadOfRole(set.role);
    if (head == -2) continue;
    DatasetScore d{set.name, set.role};
    std::vector<std::string_view> texts;
    for (const auto& p : set.prompts) texts.push_back(p);
    if (head == LabeledText::kOrganic) {
      for (const auto& conv : set.conversations) {
        for (size_t i = 1; i < conv.size(); ++i) {
          if (conv[i].from_user) texts.push_back(conv[i].text);
        }
      }
    }
    for (std::string_view t : texts) {
      const float llr = model.content.Score(t).combined;
      ++d.rows;
      d.mean_llr += llr;
      d.above0 += llr > 0;
      d.above2 += llr > 2;
      (head == LabeledText::kOrganic ? neg : pos).push_back(llr);
    }
    if (d.rows > 0) {
      d.mean_llr /= d.rows;
      d.above0 /= d.rows;
      d.above2 /= d.rows;
    }
    out.datasets.push_back(std::move(d));
  }
  out.combined = SummariseRoc(std::move(pos), std::move(neg));
  return out;
}

std::string FolderEvaluation::ToText() const {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof(line), "%-36s %-9s %6s %8s %8s %8s\n", "dataset", "role", "rows", "mean", ">0", ">2");
  out += line;
  for (const DatasetScore& d : datasets) {
    std::snprintf(line, sizeof(line), "%-36s %-9s %6zu %8.2f %7.1f%% %7.1f%%\n", d.name.c_str(),
                  d.role.c_str(), d.rows, d.mean_llr, 100 * d.above0, 100 * d.above2);
    out += line;
  }
  std::snprintf(line, sizeof(line), "campaign vs organic rows: AUC %.4f", combined.auc);
  out += line;
  for (const auto& p : combined.points) {
    std::snprintf(line, sizeof(line), ", TPR %.1f%% at FPR %.1f%%", 100 * p.tpr, 100 * p.fpr);
    out += line;
  }
  out += "\n";
  return out;
}

std::string ModelBuildReport::ToText() const {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof(line), "%-36s %-9s %-5s %7s %6s %6s %7s  %s\n", "dataset", "role", "used",
                "train", "calib", "eval", "indexed", "licence");
  out += line;
  for (const DatasetUse& u : datasets) {
    std::snprintf(line, sizeof(line), "%-36s %-9s %-5s %7zu %6zu %6zu %7zu  %s\n", u.name.c_str(),
                  u.role.c_str(), u.used ? "yes" : "no", u.train, u.calibration, u.eval,
                  u.index_items, u.licence.c_str());
    out += line;
  }
  out += "\nheld-out (eval split) quality, each head's positives vs organic:\n";
  std::snprintf(line, sizeof(line), "%-12s %7s %7s %7s %12s %12s %12s %12s\n", "head", "pos", "neg",
                "AUC", "TPR@0.1%FPR", "TPR@1%FPR", "TPR@5%FPR", "TPR@10%FPR");
  out += line;
  auto row = [&](std::string_view name, const RocSummary& r) {
    std::snprintf(line, sizeof(line), "%-12.*s %7zu %7zu %7.4f", static_cast<int>(name.size()), name.data(),
                  r.positives, r.negatives, r.auc);
    out += line;
    for (const auto& p : r.points) {
      std::snprintf(line, sizeof(line), " %11.1f%%", 100 * p.tpr);
      out += line;
    }
    out += "\n";
  };
  for (int h = 0; h < kNumHeads; ++h) row(ContentHeadName(h), eval.heads[h]);
  row("combined", eval.combined);
  std::snprintf(line, sizeof(line), "\nknown-corpus index: %zu items; built in %.1f s\n", index_items, seconds);
  out += line;
  return out;
}

}  // namespace moat::detect

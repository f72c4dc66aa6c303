// moat model train | generate
#include <chrono>
#include <filesystem>
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "model/builtin_engine.h"
#include "model/corpus.h"
#include "model/ngram_model.h"
#include "watermark/watermark_key.h"

namespace moat::cli {
namespace {

struct TrainOpts {
  std::string corpus = model::kDefaultCorpusDir;
  std::string out = "var/model.bin";
  model::NGramTrainOptions train;
  size_t max_bytes = 0;
};

struct GenerateOpts {
  std::string model = "var/model.bin";
  model::GenerationRequest req;
  uint64_t seed = 0;
  bool has_seed = false;
  std::string account, secret = "var/wm_master.key", scheme = "kgw";
  uint32_t epoch = 0;
  watermark::WatermarkConfig wm;
};

Status RunTrain(const TrainOpts& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto docs = model::ReadCorpus(o.corpus, o.max_bytes);
  if (!docs.ok()) return docs.status();
  size_t bytes = 0;
  for (const auto& d : *docs) bytes += d.size();
  auto m = model::NGramModel::Train(*docs, o.train);
  if (!m.ok()) return m.status();
  const auto parent = std::filesystem::path(o.out).parent_path();
  std::error_code ec;  // a directory that cannot be made shows up as Save's error
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  MOAT_RETURN_IF_ERROR((*m)->Save(o.out));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "trained order-" << (*m)->order() << " model on " << docs->size() << " documents ("
            << bytes << " bytes) from " << o.corpus << "\n"
            << "vocabulary " << (*m)->tokenizer().vocab_size() << " tokens;";
  for (int k = 2; k <= (*m)->order(); ++k) std::cout << " " << k << "-grams " << (*m)->num_entries(k);
  std::cout << "\nwrote " << o.out << " (" << std::filesystem::file_size(o.out) << " bytes) in "
            << secs << " s\n";
  return Status::Ok();
}

Status RunGenerate(GenerateOpts& o) {
  auto scheme = watermark::ParseScheme(o.scheme);
  if (!scheme.ok()) return scheme.status();
  o.wm.scheme = *scheme;
  o.wm.enabled = !o.account.empty();
  auto engine = model::BuiltinEngine::Load(o.model, o.wm);
  if (!engine.ok()) return engine.status();
  std::optional<watermark::WatermarkKey> key;
  if (!o.account.empty()) {
    auto secret = watermark::MasterSecret::LoadOrCreate(o.secret);
    if (!secret.ok()) return secret.status();
    key = watermark::DeriveKey(*secret, o.account, o.epoch);
    o.req.key = &*key;
  }
  if (o.has_seed) o.req.seed = o.seed;
  auto res = (*engine)->Generate(o.req, [](const model::GeneratedPiece& p) {
    std::cout << p.text << std::flush;
    return true;
  });
  if (!res.ok()) return res.status();
  std::cout << "\n";
  std::cerr << "[prompt_tokens=" << res->prompt_tokens
            << " completion_tokens=" << res->completion_tokens
            << " finish_reason=" << res->finish_reason
            << (res->watermark_key_id.empty() ? "" : " watermark=" + res->watermark_key_id) << "]\n";
  return Status::Ok();
}

}  // namespace

void AddModelCommands(CLI::App& app) {
  auto* model_cmd = app.add_subcommand("model", "Train and run the built-in n-gram model");
  model_cmd->require_subcommand(1);

  auto t = std::make_shared<TrainOpts>();
  auto* train = model_cmd->add_subcommand("train", "Train the built-in model on a text corpus");
  train->add_option("--corpus", t->corpus, "Directory of fortune files, *.jsonl (\"text\") or text")
      ->capture_default_str();
  train->add_option("--out", t->out, "Model file to write")->capture_default_str();
  train->add_option("--order", t->train.order, "n-gram order (2..4)")->capture_default_str();
  train->add_option("--vocab", t->train.max_vocab, "Vocabulary size incl. 258 fixed tokens")
      ->capture_default_str();
  train->add_option("--min-count", t->train.min_count_high,
                    "Prune highest-order n-grams seen fewer times")
      ->capture_default_str();
  train->add_option("--max-bytes", t->max_bytes, "Stop reading the corpus after this many bytes");
  train->callback([t] { std::exit(ExitCodeOf(RunTrain(*t))); });

  auto g = std::make_shared<GenerateOpts>();
  auto* gen = model_cmd->add_subcommand("generate", "Generate text with the built-in model");
  gen->add_option("--model", g->model, "Model file")->capture_default_str();
  gen->add_option("--prompt", g->req.prompt, "Prompt text");
  gen->add_option("--max-tokens", g->req.max_tokens, "Maximum completion tokens")->capture_default_str();
  gen->add_option("--temperature", g->req.temperature, "Sampling temperature (0 = greedy)")
      ->capture_default_str();
  gen->add_option("--top-p", g->req.top_p, "Nucleus sampling mass")->capture_default_str();
  gen->add_option("--top-k", g->req.top_k, "Top-k (0 = off)")->capture_default_str();
  gen->add_option("--seed", g->seed, "Sampling seed")->each([g](const std::string&) { g->has_seed = true; });
  gen->add_option("--stop", g->req.stop, "Stop sequence (repeatable)");
  gen->add_option("--account", g->account, "Watermark the output with this account's key");
  gen->add_option("--epoch", g->epoch, "Key epoch")->capture_default_str();
  gen->add_option("--wm-secret", g->secret, "Watermark master secret (created if missing)")
      ->capture_default_str();
  gen->add_option("--scheme", g->scheme, "kgw | unigram")->capture_default_str();
  gen->add_option("--gamma", g->wm.gamma, "Green fraction")->capture_default_str();
  gen->add_option("--delta", g->wm.delta, "Green logit boost")->capture_default_str();
  gen->add_option("--h", g->wm.context_width, "KGW context width")->capture_default_str();
  gen->callback([g] { std::exit(ExitCodeOf(RunGenerate(*g))); });
}

}  // namespace moat::cli

// moat wm keys | detect | trace | radioactive
#include <boost/json.hpp>
#include <cmath>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli_common.h"
#include "commands.h"
#include "model/ngram_model.h"
#include "moat/clock.h"
#include "store/account_store.h"
#include "watermark/detector.h"
#include "watermark/radioactivity.h"
#include "watermark/suspect_client.h"
#include "watermark/tracer.h"

namespace moat::cli {
namespace {

int FailWith(const Status& s) {
  std::cerr << "error: " << s.ToString() << "\n";
  return s.code() == StatusCode::kInvalidArgument ? 2 : 1;
}
template <typename T>
T OrExit(StatusOr<T> v) {
  if (!v.ok()) std::exit(FailWith(v.status()));
  return std::move(v).value();
}

struct WmOpts {
  std::string secret = "var/wm_master.key";
  std::string model = "var/model.bin";
  std::string scheme = "kgw";
  watermark::WatermarkConfig cfg;
  std::vector<std::string> accounts;
  std::string accounts_file;
  std::string epochs = "0";
  bool all_keys = false;
  bool json = false;
  std::string input = "-";
  double alpha = 0.01;
  std::string correction = "holm";
  size_t top = 10;
  int threads = 0;
  // Sources of settings and accounts besides the flags.
  std::string config;       // moat.toml: secret, [watermark], model path, accounts database
  std::string accounts_db;  // the gateway's SQLite account database: every account id
  // Upstream mode: token ids from a vLLM-style tokenize endpoint instead of our tokenizer.
  std::string tokenize_url;
  std::string tokenize_model;
  int32_t vocab_size = 0;   // > 0: only ids below it were watermarked (logit_bias range)
  // radioactive
  std::string suspect;
  std::string api_key;
  std::string prompts;
  watermark::RadioactivityOptions radio;
  int64_t timeout_ms = 30000;
  const CLI::App* cmd = nullptr;  // to tell explicit flags from defaults
  bool radioactive = false;       // --model names the suspect's model; --model-file is ours
};

bool Given(const WmOpts& o, const std::string& flag) {
  const CLI::Option* opt = o.cmd == nullptr ? nullptr : o.cmd->get_option_no_throw(flag);
  return opt != nullptr && opt->count() > 0;
}

// Fills every setting the user did not give explicitly from --config (moat.toml).
void ApplyConfig(WmOpts& o) {
  if (o.config.empty()) return;
  auto cfg = OrExit(server::LoadGatewayConfig(o.config));
  if (!Given(o, "--wm-secret")) o.secret = cfg.storage.watermark_secret;
  if (!Given(o, "--accounts-db") && o.accounts_file.empty() && o.accounts.empty()) {
    o.accounts_db = cfg.storage.accounts_db;
  }
  if (!Given(o, "--epochs")) o.epochs = std::to_string(cfg.watermark.epoch);
  if (!Given(o, "--scheme") && o.tokenize_url.empty()) o.scheme = cfg.watermark.scheme;
  if (!Given(o, "--gamma")) o.cfg.gamma = cfg.watermark.gamma;
  if (!Given(o, "--h")) o.cfg.context_width = cfg.watermark.context_width;
  for (const auto& m : cfg.models) {
    if (m.backend == "builtin" && !Given(o, o.radioactive ? "--model-file" : "--model")) {
      o.model = m.model_path.empty() ? cfg.storage.data_dir + "/model.bin" : m.model_path;
    }
    if (m.watermark_vocab_size > 0 && o.vocab_size == 0 &&
        (o.tokenize_model.empty() || o.tokenize_model == m.name)) {
      o.vocab_size = m.watermark_vocab_size;
      if (o.tokenize_model.empty()) o.tokenize_model = m.upstream_model.empty() ? m.name : m.upstream_model;
    }
  }
}

// Every account id in the gateway's database (the ids the gateway derives watermark keys from).
std::vector<std::string> DatabaseAccounts(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    std::exit(FailWith(NotFoundError("no account database at " + path)));
  }
  // Listing never hashes an API key, so a throwaway pepper is enough to open the store.
  const std::string pepper(store::kPepperBytes, '\0');
  auto st = OrExit(store::AccountStore::Open(path, pepper, SystemClock::Get()));
  std::vector<std::string> ids;
  for (const auto& a : st->ListAccounts()) ids.push_back(a.id);
  return ids;
}

StatusOr<std::string> ReadAll(const std::string& path) {
  std::stringstream ss;
  if (path == "-") {
    ss << std::cin.rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFoundError("cannot open " + path);
    ss << in.rdbuf();
  }
  return ss.str();
}

// The text of one JSONL record: "text", "completion", "completion_text" (moat audit export), "content", or an OpenAI response body.
std::optional<std::string> TextOf(const boost::json::object& o) {
  for (const char* f : {"text", "completion", "completion_text", "content", "output"}) {
    if (const auto* v = o.if_contains(f); v != nullptr && v->is_string()) {
      return std::string(v->as_string());
    }
  }
  if (const auto* c = o.if_contains("choices"); c != nullptr && c->is_array() && !c->as_array().empty()) {
    const auto& ch = c->as_array()[0];
    if (ch.is_object()) {
      if (const auto* m = ch.as_object().if_contains("message"); m != nullptr && m->is_object()) {
        return TextOf(m->as_object());
      }
      return TextOf(ch.as_object());
    }
  }
  return std::nullopt;
}

// JSONL (every non-empty line a JSON object) gives one text per line; anything else is one text.
std::vector<std::string> SplitInput(const std::string& data) {
  std::vector<std::string> texts;
  std::istringstream in(data);
  std::string line;
  bool jsonl = true;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) {
      jsonl = false;
      break;
    }
    if (auto t = TextOf(v.as_object())) texts.push_back(std::move(*t));
  }
  if (!jsonl) return {data};
  return texts;
}

std::vector<std::string> Accounts(const WmOpts& o) {
  std::vector<std::string> out = o.accounts;
  if (!o.accounts_db.empty()) {
    auto db = DatabaseAccounts(o.accounts_db);
    out.insert(out.end(), db.begin(), db.end());
  }
  if (!o.accounts_file.empty()) {
    std::ifstream in(o.accounts_file);
    if (!in) std::exit(FailWith(NotFoundError("cannot open accounts file " + o.accounts_file)));
    std::string line;
    while (std::getline(in, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty() && line[0] != '#') out.push_back(line);
    }
  }
  if (out.empty()) {
    std::exit(FailWith(InvalidArgumentError("give --account A, --accounts FILE (one id per line), --accounts-db PATH or --config")));
  }
  return out;
}

std::pair<uint32_t, uint32_t> Epochs(const std::string& s) {
  try {
    const size_t dash = s.find('-');
    if (dash == std::string::npos) return {std::stoul(s), std::stoul(s)};
    uint32_t a = std::stoul(s.substr(0, dash)), b = std::stoul(s.substr(dash + 1));
    if (a <= b) return {a, b};
  } catch (...) {
  }
  std::exit(FailWith(InvalidArgumentError("--epochs must be N or A-B")));
}

void ResolveScheme(WmOpts& o) {
  // Upstream mode only embeds the Unigram list (a static logit_bias map).
  if (!o.tokenize_url.empty() && !Given(o, "--scheme")) o.scheme = "unigram";
  o.cfg.scheme = OrExit(watermark::ParseScheme(o.scheme));
  Status st = o.cfg.Validate();
  if (!st.ok()) std::exit(FailWith(st));
}

// Token ids of `texts` from the upstream's tokenize endpoint; ids >= vocab_size (never biased)
// are dropped when a vocabulary size is configured.
watermark::ScoringUnits UpstreamUnits(const WmOpts& o, const std::vector<std::string>& texts) {
  auto client = OrExit(watermark::SuspectClient::Create(o.tokenize_url, o.api_key,
                                                        std::chrono::milliseconds(o.timeout_ms)));
  return OrExit(
      watermark::UpstreamUnitsOfTexts(texts, client, o.tokenize_model, o.vocab_size, o.cfg.h()));
}

watermark::ScoringUnits Prepare(WmOpts& o, const std::string& input) {
  ResolveScheme(o);
  const auto texts = SplitInput(OrExit(ReadAll(input)));
  if (!o.tokenize_url.empty()) return UpstreamUnits(o, texts);
  auto model = OrExit(model::NGramModel::Load(o.model));
  return watermark::UnitsOfTexts(texts, model->tokenizer(), o.cfg.h());
}

boost::json::object ToJson(const watermark::DetectionResult& r) {
  return {{"key_id", r.key_id},     {"tokens", r.tokens},
          {"scored", r.scored},     {"green", r.green},
          {"green_fraction", r.green_fraction}, {"z", r.z},
          {"p_value", r.p_value},   {"log10_p", r.log_p / std::log(10.0)}};
}

void PrintRow(const watermark::DetectionResult& r) {
  std::printf("%-32s tokens %7lld scored %7lld green %.3f z %7.2f p %.3g (log10 p %.1f)\n",
              r.key_id.c_str(), static_cast<long long>(r.tokens), static_cast<long long>(r.scored),
              r.green_fraction, r.z, r.p_value, r.log_p / std::log(10.0));
}

void RunKeys(WmOpts& o) {
  ApplyConfig(o);
  auto secret = OrExit(watermark::MasterSecret::LoadOrCreate(o.secret));
  auto [e0, e1] = Epochs(o.epochs);
  for (const auto& k : watermark::DeriveKeys(secret, Accounts(o), e0, e1)) {
    // Only the id and a short fingerprint: the key material stays secret.
    std::printf("%s fingerprint %08llx\n", k.key_id.c_str(),
                static_cast<unsigned long long>(k.seed >> 32));
  }
  std::exit(0);
}

void RunDetect(WmOpts& o) {
  ApplyConfig(o);
  auto secret = OrExit(watermark::MasterSecret::Load(o.secret));
  auto [e0, e1] = Epochs(o.epochs);
  if (!o.all_keys && o.accounts.empty()) {
    std::exit(FailWith(InvalidArgumentError(
        "give --account A or --all-keys with --accounts FILE, --accounts-db PATH or --config")));
  }
  if (!o.all_keys) {
    o.accounts_file.clear();
    o.accounts_db.clear();
  }
  const auto keys = watermark::DeriveKeys(secret, Accounts(o), e0, e1);
  const auto units = Prepare(o, o.input);
  boost::json::array out;
  for (const auto& k : keys) {
    auto r = watermark::Detect(units, k, o.cfg);
    if (o.json) {
      out.push_back(ToJson(r));
    } else {
      PrintRow(r);
    }
  }
  if (o.json) std::cout << boost::json::serialize(out) << "\n";
  std::exit(0);
}

watermark::TraceOptions TraceOpts(const WmOpts& o) {
  watermark::TraceOptions opt;
  opt.alpha = o.alpha;
  opt.top = o.top;
  opt.threads = o.threads;
  if (o.correction == "bonferroni") {
    opt.correction = watermark::Correction::kBonferroni;
  } else if (o.correction != "holm") {
    std::exit(FailWith(InvalidArgumentError("--correction must be holm or bonferroni")));
  }
  return opt;
}

// Prints a trace report (text or JSON, with `extra` fields merged into the JSON root).
void PrintTrace(const WmOpts& o, const watermark::TraceReport& report, boost::json::object extra) {
  if (o.json) {
    boost::json::array ranked;
    for (const auto& e : report.ranked) {
      auto j = ToJson(e.result);
      j["account"] = e.account;
      j["epoch"] = e.epoch;
      j["rank"] = e.rank;
      j["adjusted_p"] = std::exp(e.log_adjusted_p);
      j["significant"] = e.significant;
      ranked.push_back(std::move(j));
    }
    boost::json::object root{{"keys", report.keys}, {"tokens", report.tokens},
                             {"scored", report.scored}, {"alpha", o.alpha},
                             {"correction", o.correction}, {"significant", report.significant},
                             {"seconds", report.seconds}, {"ranked", std::move(ranked)}};
    for (auto& [k, v] : extra) root[k] = v;
    std::cout << boost::json::serialize(root) << "\n";
  } else {
    std::printf("%lld keys, %lld tokens, %lld scored units, %s correction at alpha %.3g: %lld "
                "account(s) implicated (%.2f s)\n",
                static_cast<long long>(report.keys), static_cast<long long>(report.tokens),
                static_cast<long long>(report.scored), o.correction.c_str(), o.alpha,
                static_cast<long long>(report.significant), report.seconds);
    for (const auto& e : report.ranked) {
      std::printf("%3lld %s adjusted p %.3g  ", static_cast<long long>(e.rank),
                  e.significant ? "GUILTY " : "       ", std::exp(e.log_adjusted_p));
      PrintRow(e.result);
    }
  }
}

void RunTrace(WmOpts& o) {
  ApplyConfig(o);
  auto secret = OrExit(watermark::MasterSecret::Load(o.secret));
  auto [e0, e1] = Epochs(o.epochs);
  const auto keys = watermark::DeriveKeys(secret, Accounts(o), e0, e1);
  const auto units = Prepare(o, o.input);
  const auto report = watermark::Trace(units, keys, o.cfg, TraceOpts(o));
  PrintTrace(o, report, {});
  std::exit(report.significant > 0 ? 0 : 3);
}

// Queries a suspected distilled model and traces its answers to the accounts it learned from.
void RunRadioactive(WmOpts& o) {
  ApplyConfig(o);
  ResolveScheme(o);
  auto secret = OrExit(watermark::MasterSecret::Load(o.secret));
  auto [e0, e1] = Epochs(o.epochs);
  const auto keys = watermark::DeriveKeys(secret, Accounts(o), e0, e1);
  auto tokenizer_model = OrExit(model::NGramModel::Load(o.model));
  auto prompts = OrExit(watermark::ReadPrompts(o.prompts));
  auto client = OrExit(watermark::SuspectClient::Create(o.suspect, o.api_key,
                                                        std::chrono::milliseconds(o.timeout_ms)));
  const auto t0 = std::chrono::steady_clock::now();
  auto samples = OrExit(watermark::QuerySuspect(client, prompts, o.radio));
  const double query_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto report = watermark::TestRadioactivity(samples, tokenizer_model->tokenizer(), keys,
                                                   o.cfg, TraceOpts(o));
  if (!o.json) {
    std::printf("suspect %s model %s: %lld answers in %.1f s; verdict: %s\n", o.suspect.c_str(),
                o.radio.model.c_str(), static_cast<long long>(report.samples), query_s,
                report.detected ? "WATERMARK PRESENT (trained on our outputs)"
                                : "no evidence of our watermark");
  }
  PrintTrace(o, report.trace,
             {{"suspect", o.suspect}, {"model", o.radio.model}, {"samples", report.samples},
              {"query_seconds", query_s}, {"detected", report.detected}});
  std::exit(report.detected ? 0 : 3);
}

void AddCommon(CLI::App* cmd, const std::shared_ptr<WmOpts>& o, bool scoring,
               bool radioactive = false) {
  o->cmd = cmd;
  o->radioactive = radioactive;
  cmd->add_option("--wm-secret", o->secret, "Watermark master secret file")->capture_default_str();
  cmd->add_option("--account", o->accounts, "Account id (repeatable)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--accounts", o->accounts_file, "File with one account id per line");
  cmd->add_option("--accounts-db", o->accounts_db,
                  "The gateway's account database (SQLite): every account in it");
  cmd->add_option("--config,-c", o->config,
                  "moat.toml: watermark secret, [watermark] settings, model file and accounts_db "
                  "(explicit flags win)");
  cmd->add_option("--epochs", o->epochs, "Key epoch N or range A-B")->capture_default_str();
  if (!scoring) return;
  if (!radioactive) {
    cmd->add_option("--model,--model-file", o->model, "Model file whose tokenizer scores the text")
        ->capture_default_str();
    cmd->add_option("--tokenize-url", o->tokenize_url,
                    "Upstream mode: get token ids from this vLLM-style tokenize endpoint "
                    "(POST {model, prompt} -> {tokens}); implies --scheme unigram");
    cmd->add_option("--tokenize-model", o->tokenize_model, "Model name sent to --tokenize-url");
    cmd->add_option("--vocab-size", o->vocab_size,
                    "Watermarked id range [0, N) of the upstream tokenizer (0: all ids)");
    cmd->add_option("--api-key", o->api_key, "Bearer token for --tokenize-url");
  }
  cmd->add_option("--scheme", o->scheme, "kgw | unigram")->capture_default_str();
  cmd->add_option("--gamma", o->cfg.gamma, "Green fraction")->capture_default_str();
  cmd->add_option("--h", o->cfg.context_width, "KGW context width")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
}

}  // namespace

void AddWatermarkCommands(CLI::App& app) {
  auto* wm = app.add_subcommand("wm", "Watermark keys, detection and traitor tracing");
  wm->require_subcommand(1);

  auto k = std::make_shared<WmOpts>();
  auto* keys = wm->add_subcommand("keys", "Print the key ids of accounts (never the key material)");
  AddCommon(keys, k, false);
  keys->callback([k] { RunKeys(*k); });

  auto d = std::make_shared<WmOpts>();
  auto* detect = wm->add_subcommand("detect", "Score text or JSONL against account keys");
  AddCommon(detect, d, true);
  detect->add_flag("--all-keys", d->all_keys, "Score against every key of --accounts");
  detect->add_option("input", d->input, "Text or JSONL file, - for stdin")->capture_default_str();
  detect->callback([d] { RunDetect(*d); });

  auto t = std::make_shared<WmOpts>();
  auto* trace = wm->add_subcommand("trace", "Rank all account keys on a leaked corpus (exit 3: none)");
  AddCommon(trace, t, true);
  trace->add_option("--corpus", t->input, "Leaked text or JSONL, - for stdin")->required();
  trace->add_option("--alpha", t->alpha, "Family-wise error rate")->capture_default_str();
  trace->add_option("--correction", t->correction, "holm | bonferroni")->capture_default_str();
  trace->add_option("--top", t->top, "Also list this many best-ranked keys")->capture_default_str();
  trace->add_option("--threads", t->threads, "Worker threads (0 = all cores)");
  trace->callback([t] { RunTrace(*t); });

  auto r = std::make_shared<WmOpts>();
  auto* radio = wm->add_subcommand(
      "radioactive",
      "Query a suspected distilled model over HTTP and trace its answers to account keys (exit 3: "
      "no evidence)");
  AddCommon(radio, r, true, true);
  radio->add_option("--suspect", r->suspect, "Suspect's OpenAI-compatible base URL (http://)")
      ->required();
  radio->add_option("--model", r->radio.model, "Model name to ask the suspect for")->required();
  radio->add_option("--api-key", r->api_key, "Bearer token for the suspect");
  radio->add_option("--prompts", r->prompts, "Prompts: JSONL with a text field, or plain lines")
      ->required();
  radio->add_option("--n", r->radio.samples, "Completions to request")->capture_default_str();
  radio->add_option("--max-tokens", r->radio.max_tokens, "max_tokens of each request")
      ->capture_default_str();
  radio->add_option("--temperature", r->radio.temperature, "Sampling temperature")
      ->capture_default_str();
  radio->add_option("--timeout-ms", r->timeout_ms, "Per-request timeout")->capture_default_str();
  radio->add_option("--model-file", r->model, "Our model file (its tokenizer scores the answers)")
      ->capture_default_str();
  radio->add_option("--alpha", r->alpha, "Family-wise error rate")->capture_default_str();
  radio->add_option("--correction", r->correction, "holm | bonferroni")->capture_default_str();
  radio->add_option("--top", r->top, "Also list this many best-ranked keys")->capture_default_str();
  radio->add_option("--threads", r->threads, "Worker threads (0 = all cores)");
  radio->callback([r] { RunRadioactive(*r); });
}

}  // namespace moat::cli

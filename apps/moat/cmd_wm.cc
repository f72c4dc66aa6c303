// moat wm keys | detect | trace | radioactive
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <chrono>
#include <optional>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "audit/audit_export.h"
#include "cli_common.h"
#include "common/file_contents.h"
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
  // Harvest-context filter and probes: the exchanges of the suspected accounts.
  std::string harvest_db;                    // audit database of this gateway
  std::string harvest_file;                  // or a JSONL file (moat audit export, ...)
  std::vector<std::string> harvest_accounts; // whose exchanges (empty: every record)
  int filter_width = 0;                      // 0: the watermark's h
  bool no_filter = false;                    // probes from the harvest, every token scored
  int64_t timeout_ms = 30000;
  const CLI::App* cmd = nullptr;  // to tell explicit flags from defaults
  bool radioactive = false;       // --model names the suspect's model; --model-file is ours
};

bool Given(const WmOpts& o, const std::string& flag) {
  const CLI::Option* opt = o.cmd == nullptr ? nullptr : o.cmd->get_option_no_throw(flag);
  return opt != nullptr && opt->count() > 0;
}

// Fills every setting the user did not give explicitly from --config (moat.toml).
Status ApplyConfig(WmOpts& o) {
  if (o.config.empty()) return Status::Ok();
  MOAT_ASSIGN_OR_RETURN(server::GatewayConfig cfg, server::LoadGatewayConfig(o.config));
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
  return Status::Ok();
}

// Every account id in the gateway's database (the ids the gateway derives watermark keys from).
StatusOr<std::vector<std::string>> DatabaseAccounts(const std::string& path) {
  if (!std::filesystem::exists(path)) return NotFoundError("no account database at " + path);
  // Listing never hashes an API key, so a throwaway pepper is enough to open the store.
  const std::string pepper(store::kPepperBytes, '\0');
  MOAT_ASSIGN_OR_RETURN(std::unique_ptr<store::AccountStore> st,
                        store::AccountStore::Open(path, pepper, SystemClock::Get()));
  std::vector<std::string> ids;
  for (const auto& a : st->ListAccounts()) ids.push_back(a.id);
  return ids;
}

StatusOr<std::string> ReadAll(const std::string& path) {
  if (path != "-") return ReadFileContents(path);
  std::stringstream ss;
  ss << std::cin.rdbuf();
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

StatusOr<std::vector<std::string>> Accounts(const WmOpts& o) {
  std::vector<std::string> out = o.accounts;
  if (!o.accounts_db.empty()) {
    MOAT_ASSIGN_OR_RETURN(std::vector<std::string> db, DatabaseAccounts(o.accounts_db));
    out.insert(out.end(), db.begin(), db.end());
  }
  if (!o.accounts_file.empty()) {
    std::ifstream in(o.accounts_file);
    if (!in) return NotFoundError("cannot open accounts file " + o.accounts_file);
    std::string line;
    while (std::getline(in, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty() && line[0] != '#') out.push_back(line);
    }
  }
  if (out.empty()) {
    return InvalidArgumentError("give --account A, --accounts FILE (one id per line), --accounts-db PATH or --config");
  }
  return out;
}

// A decimal epoch number (at most 2^32 - 1), or nullopt.
std::optional<uint32_t> ParseEpoch(std::string_view s) {
  uint32_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// "N" or "A-B" (A <= B) as an inclusive range of key epochs.
StatusOr<std::pair<uint32_t, uint32_t>> Epochs(const std::string& s) {
  const size_t dash = s.find('-');
  const std::optional<uint32_t> a = ParseEpoch(std::string_view(s).substr(0, dash));
  const std::optional<uint32_t> b =
      dash == std::string::npos ? a : ParseEpoch(std::string_view(s).substr(dash + 1));
  if (!a || !b || *a > *b) return InvalidArgumentError("--epochs must be N or A-B");
  return std::pair<uint32_t, uint32_t>{*a, *b};
}

// The keys of every account the options name, over the epochs they name.
StatusOr<std::vector<watermark::WatermarkKey>> Keys(const WmOpts& o,
                                                   const watermark::MasterSecret& secret) {
  MOAT_ASSIGN_OR_RETURN(auto epochs, Epochs(o.epochs));
  MOAT_ASSIGN_OR_RETURN(std::vector<std::string> accounts, Accounts(o));
  return watermark::DeriveKeys(secret, accounts, epochs.first, epochs.second);
}

Status ResolveScheme(WmOpts& o) {
  // Upstream mode only embeds the Unigram list (a static logit_bias map).
  if (!o.tokenize_url.empty() && !Given(o, "--scheme")) o.scheme = "unigram";
  MOAT_ASSIGN_OR_RETURN(o.cfg.scheme, watermark::ParseScheme(o.scheme));
  return o.cfg.Validate();
}

// Token ids of `texts` from the upstream's tokenize endpoint; ids >= vocab_size (never biased)
// are dropped when a vocabulary size is configured.
StatusOr<watermark::ScoringUnits> UpstreamUnits(const WmOpts& o,
                                                const std::vector<std::string>& texts) {
  MOAT_ASSIGN_OR_RETURN(watermark::SuspectClient client,
                        watermark::SuspectClient::Create(o.tokenize_url, o.api_key,
                                                         std::chrono::milliseconds(o.timeout_ms)));
  return watermark::UpstreamUnitsOfTexts(texts, client, o.tokenize_model, o.vocab_size, o.cfg.h());
}

StatusOr<watermark::ScoringUnits> Prepare(WmOpts& o, const std::string& input) {
  MOAT_RETURN_IF_ERROR(ResolveScheme(o));
  MOAT_ASSIGN_OR_RETURN(std::string data, ReadAll(input));
  const auto texts = SplitInput(data);
  if (!o.tokenize_url.empty()) return UpstreamUnits(o, texts);
  MOAT_ASSIGN_OR_RETURN(auto model, model::NGramModel::Load(o.model));
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

Status RunKeys(WmOpts& o) {
  MOAT_RETURN_IF_ERROR(ApplyConfig(o));
  MOAT_ASSIGN_OR_RETURN(auto secret, watermark::MasterSecret::LoadOrCreate(o.secret));
  MOAT_ASSIGN_OR_RETURN(auto keys, Keys(o, secret));
  for (const auto& k : keys) {
    // Only the id and a short fingerprint: the key material stays secret.
    std::printf("%s fingerprint %08llx\n", k.key_id.c_str(),
                static_cast<unsigned long long>(k.seed >> 32));
  }
  return Status::Ok();
}

Status RunDetect(WmOpts& o) {
  MOAT_RETURN_IF_ERROR(ApplyConfig(o));
  MOAT_ASSIGN_OR_RETURN(auto secret, watermark::MasterSecret::Load(o.secret));
  if (!o.all_keys && o.accounts.empty()) {
    return InvalidArgumentError(
        "give --account A or --all-keys with --accounts FILE, --accounts-db PATH or --config");
  }
  if (!o.all_keys) {
    o.accounts_file.clear();
    o.accounts_db.clear();
  }
  MOAT_ASSIGN_OR_RETURN(const auto keys, Keys(o, secret));
  MOAT_ASSIGN_OR_RETURN(const auto units, Prepare(o, o.input));
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
  return Status::Ok();
}

StatusOr<watermark::TraceOptions> TraceOpts(const WmOpts& o) {
  watermark::TraceOptions opt;
  opt.alpha = o.alpha;
  opt.top = o.top;
  opt.threads = o.threads;
  if (o.correction == "bonferroni") {
    opt.correction = watermark::Correction::kBonferroni;
  } else if (o.correction != "holm") {
    return InvalidArgumentError("--correction must be holm or bonferroni");
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

// Returns the exit code: 0 when some account is implicated, kExitNoEvidence when none is.
StatusOr<int> RunTrace(WmOpts& o) {
  MOAT_RETURN_IF_ERROR(ApplyConfig(o));
  MOAT_ASSIGN_OR_RETURN(auto secret, watermark::MasterSecret::Load(o.secret));
  MOAT_ASSIGN_OR_RETURN(const auto keys, Keys(o, secret));
  MOAT_ASSIGN_OR_RETURN(const auto trace_options, TraceOpts(o));
  MOAT_ASSIGN_OR_RETURN(const auto units, Prepare(o, o.input));
  const auto report = watermark::Trace(units, keys, o.cfg, trace_options);
  PrintTrace(o, report, {});
  return report.significant > 0 ? kExitOk : kExitNoEvidence;
}

// The harvested exchanges of --harvest-account from --harvest-db or --harvest (none when
// neither is given). Records whose text was not kept in full are skipped.
StatusOr<std::vector<watermark::HarvestedText>> Harvest(const WmOpts& o) {
  if (!o.harvest_file.empty()) return watermark::ReadHarvest(o.harvest_file, o.harvest_accounts);
  if (o.harvest_db.empty()) return std::vector<watermark::HarvestedText>{};
  if (!std::filesystem::exists(o.harvest_db)) return NotFoundError("no audit database at " + o.harvest_db);
  std::vector<watermark::HarvestedText> out;
  MOAT_RETURN_IF_ERROR(audit::ForEachAccountRecord(o.harvest_db, o.harvest_accounts, [&](const AuditRecord& r) {
    if (r.retention == "full" && !r.completion_text.empty()) out.push_back({r.prompt_text, r.completion_text});
    return Status::Ok();
  }));
  if (out.empty()) return InvalidArgumentError("no answers kept in full for the harvest accounts in " + o.harvest_db);
  return out;
}

// Queries a suspected distilled model and traces its answers to the accounts it learned from.
// Returns the exit code: 0 when the watermark is present, kExitNoEvidence when not.
StatusOr<int> RunRadioactive(WmOpts& o) {
  MOAT_RETURN_IF_ERROR(ApplyConfig(o));
  MOAT_RETURN_IF_ERROR(ResolveScheme(o));
  if (!o.harvest_db.empty() && !o.harvest_file.empty()) {
    return InvalidArgumentError("give --harvest-db or --harvest, not both");
  }
  if (o.filter_width != 0 && o.filter_width < o.cfg.h()) {
    return InvalidArgumentError("--filter-width must be at least the watermark's h");
  }
  MOAT_ASSIGN_OR_RETURN(auto secret, watermark::MasterSecret::Load(o.secret));
  MOAT_ASSIGN_OR_RETURN(const auto keys, Keys(o, secret));
  MOAT_ASSIGN_OR_RETURN(const auto trace_options, TraceOpts(o));
  MOAT_ASSIGN_OR_RETURN(auto tokenizer_model, model::NGramModel::Load(o.model));
  MOAT_ASSIGN_OR_RETURN(const auto harvest, Harvest(o));
  std::vector<std::string> prompts;
  if (!o.prompts.empty()) {
    MOAT_ASSIGN_OR_RETURN(prompts, watermark::ReadPrompts(o.prompts));
  } else {
    prompts = watermark::ProbesOfHarvest(harvest);
    if (prompts.empty()) {
      return InvalidArgumentError("give --prompts FILE, or --harvest-db / --harvest with prompts to use as probes");
    }
  }
  std::optional<watermark::ContextFilter> filter;
  if (!harvest.empty() && !o.no_filter) {
    filter = watermark::FilterOfHarvest(harvest, tokenizer_model->tokenizer(),
                                        o.filter_width > 0 ? o.filter_width : o.cfg.h());
  }
  MOAT_ASSIGN_OR_RETURN(watermark::SuspectClient client,
                        watermark::SuspectClient::Create(o.suspect, o.api_key,
                                                         std::chrono::milliseconds(o.timeout_ms)));
  const auto t0 = std::chrono::steady_clock::now();
  MOAT_ASSIGN_OR_RETURN(auto samples, watermark::QuerySuspect(client, prompts, o.radio));
  const double query_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto report = watermark::TestRadioactivity(samples, tokenizer_model->tokenizer(), keys,
                                                   o.cfg, trace_options,
                                                   filter ? &*filter : nullptr);
  if (!o.json) {
    std::printf("suspect %s model %s: %lld answers to %zu probes in %.1f s; verdict: %s\n",
                o.suspect.c_str(), o.radio.model.c_str(), static_cast<long long>(report.samples),
                prompts.size(), query_s,
                report.detected ? "WATERMARK PRESENT (trained on our outputs)"
                                : "no evidence of our watermark");
    if (filter) {
      std::printf("harvest filter: %zu exchanges, %lld contexts of width %d; %lld suspect tokens "
                  "outside it not scored\n",
                  harvest.size(), static_cast<long long>(report.filter_contexts), filter->width(),
                  static_cast<long long>(report.filtered_out));
    }
  }
  PrintTrace(o, report.trace,
             {{"suspect", o.suspect}, {"model", o.radio.model}, {"samples", report.samples},
              {"probes", prompts.size()}, {"harvest_exchanges", harvest.size()},
              {"filter_contexts", report.filter_contexts},
              {"filter_width", filter ? filter->width() : 0},
              {"filtered_out", report.filtered_out},
              {"query_seconds", query_s}, {"detected", report.detected}});
  return report.detected ? kExitOk : kExitNoEvidence;
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
  keys->callback([k] { std::exit(ExitCodeOf(RunKeys(*k))); });

  auto d = std::make_shared<WmOpts>();
  auto* detect = wm->add_subcommand("detect", "Score text or JSONL against account keys");
  AddCommon(detect, d, true);
  detect->add_flag("--all-keys", d->all_keys, "Score against every key of --accounts");
  detect->add_option("input", d->input, "Text or JSONL file, - for stdin")->capture_default_str();
  detect->callback([d] { std::exit(ExitCodeOf(RunDetect(*d))); });

  auto t = std::make_shared<WmOpts>();
  auto* trace = wm->add_subcommand("trace", "Rank all account keys on a leaked corpus (exit 5: none implicated)");
  AddCommon(trace, t, true);
  trace->add_option("--corpus", t->input, "Leaked text or JSONL, - for stdin")->required();
  trace->add_option("--alpha", t->alpha, "Family-wise error rate")->capture_default_str();
  trace->add_option("--correction", t->correction, "holm | bonferroni")->capture_default_str();
  trace->add_option("--top", t->top, "Also list this many best-ranked keys")->capture_default_str();
  trace->add_option("--threads", t->threads, "Worker threads (0 = all cores)");
  trace->callback([t] { std::exit(ExitCodeOf(RunTrace(*t))); });

  auto r = std::make_shared<WmOpts>();
  auto* radio = wm->add_subcommand(
      "radioactive",
      "Query a suspected distilled model over HTTP and trace its answers to account keys (exit 5: "
      "no evidence)");
  AddCommon(radio, r, true, true);
  radio->add_option("--suspect", r->suspect, "Suspect's OpenAI-compatible base URL (http://)")
      ->required();
  radio->add_option("--model", r->radio.model, "Model name to ask the suspect for")->required();
  radio->add_option("--api-key", r->api_key, "Bearer token for the suspect");
  radio->add_option("--prompts", r->prompts,
                    "Probe prompts: JSONL with a text field, or plain lines (default: the "
                    "harvested prompts of --harvest-db / --harvest)");
  radio->add_option("--harvest-db", r->harvest_db,
                    "This gateway's audit database: the suspected accounts' prompts are the "
                    "probes and only suspect tokens whose context occurs in their exchanges are "
                    "scored");
  radio->add_option("--harvest", r->harvest_file,
                    "Same from a JSONL file (moat audit export records or "
                    "{prompt, completion} objects)");
  radio->add_option("--harvest-account", r->harvest_accounts,
                    "Suspected account whose exchanges form the harvest (repeatable; default: "
                    "every record)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  radio->add_option("--filter-width", r->filter_width,
                    "Tokens of history that must occur in the harvest (default: the watermark's "
                    "h)");
  radio->add_flag("--no-filter", r->no_filter,
                  "Use the harvest for probes only; score every suspect token");
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
  radio->callback([r] { std::exit(ExitCodeOf(RunRadioactive(*r))); });
}

}  // namespace moat::cli

#include "server/config.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <limits>
#include <toml++/toml.h>

#include "common/http_url.h"
#include "stepup/verification_url.h"

namespace moat::server {
namespace {

// Reads an optional key of type T, reporting a clear error when the type is wrong.
template <typename T>
moat::Status Get(const toml::table& t, std::string_view key, const std::string& where, T* out) {
  const toml::node* n = t.get(key);
  if (!n) return moat::Status::Ok();
  if constexpr (std::is_same_v<T, bool>) {
    if (auto v = n->value<bool>()) { *out = *v; return moat::Status::Ok(); }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (auto v = n->value<double>()) { *out = *v; return moat::Status::Ok(); }
  } else if constexpr (std::is_integral_v<T>) {
    // Integers only: toml++ would convert a float such as 1e100 with an out-of-range cast.
    if (const toml::value<int64_t>* iv = n->as_integer()) {
      const int64_t v = iv->get();
      if (v < 0) return moat::InvalidArgumentError(where + "." + std::string(key) + " must not be negative");
      if (static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))
        return moat::InvalidArgumentError(where + "." + std::string(key) + " is too large");
      *out = static_cast<T>(v);
      return moat::Status::Ok();
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (auto v = n->value<std::string>()) { *out = *v; return moat::Status::Ok(); }
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    if (const toml::array* a = n->as_array()) {
      out->clear();
      for (const auto& e : *a) {
        auto s = e.value<std::string>();
        if (!s) return moat::InvalidArgumentError(where + "." + std::string(key) + " must be an array of strings");
        out->push_back(*s);
      }
      return moat::Status::Ok();
    }
  }
  return moat::InvalidArgumentError("config key " + where + "." + std::string(key) + " has the wrong type");
}

moat::Status CheckKeys(const toml::table& t, const std::string& where,
                       std::initializer_list<std::string_view> known) {
  for (const auto& [k, v] : t) {
    bool ok = false;
    for (auto kk : known) ok = ok || k.str() == kk;
    if (!ok) return moat::InvalidArgumentError("unknown config key " + where + "." + std::string(k.str()));
  }
  return moat::Status::Ok();
}

std::string FromEnv(const std::string& name) {
  const char* v = name.empty() ? nullptr : std::getenv(name.c_str());
  return v ? std::string(v) : std::string();
}

// Splits "host:port" ("[v6]:port" too) of the config key `key`.
moat::Status ParseListen(const std::string& listen, const std::string& key, std::string* host,
                         uint16_t* port) {
  constexpr int kMaxPort = 65535;
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return moat::InvalidArgumentError(key + " must be host:port");
  *host = listen.substr(0, colon);
  if (host->size() > 2 && host->front() == '[') *host = host->substr(1, host->size() - 2);
  const std::string digits = listen.substr(colon + 1);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 5)
    return moat::InvalidArgumentError(key + " port must be a number");
  int p = std::atoi(digits.c_str());
  if (p > kMaxPort) return moat::InvalidArgumentError(key + " port out of range");
  *port = static_cast<uint16_t>(p);
  return moat::Status::Ok();
}

moat::Status ParseServer(const toml::table& t, ServerConfig* s) {
  MOAT_RETURN_IF_ERROR(CheckKeys(t, "server", {"listen", "threads", "max_body_bytes", "header_timeout_ms",
      "body_timeout_ms", "write_timeout_ms", "trusted_proxies", "end_user_header", "admin_token",
      "admin_token_env", "default_max_tokens", "max_tokens_limit", "audit_backlog_limit",
      "max_header_bytes", "max_connections", "max_connections_per_ip", "max_buffered_body_bytes",
      "max_buffered_body_bytes_per_ip", "tls_listen", "tls_cert_file", "tls_key_file"}));
  std::string listen;
  MOAT_RETURN_IF_ERROR(Get(t, "listen", "server", &listen));
  if (!listen.empty()) MOAT_RETURN_IF_ERROR(ParseListen(listen, "server.listen", &s->host, &s->port));
  MOAT_RETURN_IF_ERROR(Get(t, "tls_listen", "server", &s->tls_listen));
  MOAT_RETURN_IF_ERROR(Get(t, "tls_cert_file", "server", &s->tls_cert_file));
  MOAT_RETURN_IF_ERROR(Get(t, "tls_key_file", "server", &s->tls_key_file));
  if (!s->tls_listen.empty()) {
    MOAT_RETURN_IF_ERROR(ParseListen(s->tls_listen, "server.tls_listen", &s->tls_host, &s->tls_port));
    if (s->tls_cert_file.empty() || s->tls_key_file.empty())
      return moat::InvalidArgumentError("server.tls_listen needs server.tls_cert_file and server.tls_key_file");
  }
  MOAT_RETURN_IF_ERROR(Get(t, "max_header_bytes", "server", &s->max_header_bytes));
  MOAT_RETURN_IF_ERROR(Get(t, "max_connections", "server", &s->max_connections));
  MOAT_RETURN_IF_ERROR(Get(t, "max_connections_per_ip", "server", &s->max_connections_per_ip));
  MOAT_RETURN_IF_ERROR(Get(t, "max_buffered_body_bytes", "server", &s->max_buffered_body_bytes));
  MOAT_RETURN_IF_ERROR(Get(t, "max_buffered_body_bytes_per_ip", "server", &s->max_buffered_body_bytes_per_ip));
  if (s->max_header_bytes < 1024) return moat::InvalidArgumentError("server.max_header_bytes must be at least 1024");
  if (s->max_connections < 1) return moat::InvalidArgumentError("server.max_connections must be >= 1");
  if (s->max_connections_per_ip < 1) return moat::InvalidArgumentError("server.max_connections_per_ip must be >= 1");
  MOAT_RETURN_IF_ERROR(Get(t, "threads", "server", &s->threads));
  MOAT_RETURN_IF_ERROR(Get(t, "max_body_bytes", "server", &s->max_body_bytes));
  MOAT_RETURN_IF_ERROR(Get(t, "header_timeout_ms", "server", &s->header_timeout_ms));
  MOAT_RETURN_IF_ERROR(Get(t, "body_timeout_ms", "server", &s->body_timeout_ms));
  MOAT_RETURN_IF_ERROR(Get(t, "write_timeout_ms", "server", &s->write_timeout_ms));
  MOAT_RETURN_IF_ERROR(Get(t, "trusted_proxies", "server", &s->trusted_proxies));
  MOAT_RETURN_IF_ERROR(Get(t, "end_user_header", "server", &s->end_user_header));
  MOAT_RETURN_IF_ERROR(Get(t, "admin_token", "server", &s->admin_token));
  std::string env;
  MOAT_RETURN_IF_ERROR(Get(t, "admin_token_env", "server", &env));
  if (!env.empty()) s->admin_token = FromEnv(env);
  MOAT_RETURN_IF_ERROR(Get(t, "default_max_tokens", "server", &s->default_max_tokens));
  MOAT_RETURN_IF_ERROR(Get(t, "max_tokens_limit", "server", &s->max_tokens_limit));
  MOAT_RETURN_IF_ERROR(Get(t, "audit_backlog_limit", "server", &s->audit_backlog_limit));
  for (auto& c : s->end_user_header) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s->max_body_bytes < 1024) return moat::InvalidArgumentError("server.max_body_bytes must be at least 1024");
  if (s->max_buffered_body_bytes < s->max_body_bytes)
    return moat::InvalidArgumentError("server.max_buffered_body_bytes must be at least server.max_body_bytes");
  if (s->max_buffered_body_bytes_per_ip < s->max_body_bytes)
    return moat::InvalidArgumentError("server.max_buffered_body_bytes_per_ip must be at least server.max_body_bytes");
  if (s->default_max_tokens < 1) return moat::InvalidArgumentError("server.default_max_tokens must be >= 1");
  return moat::Status::Ok();
}

moat::Status ParseModel(const toml::table& t, size_t index, ModelConfig* m) {
  std::string where = "models[" + std::to_string(index) + "]";
  MOAT_RETURN_IF_ERROR(CheckKeys(t, where, {"name", "backend", "base_url", "upstream_model", "api_key",
      "api_key_env", "connect_timeout_ms", "read_timeout_ms", "max_idle_connections",
      "request_usage_in_streams", "model_path", "forward_headers", "generation_threads",
      "watermark_vocab_size", "tls_verify", "tls_ca_file", "tls_server_name", "tls_client_cert_file",
      "tls_client_key_file", "attestation", "attestation_public_key", "attested_artifacts"}));
  MOAT_RETURN_IF_ERROR(Get(t, "name", where, &m->name));
  MOAT_RETURN_IF_ERROR(Get(t, "backend", where, &m->backend));
  MOAT_RETURN_IF_ERROR(Get(t, "base_url", where, &m->base_url));
  MOAT_RETURN_IF_ERROR(Get(t, "upstream_model", where, &m->upstream_model));
  MOAT_RETURN_IF_ERROR(Get(t, "api_key", where, &m->api_key));
  std::string env;
  MOAT_RETURN_IF_ERROR(Get(t, "api_key_env", where, &env));
  if (!env.empty()) m->api_key = FromEnv(env);
  MOAT_RETURN_IF_ERROR(Get(t, "connect_timeout_ms", where, &m->connect_timeout_ms));
  MOAT_RETURN_IF_ERROR(Get(t, "read_timeout_ms", where, &m->read_timeout_ms));
  MOAT_RETURN_IF_ERROR(Get(t, "max_idle_connections", where, &m->max_idle_connections));
  MOAT_RETURN_IF_ERROR(Get(t, "request_usage_in_streams", where, &m->request_usage_in_streams));
  MOAT_RETURN_IF_ERROR(Get(t, "model_path", where, &m->model_path));
  MOAT_RETURN_IF_ERROR(Get(t, "forward_headers", where, &m->forward_headers));
  MOAT_RETURN_IF_ERROR(Get(t, "generation_threads", where, &m->generation_threads));
  MOAT_RETURN_IF_ERROR(Get(t, "watermark_vocab_size", where, &m->watermark_vocab_size));
  MOAT_RETURN_IF_ERROR(Get(t, "tls_verify", where, &m->tls_verify));
  MOAT_RETURN_IF_ERROR(Get(t, "tls_ca_file", where, &m->tls_ca_file));
  MOAT_RETURN_IF_ERROR(Get(t, "tls_server_name", where, &m->tls_server_name));
  MOAT_RETURN_IF_ERROR(Get(t, "tls_client_cert_file", where, &m->tls_client_cert_file));
  MOAT_RETURN_IF_ERROR(Get(t, "tls_client_key_file", where, &m->tls_client_key_file));
  MOAT_RETURN_IF_ERROR(Get(t, "attestation", where, &m->attestation));
  MOAT_RETURN_IF_ERROR(Get(t, "attestation_public_key", where, &m->attestation_public_key));
  MOAT_RETURN_IF_ERROR(Get(t, "attested_artifacts", where, &m->attested_artifacts));
  if (m->attestation.empty() != m->attestation_public_key.empty())
    return moat::InvalidArgumentError(where + ".attestation and attestation_public_key go together");
  if (!m->attested_artifacts.empty() && m->attestation.empty())
    return moat::InvalidArgumentError(where + ".attested_artifacts needs an attestation");
  for (const std::string& a : m->attested_artifacts) {
    const size_t eq = a.find('=');
    if (eq == 0 || eq == std::string::npos || a.size() - eq - 1 != 64)
      return moat::InvalidArgumentError(where + ".attested_artifacts entries are NAME=SHA256HEX (64 hex characters): " + a);
  }
  if (m->tls_client_cert_file.empty() != m->tls_client_key_file.empty())
    return moat::InvalidArgumentError(where + ".tls_client_cert_file and tls_client_key_file go together");
  for (auto& h : m->forward_headers) {
    for (auto& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (h == "authorization" || h == "host" || h == "content-length" || h == "transfer-encoding" ||
        h == "connection")
      return moat::InvalidArgumentError(where + ".forward_headers must not name \"" + h + "\"");
  }
  if (m->name.empty()) return moat::InvalidArgumentError(where + ".name is required");
  if (m->upstream_model.empty()) m->upstream_model = m->name;
  if (m->backend == "upstream") {
    if (m->base_url.empty()) return moat::InvalidArgumentError(where + ".base_url is required for backend = \"upstream\"");
    auto url = ParseBaseUrl(m->base_url);
    if (!url.ok()) return moat::InvalidArgumentError(where + ".base_url: " + url.status().message());
    if (!url->tls && (!m->tls_ca_file.empty() || !m->tls_client_cert_file.empty() || !m->tls_server_name.empty()))
      return moat::InvalidArgumentError(where + ": tls_* keys need an https:// base_url");
  } else if (m->backend == "builtin") {
    // Validated by the builtin backend when it loads the model file.
  } else {
    return moat::InvalidArgumentError(where + ".backend must be \"upstream\" or \"builtin\", got \"" + m->backend + "\"");
  }
  return moat::Status::Ok();
}

moat::Status ParseLimits(const toml::table& t, const std::string& tier, TierLimitsConfig* l) {
  std::string where = "limits." + tier;
  MOAT_RETURN_IF_ERROR(CheckKeys(t, where, {"key_rpm", "key_tpm", "account_rpm", "account_tpm", "ip_rpm",
      "ip_tpm", "prefix_rpm", "prefix_tpm"}));
  MOAT_RETURN_IF_ERROR(Get(t, "key_rpm", where, &l->key_rpm));
  MOAT_RETURN_IF_ERROR(Get(t, "key_tpm", where, &l->key_tpm));
  MOAT_RETURN_IF_ERROR(Get(t, "account_rpm", where, &l->account_rpm));
  MOAT_RETURN_IF_ERROR(Get(t, "account_tpm", where, &l->account_tpm));
  MOAT_RETURN_IF_ERROR(Get(t, "ip_rpm", where, &l->ip_rpm));
  MOAT_RETURN_IF_ERROR(Get(t, "ip_tpm", where, &l->ip_tpm));
  MOAT_RETURN_IF_ERROR(Get(t, "prefix_rpm", where, &l->prefix_rpm));
  MOAT_RETURN_IF_ERROR(Get(t, "prefix_tpm", where, &l->prefix_tpm));
  return moat::Status::Ok();
}

// A hardening table (docs/resistance.md) onto `p`; values are strings or numbers.
moat::Status ParseHardening(const toml::table& t, const std::string& where, resistance::HardeningProfile* p) {
  for (const auto& [key, node] : t) {
    std::string text;
    if (node.is_string()) {
      text = *node.value<std::string>();
    } else if (node.is_integer()) {
      text = std::to_string(*node.value<int64_t>());
    } else if (node.is_floating_point()) {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", *node.value<double>());
      text = buf;
    } else {
      return moat::InvalidArgumentError(where + "." + std::string(key.str()) + " must be a string or a number");
    }
    MOAT_RETURN_IF_ERROR(resistance::SetHardeningField(where, key.str(), text, p));
  }
  return moat::Status::Ok();
}

moat::Status ParseDetection(const toml::table& d, DetectionSettings* ds) {
  MOAT_RETURN_IF_ERROR(CheckKeys(d, "detection", {"enabled", "model", "stages", "restrict_posterior",
      "release_posterior", "typical_answer_tokens", "tiers", "settings", "silent_degrade", "degrade_max_tokens",
      "throttle_retry_after_s", "step_up_url", "max_subjects", "max_evicted_subjects", "indicators_dir",
      "indicator_salt_file", "hardening", "state_file", "state_save_interval_s", "replay_clock_peers"}));
  MOAT_RETURN_IF_ERROR(Get(d, "enabled", "detection", &ds->enabled));
  MOAT_RETURN_IF_ERROR(Get(d, "model", "detection", &ds->model));
  MOAT_RETURN_IF_ERROR(Get(d, "stages", "detection", &ds->stages));
  MOAT_RETURN_IF_ERROR(Get(d, "restrict_posterior", "detection", &ds->restrict_posterior));
  MOAT_RETURN_IF_ERROR(Get(d, "release_posterior", "detection", &ds->release_posterior));
  MOAT_RETURN_IF_ERROR(Get(d, "typical_answer_tokens", "detection", &ds->typical_answer_tokens));
  MOAT_RETURN_IF_ERROR(Get(d, "silent_degrade", "detection", &ds->silent_degrade));
  MOAT_RETURN_IF_ERROR(Get(d, "degrade_max_tokens", "detection", &ds->degrade_max_tokens));
  MOAT_RETURN_IF_ERROR(Get(d, "throttle_retry_after_s", "detection", &ds->throttle_retry_after_s));
  MOAT_RETURN_IF_ERROR(Get(d, "step_up_url", "detection", &ds->step_up_url));
  if (auto url = stepup::ParseVerificationUrl(ds->step_up_url); !url.ok())
    return moat::InvalidArgumentError("detection.step_up_url: " + url.status().message());
  MOAT_RETURN_IF_ERROR(Get(d, "max_subjects", "detection", &ds->max_subjects));
  MOAT_RETURN_IF_ERROR(Get(d, "max_evicted_subjects", "detection", &ds->max_evicted_subjects));
  MOAT_RETURN_IF_ERROR(Get(d, "indicators_dir", "detection", &ds->indicators_dir));
  MOAT_RETURN_IF_ERROR(Get(d, "indicator_salt_file", "detection", &ds->indicator_salt_file));
  MOAT_RETURN_IF_ERROR(Get(d, "state_file", "detection", &ds->state_file));
  MOAT_RETURN_IF_ERROR(Get(d, "state_save_interval_s", "detection", &ds->state_save_interval_s));
  MOAT_RETURN_IF_ERROR(Get(d, "replay_clock_peers", "detection", &ds->replay_clock_peers));
  if (ds->state_save_interval_s < 10 || ds->state_save_interval_s > 86400)
    return moat::InvalidArgumentError("detection.state_save_interval_s must be between 10 and 86400");
  if (ds->degrade_max_tokens < 1) return moat::InvalidArgumentError("detection.degrade_max_tokens must be >= 1");
  if (ds->max_subjects < 1024) return moat::InvalidArgumentError("detection.max_subjects must be >= 1024");
  for (double p : {ds->restrict_posterior, ds->release_posterior}) {
    if (p == 0 || p >= 1) {
      return moat::InvalidArgumentError("detection.restrict_posterior and release_posterior must be in (0, 1)");
    }
  }
  if (d.get("hardening") != nullptr) {
    const toml::table* h = d["hardening"].as_table();
    if (h == nullptr) return moat::InvalidArgumentError("detection.hardening must be a table");
    MOAT_RETURN_IF_ERROR(ParseHardening(*h, "detection.hardening", &ds->hardening));
  }
  if (const auto* settings = d["settings"].as_table()) {
    for (const auto& [name, node] : *settings) {
      const auto v = node.value<double>();
      if (!v) return moat::InvalidArgumentError("detection.settings." + std::string(name.str()) + " must be a number");
      ds->settings[std::string(name.str())] = *v;
    }
  }
  if (const auto* tiers = d["tiers"].as_table()) {
    for (const auto& [name, node] : *tiers) {
      const std::string tier(name.str());
      const std::string where = "detection.tiers." + tier;
      if (tier != "unknown" && tier != "unverified" && tier != "verified" && tier != "enterprise") {
        return moat::InvalidArgumentError("unknown tier " + where + " (unknown, unverified, verified, enterprise)");
      }
      const toml::table* t = node.as_table();
      if (t == nullptr) return moat::InvalidArgumentError(where + " must be a table");
      MOAT_RETURN_IF_ERROR(
          CheckKeys(*t, where,
                    {"prior_log_odds", "subject_budget", "pool_budget", "evidence_budget",
                     "harness_evidence_budget", "action", "show_evidence", "vouches_for_end_users",
                     "machines_judged_alone", "hardening"}));
      DetectionTierSettings ts;
      double x = 0;
      bool b = false;
      if (t->get("prior_log_odds")) {
        MOAT_RETURN_IF_ERROR(Get(*t, "prior_log_odds", where, &x));
        ts.prior_log_odds = x;
      }
      if (t->get("subject_budget")) {
        MOAT_RETURN_IF_ERROR(Get(*t, "subject_budget", where, &x));
        if (x < 0) return moat::InvalidArgumentError(where + ".subject_budget must be >= 0");
        ts.subject_budget = x;
      }
      if (t->get("pool_budget")) {
        MOAT_RETURN_IF_ERROR(Get(*t, "pool_budget", where, &x));
        if (x < 0) return moat::InvalidArgumentError(where + ".pool_budget must be >= 0");
        ts.pool_budget = x;
      }
      if (t->get("evidence_budget")) {
        MOAT_RETURN_IF_ERROR(Get(*t, "evidence_budget", where, &x));
        if (x < 0) return moat::InvalidArgumentError(where + ".evidence_budget must be >= 0");
        ts.evidence_budget = x;
      }
      if (t->get("harness_evidence_budget")) {
        MOAT_RETURN_IF_ERROR(Get(*t, "harness_evidence_budget", where, &x));
        if (x < 0)
          return moat::InvalidArgumentError(where + ".harness_evidence_budget must be >= 0");
        ts.harness_evidence_budget = x;
      }
      MOAT_RETURN_IF_ERROR(Get(*t, "action", where, &ts.action));
      if (!ts.action.empty() && ts.action != "degrade" && ts.action != "step_up" && ts.action != "throttle" &&
          ts.action != "block") {
        return moat::InvalidArgumentError(where + ".action must be degrade, step_up, throttle or block");
      }
      if (t->get("show_evidence")) {
        MOAT_RETURN_IF_ERROR(Get(*t, "show_evidence", where, &b));
        ts.show_evidence = b;
      }
      if (t->get("vouches_for_end_users")) {
        MOAT_RETURN_IF_ERROR(Get(*t, "vouches_for_end_users", where, &b));
        ts.vouches_for_end_users = b;
      }
      if (t->get("machines_judged_alone")) {
        MOAT_RETURN_IF_ERROR(Get(*t, "machines_judged_alone", where, &b));
        ts.machines_judged_alone = b;
      }
      if (t->get("hardening") != nullptr) {
        const toml::table* h = (*t)["hardening"].as_table();
        if (h == nullptr) return moat::InvalidArgumentError(where + ".hardening must be a table");
        ts.hardening = ds->hardening;
        MOAT_RETURN_IF_ERROR(ParseHardening(*h, where + ".hardening", &*ts.hardening));
      }
      ds->tiers[tier] = ts;
    }
  }
  return moat::Status::Ok();
}

moat::Status ParseStepUp(const toml::table& t, StepUpSettings* s) {
  MOAT_RETURN_IF_ERROR(CheckKeys(t, "step_up", {"webhook_url", "webhook_secret_file", "webhook_timeout_ms",
      "dedup_interval_s", "queue_limit", "max_attempts", "retry_backoff_ms", "max_retry_backoff_ms"}));
  MOAT_RETURN_IF_ERROR(Get(t, "webhook_url", "step_up", &s->webhook_url));
  MOAT_RETURN_IF_ERROR(Get(t, "webhook_secret_file", "step_up", &s->webhook_secret_file));
  MOAT_RETURN_IF_ERROR(Get(t, "webhook_timeout_ms", "step_up", &s->webhook_timeout_ms));
  MOAT_RETURN_IF_ERROR(Get(t, "dedup_interval_s", "step_up", &s->dedup_interval_s));
  MOAT_RETURN_IF_ERROR(Get(t, "queue_limit", "step_up", &s->queue_limit));
  MOAT_RETURN_IF_ERROR(Get(t, "max_attempts", "step_up", &s->max_attempts));
  MOAT_RETURN_IF_ERROR(Get(t, "retry_backoff_ms", "step_up", &s->retry_backoff_ms));
  MOAT_RETURN_IF_ERROR(Get(t, "max_retry_backoff_ms", "step_up", &s->max_retry_backoff_ms));
  if (s->webhook_url.empty()) return moat::Status::Ok();
  if (auto url = ParseHttpUrl(s->webhook_url, UrlSchemes::kHttpOrHttps); !url.ok())
    return moat::InvalidArgumentError("step_up.webhook_url: " + url.status().message());
  if (s->webhook_secret_file.empty())
    return moat::InvalidArgumentError("step_up.webhook_secret_file is required with step_up.webhook_url");
  if (s->webhook_timeout_ms < 1 || s->queue_limit < 1 || s->max_attempts < 1 || s->retry_backoff_ms < 1)
    return moat::InvalidArgumentError(
        "step_up.webhook_timeout_ms, queue_limit, max_attempts and retry_backoff_ms must be at least 1");
  if (s->max_attempts > 20) return moat::InvalidArgumentError("step_up.max_attempts must be at most 20");
  if (s->max_retry_backoff_ms < s->retry_backoff_ms)
    return moat::InvalidArgumentError("step_up.max_retry_backoff_ms must not be below retry_backoff_ms");
  return moat::Status::Ok();
}

// Limits used when the config has no [limits] section.
std::map<std::string, TierLimitsConfig> DefaultTierLimits() {
  TierLimitsConfig unverified{60, 100'000, 120, 200'000, 600, 1'000'000, 3'000, 5'000'000};
  TierLimitsConfig verified{600, 1'000'000, 1'200, 2'000'000, 3'000, 5'000'000, 10'000, 20'000'000};
  TierLimitsConfig enterprise{};  // unlimited
  return {{"unverified", unverified}, {"verified", verified}, {"enterprise", enterprise}};
}

moat::StatusOr<GatewayConfig> FromTable(const toml::table& root) {
  GatewayConfig cfg;
  MOAT_RETURN_IF_ERROR(CheckKeys(root, "", {"server", "auth", "storage", "audit", "limits", "models",
                                            "watermark", "detection", "step_up"}));
  if (const auto* a = root["auth"].as_table()) {
    auto& as = cfg.auth;
    MOAT_RETURN_IF_ERROR(CheckKeys(*a, "auth", {"failures_per_ip_per_minute", "failures_per_prefix_per_minute",
                                                "max_tracked_addresses"}));
    MOAT_RETURN_IF_ERROR(Get(*a, "failures_per_ip_per_minute", "auth", &as.failures_per_ip_per_minute));
    MOAT_RETURN_IF_ERROR(Get(*a, "failures_per_prefix_per_minute", "auth", &as.failures_per_prefix_per_minute));
    MOAT_RETURN_IF_ERROR(Get(*a, "max_tracked_addresses", "auth", &as.max_tracked_addresses));
    if (as.failures_per_ip_per_minute < 0 || as.failures_per_prefix_per_minute < 0)
      return moat::InvalidArgumentError("auth.failures_per_*_per_minute must not be negative");
    if (as.max_tracked_addresses < 1) return moat::InvalidArgumentError("auth.max_tracked_addresses must be >= 1");
  }
  if (const auto* d = root["detection"].as_table()) MOAT_RETURN_IF_ERROR(ParseDetection(*d, &cfg.detection));
  if (const auto* su = root["step_up"].as_table()) MOAT_RETURN_IF_ERROR(ParseStepUp(*su, &cfg.step_up));
  if (const auto* w = root["watermark"].as_table()) {
    auto& ws = cfg.watermark;
    MOAT_RETURN_IF_ERROR(CheckKeys(*w, "watermark", {"enabled", "scheme", "gamma", "delta", "context_width", "epoch"}));
    MOAT_RETURN_IF_ERROR(Get(*w, "enabled", "watermark", &ws.enabled));
    MOAT_RETURN_IF_ERROR(Get(*w, "scheme", "watermark", &ws.scheme));
    MOAT_RETURN_IF_ERROR(Get(*w, "gamma", "watermark", &ws.gamma));
    MOAT_RETURN_IF_ERROR(Get(*w, "delta", "watermark", &ws.delta));
    MOAT_RETURN_IF_ERROR(Get(*w, "context_width", "watermark", &ws.context_width));
    MOAT_RETURN_IF_ERROR(Get(*w, "epoch", "watermark", &ws.epoch));
    if (ws.scheme != "kgw" && ws.scheme != "unigram")
      return moat::InvalidArgumentError("watermark.scheme must be \"kgw\" or \"unigram\"");
    if (!(ws.gamma > 0 && ws.gamma < 1)) return moat::InvalidArgumentError("watermark.gamma must be in (0, 1)");
    if (!(ws.delta >= 0 && ws.delta <= 20)) return moat::InvalidArgumentError("watermark.delta must be in [0, 20]");
    if (ws.context_width < 1 || ws.context_width > 8) return moat::InvalidArgumentError("watermark.context_width must be 1..8");
  }
  if (const auto* s = root["server"].as_table()) MOAT_RETURN_IF_ERROR(ParseServer(*s, &cfg.server));
  if (const auto* s = root["storage"].as_table()) {
    MOAT_RETURN_IF_ERROR(CheckKeys(*s, "storage", {"data_dir", "data_dir_mode", "accounts_db", "audit_db",
        "key_pepper_file", "audit_signing_key", "watermark_secret"}));
    MOAT_RETURN_IF_ERROR(Get(*s, "data_dir", "storage", &cfg.storage.data_dir));
    std::string mode;
    MOAT_RETURN_IF_ERROR(Get(*s, "data_dir_mode", "storage", &mode));
    if (!mode.empty()) {
      constexpr unsigned long kOwnerBits = 0700;
      char* end = nullptr;
      unsigned long m = std::strtoul(mode.c_str(), &end, 8);
      if (*end != '\0' || m > 0777 || (m & kOwnerBits) != kOwnerBits)
        return moat::InvalidArgumentError("storage.data_dir_mode must be an octal mode like \"0700\" giving the owner rwx");
      cfg.storage.data_dir_mode = static_cast<uint32_t>(m);
    }
    MOAT_RETURN_IF_ERROR(Get(*s, "accounts_db", "storage", &cfg.storage.accounts_db));
    MOAT_RETURN_IF_ERROR(Get(*s, "audit_db", "storage", &cfg.storage.audit_db));
    MOAT_RETURN_IF_ERROR(Get(*s, "key_pepper_file", "storage", &cfg.storage.key_pepper_file));
    MOAT_RETURN_IF_ERROR(Get(*s, "audit_signing_key", "storage", &cfg.storage.audit_signing_key));
    MOAT_RETURN_IF_ERROR(Get(*s, "watermark_secret", "storage", &cfg.storage.watermark_secret));
  }
  auto& st = cfg.storage;
  if (st.accounts_db.empty()) st.accounts_db = st.data_dir + "/moat.db";
  if (st.audit_db.empty()) st.audit_db = st.data_dir + "/audit.db";
  if (st.key_pepper_file.empty()) st.key_pepper_file = st.data_dir + "/key_pepper.bin";
  if (st.audit_signing_key.empty()) st.audit_signing_key = st.data_dir + "/audit_ed25519.key";
  if (st.watermark_secret.empty()) st.watermark_secret = st.data_dir + "/wm_master.key";
  if (const auto* a = root["audit"].as_table()) {
    MOAT_RETURN_IF_ERROR(CheckKeys(*a, "audit", {"retention", "checkpoint_every", "wal_checkpoint_interval_ms",
                                                 "wal_max_bytes", "min_free_bytes", "anchor_file"}));
    MOAT_RETURN_IF_ERROR(Get(*a, "retention", "audit", &cfg.audit.retention));
    MOAT_RETURN_IF_ERROR(Get(*a, "checkpoint_every", "audit", &cfg.audit.checkpoint_every));
    MOAT_RETURN_IF_ERROR(Get(*a, "wal_checkpoint_interval_ms", "audit", &cfg.audit.wal_checkpoint_interval_ms));
    MOAT_RETURN_IF_ERROR(Get(*a, "wal_max_bytes", "audit", &cfg.audit.wal_max_bytes));
    MOAT_RETURN_IF_ERROR(Get(*a, "min_free_bytes", "audit", &cfg.audit.min_free_bytes));
    MOAT_RETURN_IF_ERROR(Get(*a, "anchor_file", "audit", &cfg.audit.anchor_file));
    if (cfg.audit.wal_checkpoint_interval_ms < 1)
      return moat::InvalidArgumentError("audit.wal_checkpoint_interval_ms must be >= 1");
    if (cfg.audit.wal_max_bytes < 64 * 1024) return moat::InvalidArgumentError("audit.wal_max_bytes must be at least 65536");
    if (cfg.audit.retention != "full" && cfg.audit.retention != "hash-only" && cfg.audit.retention != "none")
      return moat::InvalidArgumentError("audit.retention must be \"full\", \"hash-only\" or \"none\"");
    if (cfg.audit.checkpoint_every < 1) return moat::InvalidArgumentError("audit.checkpoint_every must be >= 1");
  }
  if (const auto* l = root["limits"].as_table()) {
    for (const auto& [tier, node] : *l) {
      const auto* t = node.as_table();
      if (!t) return moat::InvalidArgumentError("limits." + std::string(tier.str()) + " must be a table");
      MOAT_RETURN_IF_ERROR(ParseLimits(*t, std::string(tier.str()), &cfg.limits[std::string(tier.str())]));
    }
  }
  if (const auto* ms = root["models"].as_array()) {
    for (size_t i = 0; i < ms->size(); ++i) {
      const auto* t = (*ms)[i].as_table();
      if (!t) return moat::InvalidArgumentError("models must be an array of tables ([[models]])");
      ModelConfig m;
      MOAT_RETURN_IF_ERROR(ParseModel(*t, i, &m));
      if (m.backend == "builtin" && m.model_path.empty()) m.model_path = cfg.storage.data_dir + "/model.bin";
      for (const auto& other : cfg.models)
        if (other.name == m.name) return moat::InvalidArgumentError("model \"" + m.name + "\" is configured twice");
      cfg.models.push_back(std::move(m));
    }
  }
  if (cfg.limits.empty()) cfg.limits = DefaultTierLimits();
  if (cfg.detection.indicators_dir.empty()) cfg.detection.indicators_dir = cfg.storage.data_dir + "/indicators";
  if (cfg.detection.state_file.empty()) cfg.detection.state_file = cfg.storage.data_dir + "/detection-state.bin";
  if (cfg.detection.state_file == "none") cfg.detection.state_file.clear();
  if (cfg.audit.anchor_file.empty()) cfg.audit.anchor_file = cfg.storage.audit_db + ".anchor";
  if (cfg.audit.anchor_file == "none") cfg.audit.anchor_file.clear();
  return cfg;
}

}  // namespace

moat::StatusOr<GatewayConfig> ParseGatewayConfig(const std::string& toml_text) {
  // Debian's toml++ is built with exceptions: a syntax error throws toml::parse_error.
  try {
    toml::table root = toml::parse(toml_text);
    return FromTable(root);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << "config is not valid TOML: " << e.description() << " (line " << e.source().begin.line << ")";
    return moat::InvalidArgumentError(os.str());
  }
}

GatewayConfig DefaultGatewayConfig() {
  auto cfg = ParseGatewayConfig("");
  return *cfg;
}

moat::Status RequireServable(const GatewayConfig& config) {
  if (config.models.empty())
    return moat::InvalidArgumentError("no [[models]] configured: add at least one model to serve");
  return moat::Status::Ok();
}

moat::StatusOr<GatewayConfig> LoadGatewayConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return moat::NotFoundError("cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto cfg = ParseGatewayConfig(ss.str());
  if (!cfg.ok()) return moat::InvalidArgumentError(path + ": " + cfg.status().message());
  return cfg;
}

moat::StatusOr<HttpUrl> ParseBaseUrl(const std::string& url) {
  MOAT_ASSIGN_OR_RETURN(HttpUrl out, ParseHttpUrl(url, UrlSchemes::kHttpOrHttps));
  if (out.path.size() >= 3 && out.path.compare(out.path.size() - 3, 3, "/v1") == 0)
    out.path.resize(out.path.size() - 3);
  return out;
}

}  // namespace moat::server

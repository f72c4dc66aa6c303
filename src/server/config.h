#pragma once
// GatewayConfig: everything `moat serve` reads from its TOML config file, with defaults.
// docs/configuration.md documents each key; LoadGatewayConfig validates the file and
// returns InvalidArgument with the offending key in the message.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/http_url.h"
#include "moat/status.h"
#include "resistance/hardening.h"

namespace moat::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  int threads = 0;  // 0: one per core
  size_t max_body_bytes = 1 << 20;
  int64_t header_timeout_ms = 10'000;  // also the keep-alive idle timeout
  int64_t body_timeout_ms = 30'000;
  int64_t write_timeout_ms = 30'000;
  std::vector<std::string> trusted_proxies;  // peers whose X-Forwarded-For is believed
  std::string end_user_header = "x-moat-end-user";
  std::string admin_token;  // resolved from admin_token or admin_token_env; "" disables /admin
  int64_t default_max_tokens = 1024;  // applied when a request omits max_tokens
  int64_t max_tokens_limit = 32768;   // larger requests are refused (400)
  size_t audit_backlog_limit = 50'000;  // refuse new requests (503) beyond this audit queue depth
  size_t max_header_bytes = 64 * 1024;  // request line + headers (431 beyond)
  int64_t max_connections = 10'000;     // open client connections, all listeners together
  int64_t max_connections_per_ip = 256;  // per client address (IPv6: per /64)
  size_t max_buffered_body_bytes = 256u << 20;  // request bodies held at once (503 beyond)
  // ... of which one client address (IPv6: /64) may hold this much (trusted proxies: no cap), so
  // that one client's stalled bodies cannot take the whole budget from everyone else.
  size_t max_buffered_body_bytes_per_ip = 32u << 20;
  // HTTPS listener, besides `listen`: "" disables it.
  std::string tls_listen;
  std::string tls_host;  // from tls_listen
  uint16_t tls_port = 0;
  std::string tls_cert_file;  // PEM certificate chain (reloaded on SIGHUP)
  std::string tls_key_file;   // PEM private key, mode 0600 (reloaded on SIGHUP)
};

// Failed-authentication limits (ratelimit::FailedAuthLimiter).
struct AuthConfig {
  double failures_per_ip_per_minute = 30;      // 0: unlimited
  double failures_per_prefix_per_minute = 300;  // 0: unlimited
  size_t max_tracked_addresses = 100'000;
};

struct StorageConfig {
  std::string data_dir = "var";
  uint32_t data_dir_mode = 0700;  // applied when created, and narrowed to when wider
  std::string accounts_db;     // default <data_dir>/moat.db
  std::string audit_db;        // default <data_dir>/audit.db
  std::string key_pepper_file; // default <data_dir>/key_pepper.bin
  std::string audit_signing_key;  // default <data_dir>/audit_ed25519.key
  std::string watermark_secret;   // default <data_dir>/wm_master.key
};

struct AuditConfig {
  std::string retention = "full";  // full | hash-only | none
  int64_t checkpoint_every = 1000;
  int64_t wal_checkpoint_interval_ms = 500;
  int64_t wal_max_bytes = 64 << 20;
  uint64_t min_free_bytes = 64 << 20;  // below: refuse requests (503); 0 disables the check
  std::string anchor_file;  // default <audit_db>.anchor; "none" disables it
};

// Requests/minute and tokens/minute for each scope; 0 means unlimited.
struct TierLimitsConfig {
  double key_rpm = 0, key_tpm = 0;
  double account_rpm = 0, account_tpm = 0;
  double ip_rpm = 0, ip_tpm = 0;
  double prefix_rpm = 0, prefix_tpm = 0;
};

struct ModelConfig {
  std::string name;                 // the model name clients ask for
  std::string backend = "upstream"; // upstream | builtin
  // upstream
  std::string base_url;             // http[s]://host:port[/prefix], the prefix before /v1/...
  std::string upstream_model;       // name sent upstream (default: name)
  std::string api_key;              // sent as Authorization: Bearer (resolved from api_key_env)
  int64_t connect_timeout_ms = 2'000;
  int64_t read_timeout_ms = 60'000;  // to first byte, and between stream chunks
  size_t max_idle_connections = 64;  // per worker thread
  bool request_usage_in_streams = true;  // inject stream_options.include_usage
  // Client request headers passed on to the upstream (lower-case names, e.g. "traceparent").
  // Nothing else from the client is forwarded: the Authorization header is always replaced.
  std::vector<std::string> forward_headers;
  // Upstream-mode watermark: when > 0, the account's Unigram green list over token ids
  // [0, watermark_vocab_size) of the UPSTREAM tokenizer is injected as `logit_bias` (vLLM,
  // llama.cpp server accept full maps). Uses [watermark] gamma/delta/epoch.
  int32_t watermark_vocab_size = 0;
  // https:// upstreams. The certificate is verified (chain and host name) unless tls_verify is
  // false, against tls_ca_file or else the system's trust store.
  bool tls_verify = true;
  std::string tls_ca_file;
  std::string tls_server_name;  // SNI and the name verified; default: the base_url host
  std::string tls_client_cert_file;  // optional client certificate (PEM) ...
  std::string tls_client_key_file;   // ... and its key (mode 0600)
  // builtin
  std::string model_path;    // default <data_dir>/model.bin (written by `moat model train`)
  int generation_threads = 0;  // CPU threads for generation; 0: one per core
  // Provenance (`moat provenance sign`): an in-toto attestation in a DSSE envelope, checked at
  // start under attestation_public_key (64 hex characters or a .pub file). A builtin model's
  // file must be an attested subject with the same SHA-256; for an upstream model every
  // "NAME=SHA256HEX" in attested_artifacts (the operator's digests of the files the upstream
  // serves) must be. A mismatch refuses to start.
  std::string attestation;
  std::string attestation_public_key;
  std::vector<std::string> attested_artifacts;
  // Set by `moat serve` once the attestation verified: hex SHA-256 of the attestation file (also
  // each audit record's model_attestation), the predicate's model name and version, and the id
  // of the key it verified under (hex SHA-256 of the public key).
  std::string attestation_sha256;
  std::string attested_model_name;
  std::string attested_model_version;
  std::string attestation_key_id;
};

// The per-account output watermark applied by the builtin backend.
struct WatermarkSettings {
  bool enabled = true;
  std::string scheme = "kgw";  // kgw | unigram
  double gamma = 0.25;
  double delta = 2.0;
  int context_width = 1;  // h for kgw
  uint32_t epoch = 0;     // key epoch; raise it to rotate every account's key
};

// The behavioural detection engine and the policy applied to its verdicts.
// One tier's detection policy; unset fields keep the engine's defaults (src/detect/engine.h).
struct DetectionTierSettings {
  std::optional<double> prior_log_odds;
  std::optional<double> subject_budget;  // suspected distillation value (answer tokens, rolling day)
  std::optional<double> pool_budget;
  std::optional<double> evidence_budget;          // ... for a subject with strong own evidence
  std::optional<double> harness_evidence_budget;  // ... while it looks like an evaluation harness
  std::string action;                    // degrade | step_up | throttle | block; "" default
  std::optional<bool> show_evidence;     // clients of the tier see the evidence of a restriction
  std::optional<bool> vouches_for_end_users;  // its accounts answer for their end users
  std::optional<bool> machines_judged_alone;  // machine-paced subjects: own budget, not cohort
  // [detection.tiers.<tier>.hardening]: the detection-level profile with these keys overridden.
  std::optional<resistance::HardeningProfile> hardening;
};

struct DetectionSettings {
  bool enabled = true;
  std::string model;       // detection model file; "" the shipped default; "none": no model
  std::string stages;      // evidence stages to run ("" all; "-cohort" drops one)
  double restrict_posterior = -1;  // < 0: the engine's default
  double release_posterior = -1;
  int64_t typical_answer_tokens = 0;  // 0: the engine's default
  std::map<std::string, DetectionTierSettings> tiers;  // by tier name (unknown, unverified, ...)
  // [detection.settings]: any named weight or threshold of the engine ("cohort.z_threshold",
  // see docs/detection.md), checked against the engine's list when the engine is built.
  std::map<std::string, double> settings;
  bool silent_degrade = false;  // opt-in: degrade without the x-moat-* headers
  int64_t degrade_max_tokens = 256;
  resistance::HardeningProfile hardening;  // [detection.hardening]: how degraded answers are hardened
  int64_t throttle_retry_after_s = 30;
  // Where a step_up_required client verifies the account: a URL template with {account},
  // {end_user} and {reference} (src/stepup/verification_url.h), checked at load; "" none.
  std::string step_up_url;
  // Indicators shared by other providers (docs/indicators.md): the folder `moat indicators
  // import` writes (default <data_dir>/indicators) and the salt file shared with them out of
  // band ("" none: only network-prefix indicators can match).
  std::string indicators_dir;
  std::string indicator_salt_file;
  size_t max_subjects = 1 << 20;            // accounts (and end users) kept in memory
  size_t max_evicted_subjects = 4'000'000;  // idle subjects kept (in memory) for their return
  // What detection learned, kept across restarts (DetectionEngine::SaveState): read at start,
  // written every state_save_interval_s and at shutdown. Default <data_dir>/detection-state.bin;
  // "none" disables it.
  std::string state_file;
  int64_t state_save_interval_s = 300;
  // Socket peers (exact addresses) whose `x-moat-replay-time` header (Unix nanoseconds) is the
  // time detection judges a request at, so that recorded traffic replayed through the gateway
  // keeps its own clock (docs/traffic-benchmark.md, "HTTP replay"). Empty (the default): the
  // header is ignored and detection runs on the gateway's clock. Never list a peer that relays
  // customers' requests: whoever sends the header sets detection's clock.
  std::vector<std::string> replay_clock_peers;
};

// [step_up]: the signed webhook that tells the operator's identity service that a subject must
// verify (docs/detection.md, "Step-up verification"); off while webhook_url is "".
struct StepUpSettings {
  std::string webhook_url;          // http(s)://host[:port][/path] the events are POSTed to
  std::string webhook_secret_file;  // the HMAC key, mode 0600; required with webhook_url
  int64_t webhook_timeout_ms = 5000;     // one delivery attempt, connect included
  int64_t dedup_interval_s = 3600;       // a subject is notified at most once per interval
  int64_t queue_limit = 1024;            // events waiting to be sent; more are dropped
  int64_t max_attempts = 5;              // per event, the first included
  int64_t retry_backoff_ms = 1000;       // before the second attempt, doubled after each
  int64_t max_retry_backoff_ms = 60000;  // the longest wait between attempts
};

struct GatewayConfig {
  ServerConfig server;
  AuthConfig auth;
  StorageConfig storage;
  AuditConfig audit;
  WatermarkSettings watermark;
  DetectionSettings detection;
  StepUpSettings step_up;
  std::map<std::string, TierLimitsConfig> limits;  // by tier name
  std::vector<ModelConfig> models;
};

// Reads and validates a TOML file. `moat serve` also requires at least one [[models]] entry
// (RequireServable); management commands only need the storage section.
moat::StatusOr<GatewayConfig> LoadGatewayConfig(const std::string& path);
// Parses TOML text (for tests).
moat::StatusOr<GatewayConfig> ParseGatewayConfig(const std::string& toml_text);
// The defaults: only storage under ./var, default tier limits, no models.
GatewayConfig DefaultGatewayConfig();
// OK when the config can serve traffic (at least one model).
moat::Status RequireServable(const GatewayConfig& config);

// Parses an upstream base URL "http[s]://host:port[/prefix]" (moat::ParseHttpUrl); a trailing
// "/v1" is dropped from the path, since clients often configure ".../v1", so `path` is the
// prefix before /v1/... .
moat::StatusOr<HttpUrl> ParseBaseUrl(const std::string& url);

}  // namespace moat::server

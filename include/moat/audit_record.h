#pragma once
// AuditRecord: one row of the tamper-evident audit log, written for every request the gateway
// answers (successful or not). The gateway fills every field except seq / prev_hash /
// record_hash, which the audit log assigns when it chains the record.

#include <cstdint>
#include <string>

namespace moat {

// How much of the prompt/completion text an audit record keeps.
enum class TextRetention {
  kFull,      // the text itself
  kHashOnly,  // hex SHA-256 of the text
  kNone,      // empty
};

struct AuditRecord {
  // Assigned by the audit log.
  int64_t seq = 0;          // 1, 2, 3, ... in chain order
  std::string prev_hash;    // hex hash of record seq-1 ("" -> 64 zeros for the first record)
  std::string record_hash;  // hex hash committing to prev_hash and every field below

  // Filled by the gateway.
  int64_t time_ns = 0;     // request arrival, ns since the Unix epoch
  std::string request_id;  // also returned to the client as x-request-id
  std::string account_id;  // "" when authentication failed
  std::string org_id;
  std::string end_user;  // OpenAI `user` field or the configured end-user header
  std::string key_id;    // public id of the API key, never the secret
  std::string client_ip;
  std::string user_agent;
  std::string endpoint;     // e.g. "/v1/chat/completions"
  std::string model;
  std::string params_json;  // sampling parameters as a JSON object (temperature, top_p, ...)
  bool stream = false;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double latency_ms = 0;
  int http_status = 0;
  std::string error_code;    // OpenAI error code when the request failed, else ""
  std::string verdict;       // detection verdict: "allow", "degrade", "step_up", "throttle", "block"
  std::string action;        // policy action taken, e.g. "allow", "throttle", "block"
  std::string reasons_json;  // JSON array of reason strings
  std::string watermark_key_id;
  // Hex SHA-256 of the attestation envelope of the model that served the request (its
  // [[models]] attestation, verified at start); "" when the request named no configured model
  // or that model has no attestation.
  std::string model_attestation;
  std::string retention;  // "full" | "hash-only" | "none": how the two texts below were kept
  std::string prompt_text;
  std::string completion_text;
};

}  // namespace moat

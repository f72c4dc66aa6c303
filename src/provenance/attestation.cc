#include "provenance/attestation.h"

#include <sodium.h>

#include <boost/json.hpp>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "audit/audit_hash.h"
#include "common/file_contents.h"

namespace moat::provenance {
namespace {

namespace json = boost::json;

std::string Base64Encode(std::string_view bytes) {
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

StatusOr<std::string> Base64Decode(std::string_view text) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                        &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0) {
    return InvalidArgumentError("malformed base64");
  }
  out.resize(len);
  return out;
}

bool IsLowerHex(std::string_view s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The string at `key` of `obj`, or InvalidArgument naming `where`.
StatusOr<std::string> StringAt(const json::object& obj, std::string_view key, std::string_view where) {
  const json::value* v = obj.if_contains(key);
  if (v == nullptr || !v->is_string()) {
    return InvalidArgumentError(std::string(where) + ": \"" + std::string(key) + "\" must be a string");
  }
  return std::string(v->as_string());
}

StatusOr<Attestation> ParseStatement(std::string_view statement_json) {
  boost::system::error_code ec;
  json::value v = json::parse(statement_json, ec);
  if (ec || !v.is_object()) return InvalidArgumentError("attestation statement is not a JSON object");
  const json::object& st = v.as_object();
  MOAT_ASSIGN_OR_RETURN(std::string type, StringAt(st, "_type", "statement"));
  if (type != kStatementType) return InvalidArgumentError("statement _type is \"" + type + "\", expected " + std::string(kStatementType));
  MOAT_ASSIGN_OR_RETURN(std::string ptype, StringAt(st, "predicateType", "statement"));
  if (ptype != kModelPredicateType) {
    return InvalidArgumentError("predicateType is \"" + ptype + "\", expected " + std::string(kModelPredicateType));
  }
  Attestation a;
  const json::value* subjects = st.if_contains("subject");
  if (subjects == nullptr || !subjects->is_array() || subjects->as_array().empty()) {
    return InvalidArgumentError("statement: \"subject\" must be a non-empty array");
  }
  for (const json::value& s : subjects->as_array()) {
    if (!s.is_object()) return InvalidArgumentError("statement: a subject must be an object");
    MOAT_ASSIGN_OR_RETURN(std::string name, StringAt(s.as_object(), "name", "subject"));
    const json::value* digest = s.as_object().if_contains("digest");
    if (digest == nullptr || !digest->is_object()) return InvalidArgumentError("subject " + name + ": no digest");
    MOAT_ASSIGN_OR_RETURN(std::string sha, StringAt(digest->as_object(), "sha256", "subject " + name));
    if (name.empty() || !IsLowerHex(sha, 64)) {
      return InvalidArgumentError("subject \"" + name + "\": needs a name and a 64-hex-character sha256");
    }
    a.subjects.push_back({std::move(name), std::move(sha)});
  }
  const json::value* pred = st.if_contains("predicate");
  if (pred == nullptr || !pred->is_object()) return InvalidArgumentError("statement: \"predicate\" must be an object");
  const json::object& p = pred->as_object();
  MOAT_ASSIGN_OR_RETURN(a.predicate.model_name, StringAt(p, "model_name", "predicate"));
  MOAT_ASSIGN_OR_RETURN(a.predicate.model_version, StringAt(p, "model_version", "predicate"));
  if (const json::value* td = p.if_contains("training_data")) {
    if (!td->is_array()) return InvalidArgumentError("predicate: \"training_data\" must be an array");
    for (const json::value& r : td->as_array()) {
      if (!r.is_string()) return InvalidArgumentError("predicate: training_data entries must be strings");
      a.predicate.training_data.emplace_back(r.as_string());
    }
  }
  return a;
}

}  // namespace

std::string Sha256Hex(std::string_view bytes) {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return audit::HexEncode(std::string_view(reinterpret_cast<const char*>(out), sizeof(out)));
}

StatusOr<std::string> Sha256OfFile(const std::string& path) {
  if (sodium_init() < 0) return InternalError("libsodium initialisation failed");
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read " + path);
  crypto_hash_sha256_state state;
  crypto_hash_sha256_init(&state);
  std::string buf(1 << 16, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n > 0) crypto_hash_sha256_update(&state, reinterpret_cast<const unsigned char*>(buf.data()), static_cast<size_t>(n));
  }
  if (in.bad()) return InternalError("error reading " + path);
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&state, out);
  return audit::HexEncode(std::string_view(reinterpret_cast<const char*>(out), sizeof(out)));
}

StatusOr<ArtifactDigest> DigestArtifact(const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(std::string sha, Sha256OfFile(path));
  return ArtifactDigest{std::filesystem::path(path).filename().string(), std::move(sha)};
}

std::string PreAuthEncoding(std::string_view payload_type, std::string_view payload) {
  std::string pae = "DSSEv1 ";
  pae += std::to_string(payload_type.size());
  pae += ' ';
  pae += payload_type;
  pae += ' ';
  pae += std::to_string(payload.size());
  pae += ' ';
  pae += payload;
  return pae;
}

std::string StatementJson(const Attestation& a) {
  json::array subjects;
  for (const ArtifactDigest& s : a.subjects) {
    subjects.push_back(json::object{{"name", s.name}, {"digest", json::object{{"sha256", s.sha256_hex}}}});
  }
  json::array training;
  for (const std::string& r : a.predicate.training_data) training.push_back(json::value(r));
  json::object statement{
      {"_type", kStatementType},
      {"subject", std::move(subjects)},
      {"predicateType", kModelPredicateType},
      {"predicate", json::object{{"model_name", a.predicate.model_name},
                                 {"model_version", a.predicate.model_version},
                                 {"training_data", std::move(training)}}},
  };
  return json::serialize(statement);
}

std::string SignEnvelope(const Attestation& attestation, const audit::SigningKey& key) {
  const std::string payload = StatementJson(attestation);
  const std::string sig_hex = key.SignHex(PreAuthEncoding(kPayloadType, payload));
  const std::string sig = *audit::HexDecode(sig_hex);
  const std::string key_id = Sha256Hex(*audit::HexDecode(key.public_key_hex()));
  json::object envelope{
      {"payload", Base64Encode(payload)},
      {"payloadType", kPayloadType},
      {"signatures", json::array{json::object{{"keyid", key_id}, {"sig", Base64Encode(sig)}}}},
  };
  return json::serialize(envelope) + "\n";
}

StatusOr<VerifiedAttestation> VerifyEnvelope(std::string_view envelope_json, std::string_view public_key_hex) {
  if (sodium_init() < 0) return InternalError("libsodium initialisation failed");
  auto pk = audit::HexDecode(public_key_hex);
  if (!pk.ok() || pk->size() != crypto_sign_PUBLICKEYBYTES) {
    return InvalidArgumentError("the public key must be 64 hex characters (an Ed25519 key)");
  }
  boost::system::error_code ec;
  json::value v = json::parse(envelope_json, ec);
  if (ec || !v.is_object()) return InvalidArgumentError("the attestation is not a DSSE envelope (JSON object)");
  const json::object& env = v.as_object();
  MOAT_ASSIGN_OR_RETURN(std::string payload_type, StringAt(env, "payloadType", "envelope"));
  if (payload_type != kPayloadType) {
    return InvalidArgumentError("payloadType is \"" + payload_type + "\", expected " + std::string(kPayloadType));
  }
  MOAT_ASSIGN_OR_RETURN(std::string payload_b64, StringAt(env, "payload", "envelope"));
  auto payload = Base64Decode(payload_b64);
  if (!payload.ok()) return InvalidArgumentError("envelope: payload is not base64");
  const json::value* sigs = env.if_contains("signatures");
  if (sigs == nullptr || !sigs->is_array() || sigs->as_array().empty()) {
    return InvalidArgumentError("envelope: \"signatures\" must be a non-empty array");
  }
  const std::string pae = PreAuthEncoding(payload_type, *payload);
  const std::string key_id = Sha256Hex(*pk);
  bool verified = false;
  for (const json::value& s : sigs->as_array()) {
    if (!s.is_object()) continue;
    auto sig_b64 = StringAt(s.as_object(), "sig", "signature");
    if (!sig_b64.ok()) continue;
    auto sig = Base64Decode(*sig_b64);
    if (!sig.ok() || sig->size() != crypto_sign_BYTES) continue;
    if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig->data()),
                                    reinterpret_cast<const unsigned char*>(pae.data()), pae.size(),
                                    reinterpret_cast<const unsigned char*>(pk->data())) == 0) {
      verified = true;
      break;
    }
  }
  if (!verified) return PermissionDeniedError("no signature of the attestation verifies under key " + key_id);
  MOAT_ASSIGN_OR_RETURN(Attestation a, ParseStatement(*payload));
  return VerifiedAttestation{std::move(a), key_id, Sha256Hex(envelope_json)};
}

Status CheckArtifact(const VerifiedAttestation& verified, const std::string& path) {
  const std::string name = std::filesystem::path(path).filename().string();
  for (const ArtifactDigest& s : verified.attestation.subjects) {
    if (s.name != name) continue;
    MOAT_ASSIGN_OR_RETURN(std::string sha, Sha256OfFile(path));
    if (sha != s.sha256_hex) {
      return FailedPreconditionError(path + " has sha256 " + sha + " but the attestation lists " + s.sha256_hex);
    }
    return Status::Ok();
  }
  return NotFoundError("the attestation has no subject named " + name);
}

StatusOr<std::string> ReadPublicKeyHex(const std::string& hex_or_path) {
  std::string text = hex_or_path;
  if (!IsLowerHex(text, 64)) {
    MOAT_ASSIGN_OR_RETURN(text, ReadFileContents(hex_or_path));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  }
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!IsLowerHex(text, 64)) return InvalidArgumentError("the public key must be 64 hex characters: " + hex_or_path);
  return text;
}

}  // namespace moat::provenance

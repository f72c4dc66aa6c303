#pragma once
// Provenance of model artifacts: in-toto attestation statements (https://in-toto.io/Statement/v1)
// in DSSE envelopes (https://github.com/secure-systems-lab/dsse), signed with Ed25519.
//
// A statement names its subjects (artifact file names and SHA-256 digests) and a predicate of
// type kModelPredicateType: the model's name and version and references to its training data.
// The envelope carries the statement as base64 payload, payload type
// "application/vnd.in-toto+json", and signatures over DSSE's pre-authentication encoding
// PAE(type, payload) = "DSSEv1" SP len(type) SP type SP len(payload) SP payload. A signature's
// key id is the lowercase hex SHA-256 of the raw 32-byte Ed25519 public key.
//
// Verification is strict: the payload type, the statement type and the predicate type must be
// the ones above, at least one signature must verify under the given public key, every subject
// needs a name and a 64-hex-character sha256 digest. Nothing is trusted before the signature
// has been checked.

#include <string>
#include <string_view>
#include <vector>

#include "audit/signing_key.h"
#include "moat/status.h"

namespace moat::provenance {

inline constexpr std::string_view kStatementType = "https://in-toto.io/Statement/v1";
inline constexpr std::string_view kPayloadType = "application/vnd.in-toto+json";
inline constexpr std::string_view kModelPredicateType = "https://moat.dev/attestation/model/v1";

// One attested file: its name (a base name, no directories) and its SHA-256 (lowercase hex).
struct ArtifactDigest {
  std::string name;
  std::string sha256_hex;
};

// What the attestation says about the model.
struct ModelPredicate {
  std::string model_name;
  std::string model_version;
  std::vector<std::string> training_data;  // references: dataset names, URLs, digests
};

struct Attestation {
  std::vector<ArtifactDigest> subjects;
  ModelPredicate predicate;
};

// SHA-256 of a file's bytes, lowercase hex. NotFound when it cannot be read.
StatusOr<std::string> Sha256OfFile(const std::string& path);
// SHA-256 of bytes, lowercase hex.
std::string Sha256Hex(std::string_view bytes);

// The artifact entry for `path`: its base name and the digest of its bytes.
StatusOr<ArtifactDigest> DigestArtifact(const std::string& path);

// DSSE's pre-authentication encoding of a payload.
std::string PreAuthEncoding(std::string_view payload_type, std::string_view payload);

// The in-toto statement of `attestation` (compact JSON).
std::string StatementJson(const Attestation& attestation);

// A DSSE envelope (JSON) holding the statement of `attestation`, signed with `key`.
std::string SignEnvelope(const Attestation& attestation, const audit::SigningKey& key);

// What a verified envelope attests, with the digest of the envelope file's bytes (the value
// recorded where a gateway names the attestation it checked).
struct VerifiedAttestation {
  Attestation attestation;
  std::string key_id;
  std::string envelope_sha256;
};

// Verifies `envelope_json` under `public_key_hex` (64 hex characters) and parses its statement.
// InvalidArgument for a malformed envelope or statement, PermissionDenied when no signature
// verifies under the key.
StatusOr<VerifiedAttestation> VerifyEnvelope(std::string_view envelope_json, std::string_view public_key_hex);

// Checks that the file at `path` is one of the attested subjects: a subject with its base name
// and its digest. NotFound when no subject has that name, FailedPrecondition (naming both
// digests) when the digest differs.
Status CheckArtifact(const VerifiedAttestation& verified, const std::string& path);

// Reads a public key given as 64 hex characters or as a file holding them (a "<key>.pub" file
// written next to a signing key).
StatusOr<std::string> ReadPublicKeyHex(const std::string& hex_or_path);

}  // namespace moat::provenance

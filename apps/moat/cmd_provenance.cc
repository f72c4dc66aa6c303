// moat provenance sign | verify: in-toto attestations of model artifacts in DSSE envelopes
// (src/provenance/attestation.h), signed with an Ed25519 key in the audit signing key's format.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "audit/signing_key.h"
#include "cli_common.h"
#include "common/file_contents.h"
#include "commands.h"
#include "provenance/attestation.h"

namespace moat::cli {
namespace {

struct SignOptions {
  std::vector<std::string> artifacts;
  std::string key;
  std::string model_name;
  std::string model_version;
  std::vector<std::string> training_data;
  std::string out;
};

struct VerifyOptions {
  std::string attestation;
  std::string public_key;
  std::vector<std::string> artifacts;
};

int RunSign(const SignOptions& o) {
  auto key = audit::SigningKey::LoadOrCreate(o.key);
  if (!key.ok()) return Fail(key.status());
  provenance::Attestation a;
  for (const std::string& path : o.artifacts) {
    auto d = provenance::DigestArtifact(path);
    if (!d.ok()) return Fail(d.status());
    a.subjects.push_back(std::move(*d));
  }
  a.predicate = {o.model_name, o.model_version, o.training_data};
  const std::string envelope = provenance::SignEnvelope(a, *key);
  if (o.out.empty() || o.out == "-") {
    std::fputs(envelope.c_str(), stdout);
  } else {
    std::ofstream f(o.out, std::ios::binary | std::ios::trunc);
    f << envelope;
    if (!f) return Fail(InternalError("cannot write " + o.out));
    std::fprintf(stderr, "wrote %s (%zu subjects, key %s.pub)\n", o.out.c_str(), a.subjects.size(), o.key.c_str());
  }
  return 0;
}

int RunVerify(const VerifyOptions& o) {
  auto pk = provenance::ReadPublicKeyHex(o.public_key);
  if (!pk.ok()) return Fail(pk.status());
  auto envelope = ReadFileContents(o.attestation);
  if (!envelope.ok()) return Fail(envelope.status());
  auto v = provenance::VerifyEnvelope(*envelope, *pk);
  if (!v.ok()) return Fail(v.status());
  std::printf("signature OK (key id %s)\nmodel %s %s\n", v->key_id.c_str(),
              v->attestation.predicate.model_name.c_str(), v->attestation.predicate.model_version.c_str());
  for (const auto& s : v->attestation.subjects) std::printf("  subject %s sha256:%s\n", s.name.c_str(), s.sha256_hex.c_str());
  for (const auto& r : v->attestation.predicate.training_data) std::printf("  training data %s\n", r.c_str());
  for (const std::string& path : o.artifacts) {
    if (Status s = provenance::CheckArtifact(*v, path); !s.ok()) return Fail(s);
    std::printf("  artifact %s matches\n", path.c_str());
  }
  return 0;
}

}  // namespace

void AddProvenanceCommands(CLI::App& app) {
  auto* prov = app.add_subcommand("provenance", "sign and verify attestations of model artifacts (in-toto, DSSE)");
  prov->require_subcommand(1);

  auto so = std::make_shared<SignOptions>();
  auto* sign = prov->add_subcommand("sign", "write a signed in-toto attestation of model artifacts");
  sign->add_option("--artifact", so->artifacts, "artifact file (repeatable)")->required();
  sign->add_option("--key", so->key,
                   "Ed25519 signing key file (64 hex characters; created with mode 0600 and a .pub beside "
                   "it when missing)")
      ->required();
  sign->add_option("--model-name", so->model_name, "model name")->required();
  sign->add_option("--model-version", so->model_version, "model version")->required();
  sign->add_option("--training-data", so->training_data, "training data reference (repeatable)");
  sign->add_option("--out", so->out, "attestation file to write (default: standard output)");
  sign->callback([so] { std::exit(RunSign(*so)); });

  auto vo = std::make_shared<VerifyOptions>();
  auto* verify = prov->add_subcommand(
      "verify", "check an attestation's signature and, for each --artifact, that the file is an attested subject");
  verify->add_option("attestation", vo->attestation, "attestation file (DSSE envelope)")->required();
  verify->add_option("--public-key", vo->public_key, "public key: 64 hex characters or a .pub file")->required();
  verify->add_option("--artifact", vo->artifacts, "artifact file to check against its digest (repeatable)");
  verify->callback([vo] { std::exit(RunVerify(*vo)); });
}

}  // namespace moat::cli

#pragma once
// Radioactivity testing: does a suspected model (served by anyone behind an OpenAI-compatible
// API) carry our watermark because it was trained on our watermarked answers? We ask it for
// completions of a prompt set, re-tokenise its answers with OUR tokenizer and rank every account
// key on them (Trace with Holm/Bonferroni). A significant key both convicts the suspect and names
// the account whose answers it learned from.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "moat/status.h"
#include "watermark/suspect_client.h"
#include "watermark/tracer.h"

namespace moat::watermark {

struct RadioactivityOptions {
  std::string model;       // the model name sent to the suspect
  int samples = 200;       // completions requested (prompts are reused round-robin)
  int max_tokens = 64;
  double temperature = 1.0;
  uint64_t seed = 1;       // request i is sent with seed + i (servers may ignore it)
  int max_failures = 10;   // give up after this many failed requests
};

struct SuspectSample {
  std::string prompt;
  std::string completion;
};

// Reads prompts: a JSONL file (objects with "text", "prompt" or "content") gives one prompt per
// line; any other file gives one prompt per non-empty line. kNotFound / kInvalidArgument (empty).
StatusOr<std::vector<std::string>> ReadPrompts(const std::string& path);

// Asks `client` for options.samples completions. Returns the samples, or the last error once more
// than options.max_failures requests failed (or when `prompts` is empty: kInvalidArgument).
StatusOr<std::vector<SuspectSample>> QuerySuspect(const SuspectClient& client,
                                                 const std::vector<std::string>& prompts,
                                                 const RadioactivityOptions& options);

// The scoring units of `texts` under `tokenizer` (each text is its own sequence).
ScoringUnits UnitsOfTexts(const std::vector<std::string>& texts, const model::Tokenizer& tokenizer,
                          int h);

// Upstream mode: the scoring units of `texts` with token ids from `tokenizer`'s tokenize
// endpoint (see SuspectClient::Tokenize). When vocab_size > 0, ids >= vocab_size (outside the
// logit_bias map, so never watermarked) are dropped. Returns the first Tokenize error.
StatusOr<ScoringUnits> UpstreamUnitsOfTexts(const std::vector<std::string>& texts,
                                            const SuspectClient& tokenizer,
                                            std::string_view model, int32_t vocab_size, int h);

struct RadioactivityReport {
  int64_t samples = 0;
  TraceReport trace;
  bool detected = false;  // at least one key survives the family-wise correction at alpha
};

// Scores the completions of `samples` against `keys` (see Trace).
RadioactivityReport TestRadioactivity(const std::vector<SuspectSample>& samples,
                                      const model::Tokenizer& tokenizer,
                                      std::span<const WatermarkKey> keys,
                                      const WatermarkConfig& config, const TraceOptions& options);

}  // namespace moat::watermark

#pragma once
// Radioactivity testing: does a suspected model (served by anyone behind an OpenAI-compatible
// API) carry our watermark because it was trained on our watermarked answers? We ask it for
// completions of a prompt set, re-tokenise its answers with OUR tokenizer and rank every account
// key on them (Trace with Holm/Bonferroni). A significant key both convicts the suspect and names
// the account whose answers it learned from.
//
// Low contamination (after Sander et al. 2024, "Watermarking makes language models
// radioactive"): when the harvested texts are known (the audit store's prompts and answers of
// the suspected accounts), only the suspect's tokens whose watermark context occurs in those
// texts are scored -- a student can only have learned the green lists of contexts it saw -- and
// the harvested prompts serve as probes, so the suspect revisits those contexts. Units stay
// de-duplicated, so the test is the same exact binomial over fewer, stronger units.
//
// Validity of the filtered test: the filter selects contexts, never scored tokens. For every key
// whose outputs did not build the filter it is a fixed, key-independent selection, so the null
// is exactly Binomial(n, gamma). For the key whose outputs built it, a context's own green list
// is first consulted only after the context has occurred, so it never decides whether that
// context is in the filter; what remains is a second-order dependence (a context that entered
// the harvest through a green choice made in another context the suspect also produced).
// watermark_bench --radioactivity measures that null (f = 0) directly.

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

// One harvested exchange: a prompt an account sent and the (watermarked) answer it got.
struct HarvestedText {
  std::string prompt;
  std::string completion;
};

// Reads harvested exchanges from a file: JSONL objects (moat audit export records and the like)
// with the prompt in "prompt_text" or "prompt" and the answer in "completion_text",
// "completion", "text" or "content"; any other line is one answer without a prompt. Records
// with a "retention" other than "full" (hashed or dropped text) are skipped; when `accounts` is
// not empty, so are records whose "account_id" is not one of them. kNotFound when the file
// cannot be opened, kInvalidArgument when nothing usable is in it.
StatusOr<std::vector<HarvestedText>> ReadHarvest(const std::string& path,
                                                 const std::vector<std::string>& accounts);

// The probe to send for a harvested prompt: for the gateway's chat prompt text ("role: content"
// lines) the content of the last user message, otherwise the prompt itself.
std::string ProbeOfPrompt(std::string_view prompt_text);

// The distinct non-empty probes of `harvest`, in first-seen order.
std::vector<std::string> ProbesOfHarvest(const std::vector<HarvestedText>& harvest);

// The contexts of `width` tokens in `harvest` under `tokenizer` (width = config.h() for the
// watermark contexts themselves): each exchange is its prompt's tokens followed by its
// answer's, as a student trained on prompt/answer pairs would see it.
ContextFilter FilterOfHarvest(const std::vector<HarvestedText>& harvest,
                              const model::Tokenizer& tokenizer, int width);

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
  int64_t filter_contexts = 0;  // contexts in the filter (0: unfiltered)
  int64_t filtered_out = 0;     // suspect tokens skipped because their context is not in it
  TraceReport trace;
  bool detected = false;  // at least one key survives the family-wise correction at alpha
};

// Scores the completions of `samples` against `keys` (see Trace). With `filter`, only units
// whose preceding filter->width() tokens are in it are scored (width >= config.h()).
RadioactivityReport TestRadioactivity(const std::vector<SuspectSample>& samples,
                                      const model::Tokenizer& tokenizer,
                                      std::span<const WatermarkKey> keys,
                                      const WatermarkConfig& config, const TraceOptions& options,
                                      const ContextFilter* filter = nullptr);

}  // namespace moat::watermark

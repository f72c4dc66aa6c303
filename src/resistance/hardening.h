#pragma once
// Response hardening: how a restricted (degraded) subject's answers are made less useful as
// distillation training data. A HardeningProfile is immutable configuration (built once at
// start-up from [detection.hardening] and [detection.tiers.<tier>.hardening], see
// docs/resistance.md); the functions below are pure transformations of an answer, so the
// gateway's backends, the distillation lab and the tests all apply exactly the same code.
//
// The default profile is the gateway's historical degrade behaviour: the reasoning trace is
// removed, logprobs (and n > 1) are refused, max_tokens is capped, the final answer is kept
// whole and the built-in model samples without the anti-distillation stage.

#include <cstdint>
#include <string>
#include <string_view>

#include "moat/status.h"

namespace moat::resistance {

// What happens to a reasoning trace (`reasoning_content`).
enum class TraceMode {
  kRemove,   // dropped (the default)
  kSummary,  // replaced by SummarizeTrace(trace, summary_words)
  kKeep,     // passed through
};

// When the visible answer (`content`) is reduced to its final answer (FinalAnswer).
enum class AnswerOnlyMode {
  kOff,        // the answer is kept whole (the default)
  kWhenAsked,  // only when the request asks for intermediate steps (RequestAsksForSteps)
  kAlways,
};

struct HardeningProfile {
  TraceMode trace = TraceMode::kRemove;
  AnswerOnlyMode answer_only = AnswerOnlyMode::kOff;
  bool refuse_logprobs = true;  // logprobs, top_logprobs and n are removed from the request
  int64_t max_tokens = 0;       // cap on max_tokens; 0: the gateway's detection.degrade_max_tokens
  int summary_words = 24;       // kSummary: at most this many words in the summary
  // Built-in model only: the per-token KL budget (nats) of the anti-distillation sampling stage
  // (AntidistillSampler); 0 turns the stage off.
  double antidistill_kl = 0;
};

std::string_view TraceModeName(TraceMode m);
std::string_view AnswerOnlyModeName(AnswerOnlyMode m);

// Sets one profile field from its config key and the value's text: trace = remove | summary |
// keep; answer_only = off | when_asked | always; logprobs = refuse | allow; max_tokens (>= 0);
// summary_words (1..1000); antidistill_kl (0..5). kInvalidArgument on an unknown key or a bad
// value, naming `where` (e.g. "detection.hardening") in the message; the profile is then
// unchanged.
Status SetHardeningField(std::string_view where, std::string_view key, std::string_view value,
                         HardeningProfile* profile);

// A one-line description of the profile ("trace=remove answer_only=off logprobs=refuse ..."),
// for logs and the lab's report.
std::string Describe(const HardeningProfile& p);

// Returns a short summary of a reasoning trace: its first and last sentences (sentences end at
// a newline or at ". ", "! ", "? "), joined by " ... ", at most `max_words` words (split evenly
// between the two ends), prefixed with "Summary: ". Empty when the trace is blank. The middle
// of the trace, where the intermediate steps are, is what it leaves out.
std::string SummarizeTrace(std::string_view trace, int max_words);

// Returns the final answer of `content`, by the first heuristic that applies:
//   1. the argument of the last \boxed{...} (nested braces balanced), when it is one line;
//   2. the rest of the line after the last "answer:" or "answer is" anywhere, or after
//      "answer " at the start of a line (case-insensitive), trimmed, without a trailing '.';
//   3. the rest of the line after the last "####" (GSM8K style);
//   4. the last non-blank line, trimmed.
// Returns `content` unchanged when it is a single line or blank; otherwise always one line.
std::string FinalAnswer(std::string_view content);

// True when the prompt asks for intermediate steps ("step by step", "show your work",
// "explain your reasoning", "how did you get", ...; case-insensitive).
bool RequestAsksForSteps(std::string_view prompt);

// Applies the profile's trace and answer-only modes to one answer in place. `reasoning` may be
// null (the answer has no separate trace). `asks_for_steps` is RequestAsksForSteps of the
// request's prompt.
void HardenAnswer(const HardeningProfile& p, bool asks_for_steps, std::string* content,
                  std::string* reasoning);

}  // namespace moat::resistance

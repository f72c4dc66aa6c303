#pragma once
// Per-request feature extraction for the detection engine: parses the OpenAI request body
// once and derives cheap, allocation-light features (prompt skeleton and its MinHash,
// template prefix/suffix hashes, content signals, sampling parameters, conversation shape).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "detect/sketches.h"
#include "moat/detect_engine.h"

namespace moat::detect {

// Content and sampling signals, each scored in [0, 1] per request.
enum Signal : int {
  kCot = 0,        // chain-of-thought / reasoning-trace elicitation
  kJailbreak,      // jailbreak template language (role-play overrides, "no restrictions", ...)
  kHarmful,        // harmful-request vocabulary (weak alone: benign prompts use it too)
  kBenchmark,      // exam / benchmark question shape (options A-D, "Question:", GSM-like)
  kDistillStyle,   // machine-generated instruction style (imperative one-liners)
  kLogprobs,       // asks for logprobs / top_logprobs
  kMultiSample,    // n > 1
  kLongOutput,     // max_tokens >= 2048
  kReasoningParam, // reasoning_effort / reasoning params set
  kGreedy,         // temperature == 0
  kSingleTurn,     // no assistant turn in the history
  kNumSignals
};

// Stable short name of a signal, used in verdict reasons ("cot_elicitation", ...).
std::string_view SignalName(int signal);

inline constexpr int kMinHashPerms = 16;
inline constexpr int kLshBands = 4;
inline constexpr int kLshRows = kMinHashPerms / kLshBands;

struct RequestFeatures {
  bool parsed = false;         // the body was a JSON object with a messages array
  int messages = 0;            // messages in the request
  int assistant_turns = 0;     // assistant messages in the history
  bool has_system = false;
  uint64_t system_hash = 0;    // hash of the system prompt (0 if none)
  uint64_t model_hash = 0;
  size_t prompt_chars = 0;     // last user message length
  int prompt_words = 0;
  int approx_tokens = 0;       // all message text / 4
  // Sampling parameters (-1 / 0 when absent).
  double temperature = -1;
  int max_tokens = 0;
  int n = 1;
  bool logprobs = false;
  bool stream = false;
  bool reasoning = false;      // reasoning_effort or a reasoning object present
  // Prompt shape.
  uint64_t text_hash = 0;      // hash of the exact prompt text
  uint64_t skeleton_hash = 0;  // hash of the whole skeleton
  uint64_t prefix_hash = 0;    // first kTemplateWords normalised words (0 if too short)
  uint64_t suffix_hash = 0;    // last kTemplateWords normalised words (0 if too short)
  MinHash<kMinHashPerms> minhash;  // over 3-shingles of the skeleton
  std::array<float, kNumSignals> signal{};
};

inline constexpr int kTemplateWords = 5;

// Prompt skeleton: lower-cased word tokens where numbers become "#", function words stay and
// every run of content words (and names) collapses into one "w"; punctuation that shapes a
// template (: ? ( ) - newline) is kept. Example: "Question: How many apples does Tom have?"
// -> "w : how many w does w have ?".
std::string Skeleton(std::string_view text);

// Content-signal scorers over raw prompt text, each in [0, 1]. Exposed for tests.
float CotElicitationScore(std::string_view text);
float JailbreakScore(std::string_view text);
float HarmfulScore(std::string_view text);
float BenchmarkShapeScore(std::string_view text);
float DistillStyleScore(std::string_view text);

// Extracts the features of one request. Never throws; an unparsable body yields
// parsed == false and only the signals that need no body.
RequestFeatures Extract(const RequestEvent& event);

}  // namespace moat::detect

namespace moat::detect {
// The network prefix of a client address used for linkage: the /24 of an IPv4 address, the
// /48 (first three groups) of an IPv6 address, the whole string otherwise.
std::string_view NetworkPrefix(std::string_view ip);
}  // namespace moat::detect

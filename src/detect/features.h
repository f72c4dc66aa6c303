#pragma once
// Per-request feature extraction for the detection engine: parses the OpenAI request body
// once and derives cheap, allocation-light features: the learned content scores of the prompt
// (content_model.h), its content-word item sketch and known-corpus match (corpus_index.h), the
// prompt skeleton and its MinHash, template prefix/suffix hashes, sampling parameters and the
// conversation shape. No phrase lists: what a prompt asks for is judged by the learned model.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "detect/content_model.h"
#include "detect/corpus_index.h"
#include "detect/sketches.h"
#include "moat/detect_engine.h"

namespace moat::detect {

struct DetectionModel;

// Per-request signals in [0, 1], whose decayed rates a subject's state keeps.
enum Signal : int {
  kContentInstruction = 0,  // the content model's instruction head is confident (llr >= 2)
  kContentReasoning,        // ... its reasoning head
  kContentBenchmark,        // ... its benchmark head
  kContentJailbreak,        // ... its jailbreak head
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

// The prompt's hashed content features folded into 2^kCohortFeatureBits buckets (the first
// kCohortFeatures of them): what the online cohort and baseline models count.
inline constexpr int kCohortFeatureBits = 14;
inline constexpr int kCohortFeatures = 384;

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
  int prompts = 1;             // prompts a completions request holds (each answered n times)
  bool logprobs = false;
  bool stream = false;
  bool reasoning = false;      // reasoning_effort or a reasoning object present
  // Prompt shape.
  uint64_t text_hash = 0;      // hash of the exact prompt text
  uint64_t previous_text_hash = 0;  // ... of the user message before it (0 if none), hashed alike
  // Distinct content words (corpus_index.h: not function words) of the prompt that the user
  // message before it, or the assistant's answer before it, holds too (the larger of the two);
  // 0 without a user message before it. Counted only for a prompt of more than kFollowUpWords
  // words: a shorter one is a follow-up (`short_follow_up`).
  int words_shared_with_previous = 0;
  bool short_follow_up = false;  // a user message before it, and a prompt of <= kFollowUpWords words
  // Set by the engine, not by Extract: the history is the subject's own conversation (the user
  // turn before the prompt is one it sent before, or, for an agent's step answering a tool, the
  // prompt itself is). See DetectionEngine::Observe.
  bool continues_conversation = false;
  uint64_t skeleton_hash = 0;  // hash of the whole skeleton
  uint64_t prefix_hash = 0;    // first kTemplateWords normalised words (0 if too short)
  uint64_t suffix_hash = 0;    // last kTemplateWords normalised words (0 if too short)
  uint64_t ends_hash = 0;      // the first and the last normalised word (0 under 4 words): the
                               // frame of "Question: ... Answer:" around items of any length
  MinHash<kMinHashPerms> minhash;  // over 3-shingles of the skeleton
  std::array<float, kNumSignals> signal{};
  // Content (zero when no model is loaded).
  ContentScores content;       // of the prompt (see Extract)
  // Of the system message, discounted by kCarriedDiscount, when it is long enough to carry a
  // request (kCarriedMinWords) and differs from the prompt; zero otherwise. The engine counts it
  // instead of `content` when it is larger and the account's system message changed since the
  // last time it was (UseCarriedContent): a request hidden in the system message under a plain
  // user carrier is scored, an app's fixed system prompt never.
  ContentScores system_content;
  // A tool's output follows the last user message (ChatBody::tool_reply): the model answers the
  // output, in the context of the prompt. tool_content is the output's scores, discounted by
  // kCarriedDiscount, when it holds kCarriedMinWords words or more (zero otherwise); `content`
  // is the larger of the prompt's and the output's. The engine counts only the output when the
  // subject sent the same prompt before (an agent's next step: RecentPrompts).
  bool answers_tool = false;
  ContentScores tool_content;
  ItemSketch item;             // content-word sketch of the prompt, for repeated-item linkage
  CorpusMatch corpus;          // the known public item the prompt is, if any
  int expected_answer_tokens = 0;  // answer tokens the request may take (see Extract)
  std::array<uint16_t, kCohortFeatures> cohort_features{};
  int cohort_feature_count = 0;
};

// A request is "strongly" of a content head when the head's ratio reaches this.
inline constexpr float kStrongContentLlr = 2.0f;

inline constexpr int kTemplateWords = 5;
// The most prompts of one completions request that its expected answer tokens count.
inline constexpr int kMaxAnsweredPrompts = 256;

// Prompt skeleton: lower-cased word tokens where numbers become "#", function words stay and
// every run of content words (and names) collapses into one "w"; punctuation that shapes a
// template (: ? ( ) - newline) is kept. Example: "Question: How many apples does Tom have?"
// -> "w : how many w does w have ?".
std::string Skeleton(std::string_view text);

// Extracts the features of one request. Never throws; an unparsable body yields
// parsed == false and only the signals that need no body. With a model, the prompt's content
// scores are those of the last user message, or, when that message is a short follow-up
// ("how did you get that?") to an earlier user message, the larger of the two (the earlier
// one discounted by kFollowUpDiscount); the corpus match and sketch are of the last message.
// expected_answer_tokens is min(max_tokens, typical_answer_tokens) * n.
//
// A tool's output that follows the last user message (ChatBody::tool_reply) is scored too,
// discounted by kCarriedDiscount, and counts when it is larger: a request hidden in a "tool"
// message under a plain user carrier is scored as the prompt it is.
RequestFeatures Extract(const RequestEvent& event, const DetectionModel* model = nullptr,
                        int typical_answer_tokens = 300);
inline constexpr int kFollowUpWords = 12;
inline constexpr float kFollowUpDiscount = 0.8f;
// Texts other than the user's that the model answers (the system message, a tool's output):
// scored when they hold at least kCarriedMinWords words, their ratios multiplied by
// kCarriedDiscount.
inline constexpr int kCarriedMinWords = 8;
inline constexpr float kCarriedDiscount = 0.8f;

// Makes `carried` (already discounted) the request's content scores, and its content signals.
void UseCarriedContent(const ContentScores& carried, RequestFeatures* f);
// An agent's next step: the prompt was counted when the subject first sent it, so the request
// is only what is new in it, the tool's output (f->tool_content, zero when too short to carry a
// request); its prompt's features no longer count in cohort statistics.
void CountToolOutputOnly(RequestFeatures* f);
// The 8-bit tag of a system message by which an account's state remembers its last one (never 0
// for a request with a system message; 0 without one).
uint8_t SystemTag(const RequestFeatures& f);

}  // namespace moat::detect

namespace moat::detect {
// The network prefix of a client address used for linkage: the /24 of an IPv4 address, the
// /48 (first three groups) of an IPv6 address, the whole string otherwise.
std::string_view NetworkPrefix(std::string_view ip);
}  // namespace moat::detect

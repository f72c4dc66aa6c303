#include "detect/features.h"

#include "detect/ascii.h"
#include "detect/chat_body.h"
#include "detect/detection_model.h"
#include "detect/hash_batch.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iterator>
#include <span>
#include <vector>

namespace moat::detect {
namespace {

// ASCII classification table. The engine runs in the C locale, where std::isalnum only knows
// ASCII; a table makes the per-byte work inline and branch-free.
struct ByteTables {
  std::array<bool, 256> word{};
  constexpr ByteTables() {
    for (int c = 0; c < 256; ++c) {
      const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      const bool digit = c >= '0' && c <= '9';
      word[c] = alpha || digit || c == '\'';
    }
  }
};
constexpr ByteTables kBytes;

bool IsWordChar(char c) { return kBytes.word[static_cast<unsigned char>(c)]; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Zero bytes after the text in the buffers LowerPadded fills: FunctionWord reads 16 bytes from
// the start of any token.
constexpr size_t kPadding = 16;

// Lower-cases the first `max_chars` bytes of `text` into `out` (which holds at least that many
// plus kPadding), zeroes kPadding bytes after them and returns the lower-cased view.
std::string_view LowerPadded(std::string_view text, size_t max_chars, char* out) {
  const size_t n = std::min(text.size(), max_chars);
  LowerAscii(text.data(), n, out);
  std::memset(out + n, 0, kPadding);
  return std::string_view(out, n);
}

// Function words kept verbatim in a skeleton: they carry a template's shape.
constexpr std::string_view kFunctionWords[] = {
    "a", "about", "after", "all", "an", "and", "answer", "any", "are", "as", "at", "be",
    "before", "below", "between", "but", "by", "can", "could", "do", "does", "each", "every",
    "explain", "following", "for", "from", "give", "had", "has", "have", "how", "i", "if",
    "in", "into", "is", "it", "its", "let's", "many", "me", "more", "most", "much", "my",
    "not", "of", "on", "or", "our", "please", "question", "should", "so", "some", "step",
    "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
    "to", "was", "we", "were", "what", "when", "where", "which", "who", "why", "will", "with",
    "would", "write", "you", "your"};
constexpr size_t kMaxFunctionWordChars = 9;  // "following"

// A token of a skeleton: its text (zero-padded to 16 bytes, so that it is copied whole) and the
// hash of the text (what the MinHash shingles use).
struct SkeletonToken {
  std::array<char, 16> bytes{};
  size_t size = 0;
  uint64_t hash = 0;

  SkeletonToken() = default;
  explicit SkeletonToken(std::string_view text) : size(text.size()), hash(Hash64(text)) {
    std::memcpy(bytes.data(), text.data(), text.size());
  }
};

// The skeleton's vocabulary: the function words, "w" for content words, "#" for numbers and the
// template punctuation (a newline is written "/"), each with its hash, and an open-addressing
// table that finds a function word from the bytes of a token.
class SkeletonVocabulary {
 public:
  SkeletonVocabulary() {
    for (size_t i = 0; i < std::size(kFunctionWords); ++i) {
      const std::string_view w = kFunctionWords[i];
      function_[i] = SkeletonToken(w);
      char padded[16] = {};
      std::memcpy(padded, w.data(), w.size());
      const Packed key = Pack(padded, w.size());
      size_t slot = Slot(key);
      while (slots_[slot].index >= 0) slot = (slot + 1) % kSlots;
      slots_[slot] = {key, static_cast<int>(i)};
    }
    word_ = SkeletonToken("w");
    number_ = SkeletonToken("#");
    for (char c : {':', '?', '(', ')', '-'}) {
      punct_[static_cast<unsigned char>(c)] = SkeletonToken(std::string_view(&c, 1));
    }
    punct_['\n'] = SkeletonToken("/");
  }

  // The function word `tok` is, or null. `tok` must be followed by kPadding readable bytes.
  const SkeletonToken* FunctionWord(std::string_view tok) const {
    if (tok.size() > kMaxFunctionWordChars) return nullptr;
    const Packed key = Pack(tok.data(), tok.size());
    for (size_t slot = Slot(key);; slot = (slot + 1) % kSlots) {
      const Entry& e = slots_[slot];
      if (e.index < 0) return nullptr;
      if (e.key.lo == key.lo && e.key.hi == key.hi) return &function_[e.index];
    }
  }
  const SkeletonToken& word() const { return word_; }
  const SkeletonToken& number() const { return number_; }
  // The token of template punctuation `c` (one of : ? ( ) - and newline).
  const SkeletonToken& punct(char c) const { return punct_[static_cast<unsigned char>(c)]; }

 private:
  // The bytes of a token of at most 16 bytes, zero beyond its length (tokens hold no zero byte).
  struct Packed {
    uint64_t lo = 0, hi = 0;
  };
  // `p` holds n bytes followed by at least 16 - n readable bytes (n <= 16).
  static Packed Pack(const char* p, size_t n) {
    Packed k;
    std::memcpy(&k.lo, p, 8);
    std::memcpy(&k.hi, p + 8, 8);
    k.lo &= n >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * n)) - 1;
    k.hi &= n >= 16 ? ~uint64_t{0} : n <= 8 ? 0 : (uint64_t{1} << (8 * (n - 8))) - 1;
    return k;
  }
  static constexpr size_t kSlots = 256;
  static size_t Slot(const Packed& k) { return Mix64(k.lo ^ (k.hi * 0x9e3779b97f4a7c15ULL)) % kSlots; }
  struct Entry {
    Packed key;
    int index = -1;
  };
  std::array<Entry, kSlots> slots_{};
  std::array<SkeletonToken, std::size(kFunctionWords)> function_{};
  SkeletonToken word_, number_;
  std::array<SkeletonToken, 256> punct_{};
};

const SkeletonVocabulary& Vocabulary() {
  static const SkeletonVocabulary vocabulary;
  return vocabulary;
}

// Splits lower-cased text into word tokens and template punctuation.
template <typename Fn>
void ForEachToken(std::string_view lower, Fn&& fn) {
  size_t i = 0;
  while (i < lower.size()) {
    const char c = lower[i];
    if (IsWordChar(c)) {
      size_t j = i;
      while (j < lower.size() && IsWordChar(lower[j])) ++j;
      fn(lower.substr(i, j - i), false);
      i = j;
    } else {
      if (c == ':' || c == '?' || c == '(' || c == ')' || c == '\n' || c == '-') {
        fn(lower.substr(i, 1), true);
      }
      ++i;
    }
  }
}

bool IsNumber(std::string_view w) { return !w.empty() && IsDigit(w.front()); }

// Seed of a prompt's exact-text hash: text_hash and previous_text_hash must hash alike, so that a
// turn sent before is recognised when it comes back as the history's last user turn.
constexpr uint64_t kTextHashSeed = 0x74657874;
constexpr size_t kMaxSkeletonChars = 4096;  // the skeleton looks at the first 4 KB
// Per-thread body buffers grown past this are freed after the request.
constexpr size_t kKeptBufferBytes = 256 * 1024;
constexpr int kMaxSkeletonTokens = 160;
// The longest skeleton: every token a longest function word and a separator.
constexpr size_t kMaxSkeletonBytes = kMaxSkeletonTokens * (kMaxFunctionWordChars + 1);

// Builds the skeleton (see Skeleton) of already lower-cased, padded text from its tokens, as
// ForEachToken gives them: the skeleton's text and the hash of each of its tokens, at most
// kMaxSkeletonTokens of them.
class SkeletonBuilder {
 public:
  // Feeds one token of the text (as ForEachToken gives it).
  void Add(std::string_view tok, bool punct) {
    if (count_ >= kMaxSkeletonTokens) return;
    const SkeletonVocabulary& v = Vocabulary();
    const SkeletonToken* emit;
    if (punct) {
      emit = &v.punct(tok[0]);
      last_masked_ = false;
    } else if (IsNumber(tok)) {
      emit = &v.number();
      last_masked_ = false;
    } else if (const SkeletonToken* fw = v.FunctionWord(tok); fw != nullptr) {
      emit = fw;
      last_masked_ = false;
    } else {
      if (last_masked_) return;
      emit = &v.word();
      last_masked_ = true;
    }
    if (size_ > 0) text_[size_++] = ' ';
    std::memcpy(text_.data() + size_, emit->bytes.data(), emit->bytes.size());
    size_ += emit->size;
    hashes_[count_++] = emit->hash;
  }
  std::string_view text() const { return std::string_view(text_.data(), size_); }
  // Hash64 of each token's text, in order.
  const uint64_t* hashes() const { return hashes_.data(); }
  int count() const { return count_; }

 private:
  std::array<char, kMaxSkeletonBytes + 16> text_;  // + a whole SkeletonToken::bytes
  size_t size_ = 0;
  std::array<uint64_t, kMaxSkeletonTokens> hashes_;
  int count_ = 0;
  bool last_masked_ = false;
};

// Adds each distinct 3-shingle of the skeleton tokens to the MinHash (a MinHash is of a set:
// adding an element again changes nothing, so repeats are skipped).
void AddShingles(const uint64_t* toks, int n, MinHash<kMinHashPerms>* minhash) {
  constexpr size_t kSlots = 512;  // > 2 x the most shingles, so probes stay short
  std::array<uint64_t, kSlots> seen;
  seen.fill(0);
  for (int k = 0; k + 2 < n; ++k) {
    const uint64_t h = HashCombine(HashCombine(toks[k], toks[k + 1]), toks[k + 2]);
    if (h != 0) {  // 0 marks an empty slot: such a shingle is simply added every time
      size_t slot = h % kSlots;
      while (seen[slot] != 0 && seen[slot] != h) slot = (slot + 1) % kSlots;
      if (seen[slot] == h) continue;
      seen[slot] = h;
    }
    minhash->Add(h);
  }
}

// Words (runs of non-space characters) of `text`, counted up to `at_most`.
int CountWords(std::string_view text, int at_most) {
  int words = 0;
  bool in_word = false;
  for (const char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in_word && ++words >= at_most) return words;
    in_word = !space;
  }
  return words;
}

ContentScores Discounted(ContentScores scores, float discount) {
  for (float& l : scores.llr) l *= discount;
  scores.combined *= discount;
  return scores;
}

void SetContentSignals(RequestFeatures* f) {
  for (int h = 0; h < kNumHeads; ++h) {
    f->signal[kContentInstruction + h] = f->content.llr[h] >= kStrongContentLlr ? 1.0f : 0.0f;
  }
}

// The distinct content words (not function words) of a text's word hashes, sorted.
int SortedContentWords(const WordHashes& words, std::array<uint64_t, WordHashes::kMax>* out) {
  int n = 0;
  for (int i = 0; i < words.count; ++i) {
    if (!IsFunctionWord(words.hash[i])) (*out)[n++] = words.hash[i];
  }
  std::sort(out->begin(), out->begin() + n);
  return static_cast<int>(std::unique(out->begin(), out->begin() + n) - out->begin());
}

// How many of the distinct content words `words` (sorted, SortedContentWords) an earlier text
// holds too.
int SharedContentWords(std::span<const uint64_t> words, std::string_view earlier) {
  if (earlier.empty() || words.empty()) return 0;
  WordHashes earlier_words;
  ExtractWordHashes(earlier, &earlier_words);
  std::array<uint64_t, WordHashes::kMax> b;
  const int nb = SortedContentWords(earlier_words, &b);
  int shared = 0;
  for (size_t i = 0, j = 0; i < words.size() && j < static_cast<size_t>(nb);) {
    if (words[i] < b[j]) {
      ++i;
    } else if (b[j] < words[i]) {
      ++j;
    } else {
      ++shared, ++i, ++j;
    }
  }
  return shared;
}

}  // namespace

void UseCarriedContent(const ContentScores& carried, RequestFeatures* f) {
  f->content = carried;
  SetContentSignals(f);
}

void CountToolOutputOnly(RequestFeatures* f) {
  UseCarriedContent(f->tool_content, f);
  f->cohort_feature_count = 0;
}

uint8_t SystemTag(const RequestFeatures& f) {
  if (!f.has_system) return 0;
  const auto tag = static_cast<uint8_t>(f.system_hash >> 56);
  return tag == 0 ? 1 : tag;
}

std::string_view SignalName(int signal) {
  static constexpr std::string_view kNames[kNumSignals] = {
      "content_instruction", "content_reasoning", "content_benchmark", "content_jailbreak",
      "logprobs",            "multi_sample",      "long_output",       "reasoning_param",
      "greedy_decoding",     "single_turn"};
  return signal >= 0 && signal < kNumSignals ? kNames[signal] : "unknown";
}

std::string Skeleton(std::string_view text) {
  std::vector<char> lower_buf(std::min(text.size(), kMaxSkeletonChars) + kPadding);
  const std::string_view lower = LowerPadded(text, kMaxSkeletonChars, lower_buf.data());
  SkeletonBuilder skeleton;
  ForEachToken(lower, [&](std::string_view tok, bool punct) { skeleton.Add(tok, punct); });
  return std::string(skeleton.text());
}

RequestFeatures Extract(const RequestEvent& event, const DetectionModel* model,
                        int typical_answer_tokens) {
  RequestFeatures f;
  // The body's texts are copied into per-thread buffers that are reused from one request to
  // the next (see ChatBodyBuffers).
  thread_local ChatBodyBuffers buffers;
  ChatBody body;
  ParseChatBody(event.body_json, &buffers, &body);
  // A legacy completions request's prompt is read as a one-message conversation (its texts
  // joined; each of them is answered, see expected_answer_tokens). The endpoint tells which of
  // the two a body is; a record without one is a completions request when it has no messages.
  const bool completions = event.endpoint == "/v1/completions" || (event.endpoint.empty() && !body.has_messages);
  const bool read_prompt = completions && body.has_completion_prompt;
  if (read_prompt) {
    f.parsed = true;
    f.messages = 1;
    f.approx_tokens = static_cast<int>(body.completion_prompt.size() / 4);
    f.prompts = body.completion_prompts;
  } else if (body.has_messages) {
    f.parsed = true;
    f.messages = body.messages;
    f.assistant_turns = body.assistant_turns;
    f.has_system = body.has_system;
    f.answers_tool = !body.tool_reply.empty();
    f.approx_tokens = static_cast<int>(body.content_chars / 4);
  }
  if (body.model) f.model_hash = Hash64(*body.model);
  if (body.temperature) f.temperature = *body.temperature;
  if (body.max_tokens) f.max_tokens = static_cast<int>(*body.max_tokens);
  if (body.max_completion_tokens) f.max_tokens = static_cast<int>(*body.max_completion_tokens);
  if (body.n) f.n = static_cast<int>(*body.n);
  if (body.logprobs) f.logprobs = *body.logprobs;
  if (body.top_logprobs) f.logprobs = f.logprobs || *body.top_logprobs > 0;
  if (body.stream) f.stream = *body.stream;
  f.reasoning = body.reasoning_key;
  const std::string_view prompt = read_prompt ? body.completion_prompt : body.prompt;
  const std::string_view previous_prompt = read_prompt ? std::string_view() : body.previous_prompt;  // the user message before
  if (f.has_system) f.system_hash = Hash64(body.system);
  f.prompt_chars = prompt.size();
  f.text_hash = Hash64(prompt, kTextHashSeed);
  if (!previous_prompt.empty()) f.previous_text_hash = Hash64(previous_prompt, kTextHashSeed);

  // One pass over the lower-cased prompt's tokens: the skeleton (its MinHash over 3-shingles)
  // and the normalised words (lower case, numbers masked) of the template prefix and suffix,
  // of which only the first and the last kTemplateWords are needed.
  char lower_buf[kMaxSkeletonChars + kPadding];
  const std::string_view lower = LowerPadded(prompt, kMaxSkeletonChars, lower_buf);
  SkeletonBuilder skeleton;
  std::array<std::string_view, kTemplateWords> first, last;
  size_t words = 0;
  ForEachToken(lower, [&](std::string_view tok, bool punct) {
    skeleton.Add(tok, punct);
    if (punct) return;
    const std::string_view w = IsNumber(tok) ? std::string_view("#") : tok;
    if (words < kTemplateWords) first[words] = w;
    last[words % kTemplateWords] = w;
    ++words;
  });
  f.skeleton_hash = Hash64(skeleton.text());
  AddShingles(skeleton.hashes(), skeleton.count(), &f.minhash);
  if (skeleton.count() < 3 && skeleton.count() > 0) f.minhash.Add(f.skeleton_hash);
  f.prompt_words = static_cast<int>(words);
  if (words >= 4) {
    f.ends_hash = HashCombine(HashCombine(0x656e647300000000ULL, Hash64(first[0])),
                              Hash64(last[(words - 1) % kTemplateWords]));
  }
  if (words >= 2 * kTemplateWords) {
    uint64_t p = 0x7072656669780000ULL, s = 0x7375666669780000ULL;
    for (size_t k = 0; k < kTemplateWords; ++k) {
      p = HashCombine(p, Hash64(first[k]));
      s = HashCombine(s, Hash64(last[(words - kTemplateWords + k) % kTemplateWords]));
    }
    f.prefix_hash = p;
    f.suffix_hash = s;
  }

  // Content: the learned model, the item sketch and the known-corpus match.
  ContentFeatures cf;
  WordHashes word_hashes;
  ExtractContentFeatures(prompt, &cf, &word_hashes);
  if (!previous_prompt.empty()) {
    f.short_follow_up = f.prompt_words <= kFollowUpWords;
    if (!f.short_follow_up) {
      std::array<uint64_t, WordHashes::kMax> words;
      const std::span<const uint64_t> content_words(words.data(), SortedContentWords(word_hashes, &words));
      f.words_shared_with_previous = std::max(SharedContentWords(content_words, previous_prompt),
                                              SharedContentWords(content_words, body.previous_answer));
    }
  }
  f.cohort_feature_count = std::min(cf.count, kCohortFeatures);
  {
    std::array<uint64_t, kCohortFeatures> mixed;
    Mix64Batch(cf.hash.data(), 0x636f686f7274ULL, mixed.data(), static_cast<size_t>(f.cohort_feature_count));
    for (int i = 0; i < f.cohort_feature_count; ++i) {
      f.cohort_features[i] = static_cast<uint16_t>(mixed[i] >> (64 - kCohortFeatureBits));
    }
  }
  if (model != nullptr && !model->content.empty()) {
    f.content = prompt.empty() ? ContentScores{} : model->content.FromRaw(model->content.RawLogits(cf));
    if (!previous_prompt.empty() && f.prompt_words <= kFollowUpWords) {
      const ContentScores earlier = Discounted(model->content.Score(previous_prompt), kFollowUpDiscount);
      if (earlier.combined > f.content.combined) f.content = earlier;
    }
    // Texts the model answers besides the user's: a tool's output after the last user message
    // (counted here when it scores higher), and the system message (kept aside: the engine
    // decides, by the account's last system message, whether it counts).
    if (!body.tool_reply.empty() && CountWords(body.tool_reply, kCarriedMinWords) >= kCarriedMinWords) {
      f.tool_content = Discounted(model->content.Score(body.tool_reply), kCarriedDiscount);
      if (f.tool_content.combined > f.content.combined) f.content = f.tool_content;
    }
    if (!body.system.empty() && body.system != prompt &&
        CountWords(body.system, kCarriedMinWords) >= kCarriedMinWords) {
      f.system_content = Discounted(model->content.Score(body.system), kCarriedDiscount);
    }
    SetContentSignals(&f);
  }
  f.item = SketchWords(word_hashes);
  if (model != nullptr && !model->corpus.empty()) f.corpus = model->corpus.Lookup(f.item);
  {
    const int cap = f.max_tokens > 0 ? std::min(f.max_tokens, typical_answer_tokens) : typical_answer_tokens;
    f.expected_answer_tokens = std::max(1, cap) * std::clamp(f.n, 1, 16) * std::clamp(f.prompts, 1, kMaxAnsweredPrompts);
  }
  f.signal[kLogprobs] = f.logprobs ? 1.0f : 0.0f;
  f.signal[kMultiSample] = f.n > 1 ? 1.0f : 0.0f;
  f.signal[kLongOutput] = f.max_tokens >= 2048 ? 1.0f : 0.0f;
  f.signal[kReasoningParam] = f.reasoning ? 1.0f : 0.0f;
  f.signal[kGreedy] = f.temperature == 0.0 ? 1.0f : 0.0f;
  f.signal[kSingleTurn] = f.parsed && f.assistant_turns == 0 ? 1.0f : 0.0f;
  buffers.Trim(kKeptBufferBytes);
  return f;
}

}  // namespace moat::detect

namespace moat::detect {
std::string_view NetworkPrefix(std::string_view ip) {
  if (ip.find(':') != std::string_view::npos) {
    size_t pos = 0;
    for (int groups = 0; groups < 3; ++groups) {
      pos = ip.find(':', pos);
      if (pos == std::string_view::npos) return ip;
      ++pos;
    }
    return ip.substr(0, pos - 1);
  }
  const size_t dot = ip.rfind('.');
  return dot == std::string_view::npos ? ip : ip.substr(0, dot);
}
}  // namespace moat::detect

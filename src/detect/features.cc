#include "detect/features.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cstring>
#include <iterator>
#include <span>
#include <vector>

namespace moat::detect {
namespace {

namespace json = boost::json;

// ASCII classification tables. The engine runs in the C locale, where std::isalnum and
// std::tolower only know ASCII; tables make the per-byte work inline and branch-free.
struct ByteTables {
  std::array<bool, 256> word{};
  std::array<char, 256> lower{};
  constexpr ByteTables() {
    for (int c = 0; c < 256; ++c) {
      const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      const bool digit = c >= '0' && c <= '9';
      word[c] = alpha || digit || c == '\'';
      lower[c] = static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
  }
};
constexpr ByteTables kBytes;

bool IsWordChar(char c) { return kBytes.word[static_cast<unsigned char>(c)]; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// True when `word` occurs in `lower` bounded by non-word characters.
bool HasWord(std::string_view lower, std::string_view word) {
  for (size_t pos = lower.find(word); pos != std::string_view::npos;
       pos = lower.find(word, pos + 1)) {
    const bool left = pos == 0 || !IsWordChar(lower[pos - 1]);
    const size_t end = pos + word.size();
    const bool right = end >= lower.size() || !IsWordChar(lower[end]);
    if (left && right) return true;
  }
  return false;
}

// Lower-cases the first `max_chars` bytes of `text` into `out` (which holds at least that many)
// and returns the lower-cased view.
std::string_view LowerInto(std::string_view text, size_t max_chars, char* out) {
  const size_t n = std::min(text.size(), max_chars);
  for (size_t i = 0; i < n; ++i) out[i] = kBytes.lower[static_cast<unsigned char>(text[i])];
  return std::string_view(out, n);
}

std::string Lower(std::string_view text, size_t max_chars) {
  std::string out(std::min(text.size(), max_chars), '\0');
  LowerInto(text, max_chars, out.data());
  return out;
}

// ---- Phrase scanning --------------------------------------------------------------------------
// Every phrase of every content scorer is compiled once into one table indexed by its first two
// bytes, so a single pass over the prompt finds all of them (instead of one substring search per
// phrase). A phrase whose first and last characters are word characters matches only on word
// boundaries; the others (and the auxiliary patterns) match anywhere.

struct Phrase {
  std::string_view text;
  float weight;
};

enum PhraseGroup : int { kGroupCot, kGroupJailbreak, kGroupHarmful, kGroupBenchmark, kNumGroups };

constexpr Phrase kCotPhrases[] = {
    {"step by step", 1.0f},       {"step-by-step", 1.0f},
    {"chain of thought", 1.5f},   {"chain-of-thought", 1.5f},
    {"show your work", 1.0f},     {"show all of your reasoning", 1.5f},
    {"show your reasoning", 1.5f},{"reasoning process", 1.0f},
    {"reasoning trace", 1.5f},    {"reasoning steps", 1.0f},
    {"think out loud", 1.0f},     {"explain your thinking", 1.0f},
    {"your thinking", 0.5f},      {"your reasoning", 0.7f},
    {"each step", 0.5f},          {"every intermediate step", 1.0f},
    {"intermediate steps", 0.7f}, {"detailed rationale", 1.0f},
    {"justify each step", 1.0f},  {"derivation", 0.5f},
    {"let's think", 1.0f},        {"reason carefully", 1.0f},
    {"complete reasoning", 1.0f}, {"full reasoning", 1.0f},
    {"thought process", 0.7f},    {"work through this", 0.5f},
    {"show the reasoning", 1.0f}, {"the reasoning trace", 0.5f}};

constexpr Phrase kJailbreakPhrases[] = {
    {"ignore all previous", 2.0f},   {"ignore previous instructions", 2.0f},
    {"ignore all the instructions", 2.0f}, {"disregard", 0.7f},
    {"developer mode", 2.0f},        {"do anything now", 2.5f},
    {"jailbreak", 2.0f},             {"jailbroken", 2.0f},
    {"dan", 1.0f},                   {"stay in character", 2.0f},
    {"break character", 1.5f},       {"never refuse", 2.0f},
    {"content policy", 1.5f},        {"content policies", 1.5f},
    {"no restrictions", 1.5f},       {"without any restrictions", 1.5f},
    {"unfiltered", 1.5f},            {"uncensored", 1.5f},
    {"amoral", 1.5f},                {"not bound by", 1.5f},
    {"no ethical", 1.5f},            {"without ethical", 1.5f},
    {"no moral", 1.5f},              {"any principles", 1.0f},
    {"ethical guidelines", 1.0f},    {"guidelines", 0.5f},
    {"pretend", 0.7f},               {"roleplay", 0.5f},
    {"role play", 0.5f},             {"hypothetical", 0.5f},
    {"from now on", 0.8f},           {"simulate", 0.5f},
    {"fictional", 0.5f},             {"character", 0.3f},
    {"illegal", 0.5f},               {"unethical", 0.7f},
    {"immoral", 0.7f},               {"openai", 0.7f},
    {"chatgpt", 0.5f},               {"as an ai", 0.5f},
    {"language model", 0.3f},        {"evil", 0.5f},
    {"you are no longer", 1.5f},     {"two responses", 1.0f},
    {"two different", 0.5f},         {"opposite", 0.3f},
    {"rules", 0.3f},                 {"censor", 0.7f},
    {"filter", 0.3f},                {"🔓", 1.5f}};

constexpr Phrase kHarmfulPhrases[] = {
    {"bomb", 1}, {"explosive", 1}, {"weapon", 1}, {"kill", 0.7f}, {"murder", 1},
    {"poison", 1}, {"meth", 1}, {"cocaine", 1}, {"heroin", 1}, {"drugs", 0.5f},
    {"hack", 0.7f}, {"hacking", 0.7f}, {"malware", 1}, {"ransomware", 1},
    {"virus", 0.5f}, {"steal", 1}, {"fraud", 1}, {"counterfeit", 1},
    {"launder", 1}, {"terrorist", 1}, {"suicide", 1}, {"self-harm", 1},
    {"racist", 1}, {"hate speech", 1}, {"phishing", 1}, {"ddos", 1},
    {"keylogger", 1}, {"firearm", 1}, {"gun", 0.7f}, {"torture", 1},
    {"smuggle", 1}, {"identity theft", 1}, {"blackmail", 1}, {"extort", 1},
    {"assassinate", 1}, {"harass", 1}, {"stalk", 1}, {"illegally", 1},
    {"without getting caught", 1.5f}, {"untraceable", 1}, {"exploit", 0.5f}};

constexpr Phrase kBenchmarkPhrases[] = {
    {"question:", 1.0f},        {"answer:", 1.0f},
    {"options:", 1.0f},         {"answer choices", 1.0f},
    {"choices:", 1.0f},         {"which of the following", 0.8f},
    {"true or false", 0.5f},    {"final answer", 0.7f},
    {"correct answer", 0.7f},   {"q:", 0.7f},
    {"\n- yes\n- no", 1.0f},    {"\\n- yes\\n- no", 1.0f},
    {"multiple choice", 0.8f},  {"select the", 0.3f},
    {"choose the", 0.3f},       {"is the following", 0.5f}};

// Patterns of the benchmark-shape heuristics, matched anywhere (no word boundaries).
constexpr std::string_view kOptionParens[] = {"(a)", "(b)", "(c)", "(d)"};
constexpr std::string_view kOptionLines[] = {"\na)", "\nb)", "\nc)", "\nd)",
                                             "\na.", "\nb.", "\nc.", "\nd."};
constexpr std::string_view kQuantity[] = {"how many", "how much", "what is the total"};

constexpr std::span<const Phrase> kGroups[kNumGroups] = {kCotPhrases, kJailbreakPhrases,
                                                         kHarmfulPhrases, kBenchmarkPhrases};

constexpr size_t kGroupSize(int g) { return kGroups[g].size(); }
constexpr size_t kNumPhrases =
    kGroupSize(0) + kGroupSize(1) + kGroupSize(2) + kGroupSize(3);
constexpr size_t kAuxBase = kNumPhrases;
constexpr size_t kOptionParenBase = kAuxBase;
constexpr size_t kOptionLineBase = kOptionParenBase + std::size(kOptionParens);
constexpr size_t kQuantityBase = kOptionLineBase + std::size(kOptionLines);
constexpr size_t kNumPatterns = kQuantityBase + std::size(kQuantity);
static_assert(kNumPatterns <= 256, "PhraseHits holds 256 patterns");

// Which patterns occur in a text (bit i: pattern i).
struct PhraseHits {
  std::array<uint64_t, 4> bits{};
  bool Has(size_t i) const { return (bits[i >> 6] >> (i & 63)) & 1; }
  void Set(size_t i) { bits[i >> 6] |= 1ULL << (i & 63); }
};

class PhraseTable {
 public:
  PhraseTable() {
    size_t id = 0;
    for (const auto& group : kGroups) {
      for (const Phrase& p : group) {
        patterns_[id++] = {p.text, IsWordChar(p.text.front()) && IsWordChar(p.text.back())};
      }
    }
    for (std::string_view t : kOptionParens) patterns_[id++] = {t, false};
    for (std::string_view t : kOptionLines) patterns_[id++] = {t, false};
    for (std::string_view t : kQuantity) patterns_[id++] = {t, false};
    // Bucket pattern ids by their first two bytes (every pattern has at least two).
    std::array<std::vector<uint16_t>, 256> by_first;
    for (size_t i = 0; i < kNumPatterns; ++i) {
      const auto b0 = static_cast<unsigned char>(patterns_[i].text[0]);
      const auto b1 = static_cast<unsigned char>(patterns_[i].text[1]);
      by_first[b0].push_back(static_cast<uint16_t>(i));
      bigram_[(b0 << 8 | b1) >> 6] |= 1ULL << ((b0 << 8 | b1) & 63);
    }
    for (int c = 0; c < 256; ++c) {
      start_[c] = static_cast<uint16_t>(ids_.size());
      ids_.insert(ids_.end(), by_first[c].begin(), by_first[c].end());
    }
    start_[256] = static_cast<uint16_t>(ids_.size());
  }

  // One pass over `lower`: the set of patterns present (bounded ones on word boundaries).
  PhraseHits Scan(std::string_view lower) const {
    PhraseHits hits;
    const size_t n = lower.size();
    const char* s = lower.data();
    for (size_t i = 0; i + 1 < n; ++i) {
      const auto b0 = static_cast<unsigned char>(s[i]);
      const unsigned pair = b0 << 8 | static_cast<unsigned char>(s[i + 1]);
      if (!((bigram_[pair >> 6] >> (pair & 63)) & 1)) continue;
      for (uint16_t k = start_[b0]; k < start_[b0 + 1]; ++k) {
        const uint16_t id = ids_[k];
        const Pattern& p = patterns_[id];
        const size_t len = p.text.size();
        if (hits.Has(id) || len > n - i || s[i + 1] != p.text[1] ||
            std::memcmp(s + i, p.text.data(), len) != 0) {
          continue;
        }
        if (p.bounded && ((i > 0 && IsWordChar(s[i - 1])) || (i + len < n && IsWordChar(s[i + len])))) {
          continue;
        }
        hits.Set(id);
      }
    }
    return hits;
  }

  static const PhraseTable& Get() {
    static const PhraseTable table;
    return table;
  }

 private:
  struct Pattern {
    std::string_view text;
    bool bounded = false;
  };
  std::array<Pattern, kNumPatterns> patterns_{};
  std::array<uint64_t, 1024> bigram_{};  // 65536 bits: first-two-byte pairs of some pattern
  std::array<uint16_t, 257> start_{};
  std::vector<uint16_t> ids_;
};

// Sum of the weights of a group's phrases present (each counted once, in list order).
float GroupScore(const PhraseHits& hits, int group) {
  size_t base = 0;
  for (int g = 0; g < group; ++g) base += kGroups[g].size();
  float sum = 0;
  for (size_t i = 0; i < kGroups[group].size(); ++i) {
    if (hits.Has(base + i)) sum += kGroups[group][i].weight;
  }
  return sum;
}

// Function words kept verbatim in a skeleton: they carry a template's shape.
bool IsFunctionWord(std::string_view w) {
  static constexpr std::string_view kWords[] = {
      "a", "about", "after", "all", "an", "and", "answer", "any", "are", "as", "at", "be",
      "before", "below", "between", "but", "by", "can", "could", "do", "does", "each", "every",
      "explain", "following", "for", "from", "give", "had", "has", "have", "how", "i", "if",
      "in", "into", "is", "it", "its", "let's", "many", "me", "more", "most", "much", "my",
      "not", "of", "on", "or", "our", "please", "question", "should", "so", "some", "step",
      "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those",
      "to", "was", "we", "were", "what", "when", "where", "which", "who", "why", "will", "with",
      "would", "write", "you", "your"};
  // kWords is sorted, so the words of one first letter form a range: index those ranges once
  // and compare only within one (same answer as a binary search over the whole list).
  static const std::array<std::pair<uint8_t, uint8_t>, 256> kRanges = [] {
    std::array<std::pair<uint8_t, uint8_t>, 256> r{};
    for (size_t i = std::size(kWords); i-- > 0;) {
      auto& range = r[static_cast<unsigned char>(kWords[i][0])];
      if (range.second == 0) range.second = static_cast<uint8_t>(i + 1);
      range.first = static_cast<uint8_t>(i);
    }
    return r;
  }();
  if (w.empty()) return false;
  const auto [lo, hi] = kRanges[static_cast<unsigned char>(w[0])];
  for (size_t i = lo; i < hi; ++i) {
    if (kWords[i] == w) return true;
  }
  return false;
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

constexpr size_t kMaxScanChars = 8192;     // content signals look at the first 8 KB
constexpr size_t kMaxSkeletonChars = 4096;  // the skeleton looks at the first 4 KB
constexpr int kMaxSkeletonTokens = 160;

// Appends the skeleton of already lower-cased text to `out` (see Skeleton).
void SkeletonOfLower(std::string_view lower, std::string& out) {
  bool last_masked = false;
  int tokens = 0;
  ForEachToken(lower, [&](std::string_view tok, bool punct) {
    if (tokens >= kMaxSkeletonTokens) return;
    std::string_view emit;
    if (punct) {
      emit = tok == "\n" ? "/" : tok;
      last_masked = false;
    } else if (IsNumber(tok)) {
      emit = "#";
      last_masked = false;
    } else if (IsFunctionWord(tok)) {
      emit = tok;
      last_masked = false;
    } else {
      if (last_masked) return;
      emit = "w";
      last_masked = true;
    }
    if (!out.empty()) out.push_back(' ');
    out.append(emit);
    ++tokens;
  });
}

// Content-signal scores of lower-cased text from its phrase hits.
float CotFromHits(const PhraseHits& h) { return std::min(1.0f, GroupScore(h, kGroupCot) / 1.5f); }
float JailbreakFromHits(const PhraseHits& h) {
  return std::min(1.0f, GroupScore(h, kGroupJailbreak) / 4.0f);
}
float HarmfulFromHits(const PhraseHits& h) {
  return std::min(1.0f, GroupScore(h, kGroupHarmful) / 1.5f);
}

float BenchmarkFromHits(std::string_view lower, const PhraseHits& hits) {
  float s = GroupScore(hits, kGroupBenchmark);
  // Lettered options, one per line or inline: "(a) ... (b) ..." or "\na. ... \nb. ...".
  int letters = 0;
  for (size_t i = 0; i < std::size(kOptionParens); ++i) letters += hits.Has(kOptionParenBase + i);
  if (letters < 3) {
    letters = 0;
    for (size_t i = 0; i < std::size(kOptionLines); ++i) letters += hits.Has(kOptionLineBase + i);
  }
  if (letters >= 3) s += 1.5f;
  // GSM-like word problem: several numbers and a quantity question.
  int numbers = 0;
  for (size_t i = 0; i < lower.size(); ++i) {
    if (IsDigit(lower[i]) && (i == 0 || !IsDigit(lower[i - 1]))) ++numbers;
  }
  bool quantity = false;
  for (size_t i = 0; i < std::size(kQuantity); ++i) quantity = quantity || hits.Has(kQuantityBase + i);
  if (numbers >= 3 && quantity) s += 1.0f;
  return std::min(1.0f, s / 2.0f);
}

}  // namespace

float DistillStyleScoreLower(std::string_view lower);

std::string_view SignalName(int signal) {
  static constexpr std::string_view kNames[kNumSignals] = {
      "cot_elicitation", "jailbreak_template", "harmful_request", "benchmark_shape",
      "distill_style",   "logprobs",           "multi_sample",    "long_output",
      "reasoning_param", "greedy_decoding",    "single_turn"};
  return signal >= 0 && signal < kNumSignals ? kNames[signal] : "unknown";
}

std::string Skeleton(std::string_view text) {
  const std::string lower = Lower(text, kMaxSkeletonChars);
  std::string out;
  out.reserve(lower.size() / 2);
  SkeletonOfLower(lower, out);
  return out;
}

float CotElicitationScore(std::string_view text) {
  return CotFromHits(PhraseTable::Get().Scan(Lower(text, kMaxScanChars)));
}

float JailbreakScore(std::string_view text) {
  return JailbreakFromHits(PhraseTable::Get().Scan(Lower(text, kMaxScanChars)));
}

float HarmfulScore(std::string_view text) {
  return HarmfulFromHits(PhraseTable::Get().Scan(Lower(text, kMaxScanChars)));
}

float BenchmarkShapeScore(std::string_view text) {
  const std::string lower = Lower(text, kMaxScanChars);
  return BenchmarkFromHits(lower, PhraseTable::Get().Scan(lower));
}

float DistillStyleScore(std::string_view text) { return DistillStyleScoreLower(Lower(text, 2048)); }

float DistillStyleScoreLower(std::string_view lower) {
  lower = lower.substr(0, 2048);
  size_t start = 0;
  while (start < lower.size() && !IsWordChar(lower[start])) ++start;
  size_t end = start;
  while (end < lower.size() && IsWordChar(lower[end])) ++end;
  const std::string_view first(lower.data() + start, end - start);
  static constexpr std::string_view kVerbs[] = {
      "add",       "analyze",    "arrange",   "brainstorm", "calculate", "categorize", "change",
      "choose",    "classify",   "come",      "compare",    "compose",   "compute",    "construct",
      "convert",   "create",     "describe",  "design",     "determine", "develop",    "edit",
      "evaluate",  "explain",    "find",      "formulate",  "generate",  "give",       "identify",
      "imagine",   "implement",  "list",      "make",       "name",      "outline",    "paraphrase",
      "predict",   "produce",    "propose",   "provide",    "rank",      "rearrange",  "recommend",
      "reorder",   "rewrite",    "select",    "sort",       "state",     "suggest",    "summarize",
      "transform", "translate",  "write"};
  if (!std::binary_search(std::begin(kVerbs), std::end(kVerbs), first)) return 0.0f;
  float s = 0.5f;
  int words = 0;
  ForEachToken(lower, [&](std::string_view, bool punct) { words += !punct; });
  if (words <= 40) s += 0.2f;
  const bool personal = HasWord(lower, "i") || HasWord(lower, "my") || HasWord(lower, "me") ||
                        HasWord(lower, "we") || HasWord(lower, "our") || HasWord(lower, "i'm");
  if (!personal) s += 0.2f;
  if (lower.find('?') == std::string::npos && lower.find("please") == std::string::npos) s += 0.1f;
  return std::min(1.0f, s);
}

RequestFeatures Extract(const RequestEvent& event) {
  RequestFeatures f;
  // The parsed body lives in a monotonic arena that starts on the stack: most bodies parse
  // without touching the heap, and the whole tree is released at once.
  alignas(std::max_align_t) unsigned char arena[16384];
  json::monotonic_resource mr(arena, sizeof(arena));
  json::parse_options opts;
  boost::system::error_code ec;
  json::value body = json::parse(event.body_json, ec, &mr, opts);
  std::string_view prompt;
  std::string_view system;
  if (!ec && body.is_object()) {
    const json::object& o = body.get_object();
    if (const json::value* m = o.if_contains("messages"); m != nullptr && m->is_array()) {
      f.parsed = true;
      size_t chars = 0;
      for (const json::value& msg : m->get_array()) {
        if (!msg.is_object()) continue;
        ++f.messages;
        const json::object& mo = msg.get_object();
        const json::value* role = mo.if_contains("role");
        const json::value* content = mo.if_contains("content");
        std::string_view text = content != nullptr && content->is_string()
                                    ? std::string_view(content->get_string())
                                    : std::string_view();
        chars += text.size();
        if (role == nullptr || !role->is_string()) continue;
        const std::string_view r = role->get_string();
        if (r == "user") {
          prompt = text;
        } else if (r == "assistant") {
          ++f.assistant_turns;
        } else if (r == "system" || r == "developer") {
          f.has_system = true;
          system = text;
        }
      }
      f.approx_tokens = static_cast<int>(chars / 4);
    }
    if (const json::value* v = o.if_contains("model"); v != nullptr && v->is_string()) {
      f.model_hash = Hash64(v->get_string());
    }
    if (const json::value* v = o.if_contains("temperature"); v != nullptr && v->is_number()) {
      f.temperature = v->to_number<double>(ec);
    }
    for (const char* key : {"max_tokens", "max_completion_tokens"}) {
      if (const json::value* v = o.if_contains(key); v != nullptr && v->is_number()) {
        f.max_tokens = static_cast<int>(v->to_number<double>(ec));
      }
    }
    if (const json::value* v = o.if_contains("n"); v != nullptr && v->is_number()) {
      f.n = static_cast<int>(v->to_number<double>(ec));
    }
    if (const json::value* v = o.if_contains("logprobs"); v != nullptr && v->is_bool()) {
      f.logprobs = v->get_bool();
    }
    if (const json::value* v = o.if_contains("top_logprobs"); v != nullptr && v->is_number()) {
      f.logprobs = f.logprobs || v->to_number<double>(ec) > 0;
    }
    if (const json::value* v = o.if_contains("stream"); v != nullptr && v->is_bool()) {
      f.stream = v->get_bool();
    }
    f.reasoning = o.contains("reasoning_effort") || o.contains("reasoning");
  }
  if (f.has_system) f.system_hash = Hash64(system);
  f.prompt_chars = prompt.size();
  f.text_hash = Hash64(prompt, 0x74657874);

  char lower_buf[kMaxScanChars];
  const std::string_view lower = LowerInto(prompt, kMaxScanChars, lower_buf);
  // Skeleton, its MinHash over 3-shingles, and template prefix / suffix.
  std::string skeleton;
  skeleton.reserve(std::min(lower.size(), kMaxSkeletonChars) / 2 + 16);
  SkeletonOfLower(lower.substr(0, kMaxSkeletonChars), skeleton);
  f.skeleton_hash = Hash64(skeleton);
  {
    std::array<uint64_t, kMaxSkeletonTokens + 1> toks;
    size_t ntoks = 0;
    size_t i = 0;
    while (i < skeleton.size() && ntoks < toks.size()) {
      size_t j = skeleton.find(' ', i);
      if (j == std::string::npos) j = skeleton.size();
      toks[ntoks++] = Hash64(std::string_view(skeleton).substr(i, j - i));
      i = j + 1;
    }
    for (size_t k = 0; k + 2 < ntoks; ++k) {
      f.minhash.Add(HashCombine(HashCombine(toks[k], toks[k + 1]), toks[k + 2]));
    }
    if (ntoks < 3 && ntoks > 0) f.minhash.Add(f.skeleton_hash);
  }
  {
    // Normalised words (lower case, numbers masked) for the template prefix and suffix: only
    // the first and the last kTemplateWords are needed.
    std::array<std::string_view, kTemplateWords> first, last;
    size_t words = 0;
    ForEachToken(lower, [&](std::string_view tok, bool punct) {
      if (punct) return;
      const std::string_view w = IsNumber(tok) ? std::string_view("#") : tok;
      if (words < kTemplateWords) first[words] = w;
      last[words % kTemplateWords] = w;
      ++words;
    });
    f.prompt_words = static_cast<int>(words);
    if (words >= 2 * kTemplateWords) {
      uint64_t p = 0x7072656669780000ULL, s = 0x7375666669780000ULL;
      for (size_t k = 0; k < kTemplateWords; ++k) {
        p = HashCombine(p, Hash64(first[k]));
        s = HashCombine(s, Hash64(last[(words - kTemplateWords + k) % kTemplateWords]));
      }
      f.prefix_hash = p;
      f.suffix_hash = s;
    }
  }

  // Signals: one phrase scan feeds every content scorer.
  const PhraseHits hits = PhraseTable::Get().Scan(lower);
  f.signal[kCot] = CotFromHits(hits);
  f.signal[kJailbreak] = JailbreakFromHits(hits);
  f.signal[kHarmful] = HarmfulFromHits(hits);
  f.signal[kBenchmark] = BenchmarkFromHits(lower, hits);
  f.signal[kDistillStyle] = DistillStyleScoreLower(lower) >= 0.8f ? 1.0f : 0.0f;
  f.signal[kLogprobs] = f.logprobs ? 1.0f : 0.0f;
  f.signal[kMultiSample] = f.n > 1 ? 1.0f : 0.0f;
  f.signal[kLongOutput] = f.max_tokens >= 2048 ? 1.0f : 0.0f;
  f.signal[kReasoningParam] = f.reasoning ? 1.0f : 0.0f;
  f.signal[kGreedy] = f.temperature == 0.0 ? 1.0f : 0.0f;
  f.signal[kSingleTurn] = f.parsed && f.assistant_turns == 0 ? 1.0f : 0.0f;
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

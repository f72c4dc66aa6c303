#include "detect/features.h"

#include "detect/detection_model.h"

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

}  // namespace



std::string_view SignalName(int signal) {
  static constexpr std::string_view kNames[kNumSignals] = {
      "content_instruction", "content_reasoning", "content_benchmark", "content_jailbreak",
      "logprobs",            "multi_sample",      "long_output",       "reasoning_param",
      "greedy_decoding",     "single_turn"};
  return signal >= 0 && signal < kNumSignals ? kNames[signal] : "unknown";
}

std::string Skeleton(std::string_view text) {
  const std::string lower = Lower(text, kMaxSkeletonChars);
  std::string out;
  out.reserve(lower.size() / 2);
  SkeletonOfLower(lower, out);
  return out;
}

RequestFeatures Extract(const RequestEvent& event, const DetectionModel* model,
                        int typical_answer_tokens) {
  RequestFeatures f;
  // The parsed body lives in a monotonic arena that starts on the stack: most bodies parse
  // without touching the heap, and the whole tree is released at once.
  alignas(std::max_align_t) unsigned char arena[16384];
  json::monotonic_resource mr(arena, sizeof(arena));
  json::parse_options opts;
  boost::system::error_code ec;
  json::value body = json::parse(event.body_json, ec, &mr, opts);
  std::string_view prompt;
  std::string_view previous_prompt;  // the user message before the last one
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
          previous_prompt = prompt;
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

  char lower_buf[kMaxSkeletonChars];
  const std::string_view lower = LowerInto(prompt, kMaxSkeletonChars, lower_buf);
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

  // Content: the learned model, the item sketch and the known-corpus match.
  ContentFeatures cf;
  WordHashes words;
  ExtractContentFeatures(prompt, &cf, &words);
  f.cohort_feature_count = std::min(cf.count, kCohortFeatures);
  for (int i = 0; i < f.cohort_feature_count; ++i) {
    f.cohort_features[i] = static_cast<uint16_t>(Mix64(cf.hash[i] ^ 0x636f686f7274ULL) >> (64 - kCohortFeatureBits));
  }
  if (model != nullptr && !model->content.empty()) {
    f.content = prompt.empty() ? ContentScores{} : model->content.FromRaw(model->content.RawLogits(cf));
    if (!previous_prompt.empty() && f.prompt_words <= kFollowUpWords) {
      ContentScores earlier = model->content.Score(previous_prompt);
      if (earlier.combined * kFollowUpDiscount > f.content.combined) {
        for (float& l : earlier.llr) l *= kFollowUpDiscount;
        earlier.combined *= kFollowUpDiscount;
        f.content = earlier;
      }
    }
    for (int h = 0; h < kNumHeads; ++h) {
      f.signal[kContentInstruction + h] = f.content.llr[h] >= kStrongContentLlr ? 1.0f : 0.0f;
    }
  }
  f.item = SketchWords(words);
  if (model != nullptr && !model->corpus.empty()) f.corpus = model->corpus.Lookup(f.item);
  {
    const int cap = f.max_tokens > 0 ? std::min(f.max_tokens, typical_answer_tokens) : typical_answer_tokens;
    f.expected_answer_tokens = std::max(1, cap) * std::clamp(f.n, 1, 16);
  }
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

#include "detect/features.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <initializer_list>
#include <vector>

namespace moat::detect {
namespace {

namespace json = boost::json;

struct Phrase {
  std::string_view text;
  float weight;
};

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '\''; }

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

// Sum of the weights of the phrases present (each counted once). Phrases that start and end
// with a letter are matched on word boundaries.
float PhraseScore(std::string_view lower, std::initializer_list<Phrase> phrases) {
  float sum = 0;
  for (const Phrase& p : phrases) {
    const bool wordy = IsWordChar(p.text.front()) && IsWordChar(p.text.back());
    if (wordy ? HasWord(lower, p.text) : lower.find(p.text) != std::string_view::npos) {
      sum += p.weight;
    }
  }
  return sum;
}

std::string Lower(std::string_view text, size_t max_chars) {
  std::string out(text.substr(0, max_chars));
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
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
  return std::binary_search(std::begin(kWords), std::end(kWords), w);
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

bool IsNumber(std::string_view w) {
  return !w.empty() && std::isdigit(static_cast<unsigned char>(w.front()));
}

constexpr size_t kMaxScanChars = 8192;  // content signals look at the first 8 KB

}  // namespace

// Scorers over text that is already lower-cased (Extract lower-cases the prompt once).
float CotElicitationScoreLower(std::string_view lower);
float JailbreakScoreLower(std::string_view lower);
float HarmfulScoreLower(std::string_view lower);
float BenchmarkShapeScoreLower(std::string_view lower);
float DistillStyleScoreLower(std::string_view lower);

std::string_view SignalName(int signal) {
  static constexpr std::string_view kNames[kNumSignals] = {
      "cot_elicitation", "jailbreak_template", "harmful_request", "benchmark_shape",
      "distill_style",   "logprobs",           "multi_sample",    "long_output",
      "reasoning_param", "greedy_decoding",    "single_turn"};
  return signal >= 0 && signal < kNumSignals ? kNames[signal] : "unknown";
}

std::string Skeleton(std::string_view text) {
  const std::string lower = Lower(text, 4096);
  std::string out;
  out.reserve(lower.size() / 2);
  bool last_masked = false;
  int tokens = 0;
  ForEachToken(lower, [&](std::string_view tok, bool punct) {
    if (tokens >= 160) return;
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
  return out;
}

float CotElicitationScore(std::string_view text) { return CotElicitationScoreLower(Lower(text, kMaxScanChars)); }

float CotElicitationScoreLower(std::string_view lower) {
  const float s = PhraseScore(
      lower, {{"step by step", 1.0f},       {"step-by-step", 1.0f},
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
              {"show the reasoning", 1.0f}, {"the reasoning trace", 0.5f}});
  return std::min(1.0f, s / 1.5f);
}

float JailbreakScore(std::string_view text) { return JailbreakScoreLower(Lower(text, kMaxScanChars)); }

float JailbreakScoreLower(std::string_view lower) {
  float s = PhraseScore(
      lower, {{"ignore all previous", 2.0f},   {"ignore previous instructions", 2.0f},
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
              {"filter", 0.3f},                {"🔓", 1.5f}});
  return std::min(1.0f, s / 4.0f);
}

float HarmfulScore(std::string_view text) { return HarmfulScoreLower(Lower(text, kMaxScanChars)); }

float HarmfulScoreLower(std::string_view lower) {
  const float s = PhraseScore(
      lower, {{"bomb", 1}, {"explosive", 1}, {"weapon", 1}, {"kill", 0.7f}, {"murder", 1},
              {"poison", 1}, {"meth", 1}, {"cocaine", 1}, {"heroin", 1}, {"drugs", 0.5f},
              {"hack", 0.7f}, {"hacking", 0.7f}, {"malware", 1}, {"ransomware", 1},
              {"virus", 0.5f}, {"steal", 1}, {"fraud", 1}, {"counterfeit", 1},
              {"launder", 1}, {"terrorist", 1}, {"suicide", 1}, {"self-harm", 1},
              {"racist", 1}, {"hate speech", 1}, {"phishing", 1}, {"ddos", 1},
              {"keylogger", 1}, {"firearm", 1}, {"gun", 0.7f}, {"torture", 1},
              {"smuggle", 1}, {"identity theft", 1}, {"blackmail", 1}, {"extort", 1},
              {"assassinate", 1}, {"harass", 1}, {"stalk", 1}, {"illegally", 1},
              {"without getting caught", 1.5f}, {"untraceable", 1}, {"exploit", 0.5f}});
  return std::min(1.0f, s / 1.5f);
}

float BenchmarkShapeScore(std::string_view text) { return BenchmarkShapeScoreLower(Lower(text, kMaxScanChars)); }

float BenchmarkShapeScoreLower(std::string_view lower) {
  float s = PhraseScore(
      lower, {{"question:", 1.0f},        {"answer:", 1.0f},
              {"options:", 1.0f},         {"answer choices", 1.0f},
              {"choices:", 1.0f},         {"which of the following", 0.8f},
              {"true or false", 0.5f},    {"final answer", 0.7f},
              {"correct answer", 0.7f},   {"q:", 0.7f},
              {"\n- yes\n- no", 1.0f},    {"\\n- yes\\n- no", 1.0f},
              {"multiple choice", 0.8f},  {"select the", 0.3f},
              {"choose the", 0.3f},       {"is the following", 0.5f}});
  // Lettered options, one per line or inline: "(a) ... (b) ..." or "\na. ... \nb. ...".
  int letters = 0;
  for (std::string_view opt : {"(a)", "(b)", "(c)", "(d)"}) letters += lower.find(opt) != std::string::npos;
  if (letters < 3) {
    letters = 0;
    for (std::string_view opt : {"\na)", "\nb)", "\nc)", "\nd)", "\na.", "\nb.", "\nc.", "\nd."}) {
      letters += lower.find(opt) != std::string::npos;
    }
  }
  if (letters >= 3) s += 1.5f;
  // GSM-like word problem: several numbers and a quantity question.
  int numbers = 0;
  for (size_t i = 0; i < lower.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(lower[i])) &&
        (i == 0 || !std::isdigit(static_cast<unsigned char>(lower[i - 1])))) {
      ++numbers;
    }
  }
  const bool quantity = lower.find("how many") != std::string::npos ||
                        lower.find("how much") != std::string::npos ||
                        lower.find("what is the total") != std::string::npos;
  if (numbers >= 3 && quantity) s += 1.0f;
  return std::min(1.0f, s / 2.0f);
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
  boost::system::error_code ec;
  json::value body = json::parse(event.body_json, ec);
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

  const std::string lower = Lower(prompt, kMaxScanChars);
  // Skeleton, its MinHash over 3-shingles, and template prefix / suffix.
  const std::string skeleton = Skeleton(prompt);
  f.skeleton_hash = Hash64(skeleton);
  {
    std::vector<uint64_t> toks;
    toks.reserve(64);
    size_t i = 0;
    while (i < skeleton.size()) {
      size_t j = skeleton.find(' ', i);
      if (j == std::string::npos) j = skeleton.size();
      toks.push_back(Hash64(std::string_view(skeleton).substr(i, j - i)));
      i = j + 1;
    }
    for (size_t k = 0; k + 2 < toks.size(); ++k) {
      f.minhash.Add(HashCombine(HashCombine(toks[k], toks[k + 1]), toks[k + 2]));
    }
    if (toks.size() < 3 && !toks.empty()) f.minhash.Add(f.skeleton_hash);
  }
  {
    // Normalised words (lower case, numbers masked) for the template prefix and suffix.
    std::vector<std::string_view> words;
    words.reserve(128);
    ForEachToken(lower, [&](std::string_view tok, bool punct) {
      if (!punct) words.push_back(IsNumber(tok) ? std::string_view("#") : tok);
    });
    f.prompt_words = static_cast<int>(words.size());
    if (words.size() >= 2 * kTemplateWords) {
      uint64_t p = 0x7072656669780000ULL, s = 0x7375666669780000ULL;
      for (int k = 0; k < kTemplateWords; ++k) {
        p = HashCombine(p, Hash64(words[k]));
        s = HashCombine(s, Hash64(words[words.size() - kTemplateWords + k]));
      }
      f.prefix_hash = p;
      f.suffix_hash = s;
    }
  }

  // Signals.
  f.signal[kCot] = CotElicitationScoreLower(lower);
  f.signal[kJailbreak] = JailbreakScoreLower(lower);
  f.signal[kHarmful] = HarmfulScoreLower(lower);
  f.signal[kBenchmark] = BenchmarkShapeScoreLower(lower);
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

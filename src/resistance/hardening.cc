#include "resistance/hardening.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <initializer_list>
#include <vector>

namespace moat::resistance {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The line of `s` that starts at `from` (up to the next newline), trimmed.
std::string_view RestOfLine(std::string_view s, size_t from) {
  const size_t end = s.find('\n', from);
  return Trim(s.substr(from, end == std::string_view::npos ? std::string_view::npos : end - from));
}

std::vector<std::string_view> Words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    const size_t start = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

std::string Join(const std::vector<std::string_view>& words, size_t from, size_t to) {
  std::string out;
  for (size_t i = from; i < to; ++i) {
    if (!out.empty()) out += ' ';
    out += words[i];
  }
  return out;
}

std::vector<std::string_view> Sentences(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    const bool end = i == s.size() || s[i] == '\n' ||
                     ((s[i] == '.' || s[i] == '!' || s[i] == '?') && i + 1 < s.size() && s[i + 1] == ' ');
    if (!end) continue;
    const size_t stop = (i < s.size() && s[i] != '\n') ? i + 1 : i;
    const std::string_view sentence = Trim(s.substr(start, stop - start));
    if (!sentence.empty()) out.push_back(sentence);
    start = i + 1;
  }
  return out;
}

Status Bad(std::string_view where, std::string_view key, std::string_view what) {
  return InvalidArgumentError(std::string(where) + "." + std::string(key) + " " + std::string(what));
}

template <typename T>
bool ParseNumber(std::string_view v, T* out) {
  if constexpr (std::is_floating_point_v<T>) {
    // from_chars for double is available in GCC 11+, but keep strtod for older libstdc++.
    std::string s(v);
    char* end = nullptr;
    *out = std::strtod(s.c_str(), &end);
    return !s.empty() && end == s.c_str() + s.size();
  } else {
    const auto r = std::from_chars(v.data(), v.data() + v.size(), *out);
    return r.ec == std::errc() && r.ptr == v.data() + v.size();
  }
}

// Sets *out to the one of `modes` whose name (`name_of`) is `value`; false when none is.
template <typename Mode>
bool ModeNamed(std::string_view value, std::initializer_list<Mode> modes,
               std::string_view (*name_of)(Mode), Mode* out) {
  for (Mode m : modes) {
    if (value == name_of(m)) {
      *out = m;
      return true;
    }
  }
  return false;
}

}  // namespace

std::string_view TraceModeName(TraceMode m) {
  switch (m) {
    case TraceMode::kRemove: return "remove";
    case TraceMode::kSummary: return "summary";
    case TraceMode::kKeep: return "keep";
  }
  return "remove";
}

std::string_view AnswerOnlyModeName(AnswerOnlyMode m) {
  switch (m) {
    case AnswerOnlyMode::kOff: return "off";
    case AnswerOnlyMode::kWhenAsked: return "when_asked";
    case AnswerOnlyMode::kAlways: return "always";
  }
  return "off";
}

Status SetHardeningField(std::string_view where, std::string_view key, std::string_view value,
                         HardeningProfile* p) {
  if (key == "trace") {
    if (!ModeNamed(value, {TraceMode::kRemove, TraceMode::kSummary, TraceMode::kKeep},
                   TraceModeName, &p->trace)) {
      return Bad(where, key, "must be remove, summary or keep");
    }
    return Status::Ok();
  }
  if (key == "answer_only") {
    if (!ModeNamed(value,
                   {AnswerOnlyMode::kOff, AnswerOnlyMode::kWhenAsked, AnswerOnlyMode::kAlways},
                   AnswerOnlyModeName, &p->answer_only)) {
      return Bad(where, key, "must be off, when_asked or always");
    }
    return Status::Ok();
  }
  if (key == "logprobs") {
    if (value != "refuse" && value != "allow") return Bad(where, key, "must be refuse or allow");
    p->refuse_logprobs = value == "refuse";
    return Status::Ok();
  }
  if (key == "max_tokens") {
    int64_t n = 0;
    if (!ParseNumber(value, &n) || n < 0) return Bad(where, key, "must be an integer >= 0");
    p->max_tokens = n;
    return Status::Ok();
  }
  if (key == "summary_words") {
    int n = 0;
    if (!ParseNumber(value, &n) || n < 1 || n > 1000) return Bad(where, key, "must be an integer in [1, 1000]");
    p->summary_words = n;
    return Status::Ok();
  }
  if (key == "antidistill_kl") {
    double x = 0;
    if (!ParseNumber(value, &x) || !(x >= 0 && x <= 5)) return Bad(where, key, "must be a number in [0, 5]");
    p->antidistill_kl = x;
    return Status::Ok();
  }
  return InvalidArgumentError("unknown key " + std::string(where) + "." + std::string(key) +
                              " (trace, answer_only, logprobs, max_tokens, summary_words, antidistill_kl)");
}

std::string Describe(const HardeningProfile& p) {
  char kl[32];
  std::snprintf(kl, sizeof kl, "%g", p.antidistill_kl);
  return "trace=" + std::string(TraceModeName(p.trace)) +
         (p.trace == TraceMode::kSummary ? "(" + std::to_string(p.summary_words) + " words)" : "") +
         " answer_only=" + std::string(AnswerOnlyModeName(p.answer_only)) +
         " logprobs=" + (p.refuse_logprobs ? "refuse" : "allow") +
         " max_tokens=" + (p.max_tokens > 0 ? std::to_string(p.max_tokens) : "default") +
         " antidistill_kl=" + kl;
}

std::string SummarizeTrace(std::string_view trace, int max_words) {
  const auto sentences = Sentences(trace);
  if (sentences.empty() || max_words < 1) return "";
  const size_t budget = static_cast<size_t>(max_words);
  const auto first = Words(sentences.front());
  if (sentences.size() == 1) {
    return "Summary: " + Join(first, 0, std::min(first.size(), budget)) +
           (first.size() > budget ? " ..." : "");
  }
  const auto last = Words(sentences.back());
  const size_t head = std::min(first.size(), std::max<size_t>(1, budget / 2));
  const size_t tail = std::min(last.size(), budget > head ? budget - head : 0);
  std::string out = "Summary: " + Join(first, 0, head) + " ...";
  if (tail > 0) out += " " + Join(last, last.size() - tail, last.size());
  return out;
}

std::string FinalAnswer(std::string_view content) {
  const std::string_view trimmed = Trim(content);
  // One line already (blank lines around it aside): that line is the answer.
  if (trimmed.find('\n') == std::string_view::npos && trimmed.find("\\boxed{") == std::string_view::npos) {
    return std::string(trimmed);
  }
  // 1. \boxed{...}
  if (const size_t b = trimmed.rfind("\\boxed{"); b != std::string_view::npos) {
    int depth = 1;
    size_t i = b + 7;
    for (; i < trimmed.size() && depth > 0; ++i) {
      if (trimmed[i] == '{') ++depth;
      if (trimmed[i] == '}') --depth;
    }
    const std::string_view boxed = Trim(trimmed.substr(b + 7, i - 1 - (b + 7)));
    if (depth == 0 && boxed.find('\n') == std::string_view::npos) return std::string(boxed);
  }
  const std::string lower = Lower(trimmed);
  // 2. "answer:" / "answer is"
  size_t best = std::string::npos, len = 0;
  for (std::string_view marker : {"answer:", "answer is", "\nanswer "}) {
    const size_t at = lower.rfind(marker);
    if (at != std::string::npos && (best == std::string::npos || at > best)) {
      best = at;
      len = marker.size();
    }
  }
  if (lower.rfind("answer ", 0) == 0 && best == std::string::npos) {
    best = 0;
    len = 7;
  }
  if (best != std::string::npos) {
    std::string_view rest = RestOfLine(trimmed, best + len);
    if (!rest.empty() && rest.back() == '.') rest.remove_suffix(1);
    if (!Trim(rest).empty()) return std::string(Trim(rest));
  }
  // 3. "####"
  if (const size_t h = trimmed.rfind("####"); h != std::string_view::npos) {
    const std::string_view rest = RestOfLine(trimmed, h + 4);
    if (!rest.empty()) return std::string(rest);
  }
  // 4. the last non-blank line
  const size_t nl = trimmed.rfind('\n');
  return std::string(Trim(trimmed.substr(nl + 1)));
}

bool RequestAsksForSteps(std::string_view prompt) {
  const std::string p = Lower(prompt);
  for (std::string_view cue :
       {"step by step", "step-by-step", "show your work", "show your working", "show the steps",
        "show all steps", "show your steps", "explain your reasoning", "show your reasoning",
        "your thinking", "reasoning trace", "chain of thought", "how did you get", "walk me through",
        "explain each step", "intermediate steps", "work it out"}) {
    if (p.find(cue) != std::string::npos) return true;
  }
  return false;
}

void HardenAnswer(const HardeningProfile& p, bool asks_for_steps, std::string* content,
                  std::string* reasoning) {
  if (reasoning != nullptr) {
    switch (p.trace) {
      case TraceMode::kRemove: reasoning->clear(); break;
      case TraceMode::kSummary: *reasoning = SummarizeTrace(*reasoning, p.summary_words); break;
      case TraceMode::kKeep: break;
    }
  }
  const bool answer_only = p.answer_only == AnswerOnlyMode::kAlways ||
                           (p.answer_only == AnswerOnlyMode::kWhenAsked && asks_for_steps);
  if (answer_only && content != nullptr) *content = FinalAnswer(*content);
}

}  // namespace moat::resistance

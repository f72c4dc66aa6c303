#include "resistance/hardened_response.h"

#include <string>

namespace moat::resistance {
namespace json = boost::json;
namespace {

// Calls fn(part) for each choice's `part` object ("message" or "delta").
template <typename Fn>
void ForEachPart(json::object& o, const char* part, Fn fn) {
  auto* choices = o.if_contains("choices");
  if (choices == nullptr || !choices->is_array()) return;
  for (auto& ch : choices->as_array()) {
    if (!ch.is_object()) continue;
    if (part == nullptr) {
      fn(ch.as_object());
      continue;
    }
    auto* p = ch.as_object().if_contains(part);
    if (p != nullptr && p->is_object()) fn(p->as_object());
  }
}

// Applies the trace mode to the reasoning fields of `m`; true when something changed.
bool HardenTrace(const HardeningProfile& p, json::object& m) {
  if (p.trace == TraceMode::kKeep) return false;
  bool changed = false;
  for (const char* field : {"reasoning_content", "reasoning"}) {
    auto* v = m.if_contains(field);
    if (v == nullptr) continue;
    if (p.trace == TraceMode::kRemove || !v->is_string()) {
      m.erase(field);
    } else {
      *v = SummarizeTrace(std::string(v->as_string()), p.summary_words);
    }
    changed = true;
  }
  return changed;
}

bool HardenContent(json::object& m, const char* field) {
  auto* v = m.if_contains(field);
  if (v == nullptr || !v->is_string()) return false;
  std::string answer = FinalAnswer(std::string(v->as_string()));
  if (answer == v->as_string()) return false;
  *v = answer;
  return true;
}

}  // namespace

bool HardenResponse(const HardeningProfile& p, std::string_view request_body, json::object& response) {
  const bool answer_only = p.answer_only == AnswerOnlyMode::kAlways ||
                           (p.answer_only == AnswerOnlyMode::kWhenAsked && RequestAsksForSteps(request_body));
  bool changed = false;
  ForEachPart(response, "message", [&](json::object& m) {
    changed |= HardenTrace(p, m);
    if (answer_only) changed |= HardenContent(m, "content");
  });
  if (answer_only) ForEachPart(response, nullptr, [&](json::object& ch) { changed |= HardenContent(ch, "text"); });
  return changed;
}

}  // namespace moat::resistance

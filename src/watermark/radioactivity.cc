#include "watermark/radioactivity.h"

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <unordered_set>

namespace moat::watermark {

namespace {

// Calls `fn(line, object)` for each non-blank line of a text file, `object` the line parsed as
// a JSON object or null when the line is not one. NotFound (naming `what`) when the file cannot
// be opened.
template <typename Fn>
Status ForEachLine(const std::string& path, const char* what, Fn fn) {
  std::ifstream in(path);
  if (!in) return NotFoundError(std::string("cannot open ") + what + " file " + path);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    boost::system::error_code ec;
    boost::json::value v = line[0] == '{' ? boost::json::parse(line, ec) : boost::json::value();
    fn(line, !ec && v.is_object() ? &v.as_object() : nullptr);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::vector<std::string>> ReadPrompts(const std::string& path) {
  std::vector<std::string> out;
  MOAT_RETURN_IF_ERROR(ForEachLine(path, "prompts", [&](const std::string& line, const boost::json::object* o) {
    if (o == nullptr) {
      out.push_back(line);
      return;
    }
    for (const char* f : {"text", "prompt", "content"}) {
      if (const auto* t = o->if_contains(f); t != nullptr && t->is_string()) {
        out.emplace_back(t->as_string());
        break;
      }
    }
  }));
  if (out.empty()) return InvalidArgumentError("no prompts in " + path);
  return out;
}

namespace {

const boost::json::string* StringField(const boost::json::object& o,
                                       std::initializer_list<const char*> names) {
  for (const char* f : names) {
    if (const auto* v = o.if_contains(f); v != nullptr && v->is_string()) return &v->as_string();
  }
  return nullptr;
}

}  // namespace

StatusOr<std::vector<HarvestedText>> ReadHarvest(const std::string& path,
                                                 const std::vector<std::string>& accounts) {
  std::vector<HarvestedText> out;
  MOAT_RETURN_IF_ERROR(ForEachLine(path, "harvest", [&](const std::string& line, const boost::json::object* o) {
    if (o == nullptr) {
      out.push_back({"", line});
      return;
    }
    if (const auto* r = StringField(*o, {"retention"}); r != nullptr && *r != "full") return;
    if (!accounts.empty()) {
      const auto* a = StringField(*o, {"account_id"});
      if (a == nullptr || std::find(accounts.begin(), accounts.end(), std::string_view(*a)) == accounts.end()) {
        return;
      }
    }
    const auto* completion = StringField(*o, {"completion_text", "completion", "text", "content"});
    if (completion == nullptr || completion->empty()) return;
    const auto* prompt = StringField(*o, {"prompt_text", "prompt"});
    out.push_back({prompt == nullptr ? "" : std::string(*prompt), std::string(*completion)});
  }));
  if (out.empty()) return InvalidArgumentError("no harvested answers in " + path);
  return out;
}

std::string ProbeOfPrompt(std::string_view prompt_text) {
  // "role: content" lines (src/server/openai.cc PromptText): the last "user: " line starts the
  // last user message, which runs to the next role line or the end.
  size_t start = std::string_view::npos;
  for (size_t pos = 0; pos < prompt_text.size();) {
    if (prompt_text.substr(pos).starts_with("user: ")) start = pos + 6;
    const size_t nl = prompt_text.find('\n', pos);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  if (start == std::string_view::npos) return std::string(prompt_text);
  size_t end = prompt_text.size();
  for (const char* role : {"\nsystem: ", "\nassistant: ", "\ntool: ", "\ndeveloper: "}) {
    end = std::min(end, prompt_text.find(role, start));
  }
  return std::string(prompt_text.substr(start, end - start));
}

std::vector<std::string> ProbesOfHarvest(const std::vector<HarvestedText>& harvest) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (const auto& h : harvest) {
    std::string p = ProbeOfPrompt(h.prompt);
    if (p.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    if (seen.insert(p).second) out.push_back(std::move(p));
  }
  return out;
}

ContextFilter FilterOfHarvest(const std::vector<HarvestedText>& harvest,
                              const model::Tokenizer& tokenizer, int width) {
  ContextFilter filter(width);
  for (const auto& x : harvest) {
    std::vector<int32_t> ids = tokenizer.Encode(x.prompt);
    const std::vector<int32_t> answer = tokenizer.Encode(x.completion);
    ids.insert(ids.end(), answer.begin(), answer.end());
    filter.AddSequence(ids);
  }
  return filter;
}

StatusOr<std::vector<SuspectSample>> QuerySuspect(const SuspectClient& client,
                                                 const std::vector<std::string>& prompts,
                                                 const RadioactivityOptions& options) {
  if (prompts.empty()) return InvalidArgumentError("no prompts");
  std::vector<SuspectSample> out;
  int failures = 0;
  for (int i = 0; i < options.samples; ++i) {
    ChatRequest r;
    r.model = options.model;
    r.prompt = prompts[static_cast<size_t>(i) % prompts.size()];
    r.max_tokens = options.max_tokens;
    r.temperature = options.temperature;
    r.seed = options.seed + static_cast<uint64_t>(i);
    auto text = client.ChatCompletion(r);
    if (!text.ok()) {
      if (++failures > options.max_failures) return text.status();
      continue;
    }
    out.push_back({std::move(r.prompt), std::move(text).value()});
  }
  return out;
}

ScoringUnits UnitsOfTexts(const std::vector<std::string>& texts, const model::Tokenizer& tokenizer,
                          int h) {
  ScoringUnits units(h);
  for (const auto& t : texts) units.AddSequence(tokenizer.Encode(t));
  return units;
}

StatusOr<ScoringUnits> UpstreamUnitsOfTexts(const std::vector<std::string>& texts,
                                            const SuspectClient& tokenizer,
                                            std::string_view model, int32_t vocab_size, int h) {
  ScoringUnits units(h);
  for (const auto& t : texts) {
    MOAT_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer.Tokenize(model, t));
    if (vocab_size > 0) std::erase_if(ids, [&](int32_t id) { return id >= vocab_size; });
    units.AddSequence(ids);
  }
  return units;
}

RadioactivityReport TestRadioactivity(const std::vector<SuspectSample>& samples,
                                      const model::Tokenizer& tokenizer,
                                      std::span<const WatermarkKey> keys,
                                      const WatermarkConfig& config, const TraceOptions& options,
                                      const ContextFilter* filter) {
  ScoringUnits units(config.h());
  for (const auto& s : samples) {
    const std::vector<int32_t> ids = tokenizer.Encode(s.completion);
    if (filter != nullptr) {
      units.AddSequence(ids, *filter);
    } else {
      units.AddSequence(ids);
    }
  }
  RadioactivityReport report;
  report.samples = static_cast<int64_t>(samples.size());
  report.filter_contexts = filter == nullptr ? 0 : filter->size();
  report.filtered_out = units.filtered_out();
  report.trace = Trace(units, keys, config, options);
  report.detected = report.trace.significant > 0;
  return report;
}

}  // namespace moat::watermark
